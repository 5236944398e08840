"""Motion windows for tokenizer training and evaluation (stage: tokenizer).

Reads a dataset's concatenated features ``[total_frames, F]`` (usually a
memory map) through per-sequence spans ``(offset, length)``. Training draws
random crops of ``window`` frames with a NumPy generator seeded by
``(seed, step)``, so a resumed run draws exactly the batches an
uninterrupted one would, without any sampler state to save.

Encoding whole sequences (:func:`plan_encode`) buckets them by length and
cuts one longer than the batch budget into overlapping windows, so peak
memory is bounded by ``max_batch_frames`` whatever the longest clip.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Sequence

import numpy as np

from mm_jax.atomic import write_atomic
from mm_jax.errors import ConfigError, DataError
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


# --- whole-sequence encoding in bounded memory ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EncodeRow:
    """One row of an encode batch: frames ``[start, start + T)`` of sequence ``seq``, edge-padded
    past its end; the row's tokens ``[skip, skip + keep)`` are the sequence's ``[dest, dest + keep)``."""

    seq: int
    start: int
    skip: int
    dest: int
    keep: int


@dataclasses.dataclass(frozen=True)
class EncodeBatch:
    """Rows of one length ``frames`` (T), run as ``size`` rows (the first repeated to fill)."""

    frames: int
    rows: tuple[EncodeRow, ...]
    size: int


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def plan_encode(lengths: Sequence[int], *, frames_per_token: int, context: int, max_batch_frames: int,
                max_rows: int) -> list[EncodeBatch]:
    """Batches that encode whole sequences of ``lengths`` frames with at most ``max_batch_frames`` per batch.

    A sequence is edge-padded by ``context`` frames (the tokenizer's reach,
    :func:`mm_jax.tokenizer.model.context_frames`) and put in the bucket of
    the next power-of-two token count, so padding costs < 2x and few shapes
    compile. One longer than ``max_batch_frames`` is cut into windows of
    ``max_batch_frames`` that start on a token and overlap by ``2 * context``:
    each keeps only tokens with ``context`` real (or edge-padded) frames on
    both sides, which are exactly its whole-sequence codes, since nothing
    further away reaches them. Batches hold ``<= max_rows`` rows, a power of two
    for the last one of a bucket.

    Raises:
      ConfigError: ``max_batch_frames`` below one window (``2 * context`` + one token).
    """
    f = frames_per_token
    ctx = -(-context // f)  # context in tokens
    cap = max_batch_frames // f  # longest row in tokens
    if cap < 2 * ctx + 1:
        raise ConfigError(f"max_batch_frames={max_batch_frames} is below one window of this tokenizer: "
                          f"{(2 * ctx + 1) * f} frames (twice its context of {ctx * f} frames plus a token)")
    buckets: dict[int, list[EncodeRow]] = {}
    for i, length in enumerate(lengths):
        n = -(-int(length) // f)
        need = -(-(int(length) + context) // f)
        if need <= cap:
            buckets.setdefault(min(cap, _pow2_at_least(need)), []).append(EncodeRow(i, 0, 0, 0, n))
            continue
        core = cap - 2 * ctx
        for a in range(0, n, core):
            first = max(0, a - ctx)
            buckets.setdefault(cap, []).append(EncodeRow(i, first * f, a - first, a, min(core, n - a)))
    out = []
    for tokens in sorted(buckets):
        rows, per = buckets[tokens], max(1, min(max_rows, max_batch_frames // (tokens * f)))
        for k in range(0, len(rows), per):
            part = tuple(rows[k:k + per])
            out.append(EncodeBatch(tokens * f, part, min(per, _pow2_at_least(len(part)))))
    return out


def row_frames(seq_tf: np.ndarray, row: EncodeRow, frames: int) -> np.ndarray:
    """Frames [T, F] of ``row``: the sequence from ``row.start``, edge-padded to ``frames``."""
    part = np.asarray(seq_tf[row.start:row.start + frames])
    if len(part) == frames:
        return part
    return np.concatenate([part, np.repeat(np.asarray(seq_tf[-1:]), frames - len(part), axis=0)])


def write_npz_atomic(path: pathlib.Path, **arrays: np.ndarray) -> None:
    """Writes an .npz through ``PATH.tmp`` and a rename (:func:`mm_jax.atomic.write_atomic`).

    Raises:
      DiskFullError: the disk is full (naming the file, the free space and the
        size needed); ``path`` keeps its previous content.
    """
    write_atomic(path, lambda f: np.savez(f, **arrays), tmp=path.with_name(path.name + ".tmp"),
                 needed=sum(np.asarray(a).nbytes for a in arrays.values()))
