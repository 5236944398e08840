"""Haar wavelet transform along time: the tokenizer's input/output stage.

Stage: between the normalised 272-d motion features and the FSQ autoencoder.
Inputs are motion windows ``x_btc`` of shape [B, T, C] (B batch, T frames,
C feature channels; a single [T, C] clip is passed as ``x[None]``). Outputs
are Haar subbands, either as a list (pywt's layout) or packed along channels
for the autoencoder. Everything is pure ``jnp``: jit-able (``levels`` is a
static Python int) and differentiable.

Definition (one level, along time): frames are paired (x[2t], x[2t+1]) and

    cA[t] = (x[2t] + x[2t+1]) / sqrt(2)      cD[t] = (x[2t] - x[2t+1]) / sqrt(2)

``L`` levels repeat this on cA. The inverse is x[2t] = (cA + cD)/sqrt(2),
x[2t+1] = (cA - cD)/sqrt(2); the transform is orthonormal.

Padding policy ("edge"): a band of odd length is padded by repeating its last
sample before pairing. For Haar this is exactly pywt's ``mode='symmetric'``
(half-sample symmetric extension repeats the last sample once), so
:func:`haar_wavedec` returns the same bands, with the same lengths
ceil(T_{k-1} / 2), as ``pywt.wavedec(x, 'haar', mode='symmetric', level=L,
axis=1)``.

Packed layout (:func:`dwt` / :func:`idwt`, used by the autoencoder): T is first
padded up to T_pad = 2^L * N, N = ceil(T / 2^L), by repeating the last frame,
and the bands of this padded signal (lengths T_pad / 2^k, no further padding)
are laid side by side on the channel axis::

    channels = [ cA_L | cD_L | cD_{L-1} | ... | cD_1 ]     widths C, C, 2C, ..., 2^(L-1) C

The packed array is thus an orthonormal transform of the padded signal.

Relation to pywt (checked for every T < 200 and L <= 5): on the prefix of each
band that ``pywt.wavedec(..., mode='symmetric')`` returns, every entry whose
support lies inside the real frames [0, T) agrees exactly; only the last entry
of a band can differ, because pywt pads per level (it repeats the last
*coefficient* of an odd-length band, which may mix real and padded frames)
while we pad frames once up front. The whole prefix agrees iff, for every
level k = 2..L at which ceil(T / 2^(k-1)) is odd, T = 1 (mod 2^(k-1)); in
particular always for L = 1 and whenever 2^L divides T (e.g. the 96-frame
training window at L <= 5). For T=101, L=4 it does not: the last entries of
cA_4 and cD_4 differ. Reconstruction is exact either way. :func:`haar_wavedec`
pads per level and matches pywt everywhere.

A band cD_k of length N * 2^(L-k) is reshaped (row-major) from
[B, N * 2^(L-k), C] to [B, N, 2^(L-k) * C]: packed row n holds the
2^(L-k) consecutive time samples n * 2^(L-k) + j, j = 0..2^(L-k)-1, as channel
groups of width C, i.e. band sample (n * 2^(L-k) + j, c) sits at packed
channel offset_k + j * C + c. The total width is C * 2^L
(:func:`packed_channels`) and the packed length is N (:func:`packed_length`).
``levels=0`` is the identity.

Depth: every level must pair at least two samples, so L <= ceil(log2 T)
(:func:`max_levels`); deeper raises ShapeError. Reconstruction is exact (to
float rounding) for any T; :func:`idwt` crops back to the original length.

Shape letters: B batch, T frames, C channels (the features F of the house
legend; C is kept because the packed width is C * 2^L), N = ceil(T / 2^L)
packed frames (the autoencoder may downsample further before tokens).
"""

from __future__ import annotations

import logging
import math
import numbers

import jax
import jax.numpy as jnp

from mm_jax.errors import ConfigError, ShapeError

logger = logging.getLogger(__name__)

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


# ----------------------------------------------------------------------------- validation


def _is_int(value: object) -> bool:
    """True for Python and NumPy integers (static shape arguments), False for bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_levels(levels: int) -> None:
    if not _is_int(levels) or levels < 0:
        raise ConfigError(f"wavelet levels must be an int >= 0, got {levels!r}")


def _check_x(x_btc: jax.Array, levels: int) -> None:
    """Validates rank and depth (see :func:`max_levels`)."""
    _check_levels(levels)
    if x_btc.ndim != 3:
        raise ShapeError(
            f"expected x of rank 3 [B, T, C], got shape {tuple(x_btc.shape)} "
            f"(rank {x_btc.ndim}); add a batch axis with x[None] for a single clip"
        )
    t = x_btc.shape[1]
    if t < 1 or levels > max_levels(t):
        raise ShapeError(
            f"levels={levels} is too deep for T={t} frames (every level must pair at least "
            f"2 samples, i.e. 2^(levels-1) < T); the most levels for T={t} is {max_levels(t)}"
        )


def max_levels(length: int) -> int:
    """Deepest level count for T frames: ceil(log2 T), so each level pairs >= 2 samples.

    This is one more than pywt's ``dwt_max_level`` when T is not a power of 2
    (pywt warns there but still computes the same bands).
    """
    return max(int(length) - 1, 0).bit_length()


def packed_channels(channels: int, levels: int) -> int:
    """Width C * 2^L of the packed layout for C input channels and L levels."""
    _check_levels(levels)
    if not _is_int(channels) or channels < 1:
        raise ConfigError(f"channels must be an int >= 1, got {channels!r}")
    return channels << levels


def packed_length(length: int, levels: int) -> int:
    """Packed time length N = ceil(T / 2^L) for T frames and L levels."""
    _check_levels(levels)
    if not _is_int(length) or length < 1:
        raise ConfigError(f"length must be an int >= 1, got {length!r}")
    return -(-length // (1 << levels))


# ----------------------------------------------------------------------------- one level


def _pad_to_even(x_btc: jax.Array) -> jax.Array:
    """Repeats the last frame when T is odd ("edge" = pywt 'symmetric' for Haar)."""
    if x_btc.shape[1] % 2 == 0:
        return x_btc
    return jnp.concatenate([x_btc, x_btc[:, -1:]], axis=1)


def _analysis(x_btc: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One Haar level: [B, T, C] -> (cA, cD), each [B, ceil(T/2), C]."""
    x_btc = _pad_to_even(x_btc)
    even, odd = x_btc[:, 0::2], x_btc[:, 1::2]
    return (even + odd) * _INV_SQRT2, (even - odd) * _INV_SQRT2


def _synthesis(ca_btc: jax.Array, cd_btc: jax.Array) -> jax.Array:
    """Inverse of one level: two [B, n, C] bands -> [B, 2n, C], interleaved."""
    even = (ca_btc + cd_btc) * _INV_SQRT2
    odd = (ca_btc - cd_btc) * _INV_SQRT2
    b, n, c = ca_btc.shape
    return jnp.stack([even, odd], axis=2).reshape(b, 2 * n, c)


# ----------------------------------------------------------------------------- list API


def haar_wavedec(x_btc: jax.Array, levels: int) -> list[jax.Array]:
    """Multi-level Haar DWT along time, in pywt's order.

    Args:
      x_btc: [B, T, C] signal.
      levels: number of levels L, 0 <= L <= ceil(log2 T) (:func:`max_levels`).

    Returns:
      [cA_L, cD_L, cD_{L-1}, ..., cD_1]; band k has shape [B, T_k, C] with
      T_0 = T and T_k = ceil(T_{k-1} / 2), equal to
      ``pywt.wavedec(x, 'haar', mode='symmetric', level=L, axis=1)``.
      With L = 0 the list is [x].

    Raises:
      ShapeError: x is not rank 3, or L is too deep for T.
      ConfigError: L is not an int >= 0.
    """
    _check_x(x_btc, levels)
    details = []
    ca = x_btc
    for _ in range(levels):
        ca, cd = _analysis(ca)
        details.append(cd)
    return [ca] + details[::-1]


def haar_waverec(coeffs: list[jax.Array] | tuple[jax.Array, ...], length: int) -> jax.Array:
    """Inverse of :func:`haar_wavedec` (or of unpacked :func:`dwt` bands).

    Args:
      coeffs: [cA_L, cD_L, ..., cD_1], each [B, T_k, C]. Each reconstructed
        level (length 2 T_k) is cropped to the next detail band's length,
        which must be 2 T_k or 2 T_k - 1.
      length: output length T, 1 <= T <= 2 * len(cD_1).

    Returns:
      [B, length, C] signal.

    Raises:
      ShapeError: empty list, bands of mismatched shapes, or a bad length.
    """
    if len(coeffs) == 0:
        raise ShapeError("haar_waverec got an empty coefficient list")
    for i, band in enumerate(coeffs):
        if band.ndim != 3:
            raise ShapeError(f"coefficient band {i} must be rank 3 [B, T_k, C], got {tuple(band.shape)}")
    x = coeffs[0]
    for i, cd in enumerate(coeffs[1:], start=1):
        if cd.shape[0] != x.shape[0] or cd.shape[2] != x.shape[2] or x.shape[1] not in (
            cd.shape[1], cd.shape[1] + 1
        ):
            raise ShapeError(
                f"coefficient band {i} has shape {tuple(cd.shape)}, which does not fit the "
                f"approximation of shape {tuple(x.shape)} (need equal B, C and a length of "
                f"{x.shape[1]} or {x.shape[1] - 1})"
            )
        x = _synthesis(x[:, : cd.shape[1]], cd)
    if not _is_int(length) or not 1 <= length <= x.shape[1]:
        raise ShapeError(f"length={length!r} must be an int in [1, {x.shape[1]}] for these coefficients")
    return x[:, :length]


# ----------------------------------------------------------------------------- packed API


def dwt(x_btc: jax.Array, levels: int) -> jax.Array:
    """Haar DWT packed along channels (the autoencoder's input layout).

    Args:
      x_btc: [B, T, C] signal.
      levels: L >= 0 with 2^(L-1) < T (:func:`max_levels`).

    Returns:
      [B, N, C * 2^L] with N = ceil(T / 2^L); channels are
      [cA_L | cD_L | cD_{L-1} | ... | cD_1] as laid out in the module
      docstring. ``levels=0`` returns x unchanged.

    Raises:
      ShapeError: x is not rank 3, or L is too deep for T.
      ConfigError: L is not an int >= 0.
    """
    _check_x(x_btc, levels)
    if levels == 0:
        return x_btc
    b, t, c = x_btc.shape
    n = packed_length(t, levels)
    pad = n * (1 << levels) - t
    if pad:
        x_btc = jnp.concatenate([x_btc, jnp.repeat(x_btc[:, -1:], pad, axis=1)], axis=1)
    bands = haar_wavedec(x_btc, levels)
    return jnp.concatenate([band.reshape(b, n, -1) for band in bands], axis=2)


def unpack(packed: jax.Array, levels: int) -> list[jax.Array]:
    """Splits a packed [B, N, C * 2^L] array into [cA_L, cD_L, ..., cD_1].

    Band cA_L and cD_L come back as [B, N, C], cD_k as [B, N * 2^(L-k), C].

    Raises:
      ShapeError: not rank 3, or the width is not a multiple of 2^L.
      ConfigError: L is not an int >= 0.
    """
    _check_levels(levels)
    if packed.ndim != 3:
        raise ShapeError(f"expected packed coefficients of rank 3 [B, N, C*2^L], got {tuple(packed.shape)}")
    b, n, width = packed.shape
    if width % (1 << levels):
        raise ShapeError(
            f"packed width {width} is not a multiple of 2^levels = {1 << levels} (levels={levels})"
        )
    if levels == 0:
        return [packed]
    c = width >> levels
    bands = [packed[:, :, :c]]
    start = c
    for k in range(levels, 0, -1):
        group = 1 << (levels - k)
        bands.append(packed[:, :, start : start + group * c].reshape(b, n * group, c))
        start += group * c
    return bands


def idwt(packed: jax.Array, levels: int, length: int) -> jax.Array:
    """Inverse of :func:`dwt`: packed [B, N, C * 2^L] -> [B, length, C].

    Args:
      packed: packed coefficients from :func:`dwt` (or a decoder's estimate).
      levels: the L used by :func:`dwt`.
      length: the original T; ceil(T / 2^L) must equal N.

    Raises:
      ShapeError: bad rank or width, or a length that does not give N.
      ConfigError: L is not an int >= 0.
    """
    bands = unpack(packed, levels)
    n = packed.shape[1]
    if not _is_int(length) or length < 1 or packed_length(length, levels) != n:
        raise ShapeError(
            f"length={length!r} does not match {n} packed frames at levels={levels} "
            f"(need ceil(length / {1 << levels}) == {n}, i.e. length in "
            f"[{(n - 1) * (1 << levels) + 1}, {n * (1 << levels)}])"
        )
    if levels == 0:
        return packed
    return haar_waverec(bands, length)
