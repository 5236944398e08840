"""Stepping primitives: walk, jog, run, backwards, sidestep, turn, spin, crouch walk, tiptoe,
march, stumble, ladder climb, dance (stage: synthetic data).

Each primitive is a pair ``sample_<name>(rng) -> params`` (a JSON-ready dict;
every parameter changes the motion visibly and is what the captions describe)
and ``build_<name>(params, fps) -> Segment``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mm_jax.motion.synth import locomotion as loco
from mm_jax.motion.synth.plan import HEAD, NECK, SPINE, Segment, bump, envelope, get_arm, keyed, set_arm

WALK_SPEEDS = {"slow": (0.8, 1.05), "normal": (1.2, 1.5), "fast": (1.65, 1.95)}
RUN_SPEEDS = {"normal": (2.8, 3.4), "fast": (3.8, 4.5)}
WALK = loco.Gait(cadence=2.0, duty=0.6, swing_height=0.14, height=0.93)
JOG = loco.Gait(
    cadence=2.6, duty=0.45, swing_height=0.2, height=0.91, lean=0.12, elbow=-1.3, arm_gain=0.7, heel_rise=0.6
)
RUN = loco.Gait(
    cadence=2.9, duty=0.36, swing_height=0.3, height=0.90, lean=0.22, elbow=-1.45, arm_gain=0.6, heel_rise=0.7
)


def _f(x: float) -> float:
    return round(float(x), 2)


def _side(rng: np.random.Generator) -> str:
    return str(rng.choice(["left", "right"]))


def _curve(rng: np.random.Generator, p_curve: float = 0.3) -> dict:
    if rng.random() >= p_curve:
        return {"curve": "none", "turn_deg": 0}
    return {"curve": _side(rng), "turn_deg": int(rng.choice([45, 60, 90, 120]))}


def _turn_rad(p: dict) -> float:
    sign = {"none": 0.0, "left": 1.0, "right": -1.0}[p["curve"]]
    return sign * np.radians(p["turn_deg"])


def sample_walk(rng):
    pace = str(rng.choice(list(WALK_SPEEDS), p=[0.25, 0.5, 0.25]))
    return {
        "pace": pace,
        "speed": _f(rng.uniform(*WALK_SPEEDS[pace])),
        "steps": int(rng.integers(3, 11)),
        **_curve(rng),
    }


def build_walk(p, fps):
    gait = dataclasses.replace(WALK, cadence=1.3 + 0.5 * p["speed"])
    return loco.locomote(
        gait=gait, steps=p["steps"], speed=p["speed"], turn=_turn_rad(p), fps=fps, first=p["steps"] % 2
    )


def sample_jog(rng):
    return {"speed": _f(rng.uniform(1.9, 2.5)), "steps": int(rng.integers(4, 12)), **_curve(rng)}


def build_jog(p, fps):
    return loco.locomote(gait=JOG, steps=p["steps"], speed=p["speed"], turn=_turn_rad(p), fps=fps)


def sample_run(rng):
    pace = str(rng.choice(list(RUN_SPEEDS), p=[0.65, 0.35]))
    return {
        "pace": pace,
        "speed": _f(rng.uniform(*RUN_SPEEDS[pace])),
        "steps": int(rng.integers(4, 13)),
        **_curve(rng, 0.25),
    }


def build_run(p, fps):
    gait = dataclasses.replace(RUN, cadence=2.6 + 0.12 * p["speed"], duty=0.36 - 0.02 * (p["speed"] - 3.0))
    return loco.locomote(gait=gait, steps=p["steps"], speed=p["speed"], turn=_turn_rad(p), fps=fps)


def sample_walk_backward(rng):
    pace = str(rng.choice(["slow", "normal"]))
    lo, hi = (0.45, 0.65) if pace == "slow" else (0.75, 1.0)
    return {"pace": pace, "speed": _f(rng.uniform(lo, hi)), "steps": int(rng.integers(3, 9))}


def build_walk_backward(p, fps):
    gait = loco.Gait(
        cadence=1.5 + 0.4 * p["speed"],
        duty=0.62,
        swing_height=0.1,
        heel_rise=0.0,
        height=0.93,
        lean=-0.02,
        arm_gain=0.4,
    )
    return loco.locomote(gait=gait, steps=p["steps"], speed=p["speed"], direction=(0.0, -1.0), fps=fps)


def sample_sidestep(rng):
    return {"side": _side(rng), "steps": int(rng.integers(2, 7)), "speed": _f(rng.uniform(0.45, 0.75))}


def build_sidestep(p, fps):
    gait = loco.Gait(
        cadence=1.7, duty=0.65, swing_height=0.1, heel_rise=0.15, height=0.93, lean=0.0, arm_gain=0.0
    )
    sign = 1.0 if p["side"] == "left" else -1.0
    return loco.locomote(
        gait=gait,
        steps=p["steps"],
        speed=p["speed"],
        direction=(sign, 0.0),
        fps=fps,
        first=0 if sign > 0 else 1,
    )


def sample_turn(rng):
    return {"side": _side(rng), "angle_deg": int(rng.choice([45, 90, 90, 135, 180]))}


def build_turn(p, fps):
    gait = loco.Gait(
        cadence=1.8, duty=0.65, swing_height=0.08, heel_rise=0.15, height=0.94, lean=0.0, arm_gain=0.0
    )
    sign = 1.0 if p["side"] == "left" else -1.0
    steps = 2 + int(round(p["angle_deg"] / 60))
    return loco.locomote(
        gait=gait,
        steps=steps,
        speed=0.0,
        turn=sign * np.radians(p["angle_deg"]),
        fps=fps,
        first=0 if sign > 0 else 1,
    )


def sample_spin(rng):
    return {"side": _side(rng), "turns": int(rng.choice([1, 1, 1, 2]))}


def build_spin(p, fps):
    gait = loco.Gait(
        cadence=3.6,
        duty=0.55,
        swing_height=0.05,
        heel_rise=0.3,
        height=0.94,
        lean=0.0,
        arm_gain=0.0,
        elbow=-0.6,
    )
    sign = 1.0 if p["side"] == "left" else -1.0
    seg = loco.locomote(
        gait=gait,
        steps=4 * p["turns"] + 1,
        speed=0.0,
        turn=sign * 2 * np.pi * p["turns"],
        fps=fps,
        first=0 if sign > 0 else 1,
    )
    w = bump(seg.frames, 0.15 * fps, seg.frames - 0.9 * fps, 0.3 * fps)
    out = seg.euler.copy()
    for side in ("left", "right"):
        arm = get_arm(out, side)
        arm[:, 1, 0] += 0.7 * w  # arms out for balance
        set_arm(out, side, arm)
    return seg.replace(euler=out)


def sample_crouch_walk(rng):
    return {"steps": int(rng.integers(4, 9)), "speed": _f(rng.uniform(0.45, 0.75))}


def build_crouch_walk(p, fps):
    gait = loco.Gait(
        cadence=1.6,
        duty=0.62,
        swing_height=0.1,
        heel_rise=0.2,
        height=0.70,
        lean=0.9,
        arm_gain=0.3,
        elbow=-1.0,
    )
    return loco.locomote(gait=gait, steps=p["steps"], speed=p["speed"], fps=fps)


def sample_tiptoe(rng):
    return {"steps": int(rng.integers(4, 11)), "speed": _f(rng.uniform(0.45, 0.75))}


def build_tiptoe(p, fps):
    gait = loco.Gait(
        cadence=2.1,
        duty=0.6,
        swing_height=0.08,
        heel_rise=0.1,
        pitch=0.75,
        height=0.99,
        lean=0.05,
        arm_gain=0.2,
        elbow=-0.9,
    )
    seg = loco.locomote(gait=gait, steps=p["steps"], speed=p["speed"], fps=fps)
    return _arms_out(seg, 0.35, fps)


def _arms_out(seg: Segment, amount: float, fps: float) -> Segment:
    w = bump(seg.frames, 0.1 * fps, seg.frames - 0.8 * fps, 0.3 * fps)
    out = seg.euler.copy()
    for side in ("left", "right"):
        arm = get_arm(out, side)
        arm[:, 1, 0] += amount * w
        set_arm(out, side, arm)
    return seg.replace(euler=out)


_CLIMB_LOW = np.array([[0, 0, 0], [-0.6, -1.1, 0], [0, -1.4, 0], [0, 0, 0]], np.float64)
_CLIMB_HIGH = np.array([[0.1, 0, 0], [1.2, -0.6, 0], [0, -0.2, 0], [0, 0, 0]], np.float64)


def _lift_driven_arms(seg: Segment, gain: float, elbow: float, reach_up: bool, fps: float) -> Segment:
    """Arms driven by the feet's height difference: marching swing, or ladder-climbing reaches."""
    dy = seg.ankle[:, 0, 1] - seg.ankle[:, 1, 1]  # > 0: left foot up
    env = envelope(seg.frames, 0.4 * fps)[:, None, None]
    out = seg.euler.copy()
    for side, sign in (("left", 1.0), ("right", -1.0)):
        arm = get_arm(out, side)
        up = np.clip(-sign * dy * gain, -1.0, 1.0)  # the arm opposite the lifted foot goes forward/up
        if reach_up:
            w = (0.5 + 0.5 * up)[:, None, None]
            target = _CLIMB_LOW + (_CLIMB_HIGH - _CLIMB_LOW) * w
            arm = arm + (target - arm) * env
        else:
            arm[:, 1, 1] -= up
            arm[:, 2, 1] += elbow * env[:, 0, 0]
        set_arm(out, side, arm)
    return seg.replace(euler=out)


def sample_march(rng):
    return {"steps": int(rng.integers(4, 11)), "knee": str(rng.choice(["normal", "high"]))}


def build_march(p, fps):
    lift = 0.3 if p["knee"] == "high" else 0.18
    gait = loco.Gait(
        cadence=1.9, duty=0.55, swing_height=lift, heel_rise=0.1, height=0.94, lean=0.0, arm_gain=0.0
    )
    seg = loco.locomote(gait=gait, steps=p["steps"], speed=0.0, fps=fps)
    return _lift_driven_arms(seg, 3.0, -1.2, reach_up=False, fps=fps)


def sample_climb(rng):
    return {"steps": int(rng.integers(4, 9))}


def build_climb(p, fps):
    gait = loco.Gait(
        cadence=1.2, duty=0.55, swing_height=0.4, heel_rise=0.1, height=0.94, lean=0.0, arm_gain=0.0
    )
    seg = loco.locomote(gait=gait, steps=p["steps"], speed=0.0, fps=fps)
    return _lift_driven_arms(seg, 3.0, -0.8, reach_up=True, fps=fps)


def sample_stumble(rng):
    return {"steps": int(rng.integers(6, 10)), "speed": _f(rng.uniform(1.1, 1.4))}


def build_stumble(p, fps):
    """A walk with a trip: two hurried steps, the torso pitches forward, the arms fly out, then recovery."""
    period = fps / 2.0
    swing = 0.8 * period
    t0 = 0.25 * fps
    k_trip = p["steps"] // 2
    durations = [period * (0.6 if k in (k_trip, k_trip + 1) else 1.0) for k in range(p["steps"])]
    lifts = t0 + np.concatenate([[0.0], np.cumsum(durations[:-1])])
    schedule = [
        (k % 2, float(lifts[k]), float(lifts[k] + swing * durations[k] / period)) for k in range(p["steps"])
    ]
    last = schedule[-1][2]
    frames = int(np.ceil(last + 0.3 * fps)) + 1
    t_trip = lifts[k_trip]
    surge = 1.0 + 0.6 * bump(frames, t_trip - 0.1 * fps, 0.2 * fps, 0.2 * fps)
    move = loco._ramp_profile(frames, t0, last, acc=1.2 * period) * surge
    root = np.zeros((frames, 2))
    root[1:, 1] = np.cumsum(p["speed"] * move[:-1]) / fps
    yaw = np.zeros(frames)
    active = loco._ramp_profile(frames, t0 - 0.3 * period, last, acc=0.8 * period)
    seg = loco.stepping(root, yaw, schedule, WALK, active)
    jolt = bump(frames, t_trip - 0.05 * fps, 0.15 * fps, 0.2 * fps)
    euler = seg.euler.copy()
    for j in SPINE:
        euler[:, j, 2] += 0.25 * jolt
    euler[:, HEAD, 2] -= 0.3 * jolt
    for side in ("left", "right"):
        arm = get_arm(euler, side)
        arm[:, 1, 0] += 0.9 * jolt
        arm[:, 1, 1] -= 0.8 * jolt
        set_arm(euler, side, arm)
    tilt = seg.tilt.copy()
    tilt[:, 2] += 0.2 * jolt
    return seg.replace(euler=euler, tilt=tilt, height=seg.height - 0.06 * jolt)


def sample_dance(rng):
    tempo = str(rng.choice(["slow", "fast"]))
    return {"beats": int(rng.integers(4, 9)), "tempo": tempo}


def build_dance(p, fps):
    """Step-touch side to side with swinging arms, swaying hips and a bobbing head."""
    beat = fps / (1.6 if p["tempo"] == "slow" else 2.3)
    t0 = 0.25 * fps
    frames = int(np.ceil(t0 + (p["beats"] + 0.6) * beat)) + 1
    t = np.arange(frames, dtype=np.float64)
    keys, schedule, x = [(t0, 0.0)], [], 0.0
    for k in range(p["beats"]):
        d = 1.0 if k % 2 == 0 else -1.0
        b0 = t0 + k * beat
        x += d * 0.3
        keys.append((b0 + beat, x))
        lead, trail = (0, 1) if d > 0 else (1, 0)
        schedule += [(lead, b0 + 0.05 * beat, b0 + 0.45 * beat), (trail, b0 + 0.5 * beat, b0 + 0.9 * beat)]
    root = np.zeros((frames, 2))
    root[:, 0] = keyed(frames, keys)
    gait = loco.Gait(
        cadence=2.0,
        duty=0.6,
        swing_height=0.12,
        heel_rise=0.3,
        height=0.90,
        lean=0.0,
        arm_gain=0.0,
        elbow=-1.5,
    )
    active = loco._ramp_profile(frames, t0 - 0.2 * beat, t0 + p["beats"] * beat, acc=0.5 * beat)
    seg = loco.stepping(root, np.zeros(frames), schedule, gait, active)
    phase = np.pi * np.clip(t - t0, 0, None) / beat
    euler = seg.euler.copy()
    for side, sign in (("left", 1.0), ("right", -1.0)):
        arm = get_arm(euler, side)
        arm[:, 1, 0] += 0.5 * active
        arm[:, 1, 1] += sign * 0.5 * np.sin(phase) * active - 0.4 * active
        set_arm(euler, side, arm)
    euler[:, SPINE[1], 1] += 0.2 * np.sin(phase) * active
    euler[:, NECK, 2] += 0.1 * np.abs(np.sin(phase)) * active
    tilt = seg.tilt.copy()
    tilt[:, 0] += 0.08 * np.sin(phase) * active
    return seg.replace(euler=euler, tilt=tilt)


def build_stand(p, fps):
    """Standing still (used as filler)."""
    frames = int(round(p["seconds"] * fps))
    return loco.stepping(np.zeros((frames, 2)), np.zeros(frames), [], WALK, np.zeros(frames))


def sample_stand(rng):
    return {"seconds": _f(rng.uniform(0.8, 1.6))}
