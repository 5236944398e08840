"""In-place foot primitives: stomp, leg swing, calf raise, weight shift (stage: synthetic data).

They lift the feet high, point them and rise onto the toes (the toes then bend,
:func:`mm_jax.motion.synth.pose.toe_angles`), and sway the pelvis over one
foot and the other as people do while standing. A lifted foot is held at
keyed hip-relative targets (:func:`mm_jax.motion.synth.pose.attach_foot`) and
is marked not planted while lifted; the other foot stays planted.
"""

from __future__ import annotations

import numpy as np

from mm_jax.motion.synth import pose
from mm_jax.motion.synth.feet import toe_pivot
from mm_jax.motion.synth.gestures import GUARD
from mm_jax.motion.synth.plan import HEAD, NEUTRAL_ARM, SPINE, Segment, keyed, set_arm, standing

_REST = np.array([0.0, -0.8, -0.03])  # ankle below the hip, standing (body frame)


def _side(rng) -> str:
    return str(rng.choice(["left", "right"]))


def _lifted(seg: Segment, s: int, weight: np.ndarray, rel: np.ndarray, fps: float, pitch: float) -> Segment:
    """Foot ``s`` held at rel [T, 3] (hip frame) wherever weight [T] > 0, planted elsewhere."""
    contact = seg.contact.copy()
    contact[:, s] &= weight <= 0
    return pose.attach_foot(seg.replace(contact=contact), s, rel, weight, fps, pitch=pitch)


def _arms(frames: int, pose_: np.ndarray, fps: float, amount: float = 1.0) -> np.ndarray:
    target = NEUTRAL_ARM + (pose_ - NEUTRAL_ARM) * amount
    r = 0.35 * fps
    return keyed(frames, [(0.05 * fps, NEUTRAL_ARM), (r, target), (frames - 1 - r, target),
                          (frames - 1, NEUTRAL_ARM)])


def sample_stomp(rng):
    return {"side": _side(rng), "reps": int(rng.integers(1, 5))}


def build_stomp(p, fps):
    """Raises the ``side`` knee high and stamps the foot down, ``reps`` times."""
    s = 0 if p["side"] == "left" else 1
    lat = 0.03 if s == 0 else -0.03
    rest, up = _REST + [lat, 0, 0], np.array([lat, -0.48, 0.2])
    t, rel, wk, lean = 0.35 * fps, [(0.0, rest)], [(0.0, 0.0)], [(0.0, 0.0)]
    for _ in range(p["reps"]):
        rel += [(t, rest), (t + 0.3 * fps, up), (t + 0.38 * fps, up), (t + 0.5 * fps, rest)]
        wk += [(t, 0.0), (t + 0.08 * fps, 1.0), (t + 0.46 * fps, 1.0), (t + 0.5 * fps, 0.0)]
        lean += [(t + 0.3 * fps, 0.0), (t + 0.5 * fps, 1.0), (t + 0.8 * fps, 0.0)]
        t += 0.85 * fps
    frames = int(t + 0.4 * fps)
    seg = _lifted(standing(frames), s, keyed(frames, wk), keyed(frames, rel), fps, pitch=0.2)
    euler = seg.euler.copy()
    w = keyed(frames, lean)
    for j in SPINE:
        euler[:, j, 2] += 0.08 * w
    arm = _arms(frames, GUARD, fps, 0.5)
    for side in ("left", "right"):
        set_arm(euler, side, arm)
    return seg.replace(euler=euler, height=seg.height - 0.03 * w)


def sample_leg_swing(rng):
    return {"side": _side(rng), "reps": int(rng.integers(2, 6))}


def build_leg_swing(p, fps):
    """Swings the ``side`` leg forward and back like a pendulum ``reps`` times, arms out for balance."""
    s = 0 if p["side"] == "left" else 1
    lat = 0.04 if s == 0 else -0.04
    rest, fwd, back = _REST + [lat, 0, 0], np.array([lat, -0.66, 0.42]), np.array([lat, -0.72, -0.34])
    period, t0 = 1.0 * fps, 0.45 * fps
    rel = [(0.0, rest), (t0 - 0.1 * fps, rest)]
    for k in range(p["reps"]):
        rel += [(t0 + k * period + 0.25 * period, fwd), (t0 + k * period + 0.75 * period, back)]
    end = t0 + p["reps"] * period + 0.1 * fps
    rel.append((end, rest))
    frames = int(end + 0.45 * fps)
    weight = keyed(frames, [(0.25 * fps, 0.0), (0.35 * fps, 1.0), (end - 0.1 * fps, 1.0), (end, 0.0)])
    relv = keyed(frames, rel)
    seg = _lifted(standing(frames), s, weight, relv, fps, pitch=0.35)
    tilt = seg.tilt.copy()
    tilt[:, 2] -= 0.12 * (relv[:, 2] - rest[2]) / 0.45  # the trunk leans back as the leg comes forward
    euler = seg.euler.copy()
    out = NEUTRAL_ARM + np.array([[0, 0, 0], [0.8, -0.2, 0], [0, -0.3, 0], [0, 0, 0]])
    arm = _arms(frames, out, fps)
    for side in ("left", "right"):
        set_arm(euler, side, arm)
    return seg.replace(tilt=tilt, euler=euler)


def sample_calf_raise(rng):
    return {"reps": int(rng.integers(2, 7))}


def build_calf_raise(p, fps):
    """Rises onto the balls of both feet and lowers again ``reps`` times (the toes stay planted)."""
    rep = 1.1 * fps
    keys = [(0.0, 0.0), (0.3 * fps, 0.0)]
    for k in range(p["reps"]):
        a = 0.3 * fps + k * rep
        keys += [(a + 0.4 * rep, 0.6), (a + 0.55 * rep, 0.6), (a + rep, 0.0)]
    frames = int(0.3 * fps + p["reps"] * rep + 0.35 * fps)
    pitch = keyed(frames, keys)
    seg = standing(frames)
    ankle = seg.ankle.copy()
    for s in (0, 1):
        x, _, z = seg.ankle[0, s]
        ankle[:, s] = toe_pivot(s, x, z, np.zeros(frames), pitch)
    rise = ankle[:, 0, 1] - ankle[0, 0, 1]
    euler = seg.euler.copy()
    arm = _arms(frames, NEUTRAL_ARM + np.array([[0, 0, 0], [0.25, -0.1, 0], [0, -0.2, 0], [0, 0, 0]]), fps)
    for side in ("left", "right"):
        set_arm(euler, side, arm)
    return seg.replace(ankle=ankle, foot_pitch=np.stack([pitch, pitch], -1), height=seg.height + rise,
                       euler=euler)


def sample_shift_weight(rng):
    return {"reps": int(rng.integers(2, 5)), "tempo": str(rng.choice(["slow", "fast"]))}


def build_shift_weight(p, fps):
    """Stands idly moving the pelvis over one foot and then the other, ``reps`` shifts, looking around."""
    rep = (1.8 if p["tempo"] == "slow" else 1.1) * fps
    keys, look = [(0.0, 0.0), (0.2 * fps, 0.0)], [(0.0, 0.0)]
    for k in range(p["reps"]):
        d = 1.0 if k % 2 == 0 else -1.0
        keys += [(0.2 * fps + (k + 0.6) * rep, d), (0.2 * fps + (k + 1) * rep, d)]
        look.append((0.2 * fps + (k + 0.8) * rep, 0.25 * d * (-1) ** (k // 2)))
    end = 0.2 * fps + p["reps"] * rep
    keys.append((end + 0.5 * rep, 0.0))
    look.append((end + 0.5 * rep, 0.0))
    frames = int(end + 0.5 * rep + 0.3 * fps)
    w = keyed(frames, keys)  # > 0: over the left foot
    seg = standing(frames)
    root = seg.root_xz.copy()
    root[:, 0] = 0.06 * w
    tilt = seg.tilt.copy()
    tilt[:, 0] = 0.07 * w  # the unloaded hip drops
    euler = seg.euler.copy()
    for j in SPINE:
        euler[:, j, 0] -= 0.03 * w
    euler[:, HEAD, 1] += keyed(frames, look)
    return seg.replace(root_xz=root, tilt=tilt, euler=euler, height=seg.height - 0.02 * np.abs(w))
