"""Load any motion a user points at as joint positions (stage: motion I/O).

A motion spec is one of:

* ``clip.npy``: features ``[T, 272]`` or joints ``[T, 22, 3]``;
* ``clip.bvh``: any BVH the retargeter understands;
* ``DATASET_DIR:ID`` or ``DATASET_DIR:INDEX``: a sequence of a dataset.

Every ``.npy`` a user names is read by :func:`read_npy` (no pickles; an empty,
text, truncated or zip (``.npz``) file is a :class:`FormatError` naming it) and
every array is checked by :func:`mm_jax.motion.validate.validate_features`
(rank, width, at least one frame, a floating dtype, finite values).
"""

from __future__ import annotations

import pathlib

import numpy as np

from mm_jax.errors import DataError, FormatError, ShapeError
from mm_jax.motion import features as mfeat
from mm_jax.motion import skeleton
from mm_jax.motion.retarget import import_bvh_source
from mm_jax.motion.synth import load_dataset
from mm_jax.motion.validate import validate_features

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"  # .npz archives are zip files


def read_npy(path: str | pathlib.Path) -> np.ndarray:
    """The array stored in a ``.npy`` file, read without pickles.

    Raises:
      DataError: the file does not exist.
      FormatError: an empty file, a zip (``.npz``) archive, text or another
        format, a truncated file, or an object array (which only a pickle can
        hold); the message names the file and what it holds instead.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
            if not head:
                raise FormatError(f"{path}: empty file (0 bytes), not a .npy array")
            if head.startswith(ZIP_MAGIC):
                raise FormatError(f"{path}: a zip (.npz) archive, not a .npy array; "
                                  "save one array with numpy.save")
            if head != NPY_MAGIC:
                raise FormatError(f"{path}: not a .npy file (it starts with {head!r}; text or another format)")
            f.seek(0)
            arr = np.load(f, allow_pickle=False)
    except FormatError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise FormatError(f"{path}: an object array (Python objects, dtype=object); only numeric "
                              "arrays are read (loading objects would run a pickle)") from None
        raise FormatError(f"{path}: not a readable .npy ({e})") from None
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: not a readable .npy ({type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray):  # pragma: no cover - np.load of a .npy returns an array
        raise FormatError(f"{path}: not a .npy array")
    return arr


def joints_of_array(arr: np.ndarray, what: str) -> np.ndarray:
    """Joints [T, 22, 3] of features [T, 272] or joints [T, 22, 3] (validated: see the module docstring)."""
    arr = np.asarray(arr)
    if arr.ndim == 2 and arr.shape[1] == mfeat.FEATURE_DIM:
        feats = validate_features(arr, name=what)
        return np.asarray(mfeat.joints_from_features(feats.astype(np.float32)))
    if arr.ndim == 3 and arr.shape[1:] == (skeleton.NUM_JOINTS, 3):
        # The same check on the joints flattened to [T, 66] (channel c is joint c // 3, axis c % 3).
        width = 3 * skeleton.NUM_JOINTS
        validate_features(arr.reshape(len(arr), width), name=f"{what} (joints)", width=width)
        return arr.astype(np.float32)
    raise ShapeError(
        f"{what} has shape {arr.shape}; expected features [T, {mfeat.FEATURE_DIM}] "
        f"or joints [T, {skeleton.NUM_JOINTS}, 3]"
    )


def _dataset_sequence(spec: str) -> tuple[np.ndarray, dict]:
    """(features [T, 272], record) of a ``DATASET_DIR:ID`` or ``DATASET_DIR:INDEX`` spec."""

    data_dir, key = spec.rsplit(":", 1)
    ds = load_dataset(data_dir)
    rec = ds.record(int(key) if key.isdigit() else key)
    return np.asarray(ds.sequence(rec["id"])), rec


def load_features(spec: str) -> np.ndarray:
    """Features [T, 272] float32 of a ``.npy`` file or a ``DATASET_DIR:ID`` spec, validated."""
    path = pathlib.Path(spec)
    if path.suffix.lower() == ".npy" and path.exists():
        arr, name = read_npy(path), str(path)
    elif ":" in spec:
        arr, rec = _dataset_sequence(spec)
        name = f"{spec.rsplit(':', 1)[0]}:{rec['id']}"
    else:
        raise DataError(f"cannot load features from {spec!r}: expected a .npy file or DATASET_DIR:ID")
    return validate_features(arr, name=name).astype(np.float32)


def load_joints(spec: str) -> tuple[np.ndarray, str]:
    """(joints [T, 22, 3], a title) for a motion spec (see the module docstring)."""
    path = pathlib.Path(spec)
    if path.suffix.lower() == ".npy" and path.exists():
        return joints_of_array(read_npy(path), str(path)), path.stem
    if path.suffix.lower() == ".bvh" and path.exists():

        # The file's own joints (its bone lengths), not the motion re-posed on SMPL's offsets.
        return np.asarray(import_bvh_source(path).joints, np.float32), path.stem
    if ":" in spec:
        feats, rec = _dataset_sequence(spec)
        name = f"{spec.rsplit(':', 1)[0]}:{rec['id']}"
        return joints_of_array(feats, name), rec["captions"][0] if rec.get("captions") else rec["id"]
    raise DataError(
        f"cannot load motion {spec!r}: expected an existing .npy or .bvh file, or DATASET_DIR:ID"
    )
