"""The Apache Beam runner: the same stage functions as a Beam pipeline (stage: curation).

Input and output are the local runner's (:mod:`mm_jax.curation.runner_local`):
the pipeline is ``Create(videos) -> FlatMap(stage 1: a video's kept shots)
-> Reshuffle -> Map(stages 2-6 of a shot, written atomically) ->
combine (count)``, using :func:`runner_local.shot_stage` and
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

import logging
import pathlib

from mm_jax.curation import report, results
from mm_jax.curation.config import config_dict, CurationConfig
from mm_jax.curation.runner_local import shot_stage, shot_work

log = logging.getLogger(__name__)


def build_pipeline(pipeline, videos: list[str], out: str, cfg: CurationConfig):
    """Adds the curation transforms to a Beam ``pipeline``; returns the PCollection of finished shot counts."""
    import apache_beam as beam

    return (
        pipeline
        | "videos" >> beam.Create(videos)
        | "shots" >> beam.FlatMap(lambda v: shot_stage(v, out, cfg)[0])
        | "spread" >> beam.Reshuffle()
        | "stages 2-6" >> beam.Map(shot_work, out, cfg)
        | "count" >> beam.combiners.Count.Globally()
    )


def run_beam(cfg: CurationConfig, videos_dir: str | pathlib.Path, out: str | pathlib.Path, *,
             beam_options: list[str] | None = None, overwrite: bool = False) -> dict:
    """Runs the pipeline with ``beam_options`` and then the report; returns the funnel report dict."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    out = pathlib.Path(out).absolute()
    vids = [str(p.absolute()) for p in results.videos(videos_dir)]
    results.write_json(out / "config.json", config_dict(cfg))
    options = PipelineOptions(beam_options or ["--runner=DirectRunner"])
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, vids, str(out), cfg)
    log.info("beam pipeline finished over %d videos", len(vids))
    return report.finish(out, cfg, source=str(videos_dir), runner="beam", workers=0, overwrite=overwrite)
