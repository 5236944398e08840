"""Jumping primitives: jump in place, jump forward, hop on one leg, jumping jacks (stage: synthetic data).

A jump is planned as stances separated by a flight: the feet push off with a
heel rise after a crouch, leave the ground (no foot planted, so the poser
makes the pelvis follow a free-fall arc whose apex is ``g T^2 / 8`` for a
flight of ``T`` seconds), tuck, and land where the root has travelled, then
absorb the landing with a second crouch.
"""

from __future__ import annotations

import numpy as np

from mm_jax.motion.synth import pose
from mm_jax.motion.synth.feet import Stance, feet_tracks, planted
from mm_jax.motion.synth.plan import (
    NEUTRAL_ARM,
    STAND_HEIGHT,
    Segment,
    get_arm,
    keyed,
    neutral_euler,
    set_arm,
)

FLIGHTS = {"small": (0.28, 0.34), "high": (0.42, 0.5)}
_ARM_BACK = NEUTRAL_ARM + np.array([[0, 0, 0], [0.1, 0.6, 0], [0, -0.2, 0], [0, 0, 0]])
_ARM_UP = NEUTRAL_ARM + np.array([[0, 0, 0], [0.5, -1.3, 0], [0, -0.3, 0], [0, 0, 0]])
_ARM_JACK = np.array([[0.15, 0, 0], [1.35, -0.1, 0], [0, -0.15, 0], [0, 0, 0]])


def _f(x: float) -> float:
    return round(float(x), 2)


def _timeline(fps: float, flights: list[float], prep: float = 0.4, gap: float = 0.35):
    """Takeoff and landing frames of consecutive jumps, and the segment length."""
    t, events = 0.3 * fps, []
    for i, fl in enumerate(flights):
        take = t + (prep if i == 0 else gap) * fps
        land = take + fl * fps
        events.append((take, land))
        t = land
    return events, int(np.ceil(t + 0.7 * fps))


def _dips(frames: int, events, fps: float, crouch: float) -> np.ndarray:
    t = np.arange(frames, dtype=np.float64)
    dip = np.zeros(frames)
    for take, land in events:
        dip = np.maximum(dip, crouch * np.exp(-(((t - take + 0.2 * fps) / (0.08 * fps)) ** 2)))
        dip = np.maximum(dip, 0.8 * crouch * np.exp(-(((t - land - 0.15 * fps) / (0.08 * fps)) ** 2)))
    return STAND_HEIGHT - dip


def jumps(
    fps: float,
    flights: list[float],
    forward: list[float],
    widths: list[float],
    feet=(0, 1),
    crouch: float = 0.16,
    prep: float = 0.4,
    gap: float = 0.35,
) -> tuple[Segment, list]:
    """Plans consecutive jumps (forward distance and foot spread after each landing)."""
    events, frames = _timeline(fps, flights, prep, gap)
    t = np.arange(frames, dtype=np.float64)
    keys, z = [(0, 0.0)], 0.0
    for (take, land), dz in zip(events, forward):
        keys += [(take, z), (land, z + dz)]
        z += dz
    root = np.zeros((frames, 2))
    root[:, 1] = np.interp(t, [k[0] for k in keys], [k[1] for k in keys])
    stances: tuple[list[Stance], list[Stance]] = ([], [])
    heights = []
    for side in (0, 1):
        start, z0, w0 = 0.0, 0.0, 0.0
        for (take, land), dz, w in zip(events, forward, widths):
            if side in feet:
                stances[side].append(
                    planted(side, (0.0, z0), 0.0, start, take, width=w0, heel_rise=0.6, heel_time=0.15 * fps)
                )
                start, w0 = land, w
            z0 += dz
        stances[side].append(planted(side, (0.0, z0), 0.0, start, frames - 1, width=w0))
    for fl in flights:
        heights.append(0.8 * 9.81 * fl**2 / 8 + 0.05)
    ankle, fyaw, fpitch, contact = feet_tracks(
        stances, frames, (list(heights) if 0 in feet else 0.0, list(heights) if 1 in feet else 0.0),
        dorsiflex=-0.35,
    )
    seg = Segment(
        root_xz=root,
        yaw=np.zeros(frames),
        height=_dips(frames, events, fps, crouch),
        tilt=np.zeros((frames, 3)),
        ankle=ankle,
        foot_yaw=fyaw,
        foot_pitch=fpitch,
        contact=contact,
        euler=neutral_euler(frames),
    )
    return seg, events


def _swing_arms(seg: Segment, events, fps: float) -> Segment:
    keys = [(0, NEUTRAL_ARM)]
    for take, land in events:
        back = max(take - 0.3 * fps, keys[-1][0] + 0.15 * fps)
        keys += [(back, _ARM_BACK), (take + 0.05 * fps, _ARM_UP)]
    keys.append((events[-1][1] + 0.3 * fps, NEUTRAL_ARM))
    arm = keyed(seg.frames, keys)
    euler = seg.euler.copy()
    for side in ("left", "right"):
        set_arm(euler, side, arm)
    return seg.replace(euler=euler)


def sample_jump_in_place(rng):
    height = str(rng.choice(list(FLIGHTS)))
    return {
        "reps": int(rng.choice([1, 1, 2, 3])),
        "height": height,
        "flight": _f(rng.uniform(*FLIGHTS[height])),
    }


def build_jump_in_place(p, fps):
    seg, events = jumps(fps, [p["flight"]] * p["reps"], [0.0] * p["reps"], [0.0] * p["reps"])
    return _swing_arms(seg, events, fps)


def sample_jump_forward(rng):
    dist = str(rng.choice(["short", "long"]))
    lo, hi = (0.35, 0.6) if dist == "short" else (0.8, 1.2)
    return {"reps": int(rng.choice([1, 1, 2])), "distance": dist, "meters": _f(rng.uniform(lo, hi))}


def build_jump_forward(p, fps):
    flight = 0.32 + 0.12 * p["meters"]
    seg, events = jumps(fps, [flight] * p["reps"], [p["meters"]] * p["reps"], [0.0] * p["reps"], crouch=0.2)
    tilt = seg.tilt.copy()
    for take, land in events:
        tilt[:, 2] += 0.25 * keyed(
            seg.frames, [(take - 0.35 * fps, 0.0), (take - 0.1 * fps, 1.0), (land + 0.3 * fps, 0.0)]
        )
    return _swing_arms(seg.replace(tilt=tilt), events, fps)


def sample_hop(rng):
    return {"side": str(rng.choice(["left", "right"])), "reps": int(rng.integers(2, 6))}


def build_hop(p, fps):
    """Hops ``reps`` times on the ``side`` leg; the other foot is held up behind."""
    s = 0 if p["side"] == "left" else 1
    free = 1 - s
    seg, events = jumps(
        fps,
        [0.3] * p["reps"],
        [0.0] * p["reps"],
        [0.0] * p["reps"],
        feet=(s,),
        crouch=0.1,
        prep=0.6,
        gap=0.25,
    )
    up, down = 0.15 * fps, events[-1][1] + 0.35 * fps
    contact = seg.contact.copy()
    contact[:, free] = (np.arange(seg.frames) <= up) | (np.arange(seg.frames) >= down)
    seg = seg.replace(contact=contact)
    weight = keyed(seg.frames, [(up, 0.0), (up + 0.25 * fps, 1.0), (down - 0.25 * fps, 1.0), (down, 0.0)])
    seg = pose.attach_foot(seg, free, np.array([0.0, -0.5, -0.3]), weight, fps, pitch=0.5)
    euler = seg.euler.copy()
    for side in ("left", "right"):
        arm = get_arm(euler, side)
        arm[:, 1, 0] += 0.6 * weight
        set_arm(euler, side, arm)
    return seg.replace(euler=euler)


def sample_jumping_jacks(rng):
    return {"reps": int(rng.integers(2, 6))}


def build_jumping_jacks(p, fps):
    n = 2 * p["reps"]
    widths = [0.2 if i % 2 == 0 else 0.0 for i in range(n)]
    seg, events = jumps(fps, [0.3] * n, [0.0] * n, widths, crouch=0.07, prep=0.35, gap=0.2)
    keys = [(0, NEUTRAL_ARM)]
    for i, (take, land) in enumerate(events):
        keys.append((land, _ARM_JACK if i % 2 == 0 else NEUTRAL_ARM))
    arm = keyed(seg.frames, keys)
    euler = seg.euler.copy()
    for side in ("left", "right"):
        set_arm(euler, side, arm)
    return seg.replace(euler=euler)
