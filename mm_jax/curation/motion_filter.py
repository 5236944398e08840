"""Stage 6, the motion filters (stage: curation).

Input: one clip's joints ``[T, 22, 3]`` (metres, y up, 30 fps; any floor:
heights are taken above the clip's lowest joint) and a
:class:`~mm_jax.curation.config.MotionFilterConfig`. Output: every measured
figure and the first failing test (its reason, value and threshold), or none.

Tests, in order (each names its reason):

* ``too short``: fewer than ``min_seconds`` of motion.
* ``root speed``: the root's largest one-frame horizontal+vertical step x fps
  above ``max_root_speed`` (a teleport: a tracking or estimation failure).
* ``direction changes``: reversals of the root's ground velocity per second
  above ``max_direction_changes``: frames where the velocity and the one
  ``direction_window`` frames earlier both exceed ``direction_min_speed`` and
  point more than 90 degrees apart, counted once per stretch (shaking; tested
  before the jerk, which a shake also raises).
* ``peak jerk``: the 99.9th percentile over frames and joints of the third
  difference's norm x fps^3 above ``max_peak_jerk`` (jitter spikes).
* ``mean jerk``: ``eval.quality.jerk`` above ``max_mean_jerk`` (jitter everywhere).
* ``root height``: the pelvis above the floor leaves
  [``min_root_height``, ``max_root_height``] (lying inside the floor, flying).
* ``foot sliding``: ``eval.quality.foot_skating_ratio`` above ``max_foot_skating``.
* ``too static``: the mean joint speed below ``min_mean_speed``.
"""

from __future__ import annotations

import numpy as np

from mm_jax.curation.config import MotionFilterConfig
from mm_jax.eval import quality

FPS = 30.0


def direction_changes(root: np.ndarray, *, window: int, min_speed: float, fps: float = FPS) -> float:
    """Reversals of the root's ground velocity per second (module docstring); root [T, 3]."""
    v = np.diff(root[:, [0, 2]], axis=0) * fps  # [T-1, 2]
    if len(v) <= window:
        return 0.0
    a, b = v[window:], v[:-window]
    moving = (np.linalg.norm(a, axis=1) > min_speed) & (np.linalg.norm(b, axis=1) > min_speed)
    flipped = moving & (np.sum(a * b, axis=1) < 0)
    starts = np.sum(np.diff(np.concatenate([[0], flipped.astype(int)])) == 1)
    return float(starts) / (len(root) / fps)


def measure(joints: np.ndarray, cfg: MotionFilterConfig, *, fps: float = FPS) -> dict[str, float]:
    """Every figure the tests compare (module docstring), as a flat dict."""
    j = np.asarray(joints, np.float64)
    root = j[:, 0]
    jerk_tj = np.linalg.norm(np.diff(j, n=3, axis=0), axis=-1) * fps**3
    pelvis = root[:, 1] - j[..., 1].min()
    return {
        "seconds": len(j) / fps,
        "root_speed_max": float(np.linalg.norm(np.diff(root, axis=0), axis=-1).max() * fps),
        "jerk_peak": float(np.percentile(jerk_tj, 99.9)),
        "jerk_mean": quality.jerk(j, fps=fps),
        "direction_changes_per_s": direction_changes(root, window=cfg.direction_window,
                                                     min_speed=cfg.direction_min_speed, fps=fps),
        "root_height_min": float(pelvis.min()),
        "root_height_max": float(pelvis.max()),
        "foot_skating": quality.foot_skating_ratio(j - np.array([0.0, j[..., 1].min(), 0.0])),
        "mean_joint_speed": float(np.linalg.norm(np.diff(j, axis=0), axis=-1).mean() * fps),
    }


def first_failure(m: dict[str, float], cfg: MotionFilterConfig) -> tuple[str, float, float] | None:
    """(reason, value, threshold) of the first failing test of measured figures ``m``, or None."""
    tests = [
        ("too short", m["seconds"], cfg.min_seconds, m["seconds"] < cfg.min_seconds),
        ("root speed", m["root_speed_max"], cfg.max_root_speed, m["root_speed_max"] > cfg.max_root_speed),
        ("direction changes", m["direction_changes_per_s"], cfg.max_direction_changes,
         m["direction_changes_per_s"] > cfg.max_direction_changes),
        ("peak jerk", m["jerk_peak"], cfg.max_peak_jerk, m["jerk_peak"] > cfg.max_peak_jerk),
        ("mean jerk", m["jerk_mean"], cfg.max_mean_jerk, m["jerk_mean"] > cfg.max_mean_jerk),
        ("root height", m["root_height_min"], cfg.min_root_height, m["root_height_min"] < cfg.min_root_height),
        ("root height", m["root_height_max"], cfg.max_root_height, m["root_height_max"] > cfg.max_root_height),
        ("foot sliding", m["foot_skating"], cfg.max_foot_skating, m["foot_skating"] > cfg.max_foot_skating),
        ("too static", m["mean_joint_speed"], cfg.min_mean_speed, m["mean_joint_speed"] < cfg.min_mean_speed),
    ]
    return next(((name, float(v), float(th)) for name, v, th, failed in tests if failed), None)


def motion_filter(joints: np.ndarray, cfg: MotionFilterConfig) -> tuple[dict[str, float], tuple | None]:
    """(figures, first failure or None) of one clip; clips under 4 frames fail "too short" unmeasured."""
    if len(joints) < quality.MIN_FRAMES:
        return {"seconds": len(joints) / FPS}, ("too short", len(joints) / FPS, cfg.min_seconds)
    m = measure(joints, cfg)
    return m, first_failure(m, cfg)
