"""Checks that a feature array is a usable motion clip (stage: motion).

Input: one clip's features ``[T, F]`` (numpy or jax) and a name for messages.
Output: the array as numpy, or a named error: :class:`ShapeError` for a wrong
rank, width or length, :class:`DataError` for a dtype that is not floating
point (integer, boolean, complex, object, text) or for NaN/inf. Every message
starts with the item's name and states the bad value and what was expected.

This is the one check of a feature array a user hands in (a ``.npy``, an
imported clip, a data set sequence at evaluation or encoding): every such
input path calls it, so the same data gets the same answer everywhere.
Integer and boolean arrays are refused rather than converted: features are
continuous values, and an integer array is almost always something else
saved by mistake (token ids, indices, a mask).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mm_jax.errors import DataError, ShapeError
from mm_jax.motion.layout import FEATURE_DIM, FEATURE_SLICES


def _group(channel: int, width: int) -> str:
    if width != FEATURE_DIM:
        return ""
    for group, sl in FEATURE_SLICES.items():
        if sl.start <= channel < sl.stop:
            return f" ({group})"
    return ""


def validate_features(
    x: ArrayLike,
    *,
    name: str,
    min_frames: int = 1,
    max_frames: int | None = None,
    width: int = FEATURE_DIM,
) -> np.ndarray:
    """Validates one clip's features.

    Args:
      x: [T, F] features.
      name: the item's name (file, sample id) used in messages.
      min_frames: fewest frames allowed (T >= min_frames).
      max_frames: most frames allowed, or None for no limit.
      width: expected F (272 unless checking another layout).

    Returns:
      x as a numpy array [T, F].

    Raises:
      ShapeError: rank != 2, F != width, T < min_frames or T > max_frames.
      DataError: a dtype that is not floating point, or a NaN or inf value
        (first bad frame and channel named).
    """
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.floating) or arr.dtype.name == "bfloat16"):  # bfloat16 counts as floating
        raise DataError(
            f"{name}: features must be floating point (float16/32/64), got dtype {arr.dtype}; "
            f"integer, boolean, complex or object arrays are not motion features"
        )
    if arr.ndim != 2:
        raise ShapeError(
            f"{name}: features must be [T, {width}] (rank 2), got rank {arr.ndim} shape {arr.shape}"
        )
    t, f = arr.shape
    if f != width:
        raise ShapeError(f"{name}: feature width {f} != expected {width} (shape {arr.shape})")
    if t < min_frames:
        raise ShapeError(f"{name}: {t} frames is too short; need at least {min_frames}")
    if max_frames is not None and t > max_frames:
        raise ShapeError(f"{name}: {t} frames is too long; at most {max_frames} allowed")
    finite = np.isfinite(arr)
    if not finite.all():
        frame, chan = (int(i) for i in np.argwhere(~finite)[0])
        kind = "NaN" if np.isnan(arr[frame, chan]) else "inf"
        count = int((~finite).sum())
        raise DataError(
            f"{name}: {kind} at frame {frame}, channel {chan}{_group(chan, f)}; "
            f"{count} non-finite value(s) in all"
        )
    return arr
