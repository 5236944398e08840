"""The CDF 5/3 (LeGall) wavelet by lifting along time: an overlapping alternative to Haar.

Stage: between the normalised 272-d motion features and the FSQ autoencoder,
beside :mod:`mm_jax.wavelet` (Haar), with the same packed layout so the
autoencoder takes either (``TokenizerConfig.wavelet_family``). Inputs are
windows ``x_btc`` [B, T, C]; everything is pure ``jnp`` (jit-able,
differentiable, ``levels`` a static int).

One level (frames e[n] = x[2n], o[n] = x[2n+1], n = 0..N-1, T = 2N)::

    d[n] = o[n] - (e[n] + e[n+1]) / 2          predict (e[N] := e[N-1])
    s[n] = e[n] + (d[n-1] + d[n]) / 4          update  (d[-1] := d[0])
    cA = sqrt(2) * s                           cD = -d / sqrt(2)

The boundary rules are whole-sample symmetric extension (x[-1] = x[1],
x[T] = x[T-2]); with them, and this normalisation, ``(cA, cD)`` equal the
inner N entries of ``pywt.dwt(x, 'bior2.2', mode='reflect')`` (pywt returns
N + 2 per band; ``tests/test_wavelet.py`` checks entries 1..N). Synthesis
undoes the two lifting steps in reverse order, so the inverse is exact for
any coefficients, not only for those of a real signal.

Why it exists: a Haar detail coefficient is rebuilt onto exactly one pair of
frames, so a decoder's error on it becomes a step between pairs. Here the
synthesis low-pass is [1/2, 1, 1/2] (linear interpolation between
approximation samples) and every coefficient reaches 3 to 5 frames, so
errors are spread across pair boundaries instead of stopping at them.

Packed layout (:func:`dwt` / :func:`idwt`): as :func:`mm_jax.wavelet.dwt`,
T is edge-padded to 2^L * N and the bands ``[cA_L | cD_L | ... | cD_1]``
are laid side by side on channels, ``cD_k`` reshaped row-major to
[B, N, 2^(L-k) C]; levels repeat on cA (a dyadic, not a packet, transform).
Shape letters: B batch, T frames, C channels, N = ceil(T / 2^L).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from mm_jax import wavelet
from mm_jax.errors import ShapeError

_SQRT2 = math.sqrt(2.0)


def analysis(x_btc: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One level: [B, 2N, C] -> (cA, cD), each [B, N, C]. Raises ShapeError for an odd T."""
    if x_btc.ndim != 3 or x_btc.shape[1] % 2:
        raise ShapeError(f"CDF 5/3 analysis needs [B, T, C] with an even T, got {tuple(x_btc.shape)}")
    even, odd = x_btc[:, 0::2], x_btc[:, 1::2]
    even_next = jnp.concatenate([even[:, 1:], even[:, -1:]], axis=1)
    d = odd - 0.5 * (even + even_next)
    d_prev = jnp.concatenate([d[:, :1], d[:, :-1]], axis=1)
    s = even + 0.25 * (d_prev + d)
    return s * _SQRT2, -d / _SQRT2


def synthesis(ca_btc: jax.Array, cd_btc: jax.Array) -> jax.Array:
    """Inverse of :func:`analysis`: two [B, N, C] bands -> [B, 2N, C]."""
    if ca_btc.shape != cd_btc.shape or ca_btc.ndim != 3:
        raise ShapeError(f"CDF 5/3 bands must be equal [B, N, C], got {tuple(ca_btc.shape)} and "
                         f"{tuple(cd_btc.shape)}")
    s, d = ca_btc / _SQRT2, -cd_btc * _SQRT2
    d_prev = jnp.concatenate([d[:, :1], d[:, :-1]], axis=1)
    even = s - 0.25 * (d_prev + d)
    even_next = jnp.concatenate([even[:, 1:], even[:, -1:]], axis=1)
    odd = d + 0.5 * (even + even_next)
    b, n, c = s.shape
    return jnp.stack([even, odd], axis=2).reshape(b, 2 * n, c)


def dwt(x_btc: jax.Array, levels: int) -> jax.Array:
    """CDF 5/3 DWT packed along channels: [B, T, C] -> [B, N, C * 2^L] (``levels=0``: x).

    Raises:
      ShapeError: x is not rank 3, or L is too deep for T.
      ConfigError: L is not an int >= 0.
    """
    wavelet._check_x(x_btc, levels)
    if levels == 0:
        return x_btc
    b, t, c = x_btc.shape
    n = wavelet.packed_length(t, levels)
    pad = n * (1 << levels) - t
    if pad:
        x_btc = jnp.concatenate([x_btc, jnp.repeat(x_btc[:, -1:], pad, axis=1)], axis=1)
    ca, details = x_btc, []
    for _ in range(levels):
        ca, cd = analysis(ca)
        details.append(cd)
    bands = [ca] + details[::-1]
    return jnp.concatenate([band.reshape(b, n, -1) for band in bands], axis=2)


def idwt(packed: jax.Array, levels: int, length: int) -> jax.Array:
    """Inverse of :func:`dwt`: packed [B, N, C * 2^L] -> [B, length, C], ceil(length / 2^L) == N.

    Raises:
      ShapeError: bad rank or width, or a length that does not give N.
      ConfigError: L is not an int >= 0.
    """
    bands = wavelet.unpack(packed, levels)
    n = packed.shape[1]
    if not wavelet._is_int(length) or length < 1 or wavelet.packed_length(length, levels) != n:
        raise ShapeError(f"length={length!r} does not match {n} packed frames at levels={levels}")
    x = bands[0]
    for cd in bands[1:]:
        x = synthesis(x, cd)
    return x[:, :length]
