"""Getting down low: kneeling on one knee (stage: synthetic data).

The ``side`` foot steps back and lands on its toes (heel up, toes bent flat on
the ground); the pelvis sinks back and down until that knee is just above the
floor, under the hip, while the front foot stays planted; after ``hold``
seconds the body rises and the foot steps back under the hip. The geometry is
solved for the neutral body (knee ~4 cm above the ground, the front knee bent
~100 degrees); other bodies get it scaled.
"""

from __future__ import annotations

import numpy as np

from mm_jax.motion.synth.actions import keyed_body
from mm_jax.motion.synth.feet import feet_tracks, planted
from mm_jax.motion.synth.plan import NECK, NEUTRAL_ARM, STAND_HEIGHT, keyed, set_arm

KNEEL_HEIGHT = 0.52  # pelvis height while kneeling
ROOT_BACK = 0.28  # how far the pelvis moves back (metres)
TOE_PITCH = 1.2  # the back foot's heel lift while kneeling (radians)
STEP_BACK = 0.8  # the back foot's flat-ankle offset behind its start (metres)
_ON_KNEE = np.array([[0, 0, 0], [-1.3, -0.75, 0.1], [0, -0.7, 0], [0, 0, 0]])


def _f(x: float) -> float:
    return round(float(x), 2)


def sample_kneel(rng):
    return {"side": str(rng.choice(["left", "right"])), "hold": _f(rng.uniform(0.8, 2.5))}


def build_kneel(p, fps):
    """Kneels on the ``side`` knee for ``hold`` seconds and stands up again."""
    s = 0 if p["side"] == "left" else 1
    h = p["hold"]
    down = (-ROOT_BACK, KNEEL_HEIGHT, -0.05, 0.02)
    keys = [(0.4, (0, STAND_HEIGHT, 0, 0)), (1.0, (-0.6 * ROOT_BACK, 0.8, 0.1, 0.05)), (1.6, down),
            (1.6 + h, down), (2.2 + h, (-0.6 * ROOT_BACK, 0.8, 0.1, 0.05)), (2.8 + h, (0, STAND_HEIGHT, 0, 0))]
    frames = int((3.5 + h) * fps)
    seg = keyed_body(frames, keys, fps)
    back, front = [], [planted(1 - s, (0.0, 0.0), 0.0, 0, frames - 1)]
    back.append(planted(s, (0.0, 0.0), 0.0, 0, 0.3 * fps))
    back.append(planted(s, (0.0, 0.0), 0.0, 0.85 * fps, (2.4 + h) * fps, forward=-STEP_BACK, pitch=TOE_PITCH))
    back.append(planted(s, (0.0, 0.0), 0.0, (3.0 + h) * fps, frames - 1))
    stances = (back, front) if s == 0 else (front, back)
    ankle, fyaw, fpitch, contact = feet_tracks(stances, frames, 0.12, dorsiflex=0.0)
    w = keyed(frames, [(0.5 * fps, 0.0), (1.6 * fps, 1.0), ((1.6 + h) * fps, 1.0), ((2.7 + h) * fps, 0.0)])
    euler = seg.euler.copy()
    set_arm(euler, "right" if s == 0 else "left", NEUTRAL_ARM + (_ON_KNEE - NEUTRAL_ARM) * w[:, None, None])
    euler[:, NECK, 2] += 0.1 * w
    return seg.replace(ankle=ankle, foot_yaw=fyaw, foot_pitch=fpitch, contact=contact, euler=euler)
