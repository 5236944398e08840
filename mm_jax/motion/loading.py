"""Load any motion a user points at as joint positions (stage: motion I/O).

A motion spec is one of:

* ``clip.npy``: features ``[T, 272]`` or joints ``[T, 22, 3]``;
* ``clip.bvh``: any BVH the retargeter understands;
* ``DATASET_DIR:ID`` or ``DATASET_DIR:INDEX``: a sequence of a dataset.
"""

from __future__ import annotations

import pathlib

import numpy as np

from mm_jax.errors import DataError, ShapeError
from mm_jax.motion import features as mfeat
from mm_jax.motion import skeleton


def joints_of_array(arr: np.ndarray, what: str) -> np.ndarray:
    """Joints [T, 22, 3] of features [T, 272] or joints [T, 22, 3]."""
    if arr.ndim == 2 and arr.shape[1] == mfeat.FEATURE_DIM:
        if not np.isfinite(arr).all():
            raise DataError(f"{what} contains NaN or inf values")
        return np.asarray(mfeat.joints_from_features(arr.astype(np.float32)))
    if arr.ndim == 3 and arr.shape[1:] == (skeleton.NUM_JOINTS, 3):
        return arr.astype(np.float32)
    raise ShapeError(
        f"{what} has shape {arr.shape}; expected features [T, {mfeat.FEATURE_DIM}] "
        f"or joints [T, {skeleton.NUM_JOINTS}, 3]"
    )


def load_features(spec: str) -> np.ndarray:
    """Features [T, 272] of a ``.npy`` file or a ``DATASET_DIR:ID`` spec."""
    path = pathlib.Path(spec)
    if path.suffix.lower() == ".npy" and path.exists():
        arr = np.load(path)
    elif ":" in spec:
        from mm_jax.motion.synth import load_dataset

        data_dir, key = spec.rsplit(":", 1)
        ds = load_dataset(data_dir)
        arr = np.asarray(ds.sequence(ds.record(int(key) if key.isdigit() else key)["id"]))
    else:
        raise DataError(f"cannot load features from {spec!r}: expected a .npy file or DATASET_DIR:ID")
    if arr.ndim != 2 or arr.shape[1] != mfeat.FEATURE_DIM:
        raise ShapeError(f"{spec} has shape {arr.shape}; expected features [T, {mfeat.FEATURE_DIM}]")
    if not np.isfinite(arr).all():
        raise DataError(f"{spec} contains NaN or inf values")
    return arr.astype(np.float32)


def load_joints(spec: str) -> tuple[np.ndarray, str]:
    """(joints [T, 22, 3], a title) for a motion spec (see the module docstring)."""
    path = pathlib.Path(spec)
    if path.suffix.lower() == ".npy" and path.exists():
        return joints_of_array(np.load(path), str(path)), path.stem
    if path.suffix.lower() == ".bvh" and path.exists():
        from mm_jax.motion.retarget import import_bvh_source

        # The file's own joints (its bone lengths), not the motion re-posed on SMPL's offsets.
        return np.asarray(import_bvh_source(path).joints, np.float32), path.stem
    if ":" in spec:
        data_dir, key = spec.rsplit(":", 1)
        from mm_jax.motion.synth import load_dataset

        ds = load_dataset(data_dir)
        rec = ds.record(int(key) if key.isdigit() else key)
        feats = np.asarray(ds.sequence(rec["id"]))
        return joints_of_array(feats, spec), rec["captions"][0] if rec.get("captions") else rec["id"]
    raise DataError(
        f"cannot load motion {spec!r}: expected an existing .npy or .bvh file, or DATASET_DIR:ID"
    )
