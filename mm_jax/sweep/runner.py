"""``run_sweep(spec, out_dir)``: train, evaluate and record every point of a sweep (stage: sweep).

Input: a :class:`SweepSpec` (its shared tokenizer runs, shards and the one
fixed evaluator already made: the file's ``prepare`` commands) and an output
directory. Output, in that directory::

    sweep.json          the parsed sweep file
    points/<id>/        each point's decoder run (mm_jax.train.loop.run's work directory)
    floors.json         the tokenizer floor (FID of its reconstructions) per tokenizer
    runs.jsonl          one line per finished point (mm_jax.sweep.record)

Re-running skips the points ``runs.jsonl`` lists as finished and resumes an
interrupted one from its latest checkpoint (``loop.run(resume=True)``
restores the state, the data position and the step keys, so the result is
the uninterrupted run's). A point whose run already reached its last step
(trained elsewhere, e.g. by ``mm-jax train`` on a pod slice) is only
evaluated. The runner assumes nothing about the machine: each point trains
on the process's devices with the point's mesh, and
``--coordinator/--num-processes/--process-id`` (the CLI) make it multi-host;
only process 0 evaluates and writes ``runs.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pathlib
import time
from typing import Any, Callable, ContextManager

import jax

from mm_jax import configs, perf, sharding
from mm_jax.checkpoint import Checkpointer
from mm_jax.errors import ConfigError
from mm_jax.shards.manifest import read_manifest
from mm_jax.sweep import record as R
from mm_jax.sweep.evaluate import reference, Reference, score_point, tokenizer_floor
from mm_jax.sweep.points import expand, experiment, Point, select
from mm_jax.sweep.spec import SweepSpec
from mm_jax.sweep.subset import fraction_shards
from mm_jax.train import loop
from mm_jax.train.config import ExperimentConfig
from mm_jax.train.interrupt import StopRequest

log = logging.getLogger(__name__)

ProgressFactory = Callable[..., ContextManager[Callable[[int, int], None]]]


@contextlib.contextmanager
def _no_progress(*_args: Any, **_kwargs: Any):
    yield lambda done, total: None


class _Scoring:
    """The scored split and the floors, built on first use (a sweep with nothing to do loads nothing)."""

    def __init__(self, spec: SweepSpec, out: pathlib.Path):
        self.spec, self.out, self._ref, self._floors = spec, out, None, None

    @property
    def ref(self) -> Reference:
        if self._ref is None:

            if not (self.spec.data_dir and self.spec.evaluator_dir):
                raise ConfigError("the sweep file needs data_dir and evaluator_dir to score points")
            self._ref = reference(self.spec.data_dir, self.spec.evaluator_dir, self.spec.eval)
        return self._ref

    def floor(self, tokenizer_run: str) -> dict[str, Any]:
        path = self.out / "floors.json"
        if self._floors is None:
            self._floors = json.loads(path.read_text()) if path.is_file() else {}
        key = str(pathlib.Path(tokenizer_run).absolute())
        if key not in self._floors:
            self._floors[key] = tokenizer_floor(self.ref, tokenizer_run, self.spec.eval)
            path.write_text(json.dumps(self._floors, indent=1, sort_keys=True) + "\n")
        return self._floors[key]


def _trained_step(run_dir: pathlib.Path) -> int | None:
    if not (run_dir / "checkpoints").is_dir():
        return None
    with Checkpointer(run_dir / "checkpoints", async_save=False) as ckpt:
        return ckpt.latest_step()


def _train(spec: SweepSpec, point: Point, run_dir: pathlib.Path, progress: ProgressFactory,
           stop: StopRequest) -> int:
    """Trains (or resumes) the point; returns the step it started from."""

    if _trained_step(run_dir) == point.steps:
        log.info("point %s already trained to step %d: evaluating only", point.id, point.steps)
        return point.steps
    if point.fraction < 1:
        fraction_shards(spec.data_dir, point.tokenizer.tokenizer_run, point.tokenizer.shards_dir, point.fraction,
                        point.shards_dir)
    exp, explicit = experiment(spec, point)
    with progress(point.id, unit="step") as bar:
        summary = loop.run(exp, run_dir, resume=True, progress=bar, explicit=explicit, stop=stop)
    return int(summary["start_step"])


def _cost(exp: ExperimentConfig, steps: int, train_records: int) -> dict[str, Any]:
    m, p = exp.model, exp.pipeline
    seq = p.max_text_tokens + p.max_motion_tokens
    tokens = steps * p.global_batch_size * seq
    return {"layers": m.num_layers, "heads": m.num_heads, "kv_heads": m.num_kv_heads, "width": m.width,
            "mlp_hidden": m.mlp_hidden, "codebook_size": m.codebook_size, "total_params": m.num_params(),
            "non_embedding_params": m.non_vocab_params(), "vocab_table_params": m.vocab_table_params(),
            "matmul_params_per_token": m.non_embedding_params(), "seq_len": seq,
            "global_batch_size": p.global_batch_size, "flops_per_token": perf.flops_per_token(m, seq),
            "flop_convention": perf.FLOP_CONVENTION, "causal_attention_halved": perf.CAUSAL_ATTENTION_HALVED,
            "tokens_seen": tokens, "training_flops": perf.training_flops(m, seq, tokens),
            "epochs": steps * p.global_batch_size / max(train_records, 1)}


def build_record(spec: SweepSpec, point: Point, run_dir: pathlib.Path, scores: dict[str, Any],
                 timing: dict[str, float], start_step: int) -> dict[str, Any]:
    """The ``runs.jsonl`` line of a trained and scored point (:mod:`mm_jax.sweep.record`)."""

    exp = configs.load_json(ExperimentConfig, run_dir / "config.json")
    train_records = int(read_manifest(exp.shards_dir)["splits"]["train"]["num_records"])
    losses = R.loss_summary(R.read_metrics(run_dir))
    cost = _cost(exp, point.steps, train_records)
    devices = jax.devices()
    kind = devices[0].device_kind
    rate = losses["tokens_per_s"]
    rev, dirty = R.git_revision()
    return {"schema": R.SCHEMA_VERSION, "sweep": spec.name, "point": point.id, "status": "finished",
            "git_revision": rev, "git_dirty": dirty, "size": point.size.name, "preset": point.size.preset,
            "tokenizer": point.tokenizer.name, "data_fraction": point.fraction, "seed": point.seed,
            "overrides": point.overrides(spec), "config": configs.to_dict(exp), **cost, "steps": point.steps,
            "lr": exp.train.lr, "warmup_steps": exp.train.warmup_steps,
            "lr_rule": configs.to_dict(spec.lr_rule), **losses, "eval": scores,
            "train_wall_s": timing["train"], "eval_wall_s": timing["eval"],
            "wall_s": timing["train"] + timing["eval"], "resumed_from_step": start_step,
            "mfu": None if rate is None else perf.mfu(rate, cost["flops_per_token"], device_kind=kind,
                                                      num_devices=len(devices)),
            "device_kind": kind, "num_devices": len(devices), "num_processes": jax.process_count(),
            "mesh": dict(sharding.make_mesh(exp.mesh).shape), "run_dir": str(run_dir)}


def run_point(spec: SweepSpec, point: Point, out: pathlib.Path, scoring: _Scoring, progress: ProgressFactory,
              stop: StopRequest) -> dict[str, Any] | None:
    """Trains and scores one point; its record, or None when a stop request ended training early."""
    run_dir = out / "points" / point.id
    t0 = time.perf_counter()
    start = _train(spec, point, run_dir, progress, stop)
    if stop.stopped_at is not None:
        return None
    t1 = time.perf_counter()
    if jax.process_index() != 0:
        return None
    floor = scoring.floor(point.tokenizer.tokenizer_run)
    scores = score_point(run_dir, scoring.ref, floor, spec.eval)
    timing = {"train": t1 - t0, "eval": time.perf_counter() - t1}
    return build_record(spec, point, run_dir, scores, timing, start)


def run_sweep(spec: SweepSpec, out_dir: str | pathlib.Path, *, only: list[str] | None = None,
              progress_factory: ProgressFactory | None = None, stop: StopRequest | None = None,
              report: Callable[[str], None] = log.info) -> list[dict[str, Any]]:
    """Runs every unfinished point (``only``: ids or size names); returns the records written now."""
    progress = progress_factory or _no_progress
    stop = stop if stop is not None else StopRequest()
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(configs.to_dict(spec), indent=1, default=str) + "\n")
    points = select(expand(spec, out), only)
    done = R.finished_points(out)
    todo = [p for p in points if p.id not in done]
    report(f"sweep {spec.name}: {len(points)} points, {len(points) - len(todo)} finished, {len(todo)} to run")
    scoring, written = _Scoring(spec, out), []
    with progress(f"sweep {spec.name}", unit="point") as bar:
        bar(len(points) - len(todo), len(points))
        for i, point in enumerate(todo):
            rec = run_point(spec, point, out, scoring, progress, stop)
            if stop.stopped_at is not None:
                report(f"stopped in point {point.id} at step {stop.stopped_at}; re-run to resume it")
                break
            if rec is not None:
                R.append(out, rec)
                written.append(rec)
                report(f"{point.id}: val loss {rec['final_val_loss']:.4f}, FID {rec['eval']['fid']:.4f} "
                       f"(floor {rec['eval']['fid_floor']:.4f}), R@1 {rec['eval']['r_precision_top1']:.3f}")
            bar(len(points) - len(todo) + i + 1, len(points))
    return written
