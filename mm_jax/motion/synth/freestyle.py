"""Freestyle dancing on the spot: free arm, torso and foot movement (stage: synthetic data).

Where the other primitives repeat one stereotyped pose, this one keys a new
random pose every beat or two: the arms anywhere from hanging to overhead,
bent or straight, each on its own or mirrored; the spine twisting, bending
and swaying; small steps around the spot with knee lifts of 8-30 cm, a bounce
in the knees and now and then a dip down low (up to 25 cm). The draw comes
from the ``moves`` parameter (a seed), so the primitive stays a pure function
of its parameters; the captions say "dances freely" and the tempo.
"""

from __future__ import annotations

import numpy as np

from mm_jax.motion.synth import locomotion as loco
from mm_jax.motion.synth.plan import HEAD, NEUTRAL_ARM, SPINE, STAND_HEIGHT, get_arm, keyed, set_arm

_BEAT = {"slow": 1.5, "fast": 2.2}  # beats per second
_ARM_LO = np.array([[-0.1, -0.1, -0.1], [-1.45, -1.5, -0.6], [0.0, -2.1, 0.0], [-0.3, -0.3, -0.3]])
_ARM_HI = np.array([[0.2, 0.1, 0.1], [1.3, 0.5, 0.6], [0.0, -0.05, 0.0], [0.3, 0.3, 0.3]])


def sample_freestyle(rng):
    return {"beats": int(rng.integers(6, 13)), "tempo": str(rng.choice(list(_BEAT))),
            "moves": int(rng.integers(0, 10_000))}


def _steps(rng, beats: int, beat: float, t0: float) -> tuple[list, list, list]:
    """Step schedule [(foot, lift, land)], each swing's lift (m), and root keys [(frame, (x, z))]."""
    schedule, lifts, keys, pos = [], ([], []), [(t0, np.zeros(2))], np.zeros(2)
    for k in range(beats):
        if rng.random() < 0.2:  # a beat without a step
            continue
        foot = k % 2
        b0 = t0 + k * beat
        schedule.append((foot, b0 + 0.1 * beat, b0 + 0.75 * beat))
        lifts[foot].append(float(rng.uniform(0.08, 0.3)))
        pos = np.clip(pos + rng.uniform(-0.12, 0.12, size=2), -0.2, 0.2)
        keys.append((b0 + beat, pos.copy()))
    keys.append((t0 + (beats + 0.5) * beat, np.zeros(2)))
    return schedule, lifts, keys


def build_freestyle(p, fps):
    rng = np.random.default_rng(p["moves"])
    beat = fps / _BEAT[p["tempo"]]
    t0 = 0.25 * fps
    frames = int(np.ceil(t0 + (p["beats"] + 1.0) * beat)) + 1
    schedule, lifts, keys = _steps(rng, p["beats"], beat, t0)
    root = keyed(frames, keys)
    yaw = keyed(frames, [(t0, 0.0), (t0 + 0.5 * p["beats"] * beat, rng.uniform(-0.5, 0.5)),
                         (t0 + p["beats"] * beat, 0.0)])
    active = loco._ramp_profile(frames, t0 - 0.2 * beat, t0 + p["beats"] * beat, acc=0.5 * beat)
    gait = loco.Gait(cadence=2.0, duty=0.6, swing_height=0.1, heel_rise=0.3, height=0.92, lean=0.05,
                     arm_gain=0.0, elbow=-0.6, twist=0.0)
    seg = loco.stepping(root, yaw, schedule, gait, active, lifts=(lifts[0] + [0.1], lifts[1] + [0.1]))
    t = np.arange(frames, dtype=np.float64)
    phase = np.pi * np.clip(t - t0, 0.0, None) / beat
    dips = [(tk, rng.uniform(0.0, 0.25) * (rng.random() < 0.4)) for tk in t0 + beat * np.arange(2, p["beats"] - 1, 2)]
    low = keyed(frames, [(0.0, 0.0)] + dips + [(t0 + p["beats"] * beat, 0.0)])
    bounce = (rng.uniform(0.03, 0.1) * np.abs(np.sin(phase)) + low) * active
    euler = seg.euler.copy()
    n_keys = p["beats"] // 2 + 2
    times = t0 + np.linspace(0.0, p["beats"] * beat, n_keys)
    pose_keys = {s: [(0.0, get_arm(euler, s)[0])] for s in ("left", "right")}
    for tk in times[1:-1]:
        left = rng.uniform(_ARM_LO, _ARM_HI)
        right = left if rng.random() < 0.4 else rng.uniform(_ARM_LO, _ARM_HI)
        pose_keys["left"].append((tk, left))
        pose_keys["right"].append((tk, right))
    for s in ("left", "right"):
        pose_keys[s].append((times[-1], NEUTRAL_ARM))
        set_arm(euler, s, keyed(frames, pose_keys[s]))
    bends = [(tk, rng.uniform([-0.1, -0.15, -0.05], [0.1, 0.15, 0.18])) for tk in times[1:-1]]
    spine = keyed(frames, [(0.0, np.zeros(3))] + bends + [(times[-1], np.zeros(3))])  # (side, twist, pitch)
    euler[:, list(SPINE)] += spine[:, None, :]
    euler[:, HEAD, 2] += 0.1 * np.sin(2 * phase) * active
    tilt = seg.tilt.copy()
    tilt[:, 0] += rng.uniform(0.03, 0.08) * np.sin(phase) * active
    return seg.replace(euler=euler, tilt=tilt, height=np.minimum(seg.height, STAND_HEIGHT) - bounce)
