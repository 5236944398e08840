"""Training of the text-to-motion decoder: ``run(exp_cfg, workdir, resume=, progress=)`` (stage: train).

Inputs: an :class:`~mm_jax.train.config.ExperimentConfig` (model, train,
pipeline, mesh and text-encoder configs, the shards directory and the
tokenizer run) and a work directory. Outputs, in the work directory::

    config.json     the experiment config (process 0)
    metrics.jsonl   train/*, val/*, perf/*, eval/*, export/* rows (process 0, via MetricsWriter)
    tb/             the same as TensorBoard events
    profile/        a jax.profiler trace of the ``profile`` window (docs/pod.md)
    export/step_k/  ``mm-jax export`` output every ``train.export_every`` steps
    checkpoints/    orbax: train state (step, params, optimizer state), meta JSON
                    (model / tokenizer / text-encoder identity, data stream, configs)
                    and every process's Grain iterator state, saved together

Flow: build the train (and val) pipelines, checking the shards' tokenizer
and vocabulary identities at start-up; compile the train step once (AOT,
in/out shardings, donated state) inside ``sharding.activation_rules(mesh)``;
initialise the state in place, or restore the latest checkpoint with its
iterator position (``resume=True``; a checkpoint of another model, tokenizer,
text encoder or data stream is a ``CheckpointError``, never a silent
re-initialisation); then loop. Each step's metrics are fetched one step late
(so the host keeps a step queued), and every loss is checked: a NaN/inf stops
the run with ``NonFiniteError`` naming the step and the batch's sample
indices, before any checkpoint of the bad state is written. Resuming is
exact: a run killed after a checkpoint and resumed reproduces the
uninterrupted run bit for bit (CPU), since the data position, the state and
the per-step key ``fold_in(key, step)`` are all restored.

One writer per work directory: process 0 holds ``WORKDIR/.lock``
(:mod:`mm_jax.runlock`) for the whole run, so a second run on it fails at
once (``LockError`` naming the holder). A :class:`~mm_jax.train.interrupt.StopRequest`
(SIGINT/SIGTERM, set by the CLI) or a multi-host preemption notice stops the
loop after the current step with a checkpoint of that step. The loop hands
the checkpointer every step (orbax's preemption saves need it) and stops at
the first checkpoint that could not be written (``StorageError``).

Every log row carries, beside the means of the window, ``perf/tokens_per_s``
(decoder positions, text + motion), ``perf/tflops_per_device``, ``perf/mfu``
(:mod:`mm_jax.perf`: its FLOP convention and peak table; absent for a device
kind without a peak), ``perf/tokens_total`` and ``perf/flops_total``
(cumulative from step 0). Every ``train.eval_every`` steps the fixed prompt
set is sampled and scored (``eval/*``, :mod:`mm_jax.train.periodic`), and
every ``train.export_every`` steps the saved checkpoint is exported.

This module never imports tensorflow: shards hold token ids, and the text
encoder runs in JAX inside the step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pathlib
import time
from typing import Any, Callable, Collection

import jax
import numpy as np

from mm_jax import configs, decoder_tokenizer, perf, runlock, sharding
from mm_jax.checkpoint import Checkpointer
from mm_jax.errors import CheckpointError, ConfigError, DataError
from mm_jax.pipeline import Pipeline, build_pipeline, global_batch
from mm_jax.shards.manifest import read_manifest
from mm_jax.text import weights as text_weights
from mm_jax.tracking import MetricsWriter, truncate_metrics
from mm_jax.train import periodic, setup, sizes
from mm_jax.train.config import ExperimentConfig
from mm_jax.train.interrupt import StopRequest
from mm_jax.train.recipe import TrainState, host_metrics
from mm_jax.train.step import BATCH_KEYS

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def run(exp: ExperimentConfig, workdir: str | pathlib.Path, *, resume: bool = False,
        progress: Progress | None = None, writer: MetricsWriter | None = None,
        until: int | None = None, stop: StopRequest | None = None,
        explicit: Collection[str] = (), profile: tuple[int, int] | None = None) -> dict[str, Any]:
    """Trains the decoder to ``exp.train.steps`` (or ``until``); returns a summary dict.

    Args:
      exp: the experiment config (``exp.shards_dir`` must be set).
      workdir: run directory (config.json, metrics.jsonl, tb/, checkpoints/),
        locked by process 0 for the run.
      resume: continue from the latest checkpoint in ``workdir`` (a fresh
        start when there is none). Without it, a workdir that already holds
        checkpoints is refused.
      progress: ``progress(done, total)`` after every step.
      writer: metrics writer; default ``MetricsWriter(workdir)`` (active on process 0),
        after dropping rows past the restored step that a killed run left behind.
      until: stop after this step (saving a checkpoint there) although the
        schedule spans ``exp.train.steps``: a job of limited time trains a
        segment and a later ``resume=True`` call continues exactly.
      stop: a request (SIGINT/SIGTERM) to stop after the current step; the
        loop saves that step and sets ``stop.stopped_at``.
      explicit: the dotted config keys the user set (``sizes.override_keys``).
        S, N, the codebook and the text width are taken from their owners
        (:func:`mm_jax.train.sizes.bind_to_data`); an explicit key that
        contradicts its owner is a ConfigError.
      profile: ``(A, B)``: a ``jax.profiler`` trace of steps A..B into ``workdir/profile``.

    Returns:
      ``{"workdir", "start_step", "final_step", "train/loss", "train/accuracy",
      "val/loss", "val/accuracy", "perf/tokens_per_s", "perf/mfu", "perf/compile_s",
      "params/total", "params/non_embedding", "params/matmul_per_token",
      "checkpoint_step"}`` (val keys only when validation ran, ``eval/*`` when
      evaluation ran, ``perf/mfu`` when the device kind has a peak).

    Raises:
      ConfigError: bad or inconsistent configs (batch vs mesh...).
      DataError: missing shards, or shards of another tokenizer or vocabulary.
      CheckpointError: a checkpoint of another run, or checkpoints present without ``resume``.
      NonFiniteError: the loss became NaN/inf; the last good checkpoint is kept.
      LockError: another process is training in ``workdir``.
      StorageError: a checkpoint or metrics row could not be written (full disk);
        the previous checkpoints are kept.
    """
    if not exp.shards_dir:
        raise ConfigError("ExperimentConfig.shards_dir is empty: set it to a shards directory "
                          "(`mm-jax data tokenize` output), e.g. --set shards_dir=runs/shards")
    workdir = pathlib.Path(workdir).absolute()
    with runlock.lock_dir(workdir) if jax.process_index() == 0 else contextlib.nullcontext():
        exp = sizes.bind_to_data(exp, read_manifest(exp.shards_dir), explicit)
        return _run(exp, workdir, resume=resume, progress=progress, writer=writer, until=until,
                    stop=stop if stop is not None else StopRequest(), profile=profile)


def _run(exp: ExperimentConfig, workdir: pathlib.Path, *, resume: bool, progress: Progress | None,
         writer: MetricsWriter | None, until: int | None, stop: StopRequest,
         profile: tuple[int, int] | None) -> dict[str, Any]:
    """:func:`run` inside the work directory's lock."""
    mesh = sharding.make_mesh(exp.mesh)
    text_host, weights_ident = text_weights.frozen_params(exp.text, exp.text_weights, exp.train.seed)
    vocab = exp.text_vocab_identity or setup.vocab_identity(exp.text)
    train_pipe = build_pipeline(exp.shards_dir, exp.pipeline, split="train",
                                tokenizer_identity=setup.tokenizer_identity(exp),
                                text_identity={"vocab_identity": vocab})
    _check_text_encoder(train_pipe.manifest, exp)
    exp = decoder_tokenizer.record(exp, train_pipe.manifest)  # config.json names the tokenizer by absolute path
    evaluate = periodic.build_eval(exp, text_host)  # before compiling: a missing tokenizer fails fast
    text_ident = {"vocab_identity": vocab, "encoder": configs.to_dict(exp.text), "weights": weights_ident}
    meta = setup.run_meta(exp, train_pipe.manifest, text_ident)
    placement = setup.place(exp.model, exp.train, exp.pipeline, mesh, max_replicated=exp.mesh.max_replicated)
    with contextlib.ExitStack() as cleanup:  # closes without raising over an error (full disk, signal)
        ckpt = cleanup.enter_context(Checkpointer(
            workdir / "checkpoints", max_to_keep=exp.train.keep_checkpoints,
            async_save=exp.train.async_checkpoint, save_every=exp.train.ckpt_every))
        data_iter = train_pipe.iterator()
        state = _initial_state(exp, placement, ckpt, meta, data_iter, resume)  # before compiling: fail fast
        start = int(jax.device_get(state.step))
        _check_until(until, start, exp.train.steps, workdir)
        text_abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), text_host)
        val_pipe = _val_pipeline(exp)
        compiled = setup.compile_steps(exp.model, exp.train, exp.pipeline, placement, text_abstract,
                                       with_eval=val_pipe is not None)
        if jax.process_index() == 0:
            workdir.mkdir(parents=True, exist_ok=True)
            configs.save_json(exp, workdir / "config.json")
            if writer is None:  # a caller's open writer keeps its file; the caller owns its history
                truncate_metrics(workdir / "metrics.jsonl", start)
        if writer is None:
            writer = cleanup.enter_context(MetricsWriter(workdir))
        window = periodic.ProfileWindow(*profile, workdir / "profile") if profile else None
        if window is not None:
            cleanup.callback(window.close)
        loop = _Loop(exp=exp, placement=placement, compiled=compiled, ckpt=ckpt, meta=meta,
                     data_iter=data_iter,
                     val_pipe=val_pipe, text_params=setup.replicate(text_host, mesh),
                     key=setup.replicated_key(exp.train.seed, mesh), writer=writer, progress=progress,
                     interrupt=stop, evaluate=evaluate, workdir=workdir,
                     profile=window)
        summary = loop.run(state, start, exp.train.steps if until is None else min(until, exp.train.steps))
    summary.update({"workdir": str(workdir), "perf/compile_s": compiled.compile_s,
                    "checkpoint_step": ckpt.latest_step(), **param_counts(exp.model)})
    return summary


def param_counts(model: Any) -> dict[str, int]:
    """``params/total``; ``params/non_embedding``: without the two vocabulary tables (motion embedding and
    output head, the scaling-law count); ``params/matmul_per_token``: the FLOP count's N (blocks + head)."""
    total = model.num_params()
    return {"params/total": total, "params/non_embedding": total - 2 * model.padded_vocab_size * model.width,
            "params/matmul_per_token": model.non_embedding_params()}


def _check_until(until: int | None, start: int, steps: int, workdir: pathlib.Path) -> None:
    """``until`` must lie past the step the run resumes from; above ``steps`` it is capped, and said so."""
    if until is None:
        return
    if until <= start:
        raise ConfigError(f"--until {until}: the run in {workdir} is already at step {start}; "
                          f"nothing to train (give a step in ({start}, {steps}])")
    if until > steps:
        log.warning("--until %d is past the schedule's %d steps: training stops at step %d", until, steps, steps)


def _check_text_encoder(manifest: dict[str, Any], exp: ExperimentConfig) -> None:
    """The shards' text stage must name the same encoder (the budget S may differ)."""
    ident = str(manifest["text"].get("config_identity", ""))
    if not ident.startswith(f"{exp.text.name}/"):
        raise DataError(f"shards in {exp.shards_dir} were tokenized for text encoder {ident!r}, "
                        f"not {exp.text.name!r}")


def _val_pipeline(exp: ExperimentConfig) -> Pipeline | None:
    """The val split's pipeline (no text dropout, one process-local slice), or None."""
    if exp.train.val_every == 0:
        return None
    cfg = dataclasses.replace(exp.pipeline, text_dropout=0.0, num_epochs=None, worker_count=0)
    try:
        return build_pipeline(exp.shards_dir, cfg, split="val")
    except (DataError, ConfigError) as e:
        log.warning("validation disabled: %s", e)
        return None


def _initial_state(exp: ExperimentConfig, placement: setup.Placement, ckpt: Checkpointer,
                   meta: dict[str, Any], data_iter: Any, resume: bool) -> TrainState:
    """A fresh state, or the latest checkpoint (with the iterator's position) when resuming."""
    latest = ckpt.latest_step()
    if latest is not None and not resume:
        raise CheckpointError(f"{ckpt.directory} already holds checkpoints (latest step {latest}); "
                              "resume=True (--resume) continues the run, or use a new workdir")
    if latest is None:
        if resume:
            log.info("no checkpoint in %s: starting from scratch", ckpt.directory)
        return setup.init_state(exp.model, placement, key=setup.init_key(exp.train.seed))
    step, tree, _ = ckpt.restore(placement.abstract_state.to_dict(), expected_meta=setup.checked_meta(meta),
                                 data_iter=data_iter)
    log.info("resumed from step %d of %s", step, ckpt.directory)
    return TrainState.from_dict(tree)


@dataclasses.dataclass
class _Window:
    """Host-side train metrics since the last log row."""

    rows: list = dataclasses.field(default_factory=list)
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    def summary(self, positions_per_step: int) -> dict[str, float]:
        n, dt = len(self.rows), time.perf_counter() - self.t0
        mean = {k: float(np.mean([r[k] for r in self.rows])) for k in ("loss", "accuracy", "grad_norm")}
        targets = sum(r["tokens"] for r in self.rows)
        return {"train/loss": mean["loss"], "train/accuracy": mean["accuracy"],
                "train/grad_norm": mean["grad_norm"], "train/lr": self.rows[-1]["lr"],
                "train/param_norm": self.rows[-1]["param_norm"],
                "perf/step_time_s": dt / n, "perf/tokens_per_s": positions_per_step * n / dt,
                "perf/target_tokens_per_s": targets / dt}


@dataclasses.dataclass(kw_only=True)
class _Loop:
    """The step loop of :func:`run` (state lives in :meth:`run`'s locals, not here)."""

    exp: ExperimentConfig
    placement: setup.Placement
    compiled: setup.Compiled
    ckpt: Checkpointer
    meta: dict[str, Any]
    data_iter: Any
    val_pipe: Pipeline | None
    text_params: Any
    key: jax.Array
    writer: MetricsWriter
    progress: Progress | None
    interrupt: StopRequest
    evaluate: periodic.InTrainingEval | None = None
    workdir: pathlib.Path | None = None
    profile: periodic.ProfileWindow | None = None

    def run(self, state: TrainState, start: int, stop: int) -> dict[str, Any]:
        """Steps ``start + 1 .. stop``; an interrupt or preemption ends it early at a saved step."""
        cfg, total = self.exp.train, self.exp.train.steps
        window, pending, summary, rates, mfus = _Window(), None, {}, [], []
        if self.interrupt.requested:  # during start-up: no step taken, nothing new to save
            self.interrupt.stopped_at, stop = start, start
        for done in range(start + 1, stop + 1):
            local = self._next_batch(done)
            batch = global_batch({k: local[k] for k in BATCH_KEYS}, self.placement.mesh,
                                 self.placement.batch_sharding)
            if self.profile is not None:
                self.profile.before(done)
            state, metrics = self.compiled.train_step(state, batch, self.key, self.text_params)
            if self.profile is not None:
                self.profile.after(done, metrics)
            if pending is not None:
                window.rows.append(self._fetch(*pending))
            pending = (done, metrics, np.asarray(local["sample_index"]))
            halt = self.interrupt.requested or self.ckpt.reached_preemption(done)
            last = done == stop or halt
            is_val = self.val_pipe is not None and cfg.val_every and done % cfg.val_every == 0
            is_ckpt = done % cfg.ckpt_every == 0 or last
            is_eval = self.evaluate is not None and done % cfg.eval_every == 0
            if done % cfg.log_every == 0 or last or is_val or is_ckpt or is_eval:
                window.rows.append(self._fetch(*pending))  # a NaN stops here, before the save
                pending = None
            if (done % cfg.log_every == 0 or last) and window.rows:
                row = self._log(done, window)
                rates.append(row["perf/tokens_per_s"])
                mfus += [row["perf/mfu"]] if "perf/mfu" in row else []
                summary.update(row)
                window = _Window()
            if is_val or (done == total and self.val_pipe is not None):
                summary.update(self._validate(state.params))
                self.writer.write(done, {k: summary[k] for k in ("val/loss", "val/accuracy")})
            if is_eval:
                summary.update(self._write(done, self.evaluate(state.params)))
            # Every step: orbax saves on the interval, when forced, and at a preemption step.
            self.ckpt.save(done, state.to_dict(), self.meta, data_iter=self.data_iter, force=is_ckpt)
            if cfg.export_every and done % cfg.export_every == 0:
                self.ckpt.wait()  # the export reads the checkpoint just started
                self._write(done, periodic.export_step(self.workdir, done))
            if is_val or is_ckpt or is_eval:
                window.t0 = time.perf_counter()  # time steps, not validation, evaluation or saving
            if self.progress is not None:
                self.progress(done, total)
            if halt:
                self.interrupt.stopped_at, stop = done, done
                break
            self.ckpt.check()  # a failed background save stops the run here, not steps later
        summary = {k: v for k, v in summary.items() if k.startswith(("train/", "val/", "eval/"))}
        return {**summary, "start_step": start, "final_step": max(start, stop),
                "perf/tokens_per_s": float(np.median(rates)) if rates else float("nan"),
                **({"perf/mfu": float(np.median(mfus))} if mfus else {})}

    def _write(self, step: int, row: dict[str, Any]) -> dict[str, Any]:
        self.writer.write(step, row)
        return row

    def _log(self, done: int, window: "_Window") -> dict[str, float]:
        """Writes the train row of the window ending at ``done``, with throughput, FLOP/s and MFU."""
        pipe = self.exp.pipeline
        seq = pipe.max_text_tokens + pipe.max_motion_tokens
        positions = pipe.global_batch_size * seq
        row = window.summary(positions)
        fpt = perf.flops_per_token(self.exp.model, seq)
        n_dev = jax.device_count()
        tok_s = row["perf/tokens_per_s"]
        row["perf/tflops_per_device"] = tok_s * fpt / n_dev / 1e12
        mfu = perf.mfu(tok_s, fpt, device_kind=jax.devices()[0].device_kind, num_devices=n_dev)
        if mfu is not None:
            row["perf/mfu"] = mfu
        row["perf/tokens_total"] = float(done * positions)
        row["perf/flops_total"] = float(done * positions) * fpt
        return self._write(done, row)

    def _next_batch(self, step: int) -> dict[str, np.ndarray]:
        try:
            return next(self.data_iter)
        except StopIteration:
            raise DataError(f"the train split ran out of batches before step {step}: pipeline.num_epochs="
                            f"{self.exp.pipeline.num_epochs}; use num_epochs=None or fewer steps") from None

    def _fetch(self, step: int, metrics: dict[str, jax.Array], sample_index: np.ndarray) -> dict[str, float]:
        """Host metrics of ``step``; NonFiniteError (before any save of that state) on a NaN/inf."""
        return host_metrics(metrics, step=step, watched=("loss", "grad_norm", "param_norm"), on_bad=self.ckpt.wait,
                            context=lambda: (f"batch sample indices {sample_index.tolist()} (process "
                                             f"{jax.process_index()}); the state of step {step} was not saved; the "
                                             f"last good checkpoint is step {self.ckpt.latest_step()} in "
                                             f"{self.ckpt.directory}"))

    def _validate(self, params: Any) -> dict[str, float]:
        """Token-mean loss and accuracy over ``val_batches`` fixed batches of the val split."""
        it = self.val_pipe.iterator()
        sums = None
        for _ in range(self.exp.train.val_batches):
            local = next(it)
            batch = global_batch({k: local[k] for k in BATCH_KEYS}, self.placement.mesh,
                                 self.placement.batch_sharding)
            out = self.compiled.eval_step(params, batch, self.text_params)
            sums = out if sums is None else jax.tree.map(lambda a, b: a + b, sums, out)
        host = {k: float(v) for k, v in jax.device_get(sums).items()}
        denom = max(host["tokens"], 1.0)
        return {"val/loss": host["nll"] / denom, "val/accuracy": host["correct"] / denom}
