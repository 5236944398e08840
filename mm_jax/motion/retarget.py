"""Retarget any BVH onto the 22-joint SMPL skeleton (stage: motion I/O).

Input: a parsed BVH (:mod:`mm_jax.motion.bvh`). Output: SMPL local rotations
``[T, 22, 3, 3]`` and a root position ``[T, 3]`` (metres, y up, 30 fps) whose
forward kinematics with SMPL's own offsets reproduce the source's bone
*directions* in every frame.

Joints are matched by :mod:`mm_jax.motion.joint_map` (``naming``).

Rest poses. For each matched joint the rest alignment ``R_rest`` takes SMPL's
rest bone directions to the source's (shortest arc for one child, Kabsch for
several): a source in A-pose gives SMPL arms 45 degrees down at zero source
rotation. Per frame, ``G0 = W G_src W^T R_rest`` and a shortest-arc (Kabsch)
correction then makes every SMPL bone point exactly along the source segment
between the matched joints (which also absorbs intermediate source joints
such as CMU's LHipJoint or Neck1); leaves keep their parent's alignment.
``W`` turns the source's up axis into +y ("auto": the dominant axis of head
minus ankles in the rest pose, or averaged over the clip when the rest pose
does not stand, as in LAFAN1). Facing is kept as it is in the source world.

Units and root. ``unit="auto"`` sums the bone lengths ankle -> pelvis -> head
(any rest pose, even LAFAN1's bones-along-x one): < 5 -> metres, < 500 ->
centimetres, else millimetres (pass "in" for inches). The root moves
by the source pelvis converted to metres (``root_scale="body"`` instead
scales it by SMPL's leg length over the source's); ``ground="clip_min"``
then shifts it so the lowest SMPL foot joint over the clip is at y = 0.
The source rate is 1 / Frame Time snapped to an integer within 0.02%
(files round 1/120 s to 0.0083333). A source at another rate is resampled
to ``fps`` (30) after retargeting (:func:`resample`): slerp of local
rotations and linear positions at times k / fps (exact source frames for
integer ratios such as 120 -> 30).

Source joints. :func:`retarget_source` also keeps the source's own joint
positions ``[T, 22, 3]`` (metres, y up, same frame as ``root_pos``): each
matched SMPL joint sits exactly at its source joint, so the clip keeps its
own bone lengths; a virtual joint (no source joint) sits at its nearest
matched ancestor ``a`` plus SMPL's rest vector ``a -> j`` turned by the
retargeted ``G_a`` and scaled so that the chain has the source's length to
its matched descendants (a virtual leaf, e.g. a missing toe: SMPL's length).
The importer (:mod:`mm_jax.motion.import_bvh`) makes the position slices of
the 272-d features from these joints and the rotation slices from the SMPL
rotations; SMPL forward kinematics of the rotations (``smpl_forward_kinematics``)
gives the same bone directions with SMPL's fixed bone lengths.

Files: :func:`import_bvh` (one file -> :class:`ImportedMotion`) and
:func:`import_bvh_source` (one file -> :class:`SourceClip`).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Literal, Mapping, NamedTuple

import numpy as np

from mm_jax.errors import ConfigError, DataError
from mm_jax.motion import bvh, ik, joint_map, skeleton

log = logging.getLogger(__name__)
J_SMPL = skeleton.JOINT_NAMES
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}
_UP = {  # world rotation taking the named source up axis to +y
    "y": np.eye(3), "-y": np.diag([-1.0, -1.0, 1.0]),
    "z": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]), "-z": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
    "x": np.array([[0, -1.0, 0], [1, 0, 0], [0, 0, 1]]), "-x": np.array([[0, 1.0, 0], [-1, 0, 0], [0, 0, 1]]),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RetargetConfig:
    """How a BVH becomes an SMPL motion (see the module docstring).

    Attributes:
      unit: source length unit, or "auto" from the rest pose's height.
      up_axis: source up axis ("-z" means down is +z), or "auto".
      fps: output frame rate; 0 keeps the source's.
      ground: "clip_min" puts the lowest SMPL foot joint of the clip on y=0;
        "none" keeps the source's root height converted to metres.
      root_scale: "metric" (unit conversion only) or "body" (times SMPL leg
        length / source leg length).
    """

    unit: Literal["auto", "m", "cm", "mm", "in"] = "auto"
    up_axis: Literal["auto", "y", "z", "x", "-y", "-z", "-x"] = "auto"
    fps: float = 30.0
    ground: Literal["clip_min", "none"] = "clip_min"
    root_scale: Literal["metric", "body"] = "metric"

    def __post_init__(self):
        for name, valid in (("unit", ("auto", *UNITS)), ("up_axis", ("auto", *_UP)),
                            ("ground", ("clip_min", "none")), ("root_scale", ("metric", "body"))):
            if getattr(self, name) not in valid:
                raise ConfigError(f"RetargetConfig.{name}={getattr(self, name)!r}; valid: {valid}")
        if not (self.fps >= 0 and np.isfinite(self.fps)):
            raise ConfigError(f"RetargetConfig.fps must be >= 0 (0 keeps the source rate), got {self.fps}")


PRESETS = {"default": RetargetConfig(), "source_rate": RetargetConfig(fps=0.0)}


class ImportedMotion(NamedTuple):
    """local_rot [T, 22, 3, 3] float32, root_pos [T, 3] float32 (metres, y up), fps."""

    local_rot: np.ndarray
    root_pos: np.ndarray
    fps: float


class SourceClip(NamedTuple):
    """A retargeted BVH and what an importer keeps of its source (see "Source joints" above).

    Attributes:
      motion: the SMPL :class:`ImportedMotion`.
      joints: [T, 22, 3] float32, the source's own joints (metres, y up, frame of ``motion.root_pos``).
      mapping: SMPL joint name -> source joint name (None: virtual).
      source_fps: the file's frame rate (before any resampling).
    """

    motion: ImportedMotion
    joints: np.ndarray
    mapping: dict[str, str | None]
    source_fps: float


# ----------------------------------------------------------------------------- geometry


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _best_rotation(v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Rotation [..., 3, 3] taking directions v [..., K, 3] onto u [..., K, 3] (Kabsch; arc if K=1)."""
    if v.shape[-2] == 1:
        return ik.arc_rotation(v[..., 0, :], u[..., 0, :])
    return ik.kabsch(_unit(v), _unit(u))


def _targets(src: tuple[int | None, ...], j: int) -> list[int]:
    """Matched SMPL descendants of j reached through virtual joints only."""
    out = []
    for c in (c for c, p in enumerate(skeleton.PARENTS) if p == j):
        out.extend([c] if src[c] is not None else _targets(src, c))
    return out


def _up_matrix(skel: bvh.BvhSkeleton, pos: np.ndarray, src, up_axis: str) -> np.ndarray:
    """W for the source up axis. "auto": the dominant axis of head - ankles in the rest pose when
    it stands (spine and legs point the same way), else averaged over the clip's frames [T, J, 3]."""
    if up_axis != "auto":
        return _UP[up_axis]
    idx = skeleton.JOINT_INDEX
    head, pelvis, ankles = src[idx["head"]], src[0], [src[idx["left_ankle"]], src[idx["right_ankle"]]]
    rest = skel.rest_positions()
    spine, legs = _unit(rest[head] - rest[pelvis]), _unit(rest[pelvis] - rest[ankles].mean(0))
    if np.dot(spine, legs) > 0.5:
        up = spine + legs
    else:  # e.g. LAFAN1, whose zero-rotation pose has every bone along +x
        up = np.mean(pos[:, head] - pos[:, ankles].mean(1), axis=0)
    a = int(np.argmax(np.abs(up)))
    name = ("-" if up[a] < 0 else "") + "xyz"[a]
    log.info("detected up axis %s", name)
    return _UP[name]


def _chain_length(skel: bvh.BvhSkeleton, top: int, bottom: int) -> float:
    """Summed OFFSET lengths from joint ``bottom`` up to its ancestor ``top`` (pose-free)."""
    total = 0.0
    while bottom != top and bottom >= 0:
        total += float(np.linalg.norm(skel.offsets[bottom]))
        bottom = skel.parents[bottom]
    return total


def _unit_scale(skel: bvh.BvhSkeleton, src, unit: str) -> float:
    """Metres per file unit; "auto" from the bone lengths ankle..pelvis..head (any rest pose)."""
    if unit != "auto":
        return UNITS[unit]
    idx = skeleton.JOINT_INDEX
    height = sum(_chain_length(skel, src[0], src[idx[n]]) for n in ("head", "left_ankle"))
    unit = "m" if height < 5 else "cm" if height < 500 else "mm"
    log.info("ankle-to-head bone length %.3g -> unit %s", height, unit)
    return UNITS[unit]


def _global_rotations(glob_w, pos_w, rest_w, src, w) -> np.ndarray:
    """SMPL global rotations [T, 22, 3, 3] from the source's (already in the y-up world)."""
    rest_t = skeleton.rest_positions().astype(np.float64)
    out = np.empty(glob_w.shape[:1] + (len(J_SMPL), 3, 3))
    align: dict[int, np.ndarray] = {}
    for j, s in enumerate(src):
        p = skeleton.PARENTS[j]
        if s is None:
            out[:, j], align[j] = out[:, p], align[p]
            continue
        tg = [d for d in _targets(src, j) if np.linalg.norm(rest_w[src[d]] - rest_w[s]) > 1e-6]
        v = np.stack([rest_t[d] - rest_t[j] for d in tg]) if tg else None
        if tg:
            align[j] = _best_rotation(v, np.stack([rest_w[src[d]] - rest_w[s] for d in tg]))
        else:
            align[j] = align[p] if p >= 0 else np.eye(3)
        g0 = glob_w[:, s] @ w.T @ align[j]
        if tg:
            u = np.stack([pos_w[:, src[d]] - pos_w[:, s] for d in tg], axis=1)
            g0 = _best_rotation(np.einsum("tij,kj->tki", g0, v), u) @ g0
        out[:, j] = g0
    return out


def _leg_length(rest: np.ndarray, src) -> float:
    i = skeleton.JOINT_INDEX
    hip, knee, ankle = (rest[src[i[n]]] for n in ("left_hip", "left_knee", "left_ankle"))
    return float(np.linalg.norm(knee - hip) + np.linalg.norm(ankle - knee))


def source_forward_kinematics(skel: bvh.BvhSkeleton, motion: bvh.BvhMotion) -> tuple[np.ndarray, np.ndarray]:
    """A parsed BVH's global rotations [T, J, 3, 3] and positions [T, J, 3] (file units, float64)."""
    local = motion.local_rot.astype(np.float64)
    glob = np.empty_like(local)
    pos = np.empty_like(motion.translations)
    for j, p in enumerate(skel.parents):
        if p < 0:
            glob[:, j], pos[:, j] = local[:, j], motion.translations[:, j]
        else:
            glob[:, j] = glob[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + np.einsum("tij,tj->ti", glob[:, p], motion.translations[:, j])
    return glob, pos


def smpl_forward_kinematics(local_rot: np.ndarray, root_pos: np.ndarray) -> np.ndarray:
    """NumPy twin of ``skeleton.forward_kinematics``: joints [T, 22, 3] (no per-shape compiling)."""
    glob, pos = [local_rot[:, 0]], [root_pos]
    for j, p in enumerate(skeleton.PARENTS[1:], start=1):
        pos.append(pos[p] + glob[p] @ skeleton.OFFSETS[j].astype(np.float64))
        glob.append(glob[p] @ local_rot[:, j])
    return np.stack(pos, axis=1)


def _slerp(r0: np.ndarray, r1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rotations a fraction w [N] of the way from r0 to r1 [N, 3, 3] along the shortest turn."""
    rel = np.swapaxes(r0, -1, -2) @ r1
    cos = np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    vec = np.stack([rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]], 1)
    axis = _unit(vec)
    big = cos < -0.8  # near a half turn vec vanishes: read the axis from the symmetric part
    if np.any(big):
        sym = 0.5 * (rel[big] + np.swapaxes(rel[big], -1, -2)) - cos[big, None, None] * np.eye(3)
        col = np.argmax(np.diagonal(sym, axis1=-2, axis2=-1), axis=-1)
        a = _unit(sym[np.arange(len(col)), :, col])
        axis[big] = a * np.where(np.sum(a * vec[big], -1) < 0, -1.0, 1.0)[:, None]
    k = np.zeros(vec.shape + (3,))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - np.swapaxes(k, -1, -2)
    a = (w * np.arccos(cos))[:, None, None]
    return r0 @ (np.eye(3) + np.sin(a) * k + (1.0 - np.cos(a)) * (k @ k))


def resample(local_rot: np.ndarray, src_fps: float, fps: float, *positions: np.ndarray) -> tuple:
    """Slerp rotations [T, J, 3, 3] and lerp each position array [T, ...] from src_fps to fps.

    Output frames sit at times k / fps, k = 0 .. floor((T - 1) fps / src_fps): exact source
    frames for integer ratios (60 -> 30 keeps frames 0, 2, 4, ...).

    Returns:
      (local_rot [T', J, 3, 3], *positions [T', ...]).
    """
    n_out = int(np.floor((len(local_rot) - 1) * fps / src_fps + 1e-6)) + 1
    x = np.arange(n_out) * (src_fps / fps)
    i0 = np.clip(np.floor(x + 1e-6).astype(int), 0, max(len(local_rot) - 2, 0))
    i1, w = np.minimum(i0 + 1, len(local_rot) - 1), np.clip(x - i0, 0.0, 1.0)
    n_j = local_rot.shape[1]
    rot = _slerp(local_rot[i0].reshape(-1, 3, 3), local_rot[i1].reshape(-1, 3, 3), np.repeat(w, n_j))
    lerped = [p[i0] * (1 - w).reshape((-1,) + (1,) * (p.ndim - 1)) + p[i1] * w.reshape((-1,) + (1,) * (p.ndim - 1))
              for p in positions]
    return (rot.reshape(n_out, n_j, 3, 3), *lerped)


def _source_joints(pos_m: np.ndarray, g: np.ndarray, src) -> np.ndarray:
    """The source's joints [T, 22, 3] at the SMPL joints (virtual ones: see "Source joints" above).

    Args:
      pos_m: [T, J_src, 3] source joint positions (metres, y up).
      g: [T, 22, 3, 3] retargeted SMPL global rotations.
      src: source joint index per SMPL joint (None: virtual).
    """
    rest = skeleton.rest_positions().astype(np.float64)
    out = np.empty(pos_m.shape[:1] + (len(J_SMPL), 3))
    for j, s in enumerate(src):
        if s is not None:
            out[:, j] = pos_m[:, s]
            continue
        a = skeleton.PARENTS[j]
        while src[a] is None:
            a = skeleton.PARENTS[a]
        scale = np.ones(len(pos_m))
        tg = _targets(src, j)
        if tg:
            scale = np.mean([np.linalg.norm(pos_m[:, src[d]] - out[:, a], axis=-1)
                             / np.linalg.norm(rest[d] - rest[a]) for d in tg], axis=0)
        out[:, j] = out[:, a] + scale[:, None] * np.einsum("tij,j->ti", g[:, a], rest[j] - rest[a])
    return out


def source_fps(frame_time: float) -> float:
    """1 / frame_time, snapped to the nearest integer within 0.02% (0.0083333 s -> 120)."""
    fps = 1.0 / frame_time
    near = round(fps)
    return float(near) if near > 0 and abs(fps - near) <= 2e-4 * fps else fps


def retarget_source(
    skel: bvh.BvhSkeleton,
    motion: bvh.BvhMotion,
    *,
    naming: str | Mapping[str, str] = "auto",
    config: RetargetConfig = RetargetConfig(),
) -> SourceClip:
    """SMPL motion reproducing a parsed BVH's bone directions, with the source's own joints."""
    if motion.num_frames == 0:
        raise DataError("the BVH motion has no frames")
    src = joint_map.match_skeleton(skel, naming)
    glob, pos = source_forward_kinematics(skel, motion)
    w = _up_matrix(skel, pos, src, config.up_axis)
    rest_w = skel.rest_positions() @ w.T
    scale = _unit_scale(skel, src, config.unit)
    glob_w = np.einsum("ij,tkjl->tkil", w, glob)
    pos_w = pos @ w.T * scale
    g = _global_rotations(glob_w, pos_w, rest_w * scale, src, w)
    local = g.copy()
    for j, p in enumerate(skeleton.PARENTS[1:], start=1):
        local[:, j] = np.swapaxes(g[:, p], -1, -2) @ g[:, j]
    joints = _source_joints(pos_w, g, src)
    root = pos_w[:, src[0]].copy()
    if config.root_scale == "body":
        root *= _leg_length(skeleton.rest_positions(), list(range(22))) / _leg_length(rest_w * scale, src)
    joints = joints - joints[:, :1] + root[:, None]  # the source's body on the (possibly scaled) root path
    src_fps = fps = source_fps(motion.frame_time)
    if config.fps and abs(fps - config.fps) > 1e-3 * config.fps:
        local, root, joints = resample(local, fps, config.fps, root, joints)
        fps = config.fps
    if config.ground == "clip_min":
        lift = float(np.min(smpl_forward_kinematics(local, root)[:, list(skeleton.FOOT_JOINTS), 1]))
        root[:, 1] -= lift
        joints[..., 1] -= lift
    mapping = {n: (skel.names[s] if s is not None else None) for n, s in zip(J_SMPL, src)}
    return SourceClip(ImportedMotion(local.astype(np.float32), root.astype(np.float32), float(fps)),
                      joints.astype(np.float32), mapping, float(src_fps))


def retarget(
    skel: bvh.BvhSkeleton,
    motion: bvh.BvhMotion,
    *,
    naming: str | Mapping[str, str] = "auto",
    config: RetargetConfig = RetargetConfig(),
) -> ImportedMotion:
    """SMPL motion reproducing a parsed BVH's bone directions (see the module docstring)."""
    return retarget_source(skel, motion, naming=naming, config=config).motion


def import_bvh_source(
    path: str | pathlib.Path,
    *,
    naming: str | Mapping[str, str] = "auto",
    config: RetargetConfig = RetargetConfig(),
) -> SourceClip:
    """Reads a BVH file and retargets it, keeping the source's joints (:class:`SourceClip`)."""
    skel, motion = bvh.read_bvh(path)
    try:
        return retarget_source(skel, motion, naming=naming, config=config)
    except DataError as e:
        raise type(e)(f"{path}: {e}") from None


def import_bvh(
    path: str | pathlib.Path,
    *,
    naming: str | Mapping[str, str] = "auto",
    config: RetargetConfig = RetargetConfig(),
) -> ImportedMotion:
    """Reads a BVH file and retargets it: (local_rot [T,22,3,3], root_pos [T,3], fps)."""
    return import_bvh_source(path, naming=naming, config=config).motion
