"""Convert a format-1 data set to the reference 272-d convention (stage: motion I/O).

Format 1 (before the frame followed RECIPE.md) differed from today's frame in
three ways; its positions, root velocity and heading change were already the
reference's numbers:

* rotations were stored as the first two *columns* of each matrix;
* local velocities were world-joint differences in the previous frame's heading
  (``H_{t-1}^T (joints[t] - joints[t-1])``), not differences of local positions;
* heights were above y = 0 of the source, not above the clip's lowest joint.

A clip is converted exactly by reading its rotations the old way, decoding its
joints (:func:`features.joints_from_features`, unchanged by the convention) and
encoding both again with :func:`features.features_from_joints`. Entry point:
``mm-jax data convert OLD --out NEW`` (:func:`convert_dataset`).
"""

from __future__ import annotations

import logging
import pathlib
from typing import Callable

import jax.numpy as jnp
import numpy as np

from mm_jax.motion import features as mfeat
from mm_jax.motion import rotations
from mm_jax.motion.synth.storage import DatasetWriter, load_dataset

log = logging.getLogger(__name__)
OLD_VERSION = 1


def convert_features_v1(old: np.ndarray) -> np.ndarray:
    """One format-1 clip [T, 272] -> the reference convention [T, 272] float32."""
    old = np.asarray(old, np.float32)
    # Format 1's 6D held the first two columns of M, i.e. the first two rows of M^T.
    mats_t = rotations.sixd_to_matrix(jnp.asarray(old[:, mfeat.LOCAL_ROT].reshape(len(old), mfeat.NUM_JOINTS, 6)))
    mats = np.swapaxes(np.asarray(mats_t), -1, -2)
    fixed = old.copy()
    fixed[:, mfeat.LOCAL_ROT] = np.asarray(rotations.matrix_to_6d(jnp.asarray(mats))).reshape(len(old), -1)
    motion = mfeat.motion_from_features(jnp.asarray(fixed))
    return np.asarray(mfeat.features_from_joints(motion.joints, motion.local_rot), np.float32)


def convert_dataset(
    src: str | pathlib.Path,
    out: str | pathlib.Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Rewrites a format-1 data set at ``out`` in today's format (records, captions and splits kept).

    Returns:
      {"clips": n, "frames": total, "out": path, "from_version": 1}.
    """
    ds = load_dataset(src, format_versions=(OLD_VERSION,))
    writer = DatasetWriter(out)
    try:
        for k, rec in enumerate(ds.records):
            keep = {key: v for key, v in rec.items() if key not in ("offset", "length")}
            keep.setdefault("split", next((s for s, ids in ds.split.items() if rec["id"] in ids), "train"))
            writer.add(keep, convert_features_v1(np.asarray(ds.sequence(rec["id"]))))
            if progress is not None:
                progress(k + 1, len(ds.records))
        meta = {k: v for k, v in ds.meta.items() if k not in ("format_version", "total_frames", "num", "counts")}
        meta["converted_from"] = {"path": str(pathlib.Path(src).absolute()), "format_version": OLD_VERSION}
        writer.finish(meta, overwrite=overwrite)
    except BaseException:
        writer.abort()
        raise
    log.info("converted %d clips from %s to %s", len(ds.records), src, out)
    return {"clips": len(ds.records), "frames": writer.rows, "out": str(writer.out_dir), "from_version": OLD_VERSION}
