"""The registry of action primitives (stage: synthetic data).

``PRIMITIVES`` maps a name to a :class:`Primitive`: its kind, a parameter
sampler ``sample(rng) -> params`` (a JSON-ready dict) and a builder
``build(params, fps) -> Segment``. Kinds:

* ``locomotion``: stepping that travels or turns (can carry a gesture "while"),
* ``jump``: jumps and hops (flight phases),
* ``body``: whole-body actions in place,
* ``gesture``: upper-body actions, also usable layered on a locomotion
  (``OVERLAY_BASES`` x ``GESTURE_NAMES``).

``stand`` is a filler (standing still) and is not counted as a primitive.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from mm_jax.motion.synth import actions, bends, floor, footwork, freestyle, gestures, jumps, moves
from mm_jax.motion.synth.plan import Segment


@dataclasses.dataclass(frozen=True)
class Primitive:
    """One action primitive."""

    name: str
    kind: str
    sample: Callable[[np.random.Generator], dict]
    build: Callable[[dict, float], Segment]


def _f(x: float) -> float:
    return round(float(x), 2)


def _side3(rng) -> str:
    return str(rng.choice(["left", "right", "both"], p=[0.4, 0.4, 0.2]))


_GESTURE_SAMPLERS: dict[str, Callable[[np.random.Generator], dict]] = {
    "wave": lambda r: {"side": _side3(r), "reps": int(r.integers(2, 6)), "tempo": _f(r.uniform(1.6, 2.4))},
    "raise_arms": lambda r: {
        "side": _side3(r),
        "direction": str(r.choice(["up", "forward", "sideways"])),
        "hold": _f(r.uniform(0.5, 1.5)),
    },
    "clap": lambda r: {"reps": int(r.integers(2, 7)), "tempo": _f(r.uniform(1.8, 2.8))},
    "arm_circles": lambda r: {
        "direction": str(r.choice(["forward", "backward"])),
        "reps": int(r.integers(2, 5)),
        "tempo": _f(r.uniform(0.9, 1.4)),
    },
    "point": lambda r: {"side": str(r.choice(["left", "right"])), "hold": _f(r.uniform(0.6, 1.6))},
    "look": lambda r: {"side": str(r.choice(["left", "right"])), "hold": _f(r.uniform(0.5, 1.5))},
    "drink": lambda r: {"side": str(r.choice(["left", "right"])), "hold": _f(r.uniform(0.6, 1.8))},
    "cross_arms": lambda r: {"hold": _f(r.uniform(1.0, 3.0))},
    "talk": lambda r: {"hold": _f(r.uniform(1.5, 3.5))},
    "hands_on_hips": lambda r: {"hold": _f(r.uniform(1.0, 3.0))},
    "arm_swing": lambda r: {"reps": int(r.integers(2, 6)), "tempo": _f(r.uniform(0.8, 1.3))},
}


def _gesture(name: str) -> Primitive:
    return Primitive(
        name, "gesture", _GESTURE_SAMPLERS[name], lambda p, fps, _n=name: gestures.gesture_segment(_n, p, fps)
    )


def _from(module, name: str, kind: str) -> Primitive:
    return Primitive(name, kind, getattr(module, f"sample_{name}"), getattr(module, f"build_{name}"))


_LOCOMOTION = (
    "walk",
    "jog",
    "run",
    "walk_backward",
    "sidestep",
    "turn",
    "spin",
    "crouch_walk",
    "tiptoe",
    "march",
    "stumble",
    "climb",
    "dance",
)
_JUMPS = ("jump_in_place", "jump_forward", "hop", "jumping_jacks")
_BODY = ("squat", "sit", "crouch", "bow", "kick", "lunge", "balance", "stretch", "throw", "punch")
_BENDS = ("twist", "toe_touch", "pick_up")
_FOOTWORK = ("stomp", "leg_swing", "calf_raise", "shift_weight")
GESTURE_NAMES = tuple(_GESTURE_SAMPLERS)

PRIMITIVES: dict[str, Primitive] = {
    **{n: _from(moves, n, "locomotion") for n in _LOCOMOTION},
    "freestyle": _from(freestyle, "freestyle", "locomotion"),
    **{n: _from(jumps, n, "jump") for n in _JUMPS},
    **{n: _from(actions, n, "body") for n in _BODY},
    **{n: _from(bends, n, "body") for n in _BENDS},
    **{n: _from(footwork, n, "body") for n in _FOOTWORK},
    "kneel": _from(floor, "kneel", "body"),
    **{n: _gesture(n) for n in GESTURE_NAMES},
}
FILLER = Primitive("stand", "filler", moves.sample_stand, moves.build_stand)

# Primitives that carry the body somewhere; every other one stays (about) in place.
# ``SynthConfig.in_place_share`` sets how often a step is drawn from each group.
TRAVEL = ("walk", "jog", "run", "walk_backward", "sidestep", "crouch_walk", "tiptoe", "stumble", "jump_forward")
IN_PLACE = tuple(n for n in PRIMITIVES if n not in TRAVEL)
# Relative draw weights within a group (1 when not listed): the postures that reach far from
# standing (down low, bent over, dancing) and the ones that lift a foot high are drawn more
# often, to widen the pose distribution.
WEIGHTS = {"crouch": 2.0, "kneel": 2.0, "sit": 2.0, "squat": 1.5, "toe_touch": 1.5, "pick_up": 1.5,
           "stretch": 1.5, "freestyle": 2.0, "jumping_jacks": 1.5, "arm_circles": 1.5,
           "march": 1.5, "climb": 1.5, "kick": 1.5, "stomp": 1.5, "leg_swing": 1.5, "balance": 1.5, "hop": 1.5}

# Locomotions that can carry a gesture at the same time ("walks forward while waving").
OVERLAY_BASES = ("walk", "jog", "run", "walk_backward", "sidestep", "march", "tiptoe", "turn", "balance")


def build(name: str, params: dict, fps: float) -> Segment:
    """Builds one primitive (or the ``stand`` filler) by name."""
    prim = FILLER if name == "stand" else PRIMITIVES[name]
    return prim.build(params, fps)
