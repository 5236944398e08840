"""In-place whole-body primitives: squat, sit, crouch, bow, kick, lunge, balance, stretch, throw, punch
(stage: synthetic data).

Each is keyframed on a standing body: the pelvis moves (height, ground
offset, tilt), the planted feet stay put and the legs follow by IK, and the
spine and arms are posed with ZYX Euler keys (left-arm convention, mirrored).
"""

from __future__ import annotations

import numpy as np

from mm_jax.motion.synth import pose
from mm_jax.motion.synth.feet import feet_tracks, planted
from mm_jax.motion.synth.gestures import GUARD, OVERHEAD, PUNCH
from mm_jax.motion.synth.plan import (
    HEAD,
    NECK,
    NEUTRAL_ARM,
    SPINE,
    STAND_HEIGHT,
    Segment,
    get_arm,
    keyed,
    set_arm,
    standing,
)

_ARMS_FORWARD = np.array([[0, 0, 0], [-0.25, -1.3, 0], [0, -0.2, 0], [0, 0, 0]])
_ARMS_THIGHS = np.array([[0, 0, 0], [-1.3, -0.7, 0], [0, -0.9, 0], [0, 0, 0]])
_ARMS_LOW = np.array([[0, 0, 0], [-1.2, -0.9, 0], [0, -0.5, 0], [0, 0, 0]])


def _f(x: float) -> float:
    return round(float(x), 2)


def _side(rng) -> str:
    return str(rng.choice(["left", "right"]))


def keyed_body(frames: int, keys: list, fps: float, arm_keys: list | None = None) -> Segment:
    """A standing segment with keyed pelvis (z shift, height, pitch), spine pitch and arms.

    keys: [(time s, (dz, height, pelvis pitch, spine pitch per joint))].
    """
    seg = standing(frames)
    k = keyed(frames, [(t * fps, np.asarray(v, np.float64)) for t, v in keys])
    root = seg.root_xz.copy()
    root[:, 1] = k[:, 0]
    tilt = seg.tilt.copy()
    tilt[:, 2] = k[:, 2]
    euler = seg.euler.copy()
    for j in SPINE:
        euler[:, j, 2] = k[:, 3]
    if arm_keys is not None:
        arm = keyed(frames, [(t * fps, a) for t, a in arm_keys])
        for side in ("left", "right"):
            set_arm(euler, side, arm)
    return seg.replace(root_xz=root, height=k[:, 1], tilt=tilt, euler=euler)


def sample_squat(rng):
    return {"reps": int(rng.integers(1, 5)), "depth": str(rng.choice(["half", "deep"]))}


def build_squat(p, fps):
    low, back, pitch = (0.72, -0.1, 0.3) if p["depth"] == "half" else (0.56, -0.17, 0.45)
    rep = 1.4 if p["depth"] == "half" else 1.7
    keys, arms = [(0.2, (0, STAND_HEIGHT, 0, 0))], [(0.2, NEUTRAL_ARM)]
    for r in range(p["reps"]):
        t = 0.2 + r * rep
        keys += [(t + 0.5 * rep, (back, low, pitch, 0.1)), (t + rep, (0, STAND_HEIGHT, 0, 0))]
        arms += [(t + 0.5 * rep, _ARMS_FORWARD), (t + rep, NEUTRAL_ARM)]
    return keyed_body(int((0.5 + p["reps"] * rep) * fps), keys, fps, arms)


def sample_sit(rng):
    return {"hold": _f(rng.uniform(0.8, 2.5))}


def build_sit(p, fps):
    """Sits down on an (invisible) chair, stays ``hold`` seconds, stands back up."""
    h = p["hold"]
    keys = [
        (0.2, (0, STAND_HEIGHT, 0, 0)),
        (0.8, (-0.15, 0.78, 0.5, 0.12)),
        (1.4, (-0.3, 0.52, 0.1, 0.0)),
        (1.4 + h, (-0.3, 0.52, 0.1, 0.0)),
        (2.0 + h, (-0.12, 0.75, 0.5, 0.12)),
        (2.7 + h, (0, STAND_HEIGHT, 0, 0)),
    ]
    arms = [(0.4, NEUTRAL_ARM), (1.4, _ARMS_THIGHS), (1.4 + h, _ARMS_THIGHS), (2.6 + h, NEUTRAL_ARM)]
    return keyed_body(int((3.0 + h) * fps), keys, fps, arms)


def sample_crouch(rng):
    return {"hold": _f(rng.uniform(0.8, 2.0))}


def build_crouch(p, fps):
    h = p["hold"]
    keys = [
        (0.2, (0, STAND_HEIGHT, 0, 0)),
        (1.0, (-0.15, 0.5, 0.6, 0.15)),
        (1.0 + h, (-0.15, 0.5, 0.6, 0.15)),
        (1.9 + h, (0, STAND_HEIGHT, 0, 0)),
    ]
    arms = [(0.2, NEUTRAL_ARM), (1.0, _ARMS_LOW), (1.0 + h, _ARMS_LOW), (1.9 + h, NEUTRAL_ARM)]
    seg = keyed_body(int((2.2 + h) * fps), keys, fps, arms)
    euler = seg.euler.copy()
    euler[:, NECK, 2] -= 0.6 * keyed(
        seg.frames, [(0.2 * fps, 0.0), (1.0 * fps, 1.0), ((1.0 + h) * fps, 1.0), ((1.9 + h) * fps, 0.0)]
    )
    return seg.replace(euler=euler)


def sample_bow(rng):
    return {"depth": str(rng.choice(["slight", "deep"])), "hold": _f(rng.uniform(0.4, 1.2))}


def build_bow(p, fps):
    bend = 0.4 if p["depth"] == "slight" else 1.1
    h = p["hold"]
    down = (-0.04 * bend, STAND_HEIGHT, 0.4 * bend, 0.2 * bend)
    keys = [(0.2, (0, STAND_HEIGHT, 0, 0)), (0.9, down), (0.9 + h, down), (1.7 + h, (0, STAND_HEIGHT, 0, 0))]
    hang = NEUTRAL_ARM + np.array([[0, 0, 0], [0, -bend, 0], [0, 0, 0], [0, 0, 0]])
    arms = [(0.2, NEUTRAL_ARM), (0.9, hang), (0.9 + h, hang), (1.7 + h, NEUTRAL_ARM)]
    return keyed_body(int((2.0 + h) * fps), keys, fps, arms)


def _lift_foot(
    seg: Segment, s: int, up: float, down: float, rel_keys: list, fps: float, pitch: float
) -> Segment:
    """Lifts foot ``s`` between frames up..down, holding it at keyed hip-relative offsets."""
    contact = seg.contact.copy()
    t = np.arange(seg.frames)
    contact[:, s] = (t <= up) | (t >= down)
    seg = seg.replace(contact=contact)
    weight = keyed(seg.frames, [(up, 0.0), (up + 0.2 * fps, 1.0), (down - 0.2 * fps, 1.0), (down, 0.0)])
    rel = keyed(seg.frames, rel_keys)
    return pose.attach_foot(seg, s, rel, weight, fps, pitch=pitch)


def sample_kick(rng):
    return {
        "side": _side(rng),
        "height": str(rng.choice(["low", "high"])),
        "reps": int(rng.choice([1, 1, 2, 3])),
    }


def build_kick(p, fps):
    s = 0 if p["side"] == "left" else 1
    lat = 0.03 if s == 0 else -0.03
    chamber = np.array([lat, -0.45, 0.12])
    extend = np.array([lat, -0.15, 0.74]) if p["height"] == "high" else np.array([lat, -0.5, 0.58])
    rest = np.array([lat, -0.8, -0.03])
    t, keys, lean = 0.3 * fps, [(0.3 * fps, rest)], [(0.0, 0.0)]
    for _ in range(p["reps"]):
        keys += [
            (t + 0.25 * fps, chamber),
            (t + 0.42 * fps, extend),
            (t + 0.55 * fps, extend),
            (t + 0.75 * fps, chamber),
        ]
        lean += [(t + 0.3 * fps, 0.0), (t + 0.45 * fps, 1.0), (t + 0.7 * fps, 0.0)]
        t += 0.6 * fps
    down = t + 0.5 * fps
    keys.append((down, rest))
    frames = int(down + 0.4 * fps)
    seg = standing(frames)
    seg = _lift_foot(seg, s, 0.3 * fps, down, keys, fps, pitch=0.6)
    tilt = seg.tilt.copy()
    w = keyed(frames, lean)
    tilt[:, 2] -= (0.25 if p["height"] == "high" else 0.12) * w
    guard = keyed(
        frames,
        [
            (0.1 * fps, NEUTRAL_ARM),
            (0.4 * fps, (NEUTRAL_ARM + GUARD) / 2),
            (down, (NEUTRAL_ARM + GUARD) / 2),
            (frames - 1, NEUTRAL_ARM),
        ],
    )
    euler = seg.euler.copy()
    for side in ("left", "right"):
        set_arm(euler, side, guard)
    return seg.replace(tilt=tilt, euler=euler)


def sample_lunge(rng):
    return {"side": _side(rng), "reps": int(rng.choice([1, 1, 2]))}


def build_lunge(p, fps):
    """Steps forward with the ``side`` leg into a deep lunge and steps back, ``reps`` times."""
    s = 0 if p["side"] == "left" else 1
    rep = 2.0
    frames = int((0.5 + rep * p["reps"]) * fps)
    stances = ([], [])
    stances[1 - s].append(planted(1 - s, (0.0, 0.0), 0.0, 0, frames - 1))
    start, keys = 0.0, [(0.2, (0, STAND_HEIGHT, 0, 0))]
    for r in range(p["reps"]):
        t0 = (0.2 + r * rep) * fps
        stances[s].append(planted(s, (0.0, 0.0), 0.0, start, t0, heel_rise=0.2, heel_time=0.15 * fps))
        stances[s].append(planted(s, (0.0, 0.0), 0.0, t0 + 0.35 * fps, t0 + 1.35 * fps, forward=0.75))
        start = t0 + 1.7 * fps
        keys += [
            (0.2 + r * rep + 0.35, (0.2, 0.86, 0, 0)),
            (0.2 + r * rep + 0.85, (0.36, 0.6, -0.05, 0)),
            (0.2 + r * rep + 1.2, (0.25, 0.8, 0, 0)),
            (0.2 + r * rep + 1.8, (0, STAND_HEIGHT, 0, 0)),
        ]
    stances[s].append(planted(s, (0.0, 0.0), 0.0, start, frames - 1))
    ankle, fyaw, fpitch, contact = feet_tracks(stances, frames, 0.1)
    seg = keyed_body(frames, keys, fps)
    return seg.replace(ankle=ankle, foot_yaw=fyaw, foot_pitch=fpitch, contact=contact)


def sample_balance(rng):
    return {"side": _side(rng), "hold": _f(rng.uniform(1.2, 3.0))}


def build_balance(p, fps):
    """Stands on the ``side`` leg with the other knee raised, arms out, for ``hold`` seconds."""
    s = 0 if p["side"] == "left" else 1
    free = 1 - s
    lat = 0.03 if free == 0 else -0.03
    up, down = 0.3 * fps, (0.9 + p["hold"]) * fps
    frames = int(down + 0.5 * fps)
    seg = standing(frames)
    knee_up = np.array([lat, -0.5, 0.22])
    seg = _lift_foot(
        seg, free, up, down, [(up, np.array([lat, -0.8, -0.03])), (up + 0.4 * fps, knee_up)], fps, pitch=0.4
    )
    out = NEUTRAL_ARM + np.array([[0, 0, 0], [1.0, -0.1, 0], [0, 0.0, 0], [0, 0, 0]])
    arm = keyed(
        frames,
        [(0.2 * fps, NEUTRAL_ARM), (up + 0.4 * fps, out), (down - 0.2 * fps, out), (frames - 1, NEUTRAL_ARM)],
    )
    euler = seg.euler.copy()
    for side in ("left", "right"):
        set_arm(euler, side, arm)
    return seg.replace(euler=euler)


def sample_stretch(rng):
    return {"direction": str(rng.choice(["up", "left", "right"])), "hold": _f(rng.uniform(0.6, 1.8))}


def build_stretch(p, fps):
    """Both arms overhead, with a side bend towards ``direction`` (left/right) or straight up."""
    h = p["hold"]
    frames = int((2.0 + h) * fps)
    seg = standing(frames)
    w = keyed(frames, [(0.2 * fps, 0.0), (0.9 * fps, 1.0), ((0.9 + h) * fps, 1.0), ((1.8 + h) * fps, 0.0)])
    bend = {"up": 0.0, "left": -0.22, "right": 0.22}[p["direction"]]  # ZYX z > 0 bends towards -x (right)
    euler = seg.euler.copy()
    for j in SPINE:
        euler[:, j, 0] = bend * w
    arm = NEUTRAL_ARM + (OVERHEAD - NEUTRAL_ARM) * w[:, None, None]
    for side in ("left", "right"):
        set_arm(euler, side, arm)
    return seg.replace(euler=euler)


def sample_throw(rng):
    return {"side": _side(rng), "power": str(rng.choice(["soft", "hard"]))}


_WIND = np.array([[0, 0, 0], [0.7, 0.8, -1.0], [0, -1.6, 0], [0, 0, 0]])
_RELEASE = np.array([[0, 0, 0], [0.1, -1.2, 0], [0, -0.2, 0], [0, 0, 0]])
_FOLLOW = np.array([[0, 0, 0], [-0.9, -0.9, 0], [0, -0.4, 0], [0, 0, 0]])


def build_throw(p, fps):
    """An overhand throw with the ``side`` hand: wind up, release, follow through."""
    fast = p["power"] == "hard"
    tw, tr, tf = 0.7, 0.7 + (0.15 if fast else 0.25), 1.3 if fast else 1.45
    frames = int((tf + 0.9) * fps)
    sign = 1.0 if p["side"] == "left" else -1.0  # winding the left arm turns the chest left
    seg = standing(frames)
    arm = keyed(
        frames,
        [
            (0.1 * fps, NEUTRAL_ARM),
            (tw * fps, _WIND),
            (tr * fps, _RELEASE),
            (tf * fps, _FOLLOW),
            ((tf + 0.7) * fps, NEUTRAL_ARM),
        ],
    )
    other = keyed(frames, [(0.1 * fps, NEUTRAL_ARM), (tw * fps, _ARMS_FORWARD), (tf * fps, NEUTRAL_ARM)])
    twist = keyed(
        frames, [(0.1 * fps, 0.0), (tw * fps, 0.25 * sign), (tf * fps, -0.25 * sign), ((tf + 0.7) * fps, 0.0)]
    )
    euler = seg.euler.copy()
    set_arm(euler, p["side"], arm)
    set_arm(euler, "right" if p["side"] == "left" else "left", other)
    for j in SPINE:
        euler[:, j, 1] = twist
    euler[:, HEAD, 1] = -1.5 * twist
    return seg.replace(euler=euler)


def sample_punch(rng):
    return {"side": str(rng.choice(["left", "right", "both"])), "reps": int(rng.integers(1, 5))}


def build_punch(p, fps):
    """Raises a guard and punches ``reps`` times (``both`` alternates, left first)."""
    rep = 0.4
    frames = int((1.0 + rep * p["reps"]) * fps)
    t0 = 0.45 * fps
    arms = {s: [(0.05 * fps, NEUTRAL_ARM), (t0, GUARD)] for s in ("left", "right")}
    twist = [(t0, 0.0)]
    for r in range(p["reps"]):
        s = p["side"] if p["side"] != "both" else ("left", "right")[r % 2]
        a = t0 + r * rep * fps
        arms[s] += [(a + 0.13 * fps, PUNCH), (a + 0.36 * fps, GUARD)]
        sign = -1.0 if s == "left" else 1.0  # punching with the left hand turns the chest right
        twist += [(a + 0.13 * fps, 0.12 * sign), (a + 0.36 * fps, 0.0)]
    end = t0 + p["reps"] * rep * fps
    seg = standing(frames)
    euler = seg.euler.copy()
    for s in ("left", "right"):
        keys = sorted(arms[s], key=lambda k: k[0]) + [(end + 0.1 * fps, GUARD), (frames - 1, NEUTRAL_ARM)]
        set_arm(euler, s, keyed(frames, keys))
    tw = keyed(frames, twist)
    for j in SPINE:
        euler[:, j, 1] = tw
    return seg.replace(euler=euler)


def arms_of(seg: Segment, side: str) -> np.ndarray:
    """Left-convention arm angles of a segment (for tests)."""
    return get_arm(seg.euler, side)
