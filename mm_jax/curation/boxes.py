"""Stage 3, the box-confidence filter (stage: curation).

Input: one person :class:`~mm_jax.curation.tracks.Track` with a box on every
frame, the frame size and a :class:`~mm_jax.curation.config.BoxFilterConfig`.
Output: the runs of consecutive good frames at least ``min_frames`` long,
and a count of bad frames per reason. A frame is bad when its score is below
``min_score`` ("low score"), its box is shorter than ``min_height`` of the
frame ("small box") or reaches within ``edge_margin`` pixels of a frame
border ("cut by the frame edge"); the first failing test names it.
"""

from __future__ import annotations

import numpy as np

from mm_jax.curation.config import BoxFilterConfig
from mm_jax.curation.tracks import Track

REASONS = ("low score", "small box", "cut by the frame edge")


def frame_reasons(track: Track, *, width: int, height: int, cfg: BoxFilterConfig) -> np.ndarray:
    """Per frame the index into :data:`REASONS` of the first failing test, or -1 for a good frame; [N] int."""
    b, m = track.boxes, cfg.edge_margin
    edge = (b[:, 0] <= m) | (b[:, 1] <= m) | (b[:, 2] >= width - m) | (b[:, 3] >= height - m)
    tests = [track.scores < cfg.min_score, (b[:, 3] - b[:, 1]) < cfg.min_height * height, edge]
    out = np.full(len(b), -1)
    for k in reversed(range(len(tests))):  # the first failing test wins
        out[tests[k]] = k
    return out


def runs(good: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges of the True runs of a boolean array."""
    edges = np.diff(np.concatenate([[0], good.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def box_filter(track: Track, *, width: int, height: int, cfg: BoxFilterConfig) -> tuple[list[Track], dict[str, int]]:
    """(the good runs of at least ``min_frames`` as tracks, bad frames per reason)."""
    why = frame_reasons(track, width=width, height=height, cfg=cfg)
    bad = {REASONS[k]: int(np.sum(why == k)) for k in range(len(REASONS)) if np.any(why == k)}
    keep = [track.take(slice(s, e)) for s, e in runs(why < 0) if e - s >= cfg.min_frames]
    return keep, bad
