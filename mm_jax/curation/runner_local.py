"""The local runner: every stage on this machine's cores, resumable (stage: curation).

Input: a :class:`~mm_jax.curation.config.CurationConfig`, a folder of videos
(each with its GVHMR result and captions beside it, docs/curation.md) and an
output folder. Output: the run's files (:mod:`mm_jax.curation.results`), the
data set and the funnel report. Stage 1 runs per video, stages 2-6 per shot,
each in a pool of ``workers`` spawned processes (spawned, not forked: the
parent may hold JAX threads); ``workers=1`` runs them in this process. A video or shot whose result exists is
skipped, so an interrupted run continues where it stopped. ``progress(done,
total)`` is called after each video and shot.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import pathlib
import time
from typing import Callable

from mm_jax import runlock
from mm_jax.curation import report, results, shots, tokenize
from mm_jax.curation.config import config_dict, CurationConfig
from mm_jax.curation.detect_hog import HogDetector
from mm_jax.curation.process import process_shot, ShotTask
from mm_jax.shards import bookkeeping

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
_DETECTOR: dict = {}  # one HOG detector per worker process (OpenCV state), built on first use


def shot_stage(video: str, out: str, cfg: CurationConfig) -> tuple[list[ShotTask], float]:
    """Stage 1 for one video (read back if done): (its kept shots as tasks, seconds spent)."""

    path, t0 = results.shots_path(pathlib.Path(out), pathlib.Path(video)), time.perf_counter()
    if path.is_file():
        found = shots.from_json(results.read_json(path))
    else:
        found = shots.detect_shots(video, cfg.shots)
        results.write_json(path.parent.parent / "timing" / path.stem / "shots.json",
                           {"shots": round(time.perf_counter() - t0, 6)})
        results.write_json(path, shots.to_json(found))
    tasks = [ShotTask(str(video), i, s, e, found.fps, found.width, found.height)
             for i, ((s, e), kept) in enumerate(zip(found.shots, found.kept)) if kept]
    return tasks, time.perf_counter() - t0


def shot_work(task: ShotTask, out: str, cfg: CurationConfig) -> str:
    """Stages 2-6 of one shot, result written atomically unless already there; returns the task's label."""

    out_dir = pathlib.Path(out)
    if not results.is_done(out_dir, task):
        detector = None
        if cfg.detect.detector == "hog":

            detector = _DETECTOR.setdefault(cfg.detect, HogDetector(cfg.detect))
        result, feats, seconds = process_shot(task, cfg, detector=detector)
        results.write_result(out_dir, task, result, feats, seconds)
    return f"{task.name}/shot{task.index:03d}"


class _Inline(cf.Executor):
    """Runs each task at once in this process (``workers=1``: no worker start-up, ~5 s of JAX import)."""

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - handed to the caller through the future, as a pool does
            fut.set_exception(e)
        return fut


def _pool(workers: int) -> cf.Executor:
    if workers <= 1:
        return _Inline()
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def run_local(cfg: CurationConfig, videos_dir: str | pathlib.Path, out: str | pathlib.Path, *,
              workers: int = 1, progress: Progress | None = None, overwrite: bool = False,
              shards: tokenize.ShardOptions | None = None) -> dict:
    """Runs every stage over the videos of ``videos_dir`` into ``out``; returns the funnel report dict.

    With ``shards`` the data set is then tokenized into ``out/shards``
    (:func:`mm_jax.curation.tokenize.write_local`; the tokenizer is checked first).
    """

    out = pathlib.Path(out)
    enc = None if shards is None else tokenize.open_tokenizer(shards)
    vids = results.videos(videos_dir)
    if enc is not None:
        with runlock.lock_dir(tokenize.shards_dir(out)):
            bookkeeping.prepare_dir(tokenize.shards_dir(out), enc, tokenize.SPLITS)  # other shards there: fail now
    results.write_json(out / "config.json", config_dict(cfg))
    done, tasks = 0, []
    with _pool(max(1, workers)) as pool:
        for got in pool.map(shot_stage, map(str, vids), [str(out)] * len(vids), [cfg] * len(vids)):
            tasks += got[0]
            done += 1
            if progress is not None:
                progress(done, len(vids))
        todo = [t for t in tasks if not results.is_done(out, t)]
        log.info("%d videos, %d kept shots, %d to process (%d done before)", len(vids), len(tasks), len(todo),
                 len(tasks) - len(todo))
        futures = [pool.submit(shot_work, t, str(out), cfg) for t in todo]
        for k, fut in enumerate(cf.as_completed(futures)):
            fut.result()
            if progress is not None:
                progress(len(vids) + k + 1, len(vids) + len(todo))
    return report.finish(out, cfg, source=str(videos_dir), runner="local", workers=workers, overwrite=overwrite,
                         shards=None if enc is None else lambda: tokenize.write_local(out, shards, enc))
