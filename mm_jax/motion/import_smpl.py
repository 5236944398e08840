"""Import AMASS-style SMPL parameters (stage: motion I/O).

Input, one clip each (a directory is searched recursively for both forms):

* ``clip.npz`` with ``poses`` ``[T, 3K]``, K >= 22: axis-angle per joint in SMPL
  joint order (66 body only, 72 SMPL, 156 SMPL-H, 165 SMPL-X: the first 22
  joints are the same body joints in all of them, and only those 66 values are
  used), ``trans`` ``[T, 3]`` (metres), the frame rate as ``mocap_framerate``
  (AMASS), ``mocap_frame_rate`` (AMASS SMPL-X) or ``fps``, and optionally
  ``joints`` ``[T, >=22, 3]``: SMPL joint positions from your own body model,
  in the same frame as ``trans`` (the first 22 are used). Other keys are
  ignored; a ``.npz`` without ``poses`` (e.g. AMASS ``shape.npz``) is skipped
  and reported.
* a clip folder holding ``poses.npy``, ``trans.npy``, optionally
  ``joints.npy``, and the rate as a number in ``fps.txt``.

``fps`` (``--fps``) gives the rate of sources that state none; a stated rate
wins. Captions: ``clip.txt`` beside ``clip.npz`` or beside the ``clip/``
folder (:func:`import_common.read_captions`).

Conversion. AMASS is z up; unless ``y_up`` the world is turned by ``W``
(x stays, z becomes y, y becomes -z): ``trans`` and ``joints`` are multiplied
by ``W`` and the root's global orientation becomes ``W @ R_root``; the other
local rotations are unchanged. A clip at another rate is resampled to 30 fps
(:func:`mm_jax.motion.retarget.resample`: slerp of rotations, lerp of
``trans`` and joints; exact source frames for 60, 120, 150 fps...).
``features.features_from_joints`` then applies the floor and origin step.

Position slices. With ``joints`` they are exact (the subject's own skeleton).
Without, joints come from forward kinematics with the project skeleton's
offsets (:data:`mm_jax.motion.skeleton.OFFSETS`, SMPL's neutral body) with the
pelvis put at ``trans``. Two approximations: the bone lengths are the neutral
body's, not the subject's (betas are not read: mm_jax has no body model); and
SMPL's pelvis is really at ``trans + J_pelvis(betas)``, a constant offset that
the floor and origin step removes, so it does not change the features.
"""

from __future__ import annotations

import logging
import pathlib
import zipfile
from typing import Callable, NamedTuple

import numpy as np

from mm_jax.errors import DataError, ShapeError
from mm_jax.motion import import_common as ic
from mm_jax.motion import skeleton
from mm_jax.motion.features import floor_shift
from mm_jax.motion.loading import ZIP_MAGIC, read_npy
from mm_jax.motion.retarget import resample, smpl_forward_kinematics
from mm_jax.motion.validate import validate_features

log = logging.getLogger(__name__)
FPS = 30.0
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # W: (x, y, z) -> (x, z, -y)
_RATE_KEYS = ("mocap_framerate", "mocap_frame_rate", "fps")
NJ = skeleton.NUM_JOINTS


class SmplClip(NamedTuple):
    """SMPL parameters of one clip as read (source frame, source rate).

    Attributes:
      poses: [T, 22, 3] axis-angle (radians), SMPL joint order, the root's global.
      trans: [T, 3] metres.
      fps: frame rate, or None when neither the source nor the caller states one.
      joints: [T, 22, 3] given joint positions, or None.
    """

    poses: np.ndarray
    trans: np.ndarray
    fps: float | None
    joints: np.ndarray | None


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rodrigues: axis-angle [..., 3] -> rotation matrices [..., 3, 3] (float64)."""
    aa = np.asarray(aa, np.float64)
    theta = np.linalg.norm(aa, axis=-1)[..., None, None]
    x, y, z = np.moveaxis(aa, -1, 0)
    o = np.zeros_like(x)
    k = np.stack([np.stack([o, -z, y], -1), np.stack([z, o, -x], -1), np.stack([-y, x, o], -1)], -2)
    small = theta < 1e-8
    t = np.where(small, 1.0, theta)
    a = np.where(small, 1.0, np.sin(t) / t)
    b = np.where(small, 0.5, (1.0 - np.cos(t)) / t**2)
    return np.eye(3) + a * k + b * (k @ k)


def _arrays(path: pathlib.Path) -> dict:
    """The raw arrays of a clip: npz keys, or a folder's .npy files and fps.txt."""
    if path.is_dir():
        out = {n: read_npy(path / f"{n}.npy") for n in ("poses", "trans", "joints") if (path / f"{n}.npy").is_file()}
        if (path / "fps.txt").is_file():
            try:
                out["fps"] = float((path / "fps.txt").read_text().strip())
            except ValueError:
                raise ic.SkipClip("invalid", f"{path / 'fps.txt'}: not a number") from None
        return out
    with open(path, "rb") as f:
        if f.read(2) != ZIP_MAGIC:
            raise ic.SkipClip("invalid", f"{path}: not a zip (.npz) archive (a .npy or another file renamed?)")
    with np.load(path, allow_pickle=False) as z:
        return {n: z[n] for n in ("poses", "trans", "joints", *_RATE_KEYS) if n in z.files}


def read_smpl(path: str | pathlib.Path, *, fps: float | None = None) -> SmplClip:
    """Reads and validates one clip (a ``.npz`` or a clip folder); SkipClip names the file and problem."""
    path = pathlib.Path(path)
    try:
        raw = _arrays(path)
    except DataError as e:  # SkipClip, and read_npy's FormatError naming the file
        raise ic.SkipClip(getattr(e, "kind", "invalid"), str(e)) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ic.SkipClip("invalid", f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if "poses" not in raw:
        raise ic.SkipClip("no poses", f"{path}: no 'poses' array (e.g. an AMASS shape.npz), not a motion")
    poses, trans = np.asarray(raw["poses"]), np.asarray(raw.get("trans", np.zeros(0)))
    t = len(poses) if poses.ndim else 0
    if t < 1:
        raise ic.SkipClip("invalid", f"{path}: poses hold 0 frames (shape {poses.shape})")
    if poses.ndim != 2 or poses.shape[1] < 3 * NJ or poses.shape[1] % 3:
        raise ic.SkipClip("invalid", f"{path}: poses must be [T, 3K] with K >= {NJ} "
                                     f"(66/72/156/165 values), got {poses.shape}")
    if trans.shape != (t, 3):
        raise ic.SkipClip("invalid", f"{path}: trans must be [{t}, 3] like poses, got {trans.shape}")
    joints = raw.get("joints")
    if joints is not None:
        joints = np.asarray(joints)
        if joints.ndim != 3 or joints.shape[0] != t or joints.shape[1] < NJ or joints.shape[2] != 3:
            raise ic.SkipClip("invalid", f"{path}: joints must be [{t}, >={NJ}, 3], got {joints.shape}")
        joints = joints[:, :NJ].astype(np.float64)
    stated = next((raw[k] for k in _RATE_KEYS if k in raw), None)
    try:
        rate = fps if stated is None else float(np.asarray(stated))
    except (TypeError, ValueError):
        raise ic.SkipClip("invalid", f"{path}: frame rate {stated!r} is not a number") from None
    if rate is not None and not (np.isfinite(rate) and rate > 0):
        raise ic.SkipClip("invalid", f"{path}: frame rate {rate} is not a positive number")
    for name in ("poses", "trans", "joints"):  # floating point and finite, as every motion input
        if name in raw:
            a = np.asarray(raw[name])
            try:
                validate_features(a.reshape(t, -1), name=f"{path}: {name}", width=a[0].size)
            except (DataError, ShapeError) as e:
                raise ic.SkipClip("invalid", str(e)) from None
    return SmplClip(poses[:, : 3 * NJ].reshape(t, NJ, 3).astype(np.float64), trans.astype(np.float64),
                    rate, joints)


def smpl_motion(clip: SmplClip, *, y_up: bool = False, fps: float = FPS) -> tuple[np.ndarray, np.ndarray]:
    """(local_rot [T', 22, 3, 3], joints [T', 22, 3]) in the y-up world at ``fps`` (module docstring).

    Raises:
      DataError: the clip has no frame rate.
    """
    if clip.fps is None:
        raise ic.SkipClip("no frame rate", "no frame rate in the file; pass --fps")
    rot = axis_angle_to_matrix(clip.poses)  # [T, 22, 3, 3]
    trans, joints = clip.trans, clip.joints
    if not y_up:
        rot[:, 0] = Z_UP_TO_Y_UP @ rot[:, 0]
        trans = trans @ Z_UP_TO_Y_UP.T
        joints = None if joints is None else joints @ Z_UP_TO_Y_UP.T
    if abs(clip.fps - fps) > 1e-3 * fps:
        rot, trans, *rest = resample(rot, clip.fps, fps, trans, *([] if joints is None else [joints]))
        joints = rest[0] if rest else None
    if joints is None:
        joints = smpl_forward_kinematics(rot, trans)  # the pelvis at trans, neutral SMPL offsets
    return rot, joints


def _clips(src: pathlib.Path) -> list[pathlib.Path]:
    def is_clip(p: pathlib.Path) -> bool:
        return (p.is_file() and p.suffix.lower() == ".npz") or (p.is_dir() and (p / "poses.npy").is_file())

    if is_clip(src):
        return [src]
    if not src.is_dir():
        raise DataError(f"{src}: not a .npz file, a clip folder (poses.npy, trans.npy) or a directory")
    return ic.discover(src, is_clip)


def import_smpl(
    src: str | pathlib.Path,
    out_dir: str | pathlib.Path,
    *,
    y_up: bool = False,
    fps: float | None = None,
    allow_uncaptioned: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """Imports SMPL clips (one ``.npz`` / clip folder, or a directory of them) into a data set.

    Args:
      src: a clip or a directory searched recursively.
      out_dir: the data set directory.
      y_up: the input is already y up (no z-up conversion).
      fps: frame rate of clips that state none.
      allow_uncaptioned: import clips without a caption file.
      progress: ``progress(done, total, clip)`` after each clip.
      overwrite: replace a non-empty ``out_dir``.

    Returns:
      The import report (docs/data_format.md); ``joints_mapped`` says how many
      clips had given joints.
    """
    src = pathlib.Path(src)
    paths = _clips(src)
    if not paths:
        raise DataError(f"no .npz files or clip folders (poses.npy) found at {str(src)!r}")
    report = ic.ImportReport("import-smpl", str(src))
    given = {"yes": 0, "no": 0}

    def load(path: pathlib.Path) -> ic.Clip:
        clip = read_smpl(path, fps=fps)  # first: a file without poses is "no poses", not "no captions"
        side = path.with_name(path.name + ".txt") if path.is_dir() else path.with_suffix(".txt")
        captions, _ = ic.read_captions(side)
        ic.require_captions(captions, side, allow_uncaptioned)
        local_rot, joints = smpl_motion(clip, y_up=y_up)
        if len(joints) < 2:
            raise ic.SkipClip("too short", f"{path}: only {len(joints)} frame(s) at {FPS:g} fps")
        given["yes" if clip.joints is not None else "no"] += 1
        return ic.Clip(id=ic.clip_id(path, src, strip_suffix=not path.is_dir()),
                       features=ic.joint_features(joints, local_rot), captions=captions, source=str(path),
                       source_fps=clip.fps, fps=FPS, floor_shift=floor_shift(joints))

    report.extra.update(
        joints_mapped=lambda: f"22 SMPL body joints (the first 66 pose values); given joints: "
                              f"yes in {given['yes']} clip(s), no in {given['no']} (neutral SMPL offsets)",
        up_axis="y (input already y up)" if y_up else "z (AMASS) converted to y up",
    )
    return ic.write_dataset(paths, load, lambda p: ic.clip_id(p, src, strip_suffix=not p.is_dir()), out_dir,
                            report=report, meta={"y_up_input": y_up}, progress=progress, overwrite=overwrite)
