"""Training of the text/motion evaluator (stage: eval).

Input: a dataset directory (``mm_jax.motion.synth`` format). Output: an
evaluator run directory (see :mod:`mm_jax.eval.evaluator`). MiniLM sentence
embeddings of every caption are computed once up front (and cached in
``OUT/caption_embeddings.npz``, keyed by the captions and the encoder, so a
rerun into the same directory skips them); each step then draws
a batch of (random train sequence, random paraphrase, random crop).
Validation reports retrieval on the val split (or, when a dataset has none,
test, or train, the first that holds sequences; logged and saved as
``val_split``): R-precision (batches of 32)
when it has >= 32 sequences, else top-1 retrieval among all of them
(``val/top1_all``, chance 1/n).

The output directory is locked for the run (:mod:`mm_jax.runlock`). A
:class:`~mm_jax.train.interrupt.StopRequest` (SIGINT/SIGTERM) ends training
after the current step: the train state (params, optimizer state) goes to
``OUT/interrupted/`` (orbax) instead of the artefact, and ``resume=True``
(``--resume``) continues from it exactly (batches depend on the step only);
the directory is removed once the artefact is saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import pathlib
import shutil
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mm_jax import runlock
from mm_jax.checkpoint import Checkpointer
from mm_jax.errors import CheckpointError
from mm_jax.eval import evaluator as E
from mm_jax.eval import metrics as emetrics
from mm_jax.motion.synth import load_dataset
from mm_jax.tracking import MetricsWriter, truncate_metrics
from mm_jax.train import recipe
from mm_jax.train.interrupt import StopRequest
from mm_jax.train.recipe import TrainState

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"  # OUT/interrupted/: the train state of a stopped run (orbax)


@dataclasses.dataclass(frozen=True)
class _Split:
    """Spans of one split and the rows of its captions in the sentence table."""

    name: str
    offsets: np.ndarray
    lengths: np.ndarray
    cap_start: np.ndarray
    cap_count: np.ndarray


def _sentence_table(enc: E.TextEncoder, uniq: list[str], cache: pathlib.Path) -> np.ndarray:
    """MiniLM embeddings of ``uniq``, reusing ``cache`` when it was made for the same captions and encoder."""
    key = hashlib.sha256(json.dumps([enc.identity(), uniq]).encode()).hexdigest()
    if cache.is_file():
        with np.load(cache) as z:
            if str(z["key"]) == key:
                log.info("reusing caption embeddings from %s", cache)
                return z["table"]
    log.info("encoding %d distinct captions with MiniLM", len(uniq))
    table = enc.sentences(uniq)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=np.asarray(key), table=table)
    return table


def _prepare(ds, enc: E.TextEncoder, cache: pathlib.Path) -> tuple[dict[str, _Split], np.ndarray]:
    captions: list[str] = []
    splits = {}
    val_split = ds.default_split("val")
    if val_split != "val":
        log.warning("%s has no val split; validating the evaluator on its %s split", ds.path, val_split)
    for role, split in (("train", ds.resolve_split("train")), ("val", val_split)):
        recs = [ds.record(i) for i in ds.ids(split)]
        start = []
        for r in recs:
            start.append(len(captions))
            captions += list(r["captions"])
        splits[role] = _Split(split, np.asarray([r["offset"] for r in recs]),
                              np.asarray([r["length"] for r in recs]), np.asarray(start),
                              np.asarray([len(r["captions"]) for r in recs]))
    uniq = sorted(set(captions))
    table = _sentence_table(enc, uniq, cache)
    row = {c: i for i, c in enumerate(uniq)}
    return splits, table[[row[c] for c in captions]]


def sample_batch(features, normalizer, sp: _Split, table: np.ndarray, cfg: E.EvaluatorConfig, step: int):
    """(x [B, T, F] normalised, mask [B, T], sentence embeddings [B, 384]) for ``step``."""
    rng = np.random.default_rng([cfg.seed, step])
    b, t = cfg.batch_size, cfg.max_frames
    idx = rng.integers(0, len(sp.offsets), size=b)
    n = np.minimum(sp.lengths[idx], t)
    starts = sp.offsets[idx] + rng.integers(0, sp.lengths[idx] - n + 1)
    frame = np.minimum(np.arange(t)[None, :], n[:, None] - 1)  # edge-pad past the crop
    x = np.asarray(normalizer.normalize(features[starts[:, None] + frame]), np.float32)
    mask = np.arange(t)[None, :] < n[:, None]
    caps = sp.cap_start[idx] + rng.integers(0, sp.cap_count[idx])
    return x, mask, table[caps]


def validate(ev: E.Evaluator, features, sp: _Split, table: np.ndarray) -> dict[str, float]:
    """Retrieval on a split with each sequence's first caption."""
    clips = [features[o : o + n] for o, n in zip(sp.offsets, sp.lengths)]
    m = E.embed_motion(ev, clips)
    t = E.embed_sentences(ev, table[sp.cap_start])
    out = {"val/mm_dist": emetrics.matching_score(t, m)}
    if len(clips) >= emetrics.R_PRECISION_BATCH:
        out.update({f"val/r_precision/{k}": v for k, v in emetrics.r_precision(t, m).items()})
    d = emetrics.distance_matrix(t.astype(np.float64), m.astype(np.float64))
    out["val/top1_all"] = float((d.argmin(1) == np.arange(len(clips))).mean())
    out["val/top1_all_chance"] = 1.0 / len(clips)
    return out


def train_evaluator(cfg: E.EvaluatorConfig, data_dir, out_dir, *, steps: int,
                    progress: Callable[[int, int], None] | None = None, resume: bool = False,
                    stop: StopRequest | None = None) -> dict[str, float]:
    """Trains for ``steps`` steps, validates, saves the artefact; returns the last metrics.

    Args:
      resume: continue the stopped run in ``out_dir`` (from ``OUT/interrupted/``;
        a fresh start when there is none).
      stop: a request (SIGINT/SIGTERM) to stop after the current step: the
        train state is saved for ``resume`` and ``stop.stopped_at`` set; no
        artefact is written.

    Raises:
      CheckpointError: an interrupted run in ``out_dir`` without ``resume``, or
        one of another config, text encoder or step count.
      LockError: another process is writing ``out_dir``.
      StorageError: the train state or a metrics row could not be written.
    """

    out_dir = pathlib.Path(out_dir)
    ds = load_dataset(data_dir)
    with runlock.lock_dir(out_dir):
        return _train(cfg, ds, data_dir, out_dir, steps=steps, progress=progress, resume=resume,
                      stop=stop if stop is not None else StopRequest())


def _train(cfg: E.EvaluatorConfig, ds, data_dir, out_dir: pathlib.Path, *, steps: int, progress, resume: bool,
           stop: StopRequest) -> dict[str, float]:
    """:func:`train_evaluator` inside the output directory's lock."""
    enc = E.TextEncoder.load()
    splits, table = _prepare(ds, enc, out_dir / "caption_embeddings.npz")
    opt = recipe.adamw(recipe.warmup_cosine(cfg.learning_rate, min(100, steps // 10 + 1), steps, 0.0),
                       weight_decay=cfg.weight_decay)
    step_fn = jax.jit(make_train_step(cfg, opt), donate_argnums=0)
    identity = E.identity_of(cfg, enc.identity())
    meta = {"identity": identity, "steps": steps, "config": dataclasses.asdict(cfg)}
    with contextlib.ExitStack() as cleanup:
        ckpt = cleanup.enter_context(Checkpointer(out_dir / INTERRUPTED, max_to_keep=1, async_save=False))
        start, state = _initial_state(cfg, opt, ckpt, meta, resume)
        truncate_metrics(out_dir, start)
        writer = cleanup.enter_context(MetricsWriter(out_dir, tensorboard=False))
        state, metrics = _loop(state, step_fn, ds, splits, table, cfg, identity, range(start + 1, steps + 1),
                               writer, progress, stop, lambda step, st: ckpt.save(step, st.to_dict(), meta))
    if stop.stopped_at is not None:
        return metrics
    ev = E.Evaluator(cfg, state.params, ds.normalizer, identity)
    if (out_dir / "checkpoints").exists():  # orbax keeps an old step rather than overwrite it: replace it
        log.info("replacing the evaluator saved in %s", out_dir)
        shutil.rmtree(out_dir / "checkpoints")
    E.save_evaluator(ev, out_dir, step=steps, extra={"data_dir": str(data_dir), "text": enc.identity(),
                                                     "val": metrics, "val_split": splits["val"].name})
    shutil.rmtree(out_dir / INTERRUPTED, ignore_errors=True)  # the artefact supersedes it
    return metrics


def make_train_step(cfg: E.EvaluatorConfig, opt: optax.GradientTransformation) -> Callable:
    """The pure ``step(state: TrainState, batch) -> (state, metrics)`` of the InfoNCE objective."""
    def step(state: TrainState, batch):
        (_, metrics), grads = jax.value_and_grad(
            lambda p: E.infonce_loss(cfg, p, *batch), has_aux=True)(state.params)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        return TrainState(state.step + 1, optax.apply_updates(state.params, updates), opt_state), metrics

    return step


def _initial_state(cfg: E.EvaluatorConfig, opt, ckpt: Checkpointer, meta: dict, resume: bool):
    """(start step, TrainState): fresh, or the interrupted run's when resuming."""
    params = E.init_params(cfg, key=jax.random.key(cfg.seed))
    state = TrainState(jnp.int32(0), params, opt.init(params))
    latest = ckpt.latest_step()
    if latest is None:
        if resume:
            log.info("no interrupted evaluator run in %s: training from step 0", ckpt.directory.parent)
        return 0, state
    if not resume:
        raise CheckpointError(f"{ckpt.directory.parent} holds an evaluator run stopped at step {latest}; "
                              "resume=True (--resume) continues it, or use a new directory")
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state.to_dict())
    step, tree, _ = ckpt.restore(abstract, expected_meta=meta)
    log.info("resumed the evaluator from step %d of %s", step, ckpt.directory)
    return step, TrainState.from_dict(tree)


def _loop(state, step_fn, ds, splits, table, cfg, identity, steps: range, writer, progress, stop: StopRequest,
          save: Callable[[int, Any], Any]):
    """The step loop of :func:`train_evaluator`; on a stop request ``save(step, state)`` and return early."""
    metrics: dict[str, float] = {}
    if stop.requested:  # during start-up: no step taken, nothing new to save
        stop.stopped_at = steps.start - 1
        return state, metrics
    for step in steps:
        batch = sample_batch(ds.features, ds.normalizer, splits["train"], table, cfg, step)
        state, m = step_fn(state, batch)
        if step % cfg.val_every == 0 or step == steps.stop - 1:
            ev = E.Evaluator(cfg, state.params, ds.normalizer, identity)
            host = recipe.host_metrics(m, step=step, watched=("train/loss",),
                                       context=lambda: "the evaluator's loss; no artefact was written")
            metrics = host | validate(ev, ds.features, splits["val"], table)
            writer.write(step, metrics)
            log.info("evaluator step %d: %s", step, metrics)
        if progress is not None:
            progress(step, steps.stop - 1)
        if stop.requested and step < steps.stop - 1:
            recipe.host_metrics(m, step=step, watched=("train/loss",),
                                context=lambda: "the evaluator's loss; its state was not saved")
            save(step, state)
            stop.stopped_at = step
            break
    return state, metrics
