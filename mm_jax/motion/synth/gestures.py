"""Upper-body gestures: wave, raise arms, clap, arm circles, look, point, drink, cross arms, talk,
hands on hips, arm swings (stage: synthetic data).

A gesture drives a subset of the upper-body joints. :func:`gesture_track`
returns ZYX Euler angles ``[T, 22, 3]`` plus a joint mask ``[22]``; it is used
both on its own (on a standing body, :func:`gesture_segment`) and layered on a
locomotion segment ("walks forward while waving", :func:`overlay`). Arm poses
are written for the left arm and mirrored for the right (see
:mod:`mm_jax.motion.synth.plan`); the key poses were placed by checking joint
positions with forward kinematics (e.g. the waving hand is ~0.3 m above its
shoulder, clapping hands meet ~5 cm from the midline, the drinking hand's
wrist is ~9 cm below and ~14 cm in front of the head joint, crossed forearms
lie level ~25 cm below the shoulders with the wrists ~8 cm past the midline).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mm_jax.motion.synth.plan import (
    ARM_JOINTS,
    HEAD,
    NECK,
    NEUTRAL_ARM,
    NUM_JOINTS,
    SPINE,
    Segment,
    envelope,
    get_arm,
    keyed,
    neutral_euler,
    set_arm,
    standing,
)

# Key arm poses, left convention: rows (collar, shoulder, elbow, wrist), columns (z, y, x).
WAVE = np.array([[0, 0, 0], [0.35, -0.2, -1.5], [0, -1.22, 0], [0, 0, 0]], np.float64)
OVERHEAD = np.array([[0.1, 0, 0], [1.45, 0, 0], [0, -0.1, 0], [0, 0, 0]], np.float64)
FORWARD = np.array([[0, 0, 0], [-0.1, -1.45, 0], [0, -0.05, 0], [0, 0, 0]], np.float64)
SIDEWAYS = np.array([[0, 0, 0], [0.0, -0.05, 0], [0, -0.05, 0], [0, 0, 0]], np.float64)
CLAP_IN = np.array([[0, 0, 0], [-1.3, -1.1, 1.2], [0, -1.0, 0], [0, 0, 0]], np.float64)
CLAP_OUT = np.array([[0, 0, 0], [-1.1, -1.0, 0.5], [0, -0.7, 0], [0, 0, 0]], np.float64)
GUARD = np.array([[0, 0, 0], [-1.4, -0.8, 0.4], [0, -2.0, 0], [0, 0, 0]], np.float64)
PUNCH = np.array([[0, 0, 0], [-0.2, -1.45, 0.3], [0, -0.05, 0], [0, 0, 0]], np.float64)
POINT = np.array([[0, 0, 0], [-0.05, -1.4, 0], [0, -0.05, 0], [0, 0.3, 0]], np.float64)
RAISE_POSES = {"up": OVERHEAD, "forward": FORWARD, "sideways": SIDEWAYS}
DRINK = np.array([[0, 0, 0], [-1.3, -1.1, 0.6], [0, -2.1, 0], [0, 0.3, 0]], np.float64)
CROSS_TOP = np.array([[0, 0, 0], [-1.8, -0.7, 1.5], [0, -1.3, 0], [0, 0, 0]], np.float64)
CROSS_UNDER = np.array([[0, 0, 0], [-1.8, -0.6, 1.6], [0, -1.2, 0], [0, 0, 0]], np.float64)
TALK = np.array([[0, 0, 0], [-1.3, -0.45, 0.3], [0, -1.35, 0], [0, 0, 0]], np.float64)
HIPS = np.array([[0, 0, 0], [-1.2, 0.1, 1.1], [0, -1.1, 0], [0, 0.4, 0]], np.float64)  # wrist at the waist
SWING_OPEN = np.array([[0, 0, 0], [-0.05, 0.3, 0], [0, -0.1, 0], [0, 0, 0]], np.float64)
SWING_SHUT = np.array([[0, 0, 0], [-0.2, -1.95, 0], [0, -0.25, 0], [0, 0, 0]], np.float64)  # across the chest

ARMS = {"left": ("left",), "right": ("right",), "both": ("left", "right")}


def _mask(sides: tuple[str, ...], extra: tuple[int, ...] = ()) -> np.ndarray:
    m = np.zeros(NUM_JOINTS, bool)
    for s in sides:
        m[list(ARM_JOINTS[s])] = True
    m[list(extra)] = True
    return m


def _frames(params: dict, fps: float, frames: int | None, natural: float) -> int:
    return int(frames) if frames is not None else int(round(natural * fps))


def _arm_motion(
    frames: int, fps: float, pose: np.ndarray, osc: np.ndarray | None = None, rise: float = 0.4
) -> np.ndarray:
    """[T, 4, 3] arm angles: neutral -> pose -> neutral, plus osc [T, 4, 3] while up."""
    r = rise * fps
    arm = keyed(frames, [(0, NEUTRAL_ARM), (r, pose), (frames - 1 - r, pose), (frames - 1, NEUTRAL_ARM)])
    if osc is not None:
        arm = arm + osc * envelope(frames, r, r)[:, None, None]
    return arm


def _track(
    frames: int, arms: dict[str, np.ndarray], extra: tuple[int, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    euler = neutral_euler(frames)
    for side, arm in arms.items():
        set_arm(euler, side, arm)
    return euler, _mask(tuple(arms), extra)


def wave(p: dict, fps: float, frames: int | None = None):
    """Waves ``reps`` times with the ``side`` hand(s) at ``tempo`` waves per second."""
    n = _frames(p, fps, frames, 0.8 + p["reps"] / p["tempo"])
    t = np.arange(n) / fps
    osc = np.zeros((n, 4, 3))
    osc[:, 2, 1] = 0.4 * np.sin(2 * np.pi * p["tempo"] * (t - 0.4))
    arm = _arm_motion(n, fps, WAVE, osc)
    return _track(n, {s: arm for s in ARMS[p["side"]]})


def raise_arms(p: dict, fps: float, frames: int | None = None):
    """Raises the ``side`` arm(s) ``up``/``forward``/``sideways`` and holds for ``hold`` seconds."""
    n = _frames(p, fps, frames, 1.2 + p["hold"])
    arm = _arm_motion(n, fps, RAISE_POSES[p["direction"]], rise=0.6)
    return _track(n, {s: arm for s in ARMS[p["side"]]})


def clap(p: dict, fps: float, frames: int | None = None):
    """Claps ``reps`` times in front of the chest."""
    n = _frames(p, fps, frames, 0.8 + p["reps"] / p["tempo"])
    t = np.arange(n) / fps
    # 0 at CLAP_OUT, 1 at CLAP_IN (hands together) once per clap.
    w = 0.5 - 0.5 * np.cos(2 * np.pi * p["tempo"] * np.clip(t - 0.4, 0, None))
    arm_osc = (CLAP_IN - CLAP_OUT)[None] * w[:, None, None]
    arm = _arm_motion(n, fps, CLAP_OUT, arm_osc)
    return _track(n, {"left": arm, "right": arm})


def arm_circles(p: dict, fps: float, frames: int | None = None):
    """Both arms out to the sides drawing ``reps`` circles, ``direction`` forward or backward."""
    n = _frames(p, fps, frames, 1.0 + p["reps"] / p["tempo"])
    t = np.arange(n) / fps
    ph = 2 * np.pi * p["tempo"] * np.clip(t - 0.5, 0, None)
    sign = 1.0 if p["direction"] == "forward" else -1.0
    osc = np.zeros((n, 4, 3))
    osc[:, 1, 0] = 0.35 * np.sin(ph)  # up/down
    osc[:, 1, 1] = sign * 0.35 * (np.cos(ph) - 1.0)  # forward at the top for forward circles
    arm = _arm_motion(n, fps, SIDEWAYS, osc, rise=0.5)
    return _track(n, {"left": arm, "right": arm})


def point(p: dict, fps: float, frames: int | None = None):
    """Points forward with the ``side`` hand for ``hold`` seconds."""
    n = _frames(p, fps, frames, 1.0 + p["hold"])
    arm = _arm_motion(n, fps, POINT, rise=0.5)
    return _track(n, {p["side"]: arm})


def look(p: dict, fps: float, frames: int | None = None):
    """Turns the head (and a little of the chest) to the ``side`` and back."""
    n = _frames(p, fps, frames, 1.2 + p["hold"])
    sign = 1.0 if p["side"] == "left" else -1.0  # positive yaw looks left
    r = 0.5 * fps
    w = keyed(n, [(0, 0.0), (r, 1.0), (n - 1 - r, 1.0), (n - 1, 0.0)])
    euler = neutral_euler(n)
    euler[:, HEAD, 1] = sign * 0.7 * w
    euler[:, NECK, 1] = sign * 0.35 * w
    euler[:, SPINE[2], 1] = sign * 0.15 * w
    return euler, _mask((), (HEAD, NECK, SPINE[2]))


def drink(p: dict, fps: float, frames: int | None = None):
    """Brings the ``side`` hand to the mouth and tips the head back a little, ``hold`` seconds."""
    n = _frames(p, fps, frames, 1.4 + p["hold"])
    arm = _arm_motion(n, fps, DRINK, rise=0.6)
    r = 0.6 * fps
    w = keyed(n, [(0, 0.0), (r, 0.0), (r + 0.3 * fps, 1.0), (n - 1 - r, 1.0), (n - 1, 0.0)])
    euler, mask = _track(n, {p["side"]: arm}, (NECK, HEAD))
    euler[:, NECK, 2] -= 0.12 * w
    euler[:, HEAD, 2] -= 0.2 * w
    return euler, mask


def cross_arms(p: dict, fps: float, frames: int | None = None):
    """Folds both arms across the chest (left forearm on top) for ``hold`` seconds."""
    n = _frames(p, fps, frames, 1.4 + p["hold"])
    return _track(n, {"left": _arm_motion(n, fps, CROSS_TOP, rise=0.6),
                      "right": _arm_motion(n, fps, CROSS_UNDER, rise=0.6)})


def talk(p: dict, fps: float, frames: int | None = None):
    """Forearms up in front, hands moving in small out-of-phase beats as if explaining something."""
    n = _frames(p, fps, frames, 1.2 + p["hold"])
    t = np.arange(n) / fps
    arms = {}
    for side, f, ph in (("left", 1.3, 0.0), ("right", 1.7, 1.9)):
        osc = np.zeros((n, 4, 3))
        osc[:, 1, 1] = 0.18 * np.sin(2 * np.pi * f * t + ph)
        osc[:, 1, 2] = 0.25 * np.sin(2 * np.pi * 0.6 * f * t + 2 * ph)
        osc[:, 2, 1] = 0.3 * np.sin(2 * np.pi * 0.8 * f * t + ph + 1.0)
        osc[:, 3, 2] = 0.5 * np.sin(2 * np.pi * f * t + ph + 0.5)
        arms[side] = _arm_motion(n, fps, TALK, osc, rise=0.5)
    euler, mask = _track(n, arms, (HEAD,))
    euler[:, HEAD, 2] += 0.06 * np.sin(2 * np.pi * 1.1 * t) * envelope(n, 0.5 * fps)
    return euler, mask


def hands_on_hips(p: dict, fps: float, frames: int | None = None):
    """Puts both hands on the hips, elbows out, for ``hold`` seconds."""
    n = _frames(p, fps, frames, 1.2 + p["hold"])
    arm = _arm_motion(n, fps, HIPS, rise=0.5)
    return _track(n, {"left": arm, "right": arm})


def arm_swing(p: dict, fps: float, frames: int | None = None):
    """Swings both straight arms open wide and across the chest ``reps`` times (a warm-up)."""
    n = _frames(p, fps, frames, 1.0 + p["reps"] / p["tempo"])
    t = np.arange(n) / fps
    w = 0.5 - 0.5 * np.cos(2 * np.pi * p["tempo"] * np.clip(t - 0.5, 0, None))  # 1: crossed
    arms = {}
    for side, drop in (("left", 0.0), ("right", -0.15)):  # the right arm passes under the left
        shut = SWING_SHUT + np.array([[0, 0, 0], [drop, 0, 0], [0, 0, 0], [0, 0, 0]])
        arms[side] = _arm_motion(n, fps, SWING_OPEN, (shut - SWING_OPEN)[None] * w[:, None, None], rise=0.5)
    return _track(n, arms)


GESTURES: dict[str, Callable] = {
    "wave": wave,
    "raise_arms": raise_arms,
    "clap": clap,
    "arm_circles": arm_circles,
    "point": point,
    "look": look,
    "drink": drink,
    "cross_arms": cross_arms,
    "talk": talk,
    "hands_on_hips": hands_on_hips,
    "arm_swing": arm_swing,
}


def gesture_segment(name: str, p: dict, fps: float) -> Segment:
    """A standalone gesture performed standing still."""
    euler, mask = GESTURES[name](p, fps)
    seg = standing(euler.shape[0] + int(0.2 * fps))
    full = seg.euler.copy()
    full[: euler.shape[0], mask] = euler[:, mask]
    return seg.replace(euler=full)


def overlay(base: Segment, name: str, p: dict, fps: float, margin: float = 0.25) -> Segment:
    """``base`` with the gesture's joints replaced while it moves (faded in and out over 0.3 s)."""
    start = int(margin * fps)
    frames = base.frames - 2 * start
    euler, mask = GESTURES[name](p, fps, frames)
    w = envelope(frames, 0.3 * fps)[:, None, None]
    full = base.euler.copy()
    seg_part = full[start : start + frames, mask]
    full[start : start + frames, mask] = seg_part * (1 - w) + euler[:, mask] * w
    return base.replace(euler=full)


def overlay_reps(name: str, p: dict, frames: int, fps: float, margin: float = 0.25) -> dict:
    """The gesture's parameters adjusted to fit ``frames`` (its count becomes what is actually shown)."""
    p = dict(p)
    dur = frames / fps - 2 * margin
    if "reps" in p:
        p["reps"] = max(1, int((dur - 0.9) * p["tempo"]))
    if "hold" in p:
        p["hold"] = round(max(dur - 1.2, 0.2), 2)
    return p


def arm_of(euler: np.ndarray, side: str) -> np.ndarray:
    """Left-convention arm angles of ``side`` (re-exported for primitives)."""
    return get_arm(euler, side)
