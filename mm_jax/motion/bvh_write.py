"""BVH files out: the 22-joint SMPL skeleton, and features fitted onto it (stage: motion I/O).

:func:`write_bvh` writes local rotations ``[T, 22, 3, 3]`` and the root
position ``[T, 3]`` on the SMPL hierarchy (root with six channels, every other
joint with three rotation channels, End Sites after the head, wrists and feet
so viewers draw tip bones), with the SMPL rest offsets or per-clip ones.
Units are **metres** by default, which Blender's importer shows at true size
with its default scale 1.0; ``unit="cm"`` writes centimetres (scale 0.01 in
Blender). The retargeter detects either from the skeleton's height.

:func:`write_motion_bvh` writes 272-d features: it fits rotations and a
per-clip skeleton to the feature's joint positions (:mod:`mm_jax.motion.ik`)
so the file shows the motion the ``.npy`` joints and the GIF show.
Both names are re-exported by :mod:`mm_jax.motion.bvh`.
"""

from __future__ import annotations

import logging
import pathlib

import jax.numpy as jnp
import numpy as np

from mm_jax.errors import ConfigError, DataError, ShapeError
from mm_jax.motion import euler, ik, skeleton
from mm_jax.motion import features as mfeat

log = logging.getLogger(__name__)

UNIT_SCALE = {"m": 1.0, "cm": 100.0}
# Cosmetic End Site offsets (metres) after SMPL leaves: head top, hand tips, toe tips.
SMPL_END_SITES = {
    "head": (0.0, 0.10, 0.0),
    "left_wrist": (0.09, 0.0, 0.0),
    "right_wrist": (-0.09, 0.0, 0.0),
    "left_foot": (0.0, -0.02, 0.05),
    "right_foot": (0.0, -0.02, 0.05),
}


def _hierarchy_lines(order: str, scale: float, offsets: np.ndarray) -> tuple[list[str], list[int]]:
    """HIERARCHY text of the SMPL skeleton with ``offsets`` [22, 3] and its joints in file (depth-first) order."""
    out, dfs = ["HIERARCHY"], []
    rot = " ".join(f"{a}rotation" for a in order)

    def emit(j: int, depth: int) -> None:
        pad, name = "\t" * depth, skeleton.JOINT_NAMES[j]
        dfs.append(j)
        off = offsets[j] * scale
        out.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {name}")
        out.append(f"{pad}{{")
        out.append(f"{pad}\tOFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        chans = f"6 Xposition Yposition Zposition {rot}" if j == 0 else f"3 {rot}"
        out.append(f"{pad}\tCHANNELS {chans}")
        for c in ik.CHILDREN[j]:
            emit(c, depth + 1)
        if not ik.CHILDREN[j]:
            tip = np.asarray(SMPL_END_SITES.get(name, (0.0, 0.05, 0.0))) * scale
            out.extend([f"{pad}\tEnd Site", f"{pad}\t{{",
                        f"{pad}\t\tOFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}", f"{pad}\t}}"])
        out.append(f"{pad}}}")

    emit(0, 0)
    return out, dfs


def write_bvh(
    path: str | pathlib.Path,
    local_rot: np.ndarray,
    root_pos: np.ndarray,
    *,
    fps: float = 30.0,
    order: str = "ZXY",
    unit: str = "m",
    offsets: np.ndarray | None = None,
) -> None:
    """Writes a motion of the 22-joint SMPL skeleton as BVH.

    Args:
      path: output file.
      local_rot: [T, 22, 3, 3] local joint rotations (the root's global).
      root_pos: [T, 3] root (pelvis) position, metres, y up.
      fps: frames per second (``Frame Time: 1/fps``).
      order: Euler order of every joint's rotation channels, e.g. "ZXY".
      unit: "m" (default, Blender's scale 1.0) or "cm" (offsets and root
        positions times 100).
      offsets: [22, 3] rest offsets (metres) written in the HIERARCHY, e.g.
        the per-clip ones of :func:`ik.fit_rotations`; None: ``skeleton.OFFSETS``.
    """
    local_rot, root_pos = np.asarray(local_rot, np.float64), np.asarray(root_pos, np.float64)
    offsets = np.asarray(skeleton.OFFSETS if offsets is None else offsets, np.float64)
    n_j = skeleton.NUM_JOINTS
    if local_rot.ndim != 4 or local_rot.shape[1:] != (n_j, 3, 3):
        raise ShapeError(f"local_rot must have shape [T, {n_j}, 3, 3], got {local_rot.shape}")
    if root_pos.shape != (local_rot.shape[0], 3):
        raise ShapeError(f"root_pos must have shape [T, 3] = [{local_rot.shape[0]}, 3], got {root_pos.shape}")
    if offsets.shape != (n_j, 3):
        raise ShapeError(f"offsets must have shape [{n_j}, 3], got {offsets.shape}")
    if order not in euler.EULER_ORDERS:
        raise ConfigError(f"order {order!r} is not one of {euler.EULER_ORDERS}")
    if unit not in UNIT_SCALE:
        raise ConfigError(f"unit {unit!r} is not one of {sorted(UNIT_SCALE)}")
    if not fps > 0:
        raise ConfigError(f"fps must be > 0, got {fps}")
    if not all(np.isfinite(a).all() for a in (local_rot, root_pos, offsets)):
        raise DataError(f"motion written to {str(path)!r} contains NaN or inf values")
    scale = UNIT_SCALE[unit]
    lines, dfs = _hierarchy_lines(order, scale, offsets)
    eul = np.rad2deg(euler.matrix_to_euler(local_rot[:, dfs], order)).reshape(len(local_rot), -1)
    values = np.concatenate([root_pos * scale, eul], axis=1)
    lines += ["MOTION", f"Frames: {len(values)}", f"Frame Time: {1.0 / fps:.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in values]
    pathlib.Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    log.info("wrote %d frames to %s", len(values), path)


def write_motion_bvh(path: str | pathlib.Path, features: np.ndarray, **kwargs) -> None:
    """Writes features [T, 272] as BVH that shows the joints of ``features.joints_from_features``.

    A decoded (generated or reconstructed) clip's 6D rotation channels and its
    position channels disagree, and its bone lengths are not SMPL's, so posing
    the 6D rotations on the SMPL skeleton drifts from the joints the ``.npy``
    and the GIF show (up to 13 cm on a generated clip). Instead the positions
    decide: :func:`ik.fit_rotations` fits a per-clip skeleton (mean bone
    lengths along SMPL's rest directions), moves the joints least-squares to
    the nearest pose of it, and fits rotations to that pose, taking from the
    6D channels only what positions cannot fix (the twist about each bone and
    the head, wrist and foot rotations). That skeleton goes into the
    HIERARCHY.

    Residual (the BVH read back by FK vs ``joints_from_features``): zero for
    features whose bone lengths are constant, whatever their 6D channels say;
    otherwise about the mean deviation of a frame's bone lengths from the
    clip's. On 36 val/test clips reconstructed by a demo-sized tokenizer
    (bone lengths off by 1.1 cm on average): 1.00 cm mean, 10 cm max, where
    the 6D channels on the SMPL skeleton gave 2.3 cm mean, 34 cm max
    (docs/data_format.md, "BVH export").

    Args:
      path: output file.
      features: [T, 272] (denormalised) features.
      **kwargs: ``fps``, ``order``, ``unit`` of :func:`write_bvh`.
    """
    motion = mfeat.motion_from_features(jnp.asarray(features, jnp.float32))
    local_rot, root_pos, offsets = ik.fit_rotations(np.asarray(motion.joints), np.asarray(motion.local_rot))
    write_bvh(path, local_rot, root_pos, offsets=offsets, **kwargs)
