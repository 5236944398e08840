"""Tests of mm_jax.fsq: grid, bijection, straight-through gradient, usage metrics."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax import fsq
from mm_jax.errors import ConfigError, DataError, ShapeError

REF = fsq.FSQ()  # (8, 8, 8, 5, 5, 5)
MIXED = fsq.FSQ(levels=(3, 4, 7, 2))  # odd and even counts, including the extremes 2 and 3


def _grid(lv: int) -> np.ndarray:
    """The allowed values of one dimension, in float32 as the quantizer computes them."""
    hw = lv // 2
    return (np.arange(lv) - hw).astype(np.float32) / np.float32(hw)


def test_reference_codebook_size():
    assert REF.codebook_size == 64_000
    assert REF.dim == 6
    assert fsq.PRESETS["fsq_64k"] == REF
    sizes = {name: q.codebook_size for name, q in fsq.PRESETS.items()}
    assert sizes == {"fsq_256": 240, "fsq_1k": 1000, "fsq_4k": 4375, "fsq_16k": 15360, "fsq_64k": 64000}


def test_bijection_over_whole_reference_codebook():
    codes = REF.implicit_codebook()
    assert codes.shape == (64_000, 6)
    idx = jax.jit(REF.codes_to_indices)(codes)
    np.testing.assert_array_equal(np.asarray(idx), np.arange(64_000))
    assert idx.dtype == jnp.int32
    back = jax.jit(REF.indices_to_codes)(idx)
    np.testing.assert_array_equal(np.asarray(back), np.asarray(codes))
    assert len(np.unique(np.asarray(codes), axis=0)) == 64_000


def test_implicit_codebook_is_mixed_radix_with_dim0_fastest():
    cb = np.asarray(MIXED.implicit_codebook())
    expected = [
        [_grid(3)[a], _grid(4)[b], _grid(7)[c], _grid(2)[d]]
        for d, c, b, a in itertools.product(range(2), range(7), range(4), range(3))
    ]
    np.testing.assert_allclose(cb, np.asarray(expected), atol=1e-7)


@pytest.mark.parametrize("q", [REF, MIXED], ids=["ref", "mixed"])
def test_quantize_is_on_grid_and_covers_it(q):
    z = jax.random.normal(jax.random.key(0), (3, 211, q.dim)) * 2.0
    zhat = np.asarray(jax.jit(q.quantize)(z))
    assert zhat.shape == (3, 211, q.dim)
    for i, lv in enumerate(q.levels):
        values = np.unique(zhat[..., i])
        grid = _grid(lv)
        assert np.all(np.isin(values, grid)), (lv, values)
        np.testing.assert_array_equal(values, grid)  # 633 draws reach every level
    assert zhat.min() >= -1.0 and zhat.max() <= 1.0
    idx = jax.jit(q.codes_to_indices)(jnp.asarray(zhat))
    assert idx.shape == (3, 211)
    np.testing.assert_array_equal(np.asarray(jax.jit(q.indices_to_codes)(idx)), zhat)


def test_bound_limits_odd_and_even():
    q = fsq.FSQ(levels=(5, 8))
    big = jnp.asarray([[30.0, 30.0], [-30.0, -30.0], [0.0, 0.0]])
    b = np.asarray(jax.jit(q.bound)(big))
    # L=5: (+-2 * 1.001); L=8: (3.5 * 1.001 - 0.5, -3.5 * 1.001 - 0.5).
    np.testing.assert_allclose(b[0], [2.002, 3.0035], atol=1e-5)
    np.testing.assert_allclose(b[1], [-2.002, -4.0035], atol=1e-5)
    np.testing.assert_allclose(b[2], [0.0, 0.0], atol=1e-6)  # the shift centres 0 for even L
    zhat = np.asarray(jax.jit(q.quantize)(big))
    np.testing.assert_array_equal(zhat, [[1.0, 0.75], [-1.0, -1.0], [0.0, 0.0]])


def test_straight_through_gradient_equals_bound_gradient():
    q = MIXED
    z = jax.random.normal(jax.random.key(1), (5, q.dim)) * 1.5
    w = jax.random.normal(jax.random.key(2), (5, q.dim))
    hw = jnp.asarray([lv // 2 for lv in q.levels], jnp.float32)
    g_q = jax.jit(jax.grad(lambda v: jnp.sum(q.quantize(v) * w)))(z)
    g_b = jax.jit(jax.grad(lambda v: jnp.sum(q.bound(v) / hw * w)))(z)
    np.testing.assert_allclose(np.asarray(g_q), np.asarray(g_b), rtol=1e-6)
    assert np.all(np.asarray(g_q) != 0.0)
    # Not the gradient of zero (rounding) and not the identity.
    assert not np.allclose(np.asarray(g_q), np.asarray(w))


def test_quantize_keeps_bfloat16():
    z = jnp.ones((2, 6), jnp.bfloat16)
    assert jax.eval_shape(REF.quantize, z).dtype == jnp.bfloat16


# ----------------------------------------------------------------------------- usage metrics


def test_usage_uniform_histogram():
    v = 17
    util, ppl = fsq.codebook_usage(np.tile(np.arange(v), 3), v)
    assert util == 1.0
    assert ppl == pytest.approx(v, rel=1e-9)


def test_usage_single_code_and_partial():
    util, ppl = fsq.codebook_usage(jnp.full((4, 5), 6, jnp.int32), 64_000)
    assert util == pytest.approx(1 / 64_000)
    assert ppl == pytest.approx(1.0)
    # Two codes, p = (3/4, 1/4): perplexity = exp(H).
    util, ppl = fsq.codebook_usage(np.array([0, 0, 0, 9]), 10)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert util == pytest.approx(0.2)
    assert ppl == pytest.approx(math.exp(h))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("levels", [(8, 1, 5), (8, 2.0), (), [8, 5], (True, 5)])
def test_bad_levels_raise_config_error(levels):
    with pytest.raises(ConfigError, match="levels"):
        fsq.FSQ(levels=levels)


def test_bad_level_message_names_value():
    with pytest.raises(ConfigError, match=r"level 1 in levels=\(8, 1, 5\)"):
        fsq.FSQ(levels=(8, 1, 5))


def test_last_dim_mismatch_raises_shape_error():
    z = jnp.zeros((2, 7))
    with pytest.raises(ShapeError, match=r"last dimension 6 .* \(2, 7\)"):
        REF.quantize(z)
    with pytest.raises(ShapeError, match=r"\(2, 7\)"):
        REF.codes_to_indices(z)
    with pytest.raises(ShapeError, match=r"\(\)"):
        REF.bound(jnp.float32(0.0))


def test_usage_errors():
    with pytest.raises(DataError, match=r"token id 12 is outside \[0, 10\)"):
        fsq.codebook_usage(np.array([1, 12]), 10)
    with pytest.raises(DataError, match=r"token id -1"):
        fsq.codebook_usage(np.array([-1, 2]), 10)
    with pytest.raises(DataError, match="no token ids"):
        fsq.codebook_usage(np.array([], np.int32), 10)
    with pytest.raises(DataError, match="float32"):
        fsq.codebook_usage(np.array([1.0], np.float32), 10)
    with pytest.raises(ConfigError, match="codebook_size must be an int >= 1, got 0"):
        fsq.codebook_usage(np.array([0]), 0)
    with pytest.raises(DataError, match="float32"):
        REF.indices_to_codes(jnp.zeros((3,), jnp.float32))
