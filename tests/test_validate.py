"""Tests of mm_jax.motion.validate: each bad class raises its named error naming the item."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax.errors import DataError, ShapeError
from mm_jax.motion.validate import validate_features

NAME = "clip_0042.npy"


def _good(t: int = 31) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((t, 272)).astype(np.float32)


def test_good_clip_passes():
    x = _good()
    out = validate_features(x, name=NAME, min_frames=10, max_frames=300)
    assert isinstance(out, np.ndarray) and out.shape == (31, 272)
    assert validate_features(jnp.asarray(x), name=NAME, min_frames=31, max_frames=31).shape == (31, 272)
    assert validate_features(np.zeros((5, 7)), name=NAME, min_frames=1, width=7).shape == (5, 7)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((31, 263)), r"width 263 != expected 272"),
        (np.zeros((31, 272, 1)), r"rank 3"),
        (np.zeros(272), r"rank 1"),
        (np.zeros((9, 272)), r"9 frames is too short; need at least 10"),
        (np.zeros((301, 272)), r"301 frames is too long; at most 300"),
    ],
)
def test_shape_errors(x, match):
    with pytest.raises(ShapeError, match=match) as info:
        validate_features(x, name=NAME, min_frames=10, max_frames=300)
    assert str(info.value).startswith(NAME)


@pytest.mark.parametrize("value, kind", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_non_finite(value, kind):
    x = _good()
    x[17, 150] = value
    x[20, 3] = value
    want = rf"{kind} at frame 17, channel 150 \(local_rot\); 2 non-finite"
    with pytest.raises(DataError, match=want) as info:
        validate_features(x, name=NAME, min_frames=1, max_frames=None)
    assert str(info.value).startswith(NAME)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, bool, np.complex64, object, "U3"])
def test_non_float_dtypes_are_refused(dtype):
    x = np.zeros((31, 272), dtype=dtype)
    with pytest.raises(DataError, match=rf"must be floating point .*got dtype {np.dtype(dtype)}") as info:
        validate_features(x, name=NAME)
    assert str(info.value).startswith(NAME)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, jnp.bfloat16])
def test_float_dtypes_pass(dtype):
    assert validate_features(np.zeros((3, 272), dtype=dtype), name=NAME).dtype == np.dtype(dtype)
