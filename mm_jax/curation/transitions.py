"""Stage 4, the transition filter (stage: curation).

Input: a track with one box per consecutive frame (after the box filter) and
a :class:`~mm_jax.curation.config.TransitionConfig`. Output: the pieces
between abrupt jumps and the jumps found. A jump between frames t-1 and t is
a box centre displacement above ``max_center_jump`` box heights (the mean of
the two heights), or a height change ``|log(h[t] / h[t-1])|`` above
``max_scale_jump``: a cut the shot detector missed, or a tracker that
switched to another person. ``mode="split"`` cuts there (the pieces of at
least ``min_frames`` stay), ``"drop"`` drops the track.
"""

from __future__ import annotations

import numpy as np

from mm_jax.curation.config import TransitionConfig
from mm_jax.curation.tracks import Track


def jumps(track: Track) -> tuple[np.ndarray, np.ndarray]:
    """(centre jump in box heights [N-1], |log height ratio| [N-1]) between consecutive frames."""
    b = track.boxes
    h = np.maximum(b[:, 3] - b[:, 1], 1e-6)
    centre = 0.5 * (b[:, :2] + b[:, 2:])
    move = np.linalg.norm(np.diff(centre, axis=0), axis=1) / (0.5 * (h[1:] + h[:-1]))
    return move, np.abs(np.diff(np.log(h)))


def split_transitions(track: Track, cfg: TransitionConfig) -> tuple[list[Track], list[dict]]:
    """(pieces kept, jumps as {"frame", "center_jump", "scale_jump"}) of one track (module docstring)."""
    move, scale = jumps(track)
    at = np.flatnonzero((move > cfg.max_center_jump) | (scale > cfg.max_scale_jump)) + 1  # first frame after
    events = [{"frame": int(track.frames[i]), "center_jump": round(float(move[i - 1]), 4),
               "scale_jump": round(float(scale[i - 1]), 4)} for i in at]
    if cfg.mode == "drop" and len(at):
        return [], events
    bounds = [0, *at.tolist(), len(track.frames)]
    pieces = [track.take(slice(s, e)) for s, e in zip(bounds[:-1], bounds[1:]) if e - s >= cfg.min_frames]
    return pieces, events
