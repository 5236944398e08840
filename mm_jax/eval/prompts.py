"""The zero-shot prompt suite: loader and schema checks (stage: eval).

Input: a JSONL file such as ``data/prompts/motionmillion_eval_v1.jsonl``, one
prompt per line (format in ``data/prompts/README.md``). Output: a list of
frozen :class:`Prompt` records, and per-category / per-tag counts.

The suite mirrors the paper's MotionMillion-Eval (126 prompts in 7
categories) but is written for the embedded procedural data, so every prompt
carries a tag saying how it relates to the generator's captions:

* ``seen``: only words :func:`~mm_jax.motion.synth.generator_vocabulary` lists;
* ``paraphrase``: a seen action said with at least one word the generator never
  emits (or an action with no primitive at all: ``primitives == []`` plus a ``note``);
* ``composition``: two or more primitives in one prompt, in generator words: an
  entry of ``HELDOUT_COMBINATIONS`` (``[A, B]`` = A then B, ``[A, G]`` = A while
  G) or a longer chain ``[A, B, C, ...]`` (A, then B, then C).

The loader checks the schema only (fields, types, allowed values, known
primitive names, unique ids). Checks against the generator's vocabulary live in
``tests/test_prompt_suite.py``; :func:`prompt_words` is the tokenizer both use.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from pathlib import Path

from mm_jax.errors import DataError
from mm_jax.motion.synth.primitives import PRIMITIVES

CATEGORIES: tuple[str, ...] = (
    "daily_life",
    "sports",
    "dance_art",
    "combat",
    "transportation",
    "non_human",
    "other",
)
TAGS: tuple[str, ...] = ("seen", "paraphrase", "composition")
MIN_SECONDS, MAX_SECONDS = 2.0, 10.0
_REQUIRED = ("id", "category", "tag", "prompt", "primitives", "seconds")
_OPTIONAL = ("note",)
_WORD = re.compile(r"[a-z0-9]+")  # the same word pattern as generator_vocabulary()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Prompt:
    """One prompt of the suite.

    Attributes:
      id: unique id, e.g. ``"daily-001"``.
      category: one of :data:`CATEGORIES`.
      tag: one of :data:`TAGS`.
      prompt: the text given to the model.
      primitives: generator primitives the prompt maps to (in order); empty only
        for a ``paraphrase`` with no counterpart, which then has a ``note``; at
        least two for a ``composition`` (any number of steps).
      seconds: suggested duration, in [2, 10].
      note: free text, e.g. why ``primitives`` is empty.
    """

    id: str
    category: str
    tag: str
    prompt: str
    primitives: tuple[str, ...]
    seconds: float
    note: str = ""


def prompt_words(text: str) -> list[str]:
    """The lower-case words of ``text``, tokenized as ``generator_vocabulary()`` does."""
    return _WORD.findall(text.lower())


def _fail(where: str, msg: str) -> DataError:
    return DataError(f"{where}: {msg}")


def _check_fields(row: object, where: str) -> dict:
    if not isinstance(row, dict):
        raise _fail(where, f"expected a JSON object, got {type(row).__name__}")
    missing = [k for k in _REQUIRED if k not in row]
    if missing:
        raise _fail(where, f"missing field(s) {missing}; required: {list(_REQUIRED)}")
    unknown = sorted(set(row) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise _fail(where, f"unknown field(s) {unknown}; allowed: {list(_REQUIRED + _OPTIONAL)}")
    for key in ("id", "category", "tag", "prompt", "note"):
        if key in row and not isinstance(row[key], str):
            raise _fail(where, f"{key!r} must be a string, got {row[key]!r}")
    return row


def _parse_row(row: dict, where: str) -> Prompt:
    """Validates one decoded line and builds its :class:`Prompt`."""
    row = _check_fields(row, where)
    if not row["id"].strip():
        raise _fail(where, "empty id")
    if row["category"] not in CATEGORIES:
        raise _fail(where, f"unknown category {row['category']!r}; valid: {list(CATEGORIES)}")
    if row["tag"] not in TAGS:
        raise _fail(where, f"unknown tag {row['tag']!r}; valid: {list(TAGS)}")
    if not row["prompt"].strip():
        raise _fail(where, "empty prompt")
    prims = row["primitives"]
    if not isinstance(prims, list) or not all(isinstance(p, str) for p in prims):
        raise _fail(where, f"'primitives' must be a list of strings, got {prims!r}")
    bad = [p for p in prims if p not in PRIMITIVES]
    if bad:
        raise _fail(where, f"unknown primitive(s) {bad}; valid: {sorted(PRIMITIVES)}")
    note = row.get("note", "")
    if not prims and (row["tag"] != "paraphrase" or not note.strip()):
        raise _fail(where, "empty 'primitives' needs tag 'paraphrase' and a non-empty 'note'")
    if row["tag"] == "composition" and len(prims) < 2:
        raise _fail(where, f"a composition names at least 2 primitives (its steps, in order), got {prims}")
    sec = row["seconds"]
    if isinstance(sec, bool) or not isinstance(sec, (int, float)) or not MIN_SECONDS <= sec <= MAX_SECONDS:
        raise _fail(where, f"'seconds' must be a number in [{MIN_SECONDS}, {MAX_SECONDS}], got {sec!r}")
    return Prompt(
        id=row["id"],
        category=row["category"],
        tag=row["tag"],
        prompt=row["prompt"].strip(),
        primitives=tuple(prims),
        seconds=float(sec),
        note=note,
    )


def load_suite(path: str | Path) -> list[Prompt]:
    """Loads and validates a prompt suite (JSONL, one object per line; blank lines skipped).

    Raises:
      DataError: a file that is missing, unreadable or not UTF-8, or naming
        ``path:line`` for bad JSON, a missing or unknown field, an unknown
        category/tag/primitive, an empty prompt, a bad duration or a duplicate id.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise DataError(f"cannot read prompt suite {path}: {reason} (a JSONL file, data/prompts/README.md; "
                        "e.g. data/prompts/motionmillion_eval_v1.jsonl)") from None
    prompts: list[Prompt] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise _fail(where, f"invalid JSON ({e.msg})") from e
        prompt = _parse_row(row, where)
        if prompt.id in first_line:
            raise _fail(where, f"duplicate id {prompt.id!r} (first on line {first_line[prompt.id]})")
        first_line[prompt.id] = lineno
        prompts.append(prompt)
    if not prompts:
        raise DataError(f"{path}: no prompts")
    return prompts


def suite_summary(prompts: list[Prompt]) -> dict[str, dict[str, int]]:
    """Counts of the suite.

    Returns:
      ``{"total": {"all": n}, "category": {...}, "tag": {...}, "category/tag": {"sports/seen": k, ...}}``.
    """
    return {
        "total": {"all": len(prompts)},
        "category": dict(collections.Counter(p.category for p in prompts)),
        "tag": dict(collections.Counter(p.tag for p in prompts)),
        "category/tag": dict(collections.Counter(f"{p.category}/{p.tag}" for p in prompts)),
    }
