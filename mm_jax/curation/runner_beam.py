"""The Apache Beam runner: the same stage functions as a Beam pipeline (stage: curation).

Input and output are the local runner's (:mod:`mm_jax.curation.runner_local`):
the pipeline is ``Create(videos) -> FlatMap(stage 1: a video's kept shots)
-> Reshuffle -> Map(stages 2-6 of a shot, written atomically) ->
combine (count)``, and with a tokenizer the training shards' steps
(:mod:`mm_jax.curation.beam_shards`: planned, one shard per worker task,
the manifest once at the end), using :func:`runner_local.shot_stage` and
:func:`runner_local.shot_work` unchanged, so the per-shot files are the same
bytes. When the pipeline has finished, :func:`mm_jax.curation.report.finish`
builds the data set and the report, as the local run does. A rerun skips
finished videos and shots.

``beam_options`` are Beam's own flags (``--runner=DirectRunner`` by default;
``--direct_num_workers=N --direct_running_mode=multi_processing`` for a
local multi-process run). On Dataflow, Flink or Spark the workers must see
the videos and ``out`` as a shared POSIX path (e.g. a bucket mounted with
gcsfuse, or NFS) and have the ``[curate]`` extra installed (docs/curation.md
lists the options). Beam is imported only here.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib

from mm_jax import runlock
from mm_jax.curation import report, results, tokenize
from mm_jax.curation.config import config_dict, CurationConfig
from mm_jax.curation.runner_local import shot_stage, shot_work
from mm_jax.shards import bookkeeping

log = logging.getLogger(__name__)


def build_pipeline(pipeline, videos: list[str], out: str, cfg: CurationConfig, *, shards=None):
    """Adds the curation transforms to a Beam ``pipeline``; returns the PCollection of finished shot counts.

    ``shards``: ``(ShardOptions, encoder identities, base manifest)`` adds the
    shard steps of :mod:`mm_jax.curation.beam_shards` after stages 2-6.
    """
    import apache_beam as beam

    done = (
        pipeline
        | "videos" >> beam.Create(videos)
        | "shots" >> beam.FlatMap(lambda v: shot_stage(v, out, cfg)[0])
        | "spread" >> beam.Reshuffle()
        | "stages 2-6" >> beam.Map(shot_work, out, cfg)
    )
    if shards is not None:
        from mm_jax.curation import beam_shards  # imports Beam: inside the [curate] boundary

        beam_shards.add_shard_steps(done, out, *shards)
    return done | "count" >> beam.combiners.Count.Globally()


def run_beam(cfg: CurationConfig, videos_dir: str | pathlib.Path, out: str | pathlib.Path, *,
             beam_options: list[str] | None = None, overwrite: bool = False,
             shards: tokenize.ShardOptions | None = None) -> dict:
    """Runs the pipeline with ``beam_options`` and then the report; returns the funnel report dict.

    With ``shards`` the pipeline also writes ``out/shards`` (the tokenizer is
    checked, and the shard directory readied, before any stage runs).
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    out = pathlib.Path(out).absolute()
    enc = None if shards is None else tokenize.open_tokenizer(shards)
    vids = [str(p.absolute()) for p in results.videos(videos_dir)]
    options = PipelineOptions(beam_options or ["--runner=DirectRunner"])
    results.write_json(out / "config.json", config_dict(cfg))
    with runlock.lock_dir(tokenize.shards_dir(out)) if shards else contextlib.nullcontext():
        extra = None
        if shards is not None:
            base = bookkeeping.prepare_dir(tokenize.shards_dir(out), enc, tokenize.SPLITS)
            extra = (shards, enc.identities_only(), base)
        with beam.Pipeline(options=options) as p:
            build_pipeline(p, vids, str(out), cfg, shards=extra)
    log.info("beam pipeline finished over %d videos", len(vids))
    return report.finish(out, cfg, source=str(videos_dir), runner="beam", workers=0, overwrite=overwrite,
                         shards=None if shards is None else lambda: tokenize.read_summary(out))
