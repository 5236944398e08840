"""Shards of a fraction of the train split: the data-size axis of a sweep (stage: sweep).

Input: the dataset directory, a tokenizer run, the full shards' manifest (its
caption budget S and shard count) and a fraction in (0, 1). Output: a shards
directory whose train split holds the first ``round(fraction * n)`` train ids
(sorted, so smaller fractions are subsets of larger ones) and whose val split
is the full one, written by :func:`mm_jax.shards.write_shards` (which skips
shards already complete, so a re-run costs nothing).
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

from mm_jax.errors import ConfigError, DataError
from mm_jax.motion.synth import load_dataset
from mm_jax.shards import write_shards
from mm_jax.shards.manifest import read_manifest

log = logging.getLogger(__name__)


class _TrainSubset:
    """A dataset whose train split is its first ``keep`` sorted train ids; other splits unchanged."""

    def __init__(self, ds: Any, keep: int):
        self._ds, self._keep = ds, keep

    def ids(self, split: str) -> list[str]:
        ids = sorted(self._ds.ids(split))
        return ids[: self._keep] if split == "train" else ids

    def record(self, key: str) -> Any:
        return self._ds.record(key)

    def sequence(self, key: str) -> Any:
        return self._ds.sequence(key)


def fraction_shards(data_dir: str | pathlib.Path, tokenizer_run: str | pathlib.Path,
                    full_shards: str | pathlib.Path, fraction: float, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Writes (or reuses) the shards of ``fraction`` of the train split in ``out_dir``; returns it."""

    if not 0 < fraction < 1:
        raise ConfigError(f"data fraction {fraction} must lie in (0, 1) for a subset")
    if data_dir is None:
        raise ConfigError("a data fraction < 1 needs the sweep file's data_dir (the dataset the shards came from)")
    full = read_manifest(full_shards)
    ds = load_dataset(data_dir)
    n = len(ds.ids("train"))
    keep = max(1, round(fraction * n))
    view = _TrainSubset(ds, keep)
    s = int(full["text"]["max_tokens"])
    for split in ("train", "val"):
        entry = full["splits"].get(split) or {}
        count = max(1, min(len(entry.get("shards", [])) or 1, len(view.ids(split))))
        if not view.ids(split):
            raise DataError(f"{data_dir} has no {split} sequences for a data-fraction sweep")
        write_shards(view, tokenizer_run, out_dir, split=split, num_shards=count, text_max_tokens=s)
    log.info("data fraction %g: %d of %d train sequences -> %s", fraction, keep, n, out_dir)
    return pathlib.Path(out_dir)
