"""Sequences of 1-4 primitives with smooth transitions (stage: synthetic data).

:func:`sample_sequence` draws a sequence from one ``np.random.Generator``:
the number of steps, each step's primitive and parameters (no primitive twice
in a row; with probability ``in_place_share`` from the primitives that stay in
place, otherwise from those that travel, ``primitives.TRAVEL``), optionally a
gesture performed during a locomotion ("while"), and, at ``heldout_rate``, a
held-out combination placed at a random position. It keeps the total within
``[min_frames, max_frames]`` (re-drawing steps that do not fit and padding
with a short "stand still" step when too short). Last it draws the person's
style (:func:`with_style`) and body (:func:`mm_jax.motion.synth.body.sample_body`).

:func:`concat` joins segments: each starts where the previous one ended
(root position and heading accumulate); every primitive begins and ends
standing with the feet under the hips, and consecutive ones overlap where
both have the feet planted (up to ``overlap`` seconds) and are cross-faded
there (root, pelvis, feet and the upper body's joint angles blended with a
minimum-jerk weight), so the body starts the next action while settling from
the last one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mm_jax.motion.synth import gestures, heldout
from mm_jax.motion.synth.body import Body, sample_body
from mm_jax.motion.synth.plan import HEAD, NECK, SPINE, Segment, get_arm, set_arm, smoothstep
from mm_jax.motion.synth.primitives import (
    FILLER,
    GESTURE_NAMES,
    IN_PLACE,
    OVERLAY_BASES,
    PRIMITIVES,
    TRAVEL,
    WEIGHTS,
    build,
)

_FIELDS = ("root_xz", "yaw", "height", "tilt", "ankle", "foot_yaw", "foot_pitch", "euler")
_N_STEPS_P = np.array([0.25, 0.35, 0.25, 0.15])


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a sequence: a primitive, its params, and an optional simultaneous gesture."""

    name: str
    params: dict
    gesture: tuple[str, dict] | None = None


@dataclasses.dataclass(frozen=True)
class Sequence:
    """A sampled sequence: its steps, each step's [start, end) frames and facts, the joined plan
    (for the neutral body) and the body it is posed on."""

    steps: tuple[Step, ...]
    spans: tuple[tuple[int, int], ...]
    facts: tuple[dict, ...]
    segment: Segment
    heldout: bool
    body: Body = Body()


def _still(seg: Segment, tail: bool) -> int:
    """How many frames at the start (or end) have both feet planted, flat and unmoved."""
    idx = -1 if tail else 0
    ok = seg.contact.all(axis=1) & (np.abs(seg.foot_pitch).max(axis=1) < 1e-6)
    ok &= np.abs(seg.ankle - seg.ankle[idx]).max(axis=(1, 2)) < 1e-6
    ok = ok[::-1] if tail else ok
    return int(np.argmin(ok)) if not ok.all() else len(ok)


def _join(a: Segment, b: Segment, w: int) -> Segment:
    if w == 0:
        return Segment(**{f: np.concatenate([getattr(a, f), getattr(b, f)]) for f in _FIELDS + ("contact",)})
    r = smoothstep(np.arange(1, w + 1) / (w + 1))
    out = {}
    for f in _FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        rr = r.reshape((-1,) + (1,) * (x.ndim - 1))
        out[f] = np.concatenate([x[:-w], x[-w:] * (1 - rr) + y[:w] * rr, y[w:]])
    out["contact"] = np.concatenate([a.contact[:-w], a.contact[-w:] & b.contact[:w], b.contact[w:]])
    return Segment(**out)


def concat(
    segments: list[Segment], fps: float, overlap: float = 0.4
) -> tuple[Segment, list[tuple[int, int]]]:
    """Joins segments end to start; returns the sequence and each part's [start, end) frames."""
    out, spans = segments[0], [(0, segments[0].frames)]
    for seg in segments[1:]:
        moved = seg.moved(out.root_xz[-1], float(out.yaw[-1]))
        w = min(int(round(overlap * fps)), _still(out, tail=True), _still(moved, tail=False), seg.frames - 1)
        out = _join(out, moved, w)
        spans.append((out.frames - moved.frames, out.frames))
    return out, spans


def _drift(rng: np.random.Generator, t: np.ndarray, channels: int) -> np.ndarray:
    """[T, channels] smooth zero-mean wander in [-1, 1]: two slow sines (0.08-0.45 Hz) per channel."""
    freq = rng.uniform(0.08, 0.45, size=(2, channels))
    phase = rng.uniform(0, 2 * np.pi, size=(2, channels))
    w = rng.uniform(0.3, 1.0, size=(2, channels))
    x = (w[:, None] * np.sin(2 * np.pi * freq[:, None] * t[None, :, None] + phase[:, None])).sum(0)
    return x / w.sum(0)


def with_style(seg: Segment, rng: np.random.Generator, fps: float) -> Segment:
    """A person's posture quirks and idle movement, drawn once per sequence.

    Constant offsets (radians) on wrists, elbows (0-20 degrees of extra
    flexion), shoulders (how the arms are carried: a little forward or back,
    out from the sides), collars, neck and head; a spine set (slouch or
    upright, a slight side lean); a 0.2-0.35 Hz breathing sway; a slow wander
    of the spine (twist up to ~14 degrees, side bend, pitch), the head and the
    arms, scaled by a per-person liveliness; and slightly soft knees (the
    standing pelvis 0-1.5 cm lower). None of it changes what any caption says.
    """
    euler = seg.euler.copy()
    for side in ("left", "right"):
        arm = np.zeros((4, 3))
        arm[0, 0] = rng.uniform(-0.08, 0.08)  # collar raise
        arm[1, :2] = rng.uniform(-0.25, 0.25), rng.uniform(-0.3, 0.12)  # shoulder: out / forward
        arm[2, 1] = rng.uniform(-0.35, 0.0)  # extra elbow flexion
        arm[3] = rng.uniform(-0.2, 0.2, size=3)  # wrist
        set_arm(euler, side, get_arm(euler, side) + arm)
    euler[:, NECK] += rng.uniform(-0.06, 0.06, size=3)
    euler[:, HEAD] += rng.uniform(-0.08, 0.08, size=3)
    posture = np.array([rng.uniform(-0.04, 0.04), rng.uniform(-0.03, 0.03), rng.uniform(-0.04, 0.1)])
    euler[:, list(SPINE)] += posture  # (side bend, twist, pitch) per spine joint
    t = np.arange(seg.frames) / fps
    rate, phase = rng.uniform(0.2, 0.35), rng.uniform(0, 2 * np.pi)
    euler[:, SPINE[2], 2] += 0.015 * np.sin(2 * np.pi * rate * t + phase)
    live = rng.uniform(0.3, 1.2)
    d = _drift(rng, t, 7) * live
    euler[:, list(SPINE), 1] += 0.08 * d[:, 0:1]  # twist
    euler[:, list(SPINE), 0] += 0.04 * d[:, 1:2]  # side bend
    euler[:, list(SPINE), 2] += 0.04 * d[:, 2:3]  # pitch
    euler[:, HEAD, 1] += 0.25 * d[:, 3]
    euler[:, HEAD, 2] += 0.1 * d[:, 4]
    for k, side in ((5, "left"), (6, "right")):
        arm = get_arm(euler, side)
        arm[:, 1, 1] += 0.12 * d[:, k]
        arm[:, 2, 1] -= 0.15 * (1.0 + d[:, k])  # the forearm lifts as the arm comes forward
        set_arm(euler, side, arm)
    return seg.replace(euler=euler, height=seg.height - rng.uniform(0.0, 0.015))


def _facts(seg: Segment, fps: float, scale: float = 1.0) -> dict:
    d = scale * float(np.linalg.norm(seg.root_xz[-1] - seg.root_xz[0]))
    return {
        "distance": round(d, 2),
        "seconds": round(seg.frames / fps, 2),
        "turn_deg": round(float(np.degrees(seg.yaw[-1] - seg.yaw[0])), 1),
    }


def _draw_step(rng: np.random.Generator, prev: str | None, overlay_rate: float, in_place_share: float) -> Step:
    group = IN_PLACE if rng.random() < in_place_share else TRAVEL
    names = [n for n in group if n != prev]
    w = np.array([WEIGHTS.get(n, 1.0) for n in names])
    name = names[int(np.searchsorted(np.cumsum(w), rng.random() * w.sum(), side="right"))]
    params = PRIMITIVES[name].sample(rng)
    gesture = None
    if name in OVERLAY_BASES and rng.random() < overlay_rate:
        g = GESTURE_NAMES[int(rng.integers(0, len(GESTURE_NAMES)))]
        gesture = (g, PRIMITIVES[g].sample(rng))
    return Step(name, params, gesture)


def _combo_steps(rng: np.random.Generator) -> list[Step]:
    kind, a, b = heldout.HELDOUT_COMBINATIONS[int(rng.integers(0, len(heldout.HELDOUT_COMBINATIONS)))]
    if kind == "while":
        return [Step(a, PRIMITIVES[a].sample(rng), (b, PRIMITIVES[b].sample(rng)))]
    return [Step(a, PRIMITIVES[a].sample(rng)), Step(b, PRIMITIVES[b].sample(rng))]


def _realise(step: Step, fps: float) -> tuple[Step, Segment]:
    seg = build(step.name, step.params, fps)
    if step.gesture is None:
        return step, seg
    g, gp = step.gesture
    gp = gestures.overlay_reps(g, gp, seg.frames, fps)
    return Step(step.name, step.params, (g, gp)), gestures.overlay(seg, g, gp, fps)


def sample_sequence(
    rng: np.random.Generator,
    *,
    fps: float,
    min_frames: int,
    max_frames: int,
    max_primitives: int = 4,
    overlay_rate: float = 0.25,
    heldout_rate: float = 0.0,
    in_place_share: float = 0.9,
    body_variation: float = 1.0,
) -> Sequence:
    """Draws one sequence (see the module docstring); deterministic given ``rng``'s state."""
    p = _N_STEPS_P[:max_primitives] / _N_STEPS_P[:max_primitives].sum()
    n_target = 1 + int(rng.choice(len(p), p=p))
    combo = _combo_steps(rng) if rng.random() < heldout_rate else []
    n_target = max(n_target, len(combo))
    at = int(rng.integers(0, n_target - len(combo) + 1))
    reserved: list[tuple[Step, Segment]] = []
    for _ in range(16):
        if not combo:
            break
        reserved = [_realise(s, fps) for s in combo]
        if concat([b for _, b in reserved], fps)[0].frames <= max_frames // 2:
            break
        combo = _combo_steps(rng)
    if reserved and concat([b for _, b in reserved], fps)[0].frames > max_frames:
        reserved = []
    budget = max_frames - (concat([b for _, b in reserved], fps)[0].frames if reserved else 0)
    steps: list[Step] = []
    segs: list[Segment] = []
    joined: Segment | None = None  # concat(segs), extended one step at a time (concat is a left fold)
    while len(steps) < n_target:
        if reserved and len(steps) == at:
            steps += [s for s, _ in reserved]
            segs += [b for _, b in reserved]
            joined = concat(segs, fps)[0]
            budget, reserved = max_frames, []
            continue
        for _ in range(8):
            prev = steps[-1].name if steps else None
            built = _realise(_draw_step(rng, prev, overlay_rate, in_place_share), fps)
            cand = built[1] if joined is None else concat([joined, built[1]], fps)[0]
            if cand.frames <= budget:
                steps.append(built[0])
                segs.append(built[1])
                joined = cand
                break
        else:
            if reserved:  # give up on the steps before the combination
                at = len(steps)
            elif steps:
                n_target = len(steps)
    total = joined.frames if joined is not None else 0
    if total < min_frames:
        seconds = round((min_frames - total) / fps + 0.6, 2)
        steps.append(Step(FILLER.name, {"seconds": seconds}))
        segs.append(build(FILLER.name, {"seconds": seconds}, fps))
    seg, spans = concat(segs, fps)
    seg = with_style(seg, rng, fps)
    body = sample_body(rng, body_variation)
    held = heldout.has_heldout([(s.name, s.gesture[0] if s.gesture else None) for s in steps])
    facts = tuple(_facts(s, fps, body.scale) for s in segs)
    return Sequence(tuple(steps), tuple(spans), facts, seg, held, body)
