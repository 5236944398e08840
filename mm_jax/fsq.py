"""Finite Scalar Quantization (Mentzer et al. 2023): the tokenizer's bottleneck.

Stage: between the tokenizer's encoder and decoder. Input: encoder latents
``z`` of shape [..., d] with d = len(levels). Outputs: quantized latents
``zhat`` [..., d] on a fixed grid in [-1, 1] (straight-through gradient), and
integer token ids [...] in [0, V), V = prod(levels) (the motion tokens N the
text-to-motion decoder predicts). There is no learned codebook and no
commitment loss.

Per dimension i with L_i levels:

    half_l = (L_i - 1) * (1 + eps) / 2
    offset = 0.5 if L_i is even else 0
    shift  = atanh(offset / half_l)
    bound(z) = tanh(z + shift) * half_l - offset            # in (-L_i/2, L_i/2)
    zhat = round_ste(bound(z)) / (L_i // 2)                  # on the grid below

The grid of dimension i is {(j - L_i // 2) / (L_i // 2) : j = 0..L_i-1}: for
L=5 {-1, -0.5, 0, 0.5, 1}; for L=8 {-1, -0.75, ..., 0.75} (even counts are
asymmetric, which is why the offset exists). Index j is the digit of
dimension i, and the token id is the mixed-radix number
sum_i j_i * prod(L_0..L_{i-1}) (dimension 0 is the least significant digit).

:func:`codebook_usage` is the host-side metric for evaluation (utilisation
and perplexity of an index histogram).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np

from mm_jax.errors import ConfigError, DataError, ShapeError

logger = logging.getLogger(__name__)

_INT32_MAX = 2**31 - 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class FSQ:
    """An FSQ quantizer; hashable, so it can be a static jit argument.

    Attributes:
      levels: number of levels per latent dimension, each an int >= 2.
        The default (8, 8, 8, 5, 5, 5) gives 64,000 codes (the reference).
      eps: widens the tanh bound slightly so the extreme levels are reached.
    """

    levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5)
    eps: float = 1e-3

    def __post_init__(self) -> None:
        if not isinstance(self.levels, tuple) or len(self.levels) == 0:
            raise ConfigError(f"FSQ levels must be a non-empty tuple of ints >= 2, got {self.levels!r}")
        for lv in self.levels:
            if isinstance(lv, bool) or not isinstance(lv, int) or lv < 2:
                raise ConfigError(f"FSQ level {lv!r} in levels={self.levels!r} is not an int >= 2")
        if math.prod(self.levels) > _INT32_MAX:
            raise ConfigError(f"FSQ levels={self.levels!r} give {math.prod(self.levels)} codes, over int32")
        if not isinstance(self.eps, (int, float)) or not 0.0 <= self.eps < 1.0:
            raise ConfigError(f"FSQ eps must be a float in [0, 1), got {self.eps!r}")

    # ------------------------------------------------------------------ sizes

    @property
    def dim(self) -> int:
        """Latent width d = len(levels)."""
        return len(self.levels)

    @property
    def codebook_size(self) -> int:
        """V = prod(levels)."""
        return math.prod(self.levels)

    def _levels_f(self) -> jax.Array:
        return jnp.asarray(self.levels, dtype=jnp.float32)

    def _half_width(self) -> jax.Array:
        return jnp.asarray([lv // 2 for lv in self.levels], dtype=jnp.float32)

    def _basis(self) -> jax.Array:
        return jnp.asarray([math.prod(self.levels[:i]) for i in range(self.dim)], dtype=jnp.int32)

    def _check_last_dim(self, x: jax.Array, what: str) -> None:
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ShapeError(
                f"{what} must have last dimension {self.dim} (= len(levels) for levels={self.levels}), "
                f"got shape {tuple(x.shape)}"
            )

    # ------------------------------------------------------------------ quantize

    def bound(self, z: jax.Array) -> jax.Array:
        """Squashes z [..., d] into (-L/2, L/2) per dimension (before rounding)."""
        self._check_last_dim(z, "z")
        lv = self._levels_f()
        half_l = (lv - 1.0) * (1.0 + self.eps) / 2.0
        offset = jnp.where(jnp.asarray(self.levels) % 2 == 0, 0.5, 0.0)
        shift = jnp.arctanh(offset / half_l)
        return (jnp.tanh(z + shift) * half_l - offset).astype(z.dtype)

    def quantize(self, z: jax.Array) -> jax.Array:
        """z [..., d] -> zhat [..., d] on the grid in [-1, 1].

        The forward pass rounds; the backward pass is the straight-through
        estimator, so d zhat / d z = bound'(z) / (L // 2).
        """
        b = self.bound(z)
        rounded = b + jax.lax.stop_gradient(jnp.round(b) - b)
        return rounded / self._half_width().astype(z.dtype)

    def codes_to_indices(self, zhat: jax.Array) -> jax.Array:
        """Grid codes zhat [..., d] -> int32 token ids [...] in [0, V)."""
        self._check_last_dim(zhat, "zhat")
        hw = self._half_width()
        digits = jnp.round(zhat.astype(jnp.float32) * hw + hw).astype(jnp.int32)
        return jnp.sum(digits * self._basis(), axis=-1).astype(jnp.int32)

    def indices_to_codes(self, indices: jax.Array) -> jax.Array:
        """Token ids [...] (integers in [0, V)) -> grid codes zhat [..., d] (float32).

        Ids outside [0, V) are not checked (that needs host values); their
        digits wrap modulo the levels.

        Raises:
          DataError: the ids are not of an integer dtype.
        """
        indices = jnp.asarray(indices)
        if not jnp.issubdtype(indices.dtype, jnp.integer):
            raise DataError(f"token ids must have an integer dtype, got {indices.dtype}")
        digits = (indices[..., None].astype(jnp.int32) // self._basis()) % jnp.asarray(self.levels, jnp.int32)
        hw = self._half_width()
        return (digits.astype(jnp.float32) - hw) / hw

    def implicit_codebook(self) -> jax.Array:
        """All V codes, [V, d], row v = indices_to_codes(v)."""
        return self.indices_to_codes(jnp.arange(self.codebook_size, dtype=jnp.int32))


PRESETS: dict[str, FSQ] = {
    # Level choices recommended by Mentzer et al. for each codebook size.
    "fsq_256": FSQ(levels=(8, 6, 5)),
    "fsq_1k": FSQ(levels=(8, 5, 5, 5)),
    "fsq_4k": FSQ(levels=(7, 5, 5, 5, 5)),
    "fsq_16k": FSQ(levels=(8, 8, 8, 6, 5)),
    "fsq_64k": FSQ(levels=(8, 8, 8, 5, 5, 5)),  # the MotionMillion reference
}


def codebook_usage(indices: np.ndarray | jax.Array, codebook_size: int) -> tuple[float, float]:
    """Utilisation and perplexity of a set of token ids (host-side metric).

    Args:
      indices: integer token ids of any shape, each in [0, codebook_size).
      codebook_size: V.

    Returns:
      (utilisation, perplexity): the fraction of the V codes used at least
      once, and exp(entropy) of the id histogram in nats (V for a uniform
      histogram over all codes, 1 for a single code).

    Raises:
      ConfigError: codebook_size is not an int >= 1.
      DataError: no ids, a non-integer dtype, or an id outside [0, V).
    """
    valid_int = isinstance(codebook_size, (int, np.integer)) and not isinstance(codebook_size, bool)
    if not valid_int or codebook_size < 1:
        raise ConfigError(f"codebook_size must be an int >= 1, got {codebook_size!r}")
    ids = np.asarray(indices).ravel()
    if ids.size == 0:
        raise DataError("codebook_usage got no token ids")
    if not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"token ids must have an integer dtype, got {ids.dtype}")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= codebook_size:
        bad = lo if lo < 0 else hi
        raise DataError(f"token id {bad} is outside [0, {codebook_size})")
    counts = np.bincount(ids, minlength=int(codebook_size)).astype(np.float64)
    p = counts[counts > 0] / ids.size
    entropy = float(-np.sum(p * np.log(p)))
    return float(p.size / codebook_size), float(np.exp(entropy))
