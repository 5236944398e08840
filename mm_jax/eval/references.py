"""Real reference clips for the prompt suite: the dataset's frame spans that show a prompt's primitives (stage: eval).

A dataset record lists its steps (``record["primitives"]``: a name, a frame
span ``[start, end)`` and an optional gesture performed ``while`` it). A
prompt's primitives match: one primitive, each step of it with no gesture on
top; several, each run of consecutive steps with exactly those names, in
order; two, ``[A, G]``, also a step of locomotion A performed while doing
gesture G. :func:`find_references` crops up to ``limit`` such clips per
prompt (test split first, then val, then train); :mod:`mm_jax.eval.suite`
scores them as the ``reference_*`` yardstick.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mm_jax.eval.prompts import Prompt

MIN_CLIP_FRAMES = 8  # shorter reference spans are skipped


def _step_names(record: dict) -> list[tuple[str, str | None]]:
    return [(p["name"], (p["while"] or {}).get("name")) for p in record["primitives"]]


def reference_spans(record: dict, primitives: Sequence[str]) -> list[tuple[int, int]]:
    """Frame spans ``[start, end)`` of ``record`` (a dataset record) that show ``primitives``.

    One primitive: each step of it with no gesture on top. Several: each run of
    consecutive steps with exactly those names. Two, ``[A, G]``, also match a
    step of A performed while doing gesture G.
    """
    steps, names = record["primitives"], _step_names(record)
    k = len(primitives)
    if k == 0:
        return []
    if k == 1:
        return [(s["start"], s["end"]) for s, (n, g) in zip(steps, names) if n == primitives[0] and g is None]
    spans = [(steps[i]["start"], steps[i + k - 1]["end"]) for i in range(len(steps) - k + 1)
             if [n for n, _ in names[i : i + k]] == list(primitives)]
    if k == 2:
        spans += [(s["start"], s["end"]) for s, (n, g) in zip(steps, names) if (n, g) == tuple(primitives)]
    return spans


def find_references(ds: Any, prompts: Sequence[Prompt], *, limit: int) -> list[list[np.ndarray]]:
    """Up to ``limit`` real clips (raw features [T, 272]) per prompt, test split first, then val, then train."""
    wanted = {tuple(p.primitives) for p in prompts if p.primitives}
    found: dict[tuple[str, ...], list[np.ndarray]] = {w: [] for w in wanted}
    for split in ("test", "val", "train"):
        for seq_id in ds.ids(split):
            if all(len(v) >= limit for v in found.values()):
                break
            record = ds.record(seq_id)
            present = {name for step in _step_names(record) for name in step if name}  # steps and gestures
            for w, clips in found.items():
                if len(clips) >= limit or not set(w) <= present:
                    continue
                for start, end in reference_spans(record, w)[: limit - len(clips)]:
                    if end - start >= MIN_CLIP_FRAMES:
                        clips.append(np.asarray(ds.sequence(seq_id)[start:end], np.float32))
    return [found.get(tuple(p.primitives), []) if p.primitives else [] for p in prompts]
