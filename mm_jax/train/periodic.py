"""Evaluation and export during a decoder run, every ``eval_every`` / ``export_every`` steps (stage: train).

Inputs: the run's experiment config, its shards (the fixed prompt set is
the first ``train.eval_prompts`` records of the val split, or of train when
there is no val split: their first caption's token ids and raw text, and
their ground-truth codes), the motion tokenizer run the shards were made
with, optionally a trained evaluator (``train.evaluator_dir``), and the
current params. Outputs: a flat ``eval/*`` dict the loop writes to the same
``metrics.jsonl`` as ``train/*`` (``mm-jax plot`` draws it):

* ``eval/jerk``, ``eval/foot_skating`` (:mod:`mm_jax.eval.quality`, mean over
  the prompts), ``eval/length_codes`` (mean sampled codes before EOS), and
  the same quality figures of the ground truth decoded by the tokenizer
  (``eval/real_jerk``, ``eval/real_foot_skating``, computed once) to read them against;
* with an evaluator: ``eval/fid`` (generated vs ground-truth codes decoded by
  the same tokenizer: this measures the decoder, not the tokenizer),
  ``eval/r_precision_top{1,2,3}`` (the true caption among min(32, P)) and
  ``eval/mm_dist``. With P = 16 prompts FID is biased upward (a covariance
  from 16 points); read it as a curve, not against published figures.

Sampling is that of ``mm-jax evaluate`` (top-p 0.95, temperature 1,
classifier-free guidance 2.5 against the empty caption) under one fixed key
(``seed_key(train.seed)``), so two evaluations differ only by the params.
The text features come from the shards' token ids through the run's own
frozen encoder: the training process needs no text tokenizer (the evaluator's
caption embeddings do load one, once, when an evaluator is given).

Export writes ``WORKDIR/export/step_{k}`` with :func:`mm_jax.export.run.export_run`
(the ``mm-jax export`` writer) from the checkpoint of step k, after waiting
for that checkpoint to be on disk.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mm_jax.errors import ConfigError, DataError, ExportError
from mm_jax.eval import metrics as M
from mm_jax.eval import quality as Q
from mm_jax.eval.evaluator import embed_motion, embed_text, load_evaluator
from mm_jax.export.run import export_run
from mm_jax.generate import decode_codes
from mm_jax.motion.features import joints_from_features
from mm_jax.sample import empty_text, sample, seed_key
from mm_jax.shards.reader import ShardSource
from mm_jax.text.encoder import encode
from mm_jax.text.tokenize import PAD_ID
from mm_jax.tokenizer.artifact import load_tokenizer
from mm_jax.train.config import ExperimentConfig

log = logging.getLogger(__name__)

SAMPLING = {"temperature": 1.0, "top_k": 0, "top_p": 0.95, "cfg_scale": 2.5}


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """The fixed prompt set: P captions, their ids [P, S] and mask [P, S], and P ground-truth code arrays."""

    captions: list[str]
    text_ids_ps: np.ndarray
    text_mask_ps: np.ndarray
    real_codes: list[np.ndarray]


def load_eval_set(shards_dir: str | pathlib.Path, num: int, max_text_tokens: int) -> EvalSet:
    """The first ``num`` records of the val split (train when val is empty or absent)."""
    try:
        src = ShardSource(shards_dir, "val")
        if len(src) == 0:
            raise DataError("empty val split")
    except (DataError, KeyError) as e:
        log.warning("in-training evaluation: no val records (%s); using the train split's first records", e)
        src = ShardSource(shards_dir, "train")
    recs = [src.record(i) for i in range(min(num, len(src)))]
    ids = np.full((len(recs), max_text_tokens), PAD_ID, np.int32)
    for p, rec in enumerate(recs):
        row = rec.caption_ids[0][:max_text_tokens]
        ids[p, : row.size] = row
    mask = np.arange(max_text_tokens)[None] < np.array([min(r.caption_ids[0].size, max_text_tokens)
                                                        for r in recs])[:, None]
    return EvalSet([r.captions[0] for r in recs], ids, mask, [np.asarray(r.motion_codes, np.int32) for r in recs])


class InTrainingEval:
    """Scores the current params on the fixed prompt set; ``__call__(params) -> {"eval/...": float}``."""

    def __init__(self, exp: ExperimentConfig, text_params: Any, *, tokenizer: Any, evaluator: Any = None):
        self.exp, self.tok, self.ev = exp, tokenizer, evaluator
        self.set = load_eval_set(exp.shards_dir, exp.train.eval_prompts, exp.pipeline.max_text_tokens)
        self.text_psc, _ = jax.jit(encode)(text_params, jnp.asarray(self.set.text_ids_ps),
                                           jnp.asarray(self.set.text_mask_ps))
        self.uncond = empty_text(text_params, max_tokens=exp.pipeline.max_text_tokens)
        self.fixed = self._reference()

    def _reference(self) -> dict[str, Any]:
        """What does not change during the run: the ground truth's quality, embeddings and the caption embeddings."""
        real = decode_codes(self.tok, [c if c.size else np.zeros(1, np.int32) for c in self.set.real_codes])
        q = _quality(real)
        out: dict[str, Any] = {"eval/real_jerk": q["jerk"], "eval/real_foot_skating": q["foot_skating"]}
        if self.ev is not None:
            out["real_emb"] = embed_motion(self.ev, real)
            out["text_emb"] = embed_text(self.ev, self.set.captions)
        return out

    def __call__(self, params: Any) -> dict[str, float]:
        t0 = time.perf_counter()
        cfg = self.exp.model
        tokens, lengths = sample(cfg, params, self.text_psc, jnp.asarray(self.set.text_mask_ps),
                                 key=seed_key(self.exp.train.seed), max_new_tokens=cfg.max_motion_tokens - 1,
                                 uncond_text_bsc=self.uncond[0], uncond_text_mask_bs=self.uncond[1], **SAMPLING)
        tokens, lengths = np.asarray(tokens), np.asarray(lengths)
        codes = [t[: max(int(n), 1)] for t, n in zip(tokens, lengths)]
        feats = decode_codes(self.tok, codes)
        q = _quality(feats)
        row = {"eval/jerk": q["jerk"], "eval/foot_skating": q["foot_skating"],
               "eval/length_codes": float(np.mean(lengths)),
               **{k: v for k, v in self.fixed.items() if k.startswith("eval/")}}
        if self.ev is not None:
            row.update(self._evaluator_row(feats))
        row["eval/seconds"] = time.perf_counter() - t0
        return row

    def _evaluator_row(self, feats: list[np.ndarray]) -> dict[str, float]:
        emb = embed_motion(self.ev, feats)
        n = len(feats)
        r = M.r_precision(self.fixed["text_emb"], emb, key=jax.random.key(self.exp.train.seed),
                          batch_size=min(32, n))
        return {"eval/fid": float(M.fid(self.fixed["real_emb"], emb)),
                **{f"eval/r_precision_top{k}": float(r[f"top{k}"]) for k in (1, 2, 3) if f"top{k}" in r},
                "eval/mm_dist": float(M.matching_score(self.fixed["text_emb"], emb))}


def _quality(feats: list[np.ndarray]) -> dict[str, float]:
    q = Q.mean_quality([np.asarray(joints_from_features(f)) for f in feats])
    return {"jerk": float(q["quality/jerk"]), "foot_skating": float(q["quality/foot_skating_ratio"])}


def build_eval(exp: ExperimentConfig, text_params: Any) -> InTrainingEval | None:
    """The evaluation of a run with ``train.eval_every > 0`` (None otherwise); loads the tokenizer and evaluator.

    Raises:
      ConfigError: ``eval_every`` is set but the run records no tokenizer run (nothing to decode codes with).
    """
    if not exp.train.eval_every:
        return None
    if exp.tokenizer_run is None:
        raise ConfigError("train.eval_every is set but the run has no tokenizer_run (its shards name none): "
                          "set tokenizer_run=DIR, or train.eval_every=0")
    tok = load_tokenizer(exp.tokenizer_run)
    if list(tok.cfg.fsq_levels) != list(exp.model.fsq_levels):
        raise ConfigError(f"tokenizer {exp.tokenizer_run} has fsq_levels {list(tok.cfg.fsq_levels)}, "
                          f"the decoder {list(exp.model.fsq_levels)}")
    ev = None
    if exp.train.evaluator_dir:
        ev = load_evaluator(exp.train.evaluator_dir)
    return InTrainingEval(exp, text_params, tokenizer=tok, evaluator=ev)


def export_step(workdir: pathlib.Path, step: int) -> dict[str, float]:
    """Exports the (saved) checkpoint of ``step`` to ``workdir/export/step_{step}``.

    Returns ``{"export/ok": 1, "export/seconds"}``; an export the writer refuses
    (``ExportError``: a config the torch port does not support...) is logged as
    an error and returns ``{"export/ok": 0}``: a periodic export never stops training.
    """
    try:
        result = export_run(workdir, workdir / "export" / f"step_{step}", step=step, overwrite=True)
    except ExportError as e:
        log.error("export of step %d failed (training continues): %s", step, e)
        return {"export/ok": 0.0}
    return {"export/ok": 1.0, "export/seconds": result.seconds}


def parse_profile_steps(text: str) -> tuple[int, int]:
    """``"A:B"`` -> (A, B): profile steps A..B inclusive, 1 <= A <= B (ConfigError naming the flag otherwise)."""
    try:
        first, last = (int(p) for p in text.split(":"))
    except ValueError:
        raise ConfigError(f"--profile-steps {text!r}: expected A:B, two step numbers, e.g. 5:8") from None
    if not 1 <= first <= last:
        raise ConfigError(f"--profile-steps {text!r}: need 1 <= A <= B")
    return first, last


@dataclasses.dataclass
class ProfileWindow:
    """A ``jax.profiler`` trace of steps ``first..last`` into ``directory`` (TensorBoard + Perfetto files).

    The trace starts before step ``first`` is dispatched (or the first step
    after a resume that lies in the window) and stops once step ``last``'s
    outputs are ready, so it holds exactly those steps' device work.
    """

    first: int
    last: int
    directory: pathlib.Path
    active: bool = False

    def before(self, step: int) -> None:
        if not self.active and self.first <= step <= self.last:
            self.directory.mkdir(parents=True, exist_ok=True)
            jax.profiler.start_trace(str(self.directory), create_perfetto_trace=True)
            self.active = True
            log.info("profiling steps %d..%d into %s", step, self.last, self.directory)

    def after(self, step: int, outputs: Any) -> None:
        if self.active and step >= self.last:
            jax.block_until_ready(outputs)
            self.close()

    def close(self) -> None:
        """Stops a trace in progress (the loop ended inside the window)."""
        if self.active:
            self.active = False
            jax.profiler.stop_trace()
            log.info("profile written to %s", self.directory)
