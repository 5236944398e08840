"""Motion windows for tokenizer training and evaluation (stage: tokenizer).

Reads a dataset's concatenated features ``[total_frames, F]`` (usually a
memory map) through per-sequence spans ``(offset, length)``. Training draws
random crops of ``window`` frames with a NumPy generator seeded by
``(seed, step)``, so a resumed run draws exactly the batches an
uninterrupted one would, without any sampler state to save.
"""

from __future__ import annotations

import numpy as np

from mm_jax.errors import DataError
from mm_jax.motion.normalize import Normalizer


def usable_spans(offsets: np.ndarray, lengths: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Spans at least ``window`` frames long; DataError when none are."""
    keep = lengths >= window
    if not keep.any():
        raise DataError(
            f"no sequence is at least window={window} frames long "
            f"(longest has {int(lengths.max()) if len(lengths) else 0})"
        )
    return offsets[keep], lengths[keep]


def sample_windows(
    features: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    *,
    window: int,
    batch_size: int,
    seed: int,
    step: int,
    normalizer: Normalizer,
) -> np.ndarray:
    """A batch of normalised random crops, float32 [B, window, F]."""
    rng = np.random.default_rng([seed, step])
    idx = rng.integers(0, len(offsets), size=batch_size)
    starts = offsets[idx] + rng.integers(0, lengths[idx] - window + 1)
    rows = starts[:, None] + np.arange(window)[None, :]
    return np.asarray(normalizer.normalize(features[rows]), dtype=np.float32)


def padded_batch(
    features: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    *,
    multiple: int,
    normalizer: Normalizer,
    pad_to: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Whole sequences, edge-padded to a common length that is a multiple of ``multiple``.

    Returns:
      (x [B, T, F] normalised float32, mask [B, T] True on real frames).
    """
    longest = int(lengths.max()) if pad_to is None else pad_to
    t = -(-longest // multiple) * multiple
    x = np.empty((len(offsets), t, features.shape[1]), np.float32)
    mask = np.zeros((len(offsets), t), bool)
    for i, (o, n) in enumerate(zip(offsets, lengths)):
        seq = features[o : o + n]
        x[i, :n] = seq
        x[i, n:] = seq[-1]
        mask[i, :n] = True
    return np.asarray(normalizer.normalize(x), np.float32), mask
