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
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pathlib
from typing import Callable

import jax
import numpy as np
import optax

from mm_jax.errors import DataError
from mm_jax.eval import evaluator as E
from mm_jax.eval import metrics as emetrics
from mm_jax.metrics import MetricsWriter

log = logging.getLogger(__name__)


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
                    progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Trains for ``steps`` steps, validates, saves the artefact; returns the last metrics."""
    from mm_jax.motion.synth import load_dataset

    out_dir = pathlib.Path(out_dir)
    ds = load_dataset(data_dir)
    enc = E.TextEncoder.load()
    splits, table = _prepare(ds, enc, out_dir / "caption_embeddings.npz")
    opt = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, min(100, steps // 10 + 1),
                                                         max(steps, 2)), weight_decay=cfg.weight_decay)
    params = E.init_params(cfg, key=jax.random.key(cfg.seed))
    state = (params, opt.init(params))
    step_fn = jax.jit(E.make_train_step(cfg, opt), donate_argnums=0)
    writer = MetricsWriter(out_dir, tensorboard=False)
    identity = E.identity_of(cfg, enc.identity())
    metrics: dict[str, float] = {}
    for step in range(1, steps + 1):
        batch = sample_batch(ds.features, ds.normalizer, splits["train"], table, cfg, step)
        state, m = step_fn(state, batch)
        if step % cfg.val_every == 0 or step == steps:
            ev = E.Evaluator(cfg, state[0], ds.normalizer, identity)
            metrics = {k: float(v) for k, v in m.items()} | validate(ev, ds.features, splits["val"], table)
            if not np.isfinite(metrics["train/loss"]):
                raise DataError(f"evaluator loss became {metrics['train/loss']} at step {step}")
            writer.write(step, metrics)
            log.info("evaluator step %d: %s", step, metrics)
        if progress is not None:
            progress(step, steps)
    writer.close()
    ev = E.Evaluator(cfg, state[0], ds.normalizer, identity)
    E.save_evaluator(ev, out_dir, step=steps, extra={"data_dir": str(data_dir), "text": enc.identity(),
                                                     "val": metrics, "val_split": splits["val"].name})
    return metrics
