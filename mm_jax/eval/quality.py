"""Physical plausibility of one motion from its joints (stage: eval).

Input: global joint positions ``[T, 22, 3]`` in metres (y up, ground at
y = 0) of a 30 fps clip, e.g. ``features.joints_from_features`` of
denormalised features. Output: floats. Foot joints are
``skeleton.FOOT_JOINTS`` (both ankles and both toes).

Definitions and thresholds (defaults; every function takes them as keywords):

* ``acceleration``: mean over frames and joints of ``|x[t+1] - 2x[t] + x[t-1]|``
  x fps^2, m/s^2.
* ``jerk`` (jitter): mean of the norm of the third time difference x fps^3,
  m/s^3 (same definition as ``tokenizer.quality.jitter``).
* ``foot_skating_ratio``: the fraction of the T-1 frame transitions in which
  some foot joint is in contact (its height is below ``contact_height`` =
  5 cm in both frames) yet moves horizontally by more than ``slide_per_frame``
  = 2.5 mm (7.5 cm/s at 30 fps). The literature's looser variant (GMD,
  OmniControl: 0.5 m/s at 20 fps) is ``slide_per_frame=0.025``.
* ``floating``: per frame, the lowest foot joint's height h; the mean over
  frames of ``h`` where ``h > float_height`` (5 cm) and 0 elsewhere, metres
  (airborne phases of a jump count too: compare against real data).
* ``penetration``: mean over frames of ``max(-h, 0)``, metres below ground.

Clips need at least 4 frames (for the jerk).
"""

from __future__ import annotations

import numpy as np

from mm_jax.errors import DataError, ShapeError
from mm_jax.motion.layout import CONTACT_HEIGHT, FOOT_JOINTS, FPS, NUM_JOINTS, SLIDE_PER_FRAME

FLOAT_HEIGHT = 0.05
MIN_FRAMES = 4


def _check(joints_tj3) -> np.ndarray:
    j = np.asarray(joints_tj3, np.float64)
    if j.ndim != 3 or j.shape[1:] != (NUM_JOINTS, 3):
        raise ShapeError(f"joints must be [T, {NUM_JOINTS}, 3]; got shape {j.shape}")
    if j.shape[0] < MIN_FRAMES:
        raise DataError(f"motion quality needs at least {MIN_FRAMES} frames; got {j.shape[0]}")
    if not np.isfinite(j).all():
        raise DataError("joints contain NaN or inf")
    return j


def acceleration(joints_tj3, *, fps: int = FPS) -> float:
    """Mean joint acceleration magnitude, m/s^2."""
    j = _check(joints_tj3)
    return float(np.linalg.norm(np.diff(j, n=2, axis=0), axis=-1).mean() * fps**2)


def jerk(joints_tj3, *, fps: int = FPS) -> float:
    """Mean joint jerk magnitude (jitter), m/s^3."""
    j = _check(joints_tj3)
    return float(np.linalg.norm(np.diff(j, n=3, axis=0), axis=-1).mean() * fps**3)


def foot_skating_ratio(joints_tj3, *, contact_height: float = CONTACT_HEIGHT,
                       slide_per_frame: float = SLIDE_PER_FRAME) -> float:
    """Fraction of frame transitions with a sliding foot in ground contact, in [0, 1]."""
    feet = _check(joints_tj3)[:, list(FOOT_JOINTS)]  # [T, 4, 3]
    low = feet[:, :, 1] < contact_height
    contact = low[1:] & low[:-1]  # [T-1, 4]
    slide = np.linalg.norm(np.diff(feet[:, :, [0, 2]], axis=0), axis=-1) > slide_per_frame
    return float((contact & slide).any(axis=1).mean())


def _lowest_foot(joints_tj3) -> np.ndarray:
    return _check(joints_tj3)[:, list(FOOT_JOINTS), 1].min(axis=1)  # [T]


def floating(joints_tj3, *, float_height: float = FLOAT_HEIGHT) -> float:
    """Mean height of the lowest foot joint over frames where it exceeds ``float_height``, else 0; metres."""
    h = _lowest_foot(joints_tj3)
    return float(np.where(h > float_height, h, 0.0).mean())


def penetration(joints_tj3) -> float:
    """Mean depth of the lowest foot joint below the ground (0 when above), metres."""
    return float(np.clip(-_lowest_foot(joints_tj3), 0.0, None).mean())


def motion_quality(joints_tj3, *, fps: int = FPS) -> dict[str, float]:
    """All of the above with default thresholds, as a flat dict with ``quality/`` keys."""
    return {
        "quality/acceleration": acceleration(joints_tj3, fps=fps),
        "quality/jerk": jerk(joints_tj3, fps=fps),
        "quality/foot_skating_ratio": foot_skating_ratio(joints_tj3),
        "quality/floating_m": floating(joints_tj3),
        "quality/penetration_m": penetration(joints_tj3),
    }


def mean_quality(joints_list) -> dict[str, float]:
    """:func:`motion_quality` averaged over clips (each clip weighs the same)."""
    rows = [motion_quality(j) for j in joints_list]
    if not rows:
        raise DataError("mean_quality needs at least one clip")
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
