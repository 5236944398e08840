"""The evaluation report of a decoder run (stage: eval).

``evaluate_decoder(decoder_run, evaluator_dir, data_dir)`` scores four rows
on a split, every one through the same trained evaluator:

* ``real``: the split's own motion (the ceiling);
* ``model``: one motion per caption sampled from the decoder (classifier-free
  guidance, top-p), decoded by its tokenizer;
* ``random_tokens``: uniformly random codes with the model's lengths;
* ``untrained``: the same decoder at step 0 (fresh initialisation).

Each row has ``fid`` (against ``real``'s embeddings), ``r_precision_top1/2/3``
(the true caption among 32), ``mm_dist`` and ``diversity`` (min(300, n)
pairs), plus ``jerk`` and ``foot_skating`` of the joints. The generated rows
also have ``multimodality``: ``mm_repeats`` (10) motions for each of the first
``mm_texts`` (32) captions, 10 pairs per caption (the field samples 100
captions x 30 motions; this is the CPU-sized version, stated in the report);
``real`` has one motion per caption, so none. Captions are each
sequence's first paraphrase. A sample that emits EOS at once is scored with
one code (the shortest motion), so every caption has a motion.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import Any

import jax
import numpy as np

from mm_jax.errors import ConfigError
from mm_jax.eval import metrics as M
from mm_jax.eval import quality as Q
from mm_jax.eval.evaluator import embed_motion, embed_text, load_evaluator
from mm_jax.generate import decode_codes, load_decoder, load_tokenizer_of, sample_codes, text_features
from mm_jax.model import llama
from mm_jax.motion.features import joints_from_features
from mm_jax.motion.synth import load_dataset
from mm_jax.sample import SEED_LIMIT, seed_key

log = logging.getLogger(__name__)

ROWS = ("real", "model", "random_tokens", "untrained")
COLUMNS = ("fid", "r_precision_top1", "r_precision_top2", "r_precision_top3", "mm_dist", "diversity",
           "multimodality", "jerk", "foot_skating")
MM_PAIRS = 10


def _sampled_codes(dec: Any, captions: list[str], tok: Any, *, seed: int, cfg_scale: float,
                   num_samples: int = 1) -> list[np.ndarray]:
    """Codes of ``num_samples`` motions per caption (caption-major), each cut at EOS (at least one code)."""

    text_params, text_psc, mask_ps = text_features(dec.exp, captions, None)
    max_new = dec.exp.model.max_motion_tokens - 1
    options = {"temperature": 1.0, "top_k": 0, "top_p": 0.95, "cfg_scale": cfg_scale}
    tokens, lengths = sample_codes(dec, text_params, text_psc, mask_ps, num_samples=num_samples,
                                   max_new_tokens=max_new, options=options, seed=seed)
    return [t[: max(int(n), 1)] for t, n in zip(tokens, lengths)]


def random_codes(rng: np.random.Generator, codebook_size: int, like: list[np.ndarray]) -> list[np.ndarray]:
    """The random-token baseline: uniform codes in [0, codebook_size) with the lengths of ``like``."""
    return [rng.integers(0, codebook_size, len(c)).astype(np.int32) for c in like]


def _multimodality(ev: Any, tok: Any, codes: list[np.ndarray], num_texts: int, key: jax.Array) -> float:
    """MultiModality of ``codes`` (caption-major, ``len(codes) // num_texts`` motions per caption)."""

    emb = embed_motion(ev, decode_codes(tok, codes))
    return M.multimodality(emb.reshape(num_texts, len(codes) // num_texts, -1), key=key, num_pairs=MM_PAIRS)


def _row(ev: Any, text_emb: np.ndarray, feats: list[np.ndarray], real_emb: np.ndarray | None,
         key: jax.Array) -> dict[str, float]:
    """Metrics of one row; R-precision pools min(32, n) captions (32 in the field's protocol)."""

    emb = embed_motion(ev, feats)
    n = len(feats)
    k_r, k_d = jax.random.split(key)
    r = M.r_precision(text_emb, emb, key=k_r, batch_size=min(32, n))
    joints = [np.asarray(joints_from_features(f)) for f in feats]
    quality = Q.mean_quality(joints)
    return {"fid": 0.0 if real_emb is None else float(M.fid(real_emb, emb)),
            **{f"r_precision_top{k}": float(r[f"top{k}"]) for k in (1, 2, 3)},
            "mm_dist": float(M.matching_score(text_emb, emb)),
            "diversity": float(M.diversity(emb, key=k_d, num_pairs=min(300, n))),
            "jerk": float(quality["quality/jerk"]),
            "foot_skating": float(quality["quality/foot_skating_ratio"]),
            "num": n, "r_precision_pool": min(32, n)}


def _scored_split(ds: Any, split: str | None) -> str:
    """``split`` (it must hold sequences), or test, or val, or train, the first that holds sequences."""
    used = ds.resolve_split(split)
    if split is None and used != "test":
        log.info("%s has no test split; scoring its %s split", ds.path, used)
    return used


def evaluate_decoder(decoder_run: str | pathlib.Path, evaluator_dir: str | pathlib.Path,
                     data_dir: str | pathlib.Path, *, split: str | None = None, seed: int = 0,
                     cfg_scale: float = 2.5, max_sequences: int | None = None, mm_texts: int = 32,
                     mm_repeats: int = 10, tokenizer_run: str | pathlib.Path | None = None) -> dict[str, Any]:
    """The four rows (see the module docstring) and what made them.

    ``split`` None scores test, or val, or train, the first that holds
    sequences (imported data may lack a test split); ``report["split"]`` names it.
    ``tokenizer_run`` replaces the tokenizer the decoder run records; either
    is identity-checked against the decoder's checkpoint (:mod:`mm_jax.decoder_tokenizer`).
    ``seed`` is in [0, 2**32); the MultiModality draws use ``(seed + 1) % 2**32``.
    """

    seed_key(seed)  # ConfigError outside [0, 2**32), before anything is loaded
    ds = load_dataset(data_dir)
    split = _scored_split(ds, split)
    ids = ds.ids(split)[:max_sequences]
    captions = [ds.record(i)["captions"][0] for i in ids]
    real = [np.asarray(ds.sequence(i), np.float32) for i in ids]
    ev = load_evaluator(evaluator_dir)
    dec = load_decoder(decoder_run)
    tok, tok_run = load_tokenizer_of(dec, decoder_run, tokenizer_run)
    if mm_repeats < MM_PAIRS or mm_texts < 1:
        raise ConfigError(f"mm_repeats={mm_repeats} must be >= {MM_PAIRS} and mm_texts={mm_texts} >= 1")
    keys = jax.random.split(seed_key(seed), 6)
    text_emb = embed_text(ev, captions)
    real_emb = embed_motion(ev, real)
    model_codes = _sampled_codes(dec, captions, tok, seed=seed, cfg_scale=cfg_scale)
    rng = np.random.default_rng(seed)
    random_baseline = random_codes(rng, tok.cfg.codebook_size, model_codes)
    untrained = dataclasses.replace(dec, params=llama.init_params(dec.exp.model, key=keys[4]), step=0)
    untrained_codes = _sampled_codes(untrained, captions, tok, seed=seed, cfg_scale=cfg_scale)
    rows = {"real": _row(ev, text_emb, real, None, keys[0])}
    for name, codes, key in (("model", model_codes, keys[1]), ("random_tokens", random_baseline, keys[2]),
                             ("untrained", untrained_codes, keys[3])):
        rows[name] = _row(ev, text_emb, decode_codes(tok, codes), real_emb, key)
    mm_caps = captions[:mm_texts]
    mm_seed = (seed + 1) % SEED_LIMIT
    mm_model = _sampled_codes(dec, mm_caps, tok, seed=mm_seed, cfg_scale=cfg_scale, num_samples=mm_repeats)
    mm_untrained = _sampled_codes(untrained, mm_caps, tok, seed=mm_seed, cfg_scale=cfg_scale,
                                  num_samples=mm_repeats)
    mm_random = random_codes(rng, tok.cfg.codebook_size, mm_model)
    rows["real"]["multimodality"] = None
    for name, codes in (("model", mm_model), ("random_tokens", mm_random), ("untrained", mm_untrained)):
        rows[name]["multimodality"] = _multimodality(ev, tok, codes, len(mm_caps), keys[5])
    ev_meta = json.loads((pathlib.Path(evaluator_dir) / "evaluator.json").read_text())
    return {"rows": rows, "split": split, "num_sequences": len(ids), "decoder_run": str(decoder_run),
            "decoder_step": dec.step, "tokenizer_run": str(tok_run), "seed": seed,
            "cfg_scale": cfg_scale, "multimodality": {"texts": len(mm_caps), "repeats": mm_repeats,
                                                      "pairs": MM_PAIRS},
            "evaluator": {"dir": str(evaluator_dir), "identity": ev.identity, "version": ev_meta.get("version"),
                          "step": ev_meta.get("step")}}


def _mm_note(report: dict[str, Any]) -> str:
    mm = report.get("multimodality")
    if not mm:
        return ""
    return (f" MultiModality: {mm['repeats']} motions for each of {mm['texts']} captions, {mm['pairs']} pairs "
            "per caption (the field's: 30 motions for 100 captions).")


def write_report(report: dict[str, Any], out_stem: str | pathlib.Path) -> None:
    """``OUT.json`` and ``OUT.md`` (a table with one row per ROWS entry)."""
    out = pathlib.Path(out_stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    ev = report["evaluator"]
    lines = [f"# Evaluation report ({report['split']} split, {report['num_sequences']} sequences)\n",
             f"Decoder `{report['decoder_run']}` step {report['decoder_step']}, CFG {report['cfg_scale']}, "
             f"seed {report['seed']}; evaluator `{ev['dir']}` ({ev['version']}, identity {ev['identity']}, "
             f"step {ev['step']}). R-precision pools {report['rows']['real'].get('r_precision_pool', 32)} "
             "captions (the field's protocol: 32)." + _mm_note(report) + "\n",
             "| row | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name in ROWS:
        r = report["rows"][name]
        lines.append(f"| {name} | " + " | ".join("–" if r.get(c) is None else f"{r[c]:.3f}" for c in COLUMNS) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
