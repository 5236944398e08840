"""Tests of mm_jax.wavelet: pywt parity, exact inverse, packed layout, errors."""

from __future__ import annotations

import math
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import pywt

from mm_jax import wavelet, wavelet_cdf53
from mm_jax.errors import ConfigError, ShapeError

B, C = 3, 7  # prime-ish sizes so a swapped axis cannot pass
LENGTHS = (96, 97, 101, 128, 13)
LEVELS = (1, 2, 3, 4)

# Jitted once per (shape, levels): far fewer compilations than eager op-by-op dispatch.
_wavedec = jax.jit(wavelet.haar_wavedec, static_argnums=1)
_waverec = jax.jit(wavelet.haar_waverec, static_argnums=1)
_dwt = jax.jit(wavelet.dwt, static_argnums=1)
_idwt = jax.jit(wavelet.idwt, static_argnums=(1, 2))


def _x(t: int, seed: int = 0, b: int = B, c: int = C) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((b, t, c)).astype(np.float32)


def _pywt_bands(x: np.ndarray, levels: int) -> list[np.ndarray]:
    # pywt warns when levels > floor(log2 T) (e.g. T=13, L=4) but computes the bands.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pywt.wavedec(x.astype(np.float64), "haar", mode="symmetric", level=levels, axis=1)


# ----------------------------------------------------------------------------- frozen reference


def _numpy_haar_1level(x_tc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A tiny hand-written Haar (edge padding), independent of mm_jax and pywt."""
    if len(x_tc) % 2:
        x_tc = np.concatenate([x_tc, x_tc[-1:]], axis=0)
    s = 1.0 / np.sqrt(2.0)
    return (x_tc[0::2] + x_tc[1::2]) * s, (x_tc[0::2] - x_tc[1::2]) * s


FROZEN_X = np.array([[1.0, -2.0], [3.0, 0.5], [4.0, 4.0], [-1.0, 2.0], [2.5, -3.0]], np.float32)
# Hard-coded 1-level Haar of FROZEN_X (T=5 -> last frame repeated): cA, cD [3, 2].
FROZEN_CA = np.array([[2.8284271, -1.0606602], [2.1213203, 4.2426407], [3.5355339, -4.2426407]])
FROZEN_CD = np.array([[-1.4142136, -1.7677670], [3.5355339, 1.4142136], [0.0, 0.0]])


def test_frozen_numpy_reference_one_level():
    ref_a, ref_d = _numpy_haar_1level(FROZEN_X.astype(np.float64))
    np.testing.assert_allclose(ref_a, FROZEN_CA, atol=1e-6)
    np.testing.assert_allclose(ref_d, FROZEN_CD, atol=1e-6)
    ca, cd = wavelet.haar_wavedec(jnp.asarray(FROZEN_X[None]), 1)
    np.testing.assert_allclose(np.asarray(ca[0]), FROZEN_CA, atol=1e-6)
    np.testing.assert_allclose(np.asarray(cd[0]), FROZEN_CD, atol=1e-6)
    back = wavelet.haar_waverec([ca, cd], 5)
    np.testing.assert_allclose(np.asarray(back[0]), FROZEN_X, atol=1e-6)
    packed = wavelet.dwt(jnp.asarray(FROZEN_X[None]), 1)
    np.testing.assert_allclose(np.asarray(packed[0]), np.concatenate([FROZEN_CA, FROZEN_CD], 1), atol=1e-6)


# ----------------------------------------------------------------------------- pywt parity


@pytest.mark.parametrize("t", LENGTHS)
@pytest.mark.parametrize("levels", LEVELS)
def test_wavedec_matches_pywt_and_inverts(t, levels):
    x = _x(t, seed=t * 10 + levels)
    ours = _wavedec(jnp.asarray(x), levels)
    ref = _pywt_bands(x, levels)
    assert len(ours) == len(ref) == levels + 1
    for k, (a, r) in enumerate(zip(ours, ref)):
        assert a.shape == r.shape, (k, a.shape, r.shape)
        np.testing.assert_allclose(np.asarray(a), r, atol=1e-5, err_msg=f"band {k}")
    back = _waverec(ours, t)
    assert back.shape == (B, t, C)
    np.testing.assert_allclose(np.asarray(back), x, atol=1e-5)
    ref_back = pywt.waverec(ref, "haar", mode="symmetric", axis=1)[:, :t]
    np.testing.assert_allclose(np.asarray(back), ref_back, atol=1e-5)


def _prefix_agrees_with_pywt(t: int, levels: int) -> bool:
    """The documented rule for when up-front edge padding equals pywt's per-level padding."""
    return all(
        math.ceil(t / 2 ** (k - 1)) % 2 == 0 or (t - 1) % 2 ** (k - 1) == 0 for k in range(2, levels + 1)
    )


@pytest.mark.parametrize("t", LENGTHS)
@pytest.mark.parametrize("levels", LEVELS)
def test_packed_matches_pywt_on_prefix_and_inverts(t, levels):
    x = _x(t, seed=t * 100 + levels)
    packed = _dwt(jnp.asarray(x), levels)
    n = math.ceil(t / 2**levels)
    assert packed.shape == (B, n, wavelet.packed_channels(C, levels))
    assert wavelet.packed_length(t, levels) == n
    bands = wavelet.unpack(packed, levels)
    ref = _pywt_bands(x, levels)
    whole = True
    for k, (a, r) in enumerate(zip(bands, ref)):
        a = np.asarray(a)
        assert a.shape[1] >= r.shape[1]
        # Entries whose support is inside the real frames: always equal.
        np.testing.assert_allclose(a[:, : r.shape[1] - 1], r[:, :-1], atol=1e-5, err_msg=f"band {k}")
        whole &= np.allclose(a[:, r.shape[1] - 1], r[:, -1], atol=1e-5)
    assert whole == _prefix_agrees_with_pywt(t, levels), (t, levels)
    back = _idwt(packed, levels, t)
    assert back.shape == (B, t, C)
    np.testing.assert_allclose(np.asarray(back), x, atol=1e-5)


@pytest.mark.slow
def test_packed_prefix_rule_exhaustive():
    """The documented rule, checked against pywt for every T < 65 and L <= 5 (~25 s CPU)."""
    rng = np.random.default_rng(0)
    for t in range(2, 65):
        x = rng.standard_normal((1, t, 2)).astype(np.float32)
        for levels in range(1, min(5, wavelet.max_levels(t)) + 1):
            bands = wavelet.unpack(_dwt(jnp.asarray(x), levels), levels)
            ref = _pywt_bands(x, levels)
            agree = all(np.allclose(np.asarray(a)[:, : r.shape[1]], r, atol=1e-5) for a, r in zip(bands, ref))
            assert agree == _prefix_agrees_with_pywt(t, levels), (t, levels)


def test_packed_prefix_rule_cases():
    """Multiples of 2^L and L=1 always agree; T=101, L=4 is a documented mismatch."""
    assert all(_prefix_agrees_with_pywt(96, L) for L in range(1, 6))
    assert all(_prefix_agrees_with_pywt(t, 1) for t in LENGTHS)
    assert not _prefix_agrees_with_pywt(101, 4)


def test_packed_channel_layout_by_hand():
    """cD_1 of length 4 at L=2 packs as [cD_1[2n] | cD_1[2n+1]] channel groups."""
    x = _x(8, seed=5, b=2, c=C)
    ca2, cd2, cd1 = _wavedec(jnp.asarray(x), 2)
    packed = np.asarray(_dwt(jnp.asarray(x), 2))
    assert packed.shape == (2, 2, 4 * C)
    np.testing.assert_array_equal(packed[:, :, :C], np.asarray(ca2))
    np.testing.assert_array_equal(packed[:, :, C : 2 * C], np.asarray(cd2))
    cd1 = np.asarray(cd1)
    for n in range(2):
        np.testing.assert_array_equal(packed[:, n, 2 * C : 3 * C], cd1[:, 2 * n])
        np.testing.assert_array_equal(packed[:, n, 3 * C : 4 * C], cd1[:, 2 * n + 1])


def test_padded_tail_is_constant_extension():
    """Extra packed entries beyond pywt's band are the edge-padded constant tail."""
    x = _x(13, seed=3)
    a3 = np.asarray(wavelet.unpack(_dwt(jnp.asarray(x), 3), 3)[0])
    # T_pad = 16: the last approximation pair covers frames 8..15 = x[8..12] + 3 copies of x[12].
    expected = (x[:, 8:13].sum(1) + 3 * x[:, 12]) / 2**1.5
    np.testing.assert_allclose(a3[:, 1], expected, atol=1e-5)


def test_levels_zero_is_identity():
    x = jnp.asarray(_x(11))
    assert wavelet.dwt(x, 0) is x
    np.testing.assert_array_equal(np.asarray(wavelet.idwt(x, 0, 11)), np.asarray(x))
    (only,) = wavelet.haar_wavedec(x, 0)
    np.testing.assert_array_equal(np.asarray(only), np.asarray(x))
    assert wavelet.packed_channels(C, 0) == C


def test_orthonormal_energy_preserved():
    x = _x(64, seed=9)
    packed = np.asarray(_dwt(jnp.asarray(x), 3), np.float64)
    np.testing.assert_allclose((packed**2).sum(), (x.astype(np.float64) ** 2).sum(), rtol=1e-5)


# ----------------------------------------------------------------------------- jit and grad


def test_jit_matches_eager():
    x = jnp.asarray(_x(97, seed=1))
    f = jax.jit(wavelet.dwt, static_argnums=1)
    g = jax.jit(wavelet.idwt, static_argnums=(1, 2))
    np.testing.assert_allclose(np.asarray(f(x, 2)), np.asarray(wavelet.dwt(x, 2)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(g(f(x, 2), 2, 97)), np.asarray(x), atol=1e-5)


@pytest.mark.parametrize("t,levels", [(96, 2), (13, 3)])
def test_grad_through_roundtrip_is_ones(t, levels):
    x = jnp.asarray(_x(t, seed=2))
    grad = jax.jit(jax.grad(lambda v: jnp.sum(wavelet.idwt(wavelet.dwt(v, levels), levels, t))))(x)
    np.testing.assert_allclose(np.asarray(grad), np.ones((B, t, C)), atol=1e-5)


def test_grad_of_dwt_is_adjoint():
    """d/dx <w, dwt(x)> = idwt-adjoint(w); for an orthonormal map on T = 2^L N it is idwt(w)."""
    x = jnp.asarray(_x(32, seed=4))
    w = jnp.asarray(np.random.default_rng(8).standard_normal((B, 8, 4 * C)).astype(np.float32))
    grad = jax.jit(jax.grad(lambda v: jnp.sum(wavelet.dwt(v, 2) * w)))(x)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(_idwt(w, 2, 32)), atol=1e-5)


# ----------------------------------------------------------------------------- errors


def test_bad_rank_raises_shape_error():
    with pytest.raises(ShapeError, match=r"rank 2"):
        wavelet.dwt(jnp.zeros((96, C)), 1)
    with pytest.raises(ShapeError, match=r"rank 4"):
        wavelet.haar_wavedec(jnp.zeros((1, 2, 96, C)), 1)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_levels_raise_config_error(bad):
    with pytest.raises(ConfigError, match=re.escape(repr(bad))):
        wavelet.dwt(jnp.zeros((1, 16, C)), bad)


def test_too_deep_raises_shape_error():
    with pytest.raises(ShapeError, match=r"levels=5 is too deep for T=13.*is 4"):
        wavelet.dwt(jnp.zeros((1, 13, C)), 5)
    assert [wavelet.max_levels(t) for t in (1, 2, 3, 4, 5, 13, 96, 128)] == [0, 1, 2, 2, 3, 4, 7, 7]
    with pytest.raises(ShapeError, match=r"levels=1 is too deep for T=1"):
        wavelet.haar_wavedec(jnp.zeros((1, 1, C)), 1)


def test_idwt_length_and_width_checks():
    packed = jax.ShapeDtypeStruct((1, 25, 4 * C), jnp.float32)  # dwt of T=97 at L=2
    with pytest.raises(ShapeError, match=r"length=120 .* \[97, 100\]"):
        jax.eval_shape(lambda p: wavelet.idwt(p, 2, 120), packed)
    with pytest.raises(ShapeError, match=r"width 27"):
        jax.eval_shape(lambda p: wavelet.idwt(p, 2, 97), jax.ShapeDtypeStruct((1, 25, 27), jnp.float32))
    x_spec = jax.ShapeDtypeStruct((1, 97, C), jnp.float32)
    bands = jax.eval_shape(lambda x: wavelet.haar_wavedec(x, 2), x_spec)
    assert [b.shape[1] for b in bands] == [25, 25, 49]
    short = jax.ShapeDtypeStruct((1, 40, C), jnp.float32)
    with pytest.raises(ShapeError, match=r"band 2"):
        jax.eval_shape(lambda c: wavelet.haar_waverec(c, 97), [bands[0], bands[1], short])
    with pytest.raises(ShapeError, match=r"length=99"):
        jax.eval_shape(lambda c: wavelet.haar_waverec(c, 99), bands)
    with pytest.raises(ConfigError, match=r"channels"):
        wavelet.packed_channels(0, 1)


# ----------------------------------------------------------------------------- CDF 5/3 (lifting)

_cdf_dwt = jax.jit(wavelet_cdf53.dwt, static_argnums=1)
_cdf_idwt = jax.jit(wavelet_cdf53.idwt, static_argnums=(1, 2))


@pytest.mark.parametrize("t", [16, 22, 96])
def test_cdf53_one_level_matches_pywt_bior22_reflect(t):
    x = _x(t, seed=t)
    ca, cd = wavelet_cdf53.analysis(jnp.asarray(x))
    ref_a, ref_d = pywt.dwt(x.astype(np.float64), "bior2.2", mode="reflect", axis=1)
    n = t // 2  # pywt returns n + 2 entries per band; entries 1..n are the lifting's
    np.testing.assert_allclose(np.asarray(ca), ref_a[:, 1:n + 1], atol=1e-5)
    np.testing.assert_allclose(np.asarray(cd), ref_d[:, 1:n + 1], atol=1e-5)


def test_cdf53_hand_computed_impulse_and_ramp():
    # Impulse at frame 2: s = [-1/8, 3/4, -1/8, 0] (the 5-tap low-pass, mirrored at frame 0), d = [-1/2, -1/2, 0, 0].
    x = np.zeros((1, 8, 1), np.float32)
    x[0, 2, 0] = 1.0
    ca, cd = wavelet_cdf53.analysis(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(ca)[0, :, 0], math.sqrt(2) * np.array([-0.25, 0.75, -0.125, 0.0]),
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(cd)[0, :, 0], -np.array([-0.5, -0.5, 0, 0]) / math.sqrt(2), atol=1e-6)
    # A ramp 1..8: the prediction is exact inside (d = 0); the mirrored end leaves d = 1 on the last pair.
    ramp = np.arange(1, 9, dtype=np.float32)[None, :, None]
    ca, cd = wavelet_cdf53.analysis(jnp.asarray(ramp))
    np.testing.assert_allclose(np.asarray(cd)[0, :, 0], [0, 0, 0, -1 / math.sqrt(2)], atol=1e-6)
    np.testing.assert_allclose(np.asarray(ca)[0, :, 0], math.sqrt(2) * np.array([1, 3, 5, 7.25]), atol=1e-5)


def test_cdf53_synthesis_of_one_approximation_coefficient_is_linear_interpolation():
    ca = np.zeros((1, 4, 1), np.float32)
    ca[0, 1, 0] = math.sqrt(2)
    x = wavelet_cdf53.synthesis(jnp.asarray(ca), jnp.zeros_like(jnp.asarray(ca)))
    np.testing.assert_allclose(np.asarray(x)[0, :, 0], [0, 0.5, 1, 0.5, 0, 0, 0, 0], atol=1e-6)


@pytest.mark.parametrize("t,levels", [(96, 1), (96, 3), (97, 2), (13, 2)])
def test_cdf53_packed_inverse_is_exact(t, levels):
    x = _x(t, seed=1)
    packed = _cdf_dwt(jnp.asarray(x), levels)
    assert packed.shape == (B, wavelet.packed_length(t, levels), C << levels)
    np.testing.assert_allclose(np.asarray(_cdf_idwt(packed, levels, t)), x, atol=1e-5)
    # Bijective: arbitrary coefficients survive synthesis then analysis.
    coeffs = np.random.default_rng(2).standard_normal(packed.shape).astype(np.float32)
    length = packed.shape[1] << levels
    back = _cdf_dwt(_cdf_idwt(jnp.asarray(coeffs), levels, length), levels)
    np.testing.assert_allclose(np.asarray(back), coeffs, atol=1e-4)


def test_cdf53_errors():
    with pytest.raises(ShapeError, match="even T"):
        wavelet_cdf53.analysis(jnp.zeros((1, 5, 2)))
    with pytest.raises(ShapeError, match="does not match"):
        wavelet_cdf53.idwt(jnp.zeros((1, 4, 4)), 1, 20)
