"""A decoder on the zero-shot prompt suite: per-prompt scores, per-tag and per-category tables (stage: eval).

``evaluate_suite(decoder_run, evaluator_dir, suite_path)`` samples
``num_samples`` motions for every prompt of a suite
(:func:`mm_jax.eval.prompts.load_suite`) in one batch, each cut to its
prompt's ``seconds`` (the decoder has no length input: its budget is
``ceil(seconds * 30 / frames_per_token)`` codes; EOS is held back until
``min_share`` (default 0.6) of the asked seconds exist), decodes them with the
run's tokenizer and scores each prompt through the trained evaluator:

* ``similarity``: cosine between the evaluator's embedding of the prompt and of
  the generated motion (both unit norm), mean over the prompt's samples;
* ``match_top1`` / ``match_top3``: the generated motion is compared with the
  text of *every* prompt of the suite; a hit when one of the k most similar
  prompts means the same primitives (``Prompt.primitives``, order included).
  Undefined (NaN) for prompts with no primitives. Chance is the share of
  prompts with the same primitives (``match_chance``);
* ``jerk`` (m/s^3), ``foot_skating`` (ratio), ``floating_m`` and
  ``penetration_m`` (m): :mod:`mm_jax.eval.quality` of the joints;
* ``seconds`` (the scored clip's length), ``length_ratio`` (it over the asked
  ``seconds``) and ``short`` (1.0 when the ratio is under :data:`SHORT_SHARE`).

Length rule: a generated clip shorter than ``SHORT_SHARE`` (60%) of its
prompt's asked length is scored as a failure: similarity -1 (the lowest
cosine) and match@1/3 0 (a miss). A static 0.27 s clip can then never beat a
full-length one, however close the evaluator puts it to the prompt. It applies
to the model and to the random yardstick (which has the model's lengths), not
to the real references (crops of the data, whose length the prompt does not set).

Two yardsticks are scored the same way, so that a table says what is lost
where: ``random_*`` (uniformly random codes of the model's lengths: the floor)
and, when a dataset is given, ``reference_*``: real clips of the dataset
whose primitives are the prompt's (one primitive: that step; A then B: the
two consecutive steps; A while G: the step of locomotion A with gesture G),
up to ``max_references`` per prompt, cropped from the sequences at the steps'
frame spans (:mod:`mm_jax.eval.references`). The reference similarity of a paraphrase against that of its
seen wording measures what the evaluator's text side loses on new words; the
model's drop beyond it is the decoder's.

Outputs (:func:`mm_jax.eval.suite_report.write_suite_report`): ``OUT.json`` (options, evaluator
identity, per-prompt records, per-tag / per-category / overall means) and
``OUT.md`` (the tables), and one contact-sheet PNG per category in
``OUT_sheets/`` with a frame strip of each prompt's first sample.
"""

from __future__ import annotations

import collections
import logging
import math
import pathlib
from typing import Any, Sequence

import jax
import numpy as np

from mm_jax.errors import ConfigError, DataError
from mm_jax.eval import quality as Q
from mm_jax.eval.evaluator import embed_motion, embed_text, load_evaluator
from mm_jax.eval.prompts import CATEGORIES, TAGS, load_suite, Prompt
from mm_jax.eval.references import find_references
from mm_jax.eval.report import random_codes
from mm_jax.generate import decode_codes, load_decoder, load_tokenizer_of, sample_codes, text_features
from mm_jax.motion.features import FPS, joints_from_features
from mm_jax.motion.synth import load_dataset
from mm_jax.sample import max_tokens_for_seconds, min_tokens_for_seconds, seed_key

log = logging.getLogger(__name__)

SCORES = ("similarity", "match_top1", "match_top3", "jerk", "foot_skating", "floating_m", "penetration_m",
          "seconds", "length_ratio", "short")
SOURCES = ("model", "random", "reference")
SHORT_SHARE = 0.6  # a generated clip under this share of the asked seconds fails similarity and match
MIN_SHARE = 0.6  # default generation floor: EOS held back until this share of the asked seconds exists
FAILED = {"similarity": -1.0, "match_top1": 0.0, "match_top3": 0.0}  # a short clip's scores
TABLE = (  # (json key, markdown header) of the per-tag / per-category tables
    ("seconds", "asked s"),
    ("model/seconds", "gen s"),
    ("model/length_ratio", "gen/asked"),
    ("model/short", f"gen < {SHORT_SHARE:.0%}"),
    ("model/similarity", "sim model"),
    ("random/similarity", "sim random"),
    ("reference/similarity", "sim real"),
    ("model/match_top1", "match@1 model"),
    ("model/match_top3", "match@3 model"),
    ("random/match_top1", "match@1 random"),
    ("reference/match_top1", "match@1 real"),
    ("match_chance", "match chance"),
    ("model/jerk", "jerk m/s³"),
    ("model/foot_skating", "foot skating"),
    ("model/floating_m", "floating m"),
)


# --- scoring ---------------------------------------------------------------------------


def match_hits(sim_np: np.ndarray, owner_n: np.ndarray, keys: Sequence[tuple[str, ...]], k: int) -> np.ndarray:
    """Per motion, 1.0 when one of its ``k`` most similar prompts has its owner's primitives, else 0.0.

    Args:
      sim_np: [N, P] similarity of N motions to the P prompts' texts.
      owner_n: [N] the prompt each motion was made for.
      keys: P primitive tuples; an empty tuple makes its motions NaN (no answer).
      k: how many of the most similar prompts count.
    """
    sim_np = np.asarray(sim_np, np.float64)
    if sim_np.ndim != 2 or sim_np.shape[1] != len(keys) or len(owner_n) != sim_np.shape[0]:
        raise DataError(f"similarities {sim_np.shape} do not match {len(owner_n)} owners and {len(keys)} prompts")
    top = np.argsort(-sim_np, axis=1, kind="stable")[:, :k]
    out = np.full(len(owner_n), np.nan)
    for i, (own, row) in enumerate(zip(owner_n, top)):
        if keys[own]:
            out[i] = float(any(keys[j] == keys[own] for j in row))
    return out


def _joints(feats: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Global joints [T, 22, 3] of each clip of raw features (one jitted function for all)."""

    joints_fn = jax.jit(joints_from_features)
    return [np.asarray(joints_fn(f)) for f in feats]


def _quality(joints: Sequence[np.ndarray]) -> list[dict[str, float]]:

    return [{"jerk": Q.jerk(j), "foot_skating": Q.foot_skating_ratio(j), "floating_m": Q.floating(j),
             "penetration_m": Q.penetration(j)} for j in joints]


def length_scores(frames_n: Sequence[int], asked_n: Sequence[float], *, fps: float) -> list[dict[str, float]]:
    """``seconds``, ``length_ratio`` (over the asked seconds) and ``short`` (ratio < :data:`SHORT_SHARE`) per clip."""
    out = []
    for frames, asked in zip(frames_n, asked_n):
        ratio = frames / fps / asked
        out.append({"seconds": frames / fps, "length_ratio": ratio, "short": float(ratio < SHORT_SHARE - 1e-9)})
    return out


def score_clips(ev: Any, text_pe: np.ndarray, feats: Sequence[np.ndarray], joints: Sequence[np.ndarray],
                owner_n: np.ndarray, keys: Sequence[tuple[str, ...]], asked_p: Sequence[float], *,
                length_rule: bool = True, fps: float = 30.0) -> list[dict[str, float]]:
    """Per-clip scores (:data:`SCORES`) of clips made for prompts ``owner_n``.

    Args:
      ev: the evaluator; text_pe: [P, E] its embeddings of the P prompts' texts.
      feats: N clips of raw features [T_i, 272]; joints: their joints [T_i, 22, 3].
      owner_n: [N] the prompt each clip was made for; keys: P primitive tuples.
      asked_p: [P] the seconds each prompt asked for.
      length_rule: a short clip (under :data:`SHORT_SHARE` of its asked
        seconds) gets the :data:`FAILED` similarity and matches (NaN matches,
        a prompt without primitives, stay NaN). Off for real references.
    """

    emb_ne = embed_motion(ev, feats)
    sim_np = emb_ne @ text_pe.T
    own_sim = sim_np[np.arange(len(owner_n)), owner_n]
    top1, top3 = match_hits(sim_np, owner_n, keys, 1), match_hits(sim_np, owner_n, keys, 3)
    lengths = length_scores([len(f) for f in feats], [asked_p[o] for o in owner_n], fps=fps)
    out = []
    for s, a, b, q, ln in zip(own_sim, top1, top3, _quality(joints), lengths):
        row = {"similarity": float(s), "match_top1": float(a), "match_top3": float(b), **q, **ln}
        if length_rule and ln["short"]:
            row.update({k: v if not math.isnan(row[k]) else row[k] for k, v in FAILED.items()})
        out.append(row)
    return out


def _mean_per_prompt(scores: list[dict[str, float]], owner_n: np.ndarray, num_prompts: int
                     ) -> list[dict[str, float]]:
    """Means of each score over the clips of each prompt (NaN where a prompt has none)."""
    out = []
    for p in range(num_prompts):
        rows = [s for s, o in zip(scores, owner_n) if o == p]
        out.append({k: (float(np.nanmean([r[k] for r in rows])) if rows and not all(math.isnan(r[k]) for r in rows)
                        else float("nan")) for k in SCORES})
    return out


def summarize(records: Sequence[dict[str, Any]], by: str | None) -> dict[str, dict[str, float]]:
    """Means of every numeric per-prompt field over the prompts of each group (NaNs skipped).

    ``by`` is ``"tag"``, ``"category"`` or None (one group, ``"all"``). Each group
    also has ``prompts`` (its size) and ``n/<field>`` (how many prompts had a value).
    """
    groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in records:
        groups[r[by] if by else "all"].append(r)
    order = {"tag": TAGS, "category": CATEGORIES}.get(by or "", ("all",))
    out = {}
    for name in [g for g in order if g in groups] + sorted(set(groups) - set(order)):
        rows = groups[name]
        fields = [k for k, v in rows[0].items() if isinstance(v, float)]
        summary: dict[str, float] = {"prompts": len(rows)}
        for k in fields:
            vals = np.array([r[k] for r in rows], np.float64)
            ok = ~np.isnan(vals)
            summary[k] = float(vals[ok].mean()) if ok.any() else float("nan")
            summary[f"n/{k}"] = int(ok.sum())
        out[name] = summary
    return out


def _per_cell(prompts: list[Prompt], per_cell: int | None) -> list[Prompt]:
    """The first ``per_cell`` prompts (file order) of each category x tag cell; all for None."""
    if per_cell is None:
        return prompts
    if per_cell < 1:
        raise ConfigError(f"per_cell={per_cell!r} must be >= 1 or None")
    taken: collections.Counter = collections.Counter()
    kept = []
    for prompt in prompts:
        taken[prompt.category, prompt.tag] += 1
        if taken[prompt.category, prompt.tag] <= per_cell:
            kept.append(prompt)
    return kept


def _sample_suite(dec: Any, tok: Any, prompts: list[Prompt], text_tokenizer: Any, *, num_samples: int,
                  seed: int, cfg_scale: float, top_p: float, min_share: float) -> dict[str, Any]:
    """Samples every prompt: codes (at least one per clip), lengths, and each prompt's budget and floor."""

    fpt = tok.cfg.frames_per_token
    budgets = np.array([max_tokens_for_seconds(p.seconds, frames_per_token=fpt) for p in prompts])
    max_new = int(min(budgets.max() + 1, dec.exp.model.max_motion_tokens - 1))
    floors = np.array([min(min_tokens_for_seconds(min_share * p.seconds, seconds=p.seconds, frames_per_token=fpt),
                           b, max_new) for p, b in zip(prompts, budgets)])
    text_params, text_psc, mask_ps = text_features(dec.exp, [p.prompt for p in prompts], text_tokenizer)
    options = {"temperature": 1.0, "top_k": 0, "top_p": top_p, "cfg_scale": cfg_scale}
    log.info("sampling %d prompts x %d samples, up to %d codes", len(prompts), num_samples, max_new)
    tokens_bn, lengths_b = sample_codes(dec, text_params, text_psc, mask_ps, num_samples=num_samples,
                                        max_new_tokens=max_new, options=options, seed=seed, min_new_tokens=floors)
    owner = np.repeat(np.arange(len(prompts)), num_samples)
    lengths = np.minimum(lengths_b, budgets[owner])
    codes = [t[: max(int(n), 1)] for t, n in zip(tokens_bn, lengths)]  # EOS at once: one code
    return {"codes": codes, "lengths": lengths, "owner": owner, "budgets": budgets, "floors": floors,
            "max_new": max_new}


def _references(data_dir: str | pathlib.Path, prompts: list[Prompt], ev: Any, text_pe: np.ndarray,
                limit: int) -> tuple[list[int], list[dict[str, float]] | None]:
    """(reference clips per prompt, per-prompt mean scores of them or None); no length rule."""

    refs = find_references(load_dataset(data_dir), prompts, limit=limit)
    counts = [len(r) for r in refs]
    ref_owner = np.array([i for i, r in enumerate(refs) for _ in r], np.int64)
    ref_feats = [c for r in refs for c in r]
    log.info("scoring %d reference clips for %d prompts", len(ref_feats), sum(n > 0 for n in counts))
    if not ref_feats:
        return counts, None
    keys, asked = [tuple(p.primitives) for p in prompts], [p.seconds for p in prompts]
    scores = score_clips(ev, text_pe, ref_feats, _joints(ref_feats), ref_owner, keys, asked, length_rule=False,
                         fps=FPS)
    return counts, _mean_per_prompt(scores, ref_owner, len(prompts))


def _records(prompts: list[Prompt], drawn: dict[str, Any], per: dict[str, list[dict[str, float]]],
             ref_counts: list[int], model_seconds: list[float]) -> list[dict[str, Any]]:
    """One record per prompt: the prompt, its asked and generated lengths, and ``source/score`` means."""
    keys = [tuple(p.primitives) for p in prompts]
    owner, lengths = drawn["owner"], drawn["lengths"]
    records = []
    for i, p in enumerate(prompts):
        mine = owner == i
        rec: dict[str, Any] = {"id": p.id, "category": p.category, "tag": p.tag, "prompt": p.prompt,
                               "primitives": list(p.primitives), "seconds": p.seconds,
                               "generated_seconds": [s for s, o in zip(model_seconds, owner) if o == i],
                               "budget_codes": int(drawn["budgets"][i]), "min_codes": int(drawn["floors"][i]),
                               "codes": [int(n) for n in lengths[mine]],
                               "empty_samples": int((lengths[mine] == 0).sum()), "references": ref_counts[i],
                               "match_chance": (float(np.mean([k == keys[i] for k in keys])) if keys[i]
                                                else float("nan"))}
        for source, rows in per.items():
            rec.update({f"{source}/{k}": v for k, v in rows[i].items()})
        records.append(rec)
    return records


def _check_options(seed: int, num_samples: int, min_share: float) -> None:
    """ConfigError on a seed outside [0, 2**32), a count < 1 or a floor outside [0, 1]."""
    seed_key(seed)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ConfigError(f"num_samples={num_samples!r} must be a positive int")
    if not (math.isfinite(min_share) and 0 <= min_share <= 1):
        raise ConfigError(f"min_share={min_share!r} must be in [0, 1] (a share of each prompt's seconds)")


def _score_generated(ev: Any, tok: Any, prompts: list[Prompt], text_pe: np.ndarray, drawn: dict[str, Any],
                     seed: int) -> tuple[dict[str, list], list[np.ndarray], list[float]]:
    """Per-prompt scores of the model's motions and of random codes of the same lengths, plus the
    model's joints [T, 22, 3] and seconds per clip."""
    codes, owner = drawn["codes"], drawn["owner"]
    keys, asked = [tuple(p.primitives) for p in prompts], [p.seconds for p in prompts]
    random_baseline = random_codes(np.random.default_rng(seed), tok.cfg.codebook_size, codes)
    log.info("decoding and scoring %d generated and %d random motions", len(codes), len(codes))
    per, model_joints, model_seconds = {}, [], []
    for source, source_codes in (("model", codes), ("random", random_baseline)):
        feats = decode_codes(tok, source_codes)
        joints = _joints(feats)
        per[source] = _mean_per_prompt(score_clips(ev, text_pe, feats, joints, owner, keys, asked, fps=FPS),
                                       owner, len(prompts))
        if source == "model":
            model_joints, model_seconds = joints, [len(f) / FPS for f in feats]
    return per, model_joints, model_seconds


def evaluate_suite(decoder_run: str | pathlib.Path, evaluator_dir: str | pathlib.Path,
                   suite_path: str | pathlib.Path, *, data_dir: str | pathlib.Path | None = None,
                   num_samples: int = 1, seed: int = 0, cfg_scale: float = 2.5, top_p: float = 0.95,
                   min_share: float = MIN_SHARE, max_references: int = 4, per_cell: int | None = None,
                   text_tokenizer: Any = None, evaluator: Any = None,
                   tokenizer_run: str | pathlib.Path | None = None) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Scores a decoder run on a prompt suite (see the module docstring).

    Args:
      decoder_run: a ``mm-jax train`` work directory.
      evaluator_dir: a ``mm-jax evaluator train`` directory.
      suite_path: a prompt suite (JSONL, ``data/prompts/README.md``).
      data_dir: a dataset for the ``reference`` yardstick (None: no references).
      num_samples: motions per prompt, sampled in one batch under ``key(seed)``.
      seed, cfg_scale, top_p: sampling options (temperature 1, no top-k).
      min_share: generation floor, in [0, 1]: EOS is suppressed until
        ``min_share * seconds`` of each prompt's motion exist (default
        :data:`MIN_SHARE`, 0.6, so the model is not failed by the length rule
        for stopping early; 0 measures the model's own lengths).
      max_references: real clips per prompt at most.
      per_cell: score only the first this many prompts (file order) of each
        category x tag cell, for a quick look; None scores them all.
      text_tokenizer, evaluator: overrides for tests (a fake text tokenizer for
        the decoder; an already loaded :class:`~mm_jax.eval.evaluator.Evaluator`).
      tokenizer_run: the motion tokenizer instead of the one the decoder run
        records; either is identity-checked (:mod:`mm_jax.decoder_tokenizer`).

    Returns:
      (the report dict, joints [T, 22, 3] of each prompt's first sample).
    """

    _check_options(seed, num_samples, min_share)
    prompts = _per_cell(load_suite(suite_path), per_cell)
    ev = evaluator if evaluator is not None else load_evaluator(evaluator_dir)
    dec = load_decoder(decoder_run)
    tok, tok_run = load_tokenizer_of(dec, decoder_run, tokenizer_run)
    drawn = _sample_suite(dec, tok, prompts, text_tokenizer, num_samples=num_samples, seed=seed,
                          cfg_scale=cfg_scale, top_p=top_p, min_share=min_share)
    text_pe = embed_text(ev, [p.prompt for p in prompts])
    per, model_joints, model_seconds = _score_generated(ev, tok, prompts, text_pe, drawn, seed)
    ref_counts = [0] * len(prompts)
    if data_dir is not None:
        ref_counts, ref_scores = _references(data_dir, prompts, ev, text_pe, max_references)
        if ref_scores is not None:
            per["reference"] = ref_scores
    records = _records(prompts, drawn, per, ref_counts, model_seconds)
    report = {
        "suite": str(suite_path), "num_prompts": len(prompts), "num_samples": num_samples,
        "decoder_run": str(decoder_run), "decoder_step": dec.step, "tokenizer_run": str(tok_run),
        "data_dir": None if data_dir is None else str(data_dir), "max_references": max_references,
        "per_cell": per_cell, "seed": seed, "cfg_scale": cfg_scale, "top_p": top_p,
        "max_new_tokens": drawn["max_new"], "min_share": min_share, "short_share": SHORT_SHARE,
        "evaluator": {"dir": str(evaluator_dir), "identity": ev.identity},
        "overall": summarize(records, None)["all"], "by_tag": summarize(records, "tag"),
        "by_category": summarize(records, "category"), "prompts": records,
    }
    return report, [model_joints[i * num_samples] for i in range(len(prompts))]
