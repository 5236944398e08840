"""Stage 5, SMPL estimation: GVHMR's output as the project's 272-d frame (stage: curation).

Input: GVHMR's per-video result, ``smpl_params_global`` (its gravity-aligned
world frame, y up): ``global_orient [L, 3]`` and ``body_pose [L, 63]``
(axis-angle, SMPL(-X) body joints 1-21), ``transl [L, 3]`` (metres) and
``betas [L, 10]``, one row per video frame. GVHMR's demo saves them with
``torch.save`` as ``hmr4d_results.pt``; this module reads that ``.pt`` when
torch is installed, and otherwise the same arrays in an ``.npz`` with keys
``smpl_params_global/<name>`` (:func:`write_gvhmr_npz`; converting a ``.pt``
is three lines, docs/curation.md). Output: for frames ``[start, end)`` the
local rotations ``[T, 22, 3, 3]``, joints ``[T, 22, 3]`` and features
``[T, 272]`` at 30 fps.

The conversion is the SMPL importer's (:mod:`mm_jax.motion.import_smpl`):
``poses = [global_orient, body_pose]`` as 22 axis-angle joints go through
:func:`~mm_jax.motion.import_smpl.smpl_motion` (Rodrigues, z-up conversion
when ``y_up`` is false, resampling to 30 fps) and
:func:`~mm_jax.motion.import_common.joint_features`. Joints are approximated
without SMPL model files: forward kinematics of the rotations on the SMPL
neutral skeleton (``skeleton.OFFSETS``) with the pelvis at ``transl``. So
``betas`` are read but not used (bone lengths are the neutral body's), and
the true pelvis ``transl + J_pelvis(betas)`` differs from ``transl`` by a
constant that the floor and origin step removes.
"""

from __future__ import annotations

import io
import pathlib
from typing import NamedTuple

import numpy as np

from mm_jax.atomic import write_atomic
from mm_jax.errors import DataError, ShapeError
from mm_jax.motion import import_common as ic
from mm_jax.motion.import_smpl import SmplClip, smpl_motion
from mm_jax.motion.validate import validate_features

PREFIX = "smpl_params_global/"
NAMES = ("global_orient", "body_pose", "transl", "betas")
_WIDTH = {"global_orient": 3, "body_pose": 63, "transl": 3}


class GvhmrParams(NamedTuple):
    """GVHMR's world-frame SMPL parameters, one row per video frame (float64)."""

    global_orient: np.ndarray  # [L, 3]
    body_pose: np.ndarray  # [L, 63]
    transl: np.ndarray  # [L, 3]
    betas: np.ndarray | None  # [L, 10]


def _read_pt(path: pathlib.Path) -> dict:
    try:
        import torch  # optional: only a .pt result needs it
    except ImportError:
        raise DataError(f"{path}: reading GVHMR's .pt needs torch; convert it to .npz (docs/curation.md)") from None
    data = torch.load(path, map_location="cpu", weights_only=True)
    glob = data.get("smpl_params_global") if isinstance(data, dict) else None
    if not isinstance(glob, dict):
        raise DataError(f"{path}: no 'smpl_params_global' dict (not a GVHMR hmr4d_results.pt?)")
    return {PREFIX + k: v.numpy() for k, v in glob.items() if k in NAMES}


def read_gvhmr(path: str | pathlib.Path) -> GvhmrParams:
    """Reads and checks a GVHMR result (``.npz`` or ``.pt``); DataError names the file and the problem."""
    path = pathlib.Path(path)
    if path.suffix == ".pt":
        arrays = _read_pt(path)
    else:
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as e:
            raise DataError(f"{path}: not a readable GVHMR .npz ({e})") from None
    missing = [n for n in _WIDTH if PREFIX + n not in arrays]
    if missing:
        raise DataError(f"{path}: missing {[PREFIX + n for n in missing]}; has {sorted(arrays)}")
    out = {}
    for name, width in _WIDTH.items():
        a = np.asarray(arrays[PREFIX + name])
        try:
            out[name] = validate_features(a, name=f"{path}: {name}", width=width).astype(np.float64)
        except ShapeError as e:
            raise DataError(str(e)) from None
    lengths = {n: len(a) for n, a in out.items()}
    if len(set(lengths.values())) != 1:
        raise DataError(f"{path}: parameters of different lengths {lengths}")
    betas = arrays.get(PREFIX + "betas")
    return GvhmrParams(betas=None if betas is None else np.asarray(betas, np.float64), **out)


def write_gvhmr_npz(path: str | pathlib.Path, params: GvhmrParams) -> None:
    """Writes ``params`` in the ``.npz`` layout :func:`read_gvhmr` reads (atomically)."""
    arrays = {PREFIX + n: np.asarray(getattr(params, n), np.float32) for n in NAMES if getattr(params, n) is not None}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    write_atomic(pathlib.Path(path), lambda f: f.write(data), needed=len(data))


def clip_motion(params: GvhmrParams, start: int, end: int, *, fps: float,
                y_up: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(local_rot [T, 22, 3, 3], joints [T, 22, 3]) of video frames ``[start, end)`` at 30 fps.

    Raises:
      DataError: the frames lie outside the result.
    """
    n = len(params.transl)
    if not 0 <= start < end <= n:
        raise DataError(f"frames [{start}, {end}) lie outside the GVHMR result of {n} frames")
    poses = np.concatenate([params.global_orient[start:end], params.body_pose[start:end]], axis=1)
    clip = SmplClip(poses=poses.reshape(end - start, 22, 3), trans=params.transl[start:end], fps=fps, joints=None)
    return smpl_motion(clip, y_up=y_up)


def clip_features(local_rot: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """The 272-d features [T, 272] float32 of a clip (the importers' ``joint_features``)."""
    return ic.joint_features(joints, local_rot)
