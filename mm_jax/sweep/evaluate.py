"""Scoring of sweep points with the one fixed evaluator, and the tokenizer's FID floor (stage: sweep).

Input: the sweep's dataset, its evaluator, a tokenizer run and a trained
decoder run. Output: flat metric dicts for ``runs.jsonl``.

:func:`reference` embeds the scored split once per sweep (the real motions,
their first captions) and measures the **floor**: the FID of the tokenizer's
own reconstructions of those motions (encode, decode, embed). A decoder
emits that tokenizer's codes, so no decoder can score below it.
:func:`score_point` samples one motion per caption from a decoder
(classifier-free guidance, top-p), decodes it with the run's tokenizer and
reports FID (with a bootstrap interval and the excess over the floor),
R-precision top-1/2/3, MM-Dist and diversity, each with its sample size. It
uses the same building blocks as ``mm_jax.eval.report.evaluate_decoder``
(``mm_jax.generate`` and ``mm_jax.eval.evaluator``) but scores only the
model row, so a sweep point costs one sampling pass.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Any

import jax
import numpy as np

from mm_jax.eval import metrics as M
from mm_jax.eval.evaluator import embed_motion, embed_text, Evaluator, load_evaluator
from mm_jax.generate import decode_codes, load_decoder, load_tokenizer_of, sample_codes, text_features
from mm_jax.motion.synth import load_dataset
from mm_jax.sweep.spec import EvalSpec
from mm_jax.tokenizer.artifact import encode_sequences, load_tokenizer

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Reference:
    """The scored split, embedded once: captions, text [B, E] and real-motion [B, E] embeddings."""

    evaluator: Evaluator
    split: str
    captions: list[str]
    text_emb: np.ndarray
    real_emb: np.ndarray
    real: list[np.ndarray]


def reference(data_dir: str | pathlib.Path, evaluator_dir: str | pathlib.Path, spec: EvalSpec) -> Reference:
    """Embeds the scored split of ``data_dir`` with the evaluator (first caption of each sequence)."""

    ds = load_dataset(data_dir)
    split = ds.resolve_split(spec.split)
    ids = ds.ids(split)[: spec.max_sequences]
    captions = [ds.record(i)["captions"][0] for i in ids]
    real = [np.asarray(ds.sequence(i), np.float32) for i in ids]
    ev = load_evaluator(evaluator_dir)
    return Reference(evaluator=ev, split=split, captions=captions, text_emb=embed_text(ev, captions),
                     real_emb=embed_motion(ev, real), real=real)


def _fid_block(ref: Reference, emb: np.ndarray, spec: EvalSpec, key: jax.Array) -> dict[str, Any]:
    ci = M.fid_bootstrap(ref.real_emb, emb, key=key, num_samples=spec.bootstrap)
    return {"fid": M.fid(ref.real_emb, emb), "fid_ci_lo": ci["lo"], "fid_ci_hi": ci["hi"],
            "fid_bootstrap_std": ci["std"], "fid_ci_level": ci["level"], "fid_bootstrap_samples": ci["num_samples"],
            "fid_num_real": int(len(ref.real_emb)), "fid_num_generated": int(len(emb))}


def tokenizer_floor(ref: Reference, tokenizer_run: str | pathlib.Path, spec: EvalSpec) -> dict[str, Any]:
    """FID (with its interval) of the tokenizer's reconstructions of the scored motions: the floor."""

    tok = load_tokenizer(tokenizer_run)
    fpt = tok.cfg.frames_per_token
    usable = [r[: len(r) - len(r) % fpt] for r in ref.real]  # whole tokens only, as the shards hold them
    codes = encode_sequences(tok, usable)
    emb = embed_motion(ref.evaluator, decode_codes(tok, codes))
    out = _fid_block(ref, emb, spec, jax.random.fold_in(jax.random.key(spec.seed), 7))
    log.info("tokenizer floor: FID %.4f [%.4f, %.4f] on %d %s motions", out["fid"], out["fid_ci_lo"],
             out["fid_ci_hi"], len(emb), ref.split)
    return {"tokenizer_run": str(tokenizer_run), "tokenizer_step": int(tok.step), **out}


def _sample(decoder_run: str | pathlib.Path, captions: list[str], spec: EvalSpec) -> tuple[list, Any]:
    """(codes of one motion per caption, cut at EOS with at least one code; the loaded tokenizer)."""

    dec = load_decoder(decoder_run)
    tok, _ = load_tokenizer_of(dec, decoder_run)
    text_params, text_psc, mask_ps = text_features(dec.exp, captions, None)
    options = {"temperature": 1.0, "top_k": 0, "top_p": spec.top_p, "cfg_scale": spec.cfg_scale}
    tokens, lengths = sample_codes(dec, text_params, text_psc, mask_ps, num_samples=1,
                                   max_new_tokens=dec.exp.model.max_motion_tokens - 1, options=options,
                                   seed=spec.seed)
    return [t[: max(int(n), 1)] for t, n in zip(tokens, lengths)], tok


def score_point(decoder_run: str | pathlib.Path, ref: Reference, floor: dict[str, Any],
                spec: EvalSpec) -> dict[str, Any]:
    """The metrics of one trained point (module docstring), flat, with sample sizes."""

    codes, tok = _sample(decoder_run, ref.captions, spec)
    emb = embed_motion(ref.evaluator, decode_codes(tok, codes))
    k_fid, k_r, k_d = jax.random.split(jax.random.key(spec.seed), 3)
    n = len(emb)
    pool = min(M.R_PRECISION_BATCH, n)
    r = M.r_precision(ref.text_emb, emb, key=k_r, batch_size=pool)
    pairs = min(spec.diversity_pairs, n)
    out = _fid_block(ref, emb, spec, k_fid)
    out.update({"fid_floor": floor["fid"], "fid_above_floor": out["fid"] - floor["fid"],
                **{f"r_precision_top{k}": r[f"top{k}"] for k in (1, 2, 3)},
                "r_precision_pool": pool, "r_precision_num": (n // pool) * pool,
                "mm_dist": M.matching_score(ref.text_emb, emb), "mm_dist_num": n,
                "diversity": M.diversity(emb, key=k_d, num_pairs=pairs), "diversity_pairs": pairs,
                "mean_motion_tokens": float(np.mean([len(c) for c in codes])),
                "eval_split": ref.split, "eval_seed": spec.seed, "cfg_scale": spec.cfg_scale, "top_p": spec.top_p})
    return out
