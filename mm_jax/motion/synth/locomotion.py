"""Gait-driven primitives: the shared locomotion builder (stage: synthetic data).

:func:`locomote` plans a stretch of stepping: the root accelerates from rest,
travels in a body-frame direction at ``speed`` while the heading turns by
``turn`` radians, and stops; the feet follow an alternating step schedule
(``cadence`` steps/s, ``duty`` = planted fraction of a stride) with footholds
placed under the hips (:func:`mm_jax.motion.synth.feet.gait`), so planted
feet stay fixed on the ground. Arms swing opposite to the legs, driven by the
feet's fore-aft separation, with the elbows bent (more on the forward swing);
the pelvis turns with the leading leg and the chest counter-rotates. Every
segment starts and ends standing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mm_jax.motion.synth import feet as feetlib
from mm_jax.motion.synth.plan import (
    NECK,
    SPINE,
    STAND_HEIGHT,
    Segment,
    get_arm,
    neutral_euler,
    rotate_xz,
    set_arm,
    smoothstep,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Gait:
    """How a gait looks: timing, posture and arm action."""

    cadence: float  # steps per second
    duty: float  # planted fraction of one stride (> 0.5 walks, < 0.5 has flight)
    swing_height: float  # foot lift, metres
    heel_rise: float = 0.5  # toe-off pitch, radians
    height: float = STAND_HEIGHT  # desired pelvis height while moving
    lean: float = 0.05  # forward pitch of the pelvis + spine, radians
    arm_gain: float = 0.6  # arm swing (rad) per metre of foot separation
    elbow: float = -0.6  # elbow flexion while moving (left convention)
    twist: float = 0.25  # pelvis yaw (rad) per metre of foot separation; the chest turns back twice as far
    width: float = 0.0  # extra lateral spread of the feet
    pitch: float = 0.0  # constant heel lift while planted (tiptoes)


def _ramp_profile(frames: int, t0: float, t1: float, acc: float) -> np.ndarray:
    """[T] speed envelope: 0 before t0, 1 between the ramps, 0 after t1."""
    t = np.arange(frames, dtype=np.float64)
    up = smoothstep((t - t0) / max(acc, 1.0))
    down = smoothstep((t1 - t) / max(acc, 1.0))
    return np.minimum(up, down)


def locomote(
    *,
    gait: Gait,
    steps: int,
    speed: float,
    direction: tuple[float, float] = (0.0, 1.0),
    turn: float = 0.0,
    first: int = 0,
    fps: float = 30.0,
    lead_in: float = 0.25,
    hold: float = 0.3,
) -> Segment:
    """Plans ``steps`` alternating steps (see the module docstring).

    Args:
      gait: the gait's look.
      steps: number of steps (>= 2).
      speed: peak root speed, m/s.
      direction: unit travel direction in the body frame (x left, z forward).
      turn: total heading change, radians (positive turns left).
      first: which foot steps first (0 left, 1 right).
      fps: frames per second.
      lead_in, hold: seconds standing before the first step and after the last.
    """
    period = fps / gait.cadence
    swing = (1.0 - gait.duty) * 2.0 * period
    t0 = lead_in * fps
    schedule = feetlib.alternating_steps(first, steps, t0, period, swing)
    last_land = schedule[-1][2]
    frames = int(np.ceil(last_land + hold * fps)) + 1
    move = _ramp_profile(frames, t0, last_land, acc=1.2 * period)
    t = np.arange(frames, dtype=np.float64)
    yaw = turn * smoothstep((t - t0) / max(last_land - t0, 1.0))
    vel = rotate_xz(np.asarray(direction, np.float64)[None] * (speed * move)[:, None], yaw) / fps
    root = np.concatenate([np.zeros((1, 2)), np.cumsum(vel[:-1], axis=0)])
    active = _ramp_profile(frames, t0 - 0.3 * period, last_land, acc=0.8 * period)
    return stepping(root, yaw, schedule, gait, active)


def stepping(
    root: np.ndarray,
    yaw: np.ndarray,
    schedule: list[tuple[int, float, float]],
    gait: Gait,
    active: np.ndarray,
    lifts: tuple[list[float], list[float]] | None = None,
) -> Segment:
    """A stepping segment for a given root path root [T, 2], yaw [T] and step schedule.

    ``active`` [T] in [0, 1] fades the gait's posture (height, lean, elbows) in and out;
    ``lifts`` (per foot, one per swing) overrides ``gait.swing_height``.
    """
    frames = root.shape[0]
    stances = feetlib.gait(root, yaw, schedule, width=gait.width, heel_rise=gait.heel_rise, pitch=gait.pitch)
    swing = gait.swing_height if lifts is None else (list(lifts[0]), list(lifts[1]))
    ankle, foot_yaw, foot_pitch, contact = feetlib.feet_tracks(stances, frames, swing)
    euler = neutral_euler(frames)
    lean = gait.lean * active
    tilt = np.zeros((frames, 3))
    tilt[:, 2] = 0.4 * lean
    for j in SPINE:
        euler[:, j, 2] += 0.2 * lean
    euler[:, NECK, 2] -= 0.3 * lean
    d = _lead(ankle, yaw)
    _swing_arms(euler, d, gait, active)
    turn = np.clip(gait.twist * d, -0.15, 0.15)  # the left foot ahead turns the pelvis right
    tilt[:, 1] = -turn
    for j in SPINE:
        euler[:, j, 1] += 2.0 * turn / len(SPINE)
    height = STAND_HEIGHT + (gait.height - STAND_HEIGHT) * active
    return Segment(
        root_xz=root,
        yaw=yaw,
        height=height,
        tilt=tilt,
        ankle=ankle,
        foot_yaw=foot_yaw,
        foot_pitch=foot_pitch,
        contact=contact,
        euler=euler,
    )


def _lead(ankle: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """[T] fore-aft separation of the feet along the heading (metres, > 0: left foot ahead)."""
    sep = ankle[:, 0, [0, 2]] - ankle[:, 1, [0, 2]]
    fwd = np.stack([np.sin(yaw), np.cos(yaw)], -1)
    return np.sum(sep * fwd, axis=-1)


def _swing_arms(euler: np.ndarray, d: np.ndarray, gait: Gait, active: np.ndarray) -> None:
    """Arm swing opposite to the legs, proportional to the feet's fore-aft separation d [T]."""
    swing = np.clip(gait.arm_gain * d, -0.9, 0.9)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        arm = get_arm(euler, side).copy()
        arm[:, 1, 1] += sign * swing  # left arm forward (negative) when the right foot leads
        arm[:, 2, 1] += (gait.elbow - arm[:, 2, 1]) * active + np.minimum(sign * swing, 0.0) * 0.6
        set_arm(euler, side, arm)
