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

from mm_jax.motion.synth import actions, gestures, jumps, moves
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
GESTURE_NAMES = tuple(_GESTURE_SAMPLERS)

PRIMITIVES: dict[str, Primitive] = {
    **{n: _from(moves, n, "locomotion") for n in _LOCOMOTION},
    **{n: _from(jumps, n, "jump") for n in _JUMPS},
    **{n: _from(actions, n, "body") for n in _BODY},
    **{n: _gesture(n) for n in GESTURE_NAMES},
}
FILLER = Primitive("stand", "filler", moves.sample_stand, moves.build_stand)

# Locomotions that can carry a gesture at the same time ("walks forward while waving").
OVERLAY_BASES = ("walk", "jog", "run", "walk_backward", "sidestep", "march", "tiptoe", "turn", "balance")


def build(name: str, params: dict, fps: float) -> Segment:
    """Builds one primitive (or the ``stand`` filler) by name."""
    prim = FILLER if name == "stand" else PRIMITIVES[name]
    return prim.build(params, fps)
