"""What the train split never sees, for zero-shot tests (stage: synthetic data).

* :data:`HELDOUT_COMBINATIONS`: pairs of primitives. ``("then", A, B)`` is A
  immediately followed by B; ``("while", A, G)`` is gesture G performed during
  locomotion A. A sequence containing any of them is put in the test split,
  and ``SynthConfig.heldout_rate`` of the sequences are built around one, so
  the test split has examples of each.
* :data:`HELDOUT_PHRASES`: words (with their inflections,
  :data:`HELDOUT_FORMS`) the captions may use only for val/test sequences.
* :data:`ZERO_SHOT_WORDS`: words the generator never emits at all (check with
  ``generator_vocabulary()``), for prompts such as "a person strolls forward".
"""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np

HELDOUT_COMBINATIONS: tuple[tuple[str, str, str], ...] = (
    ("then", "jump_forward", "wave"),
    ("then", "kick", "spin"),
    ("then", "squat", "run"),
    ("then", "sit", "jump_in_place"),
    ("while", "walk_backward", "clap"),
    ("while", "run", "raise_arms"),
    ("while", "sidestep", "wave"),
)
HELDOUT_PHRASES: tuple[str, ...] = ("stride", "dash", "leap", "pivot", "briskly", "subsequently")
HELDOUT_FORMS: tuple[str, ...] = (
    "stride",
    "strides",
    "striding",
    "dash",
    "dashes",
    "dashing",
    "leap",
    "leaps",
    "leaping",
    "pivot",
    "pivots",
    "pivoting",
    "briskly",
    "subsequently",
)
ZERO_SHOT_WORDS: tuple[str, ...] = (
    "strolls",
    "stroll",
    "shambles",
    "saunters",
    "trudges",
    "ambles",
    "meanders",
    "scurries",
    "tumbles",
    "somersault",
    "cartwheel",
    "limps",
    "staggers",
    "gallops",
)


HELDOUT_RE = re.compile(r"\b(" + "|".join(HELDOUT_FORMS) + r")\b")


def heldout_pattern() -> re.Pattern:
    """A regex matching any held-out phrase form as a whole word (use on lower-case text)."""
    return HELDOUT_RE


def combinations_in(steps: Iterable[tuple[str, str | None]]) -> list[tuple[str, str, str]]:
    """Every ('then', A, B) and ('while', A, G) a sequence contains; steps are (name, gesture or None)."""
    steps = list(steps)
    found = [("while", name, g) for name, g in steps if g is not None]
    found += [("then", a[0], b[0]) for a, b in zip(steps, steps[1:])]
    return found


def has_heldout(steps: Iterable[tuple[str, str | None]]) -> bool:
    """True when a sequence contains a held-out combination."""
    held = set(HELDOUT_COMBINATIONS)
    return any(c in held for c in combinations_in(steps))


def assign_split(rng: np.random.Generator, heldout: bool, val_fraction: float, test_fraction: float) -> str:
    """'test' for held-out sequences, otherwise val/test/train by the given fractions."""
    u = rng.random()
    if heldout:
        return "test"
    if u < val_fraction:
        return "val"
    if u < val_fraction + test_fraction:
        return "test"
    return "train"
