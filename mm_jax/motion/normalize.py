"""Per-channel feature normalisation (stage: motion).

Input: feature arrays ``[T, F]`` (one clip, or many clips given as an
iterable, or a stacked ``[N, T, F]`` array). Output: a :class:`Normalizer`
holding ``mean [F]`` and ``std [F]`` (float32) that maps features to zero mean
and unit variance and back, saved as an ``.npz`` with arrays ``mean``/``std``.

Statistics are accumulated in float64 over every frame of every clip
(Chan et al.'s pairwise merge of per-clip mean and sum of squares), so
streaming over a large data set gives the same numbers as one big array.

Zero-variance guard: a standard deviation below ``min_std`` is *clamped to*
``min_std`` (not replaced by 1). A constant channel then normalises to exactly
0 and denormalises back to its constant, with no inf/NaN; small deviations in
generated output are scaled by ``min_std`` on the way back, i.e. stay small.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterable, Sequence

import jax
import numpy as np

from mm_jax.errors import ConfigError, DataError, FormatError, ShapeError
from mm_jax.motion.validate import validate_features

log = logging.getLogger(__name__)

ArrayLike = np.ndarray | jax.Array


def _clips(data: ArrayLike | Iterable[ArrayLike]) -> Iterable[np.ndarray]:
    """Yields [T, F] float64 arrays from a [T,F] / [N,T,F] array or an iterable of [T,F]."""
    if isinstance(data, (np.ndarray, jax.Array)):
        arr = np.asarray(data)
        if arr.ndim == 2:
            yield arr.astype(np.float64)
            return
        if arr.ndim == 3:
            yield from (a.astype(np.float64) for a in arr)
            return
        raise ShapeError(f"features must be [T, F] or [N, T, F], got shape {arr.shape}")
    for clip in data:
        arr = np.asarray(clip)
        if arr.ndim != 2:
            raise ShapeError(f"each clip must be [T, F], got shape {arr.shape}")
        yield arr.astype(np.float64)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Normalizer:
    """Per-channel affine normaliser: ``(x - mean) / std`` and back.

    Attributes:
      mean: [F] float32 channel means.
      std: [F] float32 channel standard deviations, all > 0.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        if mean.ndim != 1 or std.shape != mean.shape:
            raise ShapeError(f"mean and std must both be [F]; got {mean.shape} and {std.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise DataError("normaliser mean/std contain NaN or inf")
        if np.any(std <= 0):
            bad = int(np.flatnonzero(std <= 0)[0])
            raise DataError(f"normaliser std must be > 0; channel {bad} has std {std[bad]}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def dim(self) -> int:
        """The feature width F."""
        return int(self.mean.shape[0])

    @classmethod
    def fit(
        cls,
        features_tf: ArrayLike | Iterable[ArrayLike],
        min_std: float = 1e-3,
        groups: Sequence[slice] = (),
    ) -> "Normalizer":
        """Fits mean/std over all frames of all clips.

        Args:
          features_tf: [T, F] or [N, T, F] array, or an iterable of [T, F] arrays.
          min_std: floor for the standard deviation (must be > 0).
          groups: channel slices whose channels share one std, the mean of
            their per-channel stds (as HumanML3D normalises): a channel that
            rarely moves is then not blown up to tens of sigmas when it does.

        Raises:
          ConfigError: min_std <= 0.
          ShapeError: clips of different widths, or a bad rank.
          DataError: no frames at all, or a clip with NaN/inf (named by index).
        """
        if not min_std > 0:
            raise ConfigError(f"min_std must be > 0, got {min_std}")
        count, mean, m2, width = 0, None, None, None
        for i, clip in enumerate(_clips(features_tf)):
            if width is None:
                width = clip.shape[1]
            elif clip.shape[1] != width:
                raise ShapeError(f"clip {i} has width {clip.shape[1]} but earlier clips have {width}")
            validate_features(clip, name=f"clip {i}", min_frames=0, width=width)  # NaN/inf: DataError
            n = clip.shape[0]
            if n == 0:
                continue
            c_mean = clip.mean(axis=0)
            c_m2 = ((clip - c_mean) ** 2).sum(axis=0)
            if mean is None:
                count, mean, m2 = n, c_mean, c_m2
                continue
            delta = c_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            m2 = m2 + c_m2 + delta**2 * (count * n / total)
            count = total
        if mean is None:
            raise DataError("cannot fit a normaliser on zero frames")
        std = np.sqrt(m2 / count)
        for sl in groups:
            std[sl] = std[sl].mean()
        clamped = int(np.sum(std < min_std))
        if clamped:
            log.info("normaliser: %d of %d channels have std < %g, clamped", clamped, width, min_std)
        return cls(mean=mean, std=np.maximum(std, min_std))

    def _check(self, x: ArrayLike) -> None:
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ShapeError(
                f"input width {x.shape[-1] if x.ndim else '(scalar)'} does not match the "
                f"normaliser width {self.dim} (input shape {tuple(x.shape)})"
            )

    def normalize(self, x: ArrayLike) -> ArrayLike:
        """[..., F] -> [..., F] standardised (numpy in, numpy out; jax in, jax out)."""
        self._check(x)
        return (x - self.mean) / self.std

    def denormalize(self, x: ArrayLike) -> ArrayLike:
        """Inverse of :meth:`normalize`, [..., F] -> [..., F]."""
        self._check(x)
        return x * self.std + self.mean

    def save(self, path: str | os.PathLike) -> None:
        """Writes an .npz with arrays ``mean`` and ``std`` at exactly ``path``."""
        with open(path, "wb") as fh:
            np.savez(fh, mean=self.mean, std=self.std)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Normalizer":
        """Reads a file written by :meth:`save` (FormatError if it is not one)."""
        try:
            data = np.load(path)
        except FileNotFoundError:
            raise
        except (ValueError, OSError, EOFError) as err:
            raise FormatError(f"{path}: not a normaliser .npz file ({err})") from err
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise FormatError(f"{path}: expected an .npz archive with 'mean' and 'std', got a bare array")
        with data:
            files = sorted(data.files)
            if "mean" not in files or "std" not in files:
                raise FormatError(f"{path}: expected arrays 'mean' and 'std', found {files}")
            return cls(mean=data["mean"], std=data["std"])
