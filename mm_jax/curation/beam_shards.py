"""The Beam steps that write a curation run's training shards inside the pipeline (stage: curation -> shards).

Input: the PCollection of finished shots (labels ``"<video>/shotNNN"``, from
the stages 2-6 step of :mod:`mm_jax.curation.runner_beam`). Output:
``RUN/shards/`` as ``mm-jax data tokenize`` writes it over ``RUN/dataset``::

    shots -> FlatMap(kept clips: (split, clip id)) -> GroupByKey(split)
          -> FlatMap(plan: the split's sorted ids in num_shards contiguous blocks)
          -> Reshuffle -> ParDo(WriteShard: one shard per element, atomically)
          -> ToList -> Map(the manifest, written once)

Each shard is written by one worker through
:func:`mm_jax.shards.writer.write_planned_shard` (temporary name, sha256,
rename; its ``.parts`` entry after), the tokenizer loaded once per worker
in ``setup``; a rerun reuses the shards whose inputs and bytes are unchanged.
The plan is the writer's own (:func:`~mm_jax.shards.writer.plan_split`) and
a clip's codes do not depend on its batchmates, so the files equal those of
``mm-jax data tokenize`` (tested on the DirectRunner). A split's ids meet on
one worker to be planned (strings, ~100 MB at a few million clips).

``array_record.beam.WriteToArrayRecord`` (a ``FileBasedSink``) was not used:
it deals records to shards in bundle order and names files itself, so the
shards would hold other records than ``mm-jax data tokenize`` puts in them,
and the manifest's per-shard hash and counts would need a second pass.
Beam is imported here at the top: this module is imported only by the
Beam runner, inside the ``[curate]`` boundary.
"""

from __future__ import annotations

import logging
import pathlib
import time

import apache_beam as beam

from mm_jax.curation import results, tokenize
from mm_jax.shards import bookkeeping, writer

log = logging.getLogger(__name__)


class WriteShard(beam.DoFn):
    """Writes one planned shard from the run's per-shot results; yields (plan, entry, seconds)."""

    def __init__(self, out: str, opts: tokenize.ShardOptions) -> None:
        self.out, self.opts = out, opts

    def setup(self) -> None:
        self._enc = tokenize.open_tokenizer(self.opts)
        self._clips = tokenize.RunClips(self.out)

    def process(self, plan: writer.ShardPlan):
        t0 = time.perf_counter()
        entry = writer.write_planned_shard(self._clips, self._enc, tokenize.shards_dir(pathlib.Path(self.out)), plan)
        yield plan, entry, time.perf_counter() - t0


def _plan(split_ids, enc, num_shards: int) -> list[writer.ShardPlan]:
    split, ids = split_ids
    ids = sorted(ids)
    return writer.plan_split(ids, enc, split, min(num_shards, len(ids)))


def _finish(written: list, out: str, base: dict) -> int:
    """Writes the manifest (every split; one without clips as skipped) and the shards' timing; records."""
    if not written:
        log.warning("no clip passed every stage: no shards written")
        return 0
    by_split: dict = {s: ([], []) for s in tokenize.SPLITS}
    for plan, entry, _ in sorted(written, key=lambda w: (w[0].split, w[0].index)):
        by_split[plan.split][0].append(entry)
        by_split[plan.split][1].extend(plan.ids)
    root = pathlib.Path(out)
    bookkeeping.finish_splits(tokenize.shards_dir(root), base, by_split, str((root / "dataset").absolute()))
    records = sum(len(w[0].ids) for w in written)
    results.write_json(root / "timing" / "shards.json",
                       {"records": records, "seconds": round(sum(w[2] for w in written), 6)})
    return records


def add_shard_steps(shots, out: str, opts: tokenize.ShardOptions, enc, base: dict):
    """Appends the shard steps (module docstring) to ``shots``; ``enc`` without models, ``base`` the manifest."""
    return (
        shots
        | "kept clips" >> beam.FlatMap(lambda label: tokenize.kept_clips(pathlib.Path(out), label))
        | "by split" >> beam.GroupByKey()
        | "plan shards" >> beam.FlatMap(_plan, enc, opts.num_shards)
        | "spread shards" >> beam.Reshuffle()
        | "write shards" >> beam.ParDo(WriteShard(out, opts))
        | "all shards" >> beam.combiners.ToList()
        | "manifest" >> beam.Map(_finish, out, base)
    )
