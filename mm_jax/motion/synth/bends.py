"""In-place torso primitives: twist, toe touch, pick up (stage: synthetic data).

They exercise what the locomotion-heavy mix rarely moves: the spine twisting
(up to ~30 degrees between pelvis and chest) and bending far forward, with the
arms following. Keyframed on a standing body like :mod:`mm_jax.motion.synth.actions`
(planted feet stay put, the legs follow by IK).
"""

from __future__ import annotations

import numpy as np

from mm_jax.motion.synth.actions import keyed_body
from mm_jax.motion.synth.plan import HEAD, NECK, NEUTRAL_ARM, SPINE, STAND_HEIGHT, keyed, set_arm, standing

_GUARD_LOW = np.array([[0, 0, 0], [-1.25, -0.55, 0.35], [0, -1.7, 0], [0, 0, 0]])  # forearms level, hands in front
_HOLD = np.array([[0, 0, 0], [-1.35, -0.5, 0.2], [0, -1.6, 0], [0, 0, 0]])  # carrying something at the waist
_ON_THIGH = np.array([[0, 0, 0], [-1.3, -0.7, 0], [0, -0.9, 0], [0, 0, 0]])
_TWIST_PERIOD = {"slow": 1.8, "fast": 1.1}  # seconds per left-right cycle


def sample_twist(rng):
    return {"reps": int(rng.integers(2, 6)), "tempo": str(rng.choice(["slow", "fast"]))}


def build_twist(p, fps):
    """Turns the chest left and right ``reps`` times, forearms raised in front, hips turning back a little."""
    period = _TWIST_PERIOD[p["tempo"]]
    frames = int((1.0 + p["reps"] * period) * fps)
    t = np.arange(frames) / fps
    env = keyed(frames, [(0.1 * fps, 0.0), (0.5 * fps, 1.0), (frames - 1 - 0.4 * fps, 1.0), (frames - 1, 0.0)])
    ang = np.sin(2 * np.pi * np.clip(t - 0.5, 0.0, None) / period) * env  # > 0: the chest turns left
    seg = standing(frames)
    euler = seg.euler.copy()
    for j in SPINE:
        euler[:, j, 1] += 0.18 * ang
    euler[:, HEAD, 1] -= 0.15 * ang
    arm = NEUTRAL_ARM + (_GUARD_LOW - NEUTRAL_ARM) * env[:, None, None]
    for side in ("left", "right"):
        set_arm(euler, side, arm)
    tilt = seg.tilt.copy()
    tilt[:, 1] = -0.08 * ang
    return seg.replace(euler=euler, tilt=tilt)


def sample_toe_touch(rng):
    return {"reps": int(rng.integers(1, 4))}


def build_toe_touch(p, fps):
    """Bends forward from the hips with straight legs until the hands reach the toes, ``reps`` times."""
    rep = 2.4
    down = (-0.2, STAND_HEIGHT - 0.05, 1.3, 0.3)
    keys = [(0.2, (0, STAND_HEIGHT, 0, 0))]
    for r in range(p["reps"]):
        t = 0.2 + r * rep
        keys += [(t + 1.0, down), (t + 1.3, down), (t + rep, (0, STAND_HEIGHT, 0, 0))]
    seg = keyed_body(int((0.5 + p["reps"] * rep) * fps), keys, fps)
    bend = seg.tilt[:, 2] + 3 * seg.euler[:, SPINE[0], 2]  # the trunk's forward pitch
    arm = np.broadcast_to(NEUTRAL_ARM, (seg.frames, 4, 3)).copy()
    arm[:, 1, 1] -= bend  # the arms hang straight down
    euler = seg.euler.copy()
    for side in ("left", "right"):
        set_arm(euler, side, arm)
    euler[:, NECK, 2] += 0.15 * bend / 2.2
    return seg.replace(euler=euler)


def sample_pick_up(rng):
    return {"side": str(rng.choice(["left", "right"]))}


def build_pick_up(p, fps):
    """Bends the knees and the back, reaches to the floor with the ``side`` hand and stands up holding it."""
    low = (-0.12, 0.64, 0.6, 0.2)
    keys = [(0.2, (0, STAND_HEIGHT, 0, 0)), (1.1, low), (1.5, low), (2.4, (0, STAND_HEIGHT, 0, 0))]
    frames = int(3.2 * fps)
    seg = keyed_body(frames, keys, fps)
    bend = seg.tilt[:, 2] + 3 * seg.euler[:, SPINE[0], 2]
    reach = np.broadcast_to(NEUTRAL_ARM, (frames, 4, 3)).copy()
    reach[:, 1, 1] -= bend + 0.35  # hanging plus a little forward
    reach[:, 2, 1] = -0.15
    w_up = keyed(frames, [(1.5 * fps, 0.0), (2.6 * fps, 1.0)])[:, None, None]
    hand = reach + (_HOLD - reach) * w_up
    other = keyed(frames, [(0.2 * fps, NEUTRAL_ARM), (1.1 * fps, _ON_THIGH), (1.5 * fps, _ON_THIGH),
                           (2.4 * fps, NEUTRAL_ARM)])
    euler = seg.euler.copy()
    set_arm(euler, p["side"], hand)
    set_arm(euler, "right" if p["side"] == "left" else "left", other)
    look = keyed(frames, [(0.2 * fps, 0.0), (1.0 * fps, 1.0), (1.6 * fps, 1.0), (2.4 * fps, 0.0)])
    euler[:, NECK, 2] += 0.35 * look
    sign = 1.0 if p["side"] == "left" else -1.0  # reaching with the left hand turns the chest right
    for j in SPINE:
        euler[:, j, 1] -= 0.05 * sign * look
    return seg.replace(euler=euler)
