"""Reconstruction report of a tokenizer on a dataset (stage: tokenizer evaluation).

Inputs: tokenizer params and config with a :class:`~mm_jax.tokenizer.artifact.MotionData`
(:func:`evaluate`, which training uses to validate), or a trained
:class:`~mm_jax.tokenizer.artifact.LoadedTokenizer` and any dataset directory
(:func:`evaluate_tokenizer`, normalised with the tokenizer's own statistics).
Output: a flat dict of reconstruction metrics of whole sequences of one split
(:func:`mm_jax.tokenizer.quality.batch_metrics`, before and after the
decode-time foot lock, plus codebook utilisation and perplexity).

Whole clips are edge-padded to :func:`padded_length`, at least
:func:`mm_jax.tokenizer.model.context_frames` beyond the longest, so a clip's
metrics do not depend on the clips batched with it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mm_jax.errors import NonFiniteError
from mm_jax.fsq import codebook_usage
from mm_jax.motion import contact
from mm_jax.motion import features as mfeat
from mm_jax.motion.foot_lock import foot_lock_batch
from mm_jax.motion.validate import validate_features
from mm_jax.tokenizer import data as tdata
from mm_jax.tokenizer import model as tmodel
from mm_jax.tokenizer import quality
from mm_jax.tokenizer.artifact import EVAL_CHUNK, LoadedTokenizer, MotionData, open_motion_data
from mm_jax.tokenizer.config import TokenizerConfig

log = logging.getLogger(__name__)


@functools.partial(jax.jit, static_argnums=2)
def reconstruct_batch(params: Any, x_btf: jax.Array, cfg: TokenizerConfig) -> tuple[jax.Array, jax.Array]:
    """Jitted :func:`mm_jax.tokenizer.model.reconstruct`: (x_hat [B, T, F], ids [B, N]) of normalised x."""
    return tmodel.reconstruct(params, x_btf, cfg)


def padded_length(longest: int, cfg: TokenizerConfig) -> int:
    """Frames a batch of clips up to ``longest`` frames is edge-padded to.

    ``longest`` plus the tokenizer's context (:func:`mm_jax.tokenizer.model.context_frames`),
    rounded up to whole tokens: every clip then has its context of padding,
    so its codes are the same whatever else is in the batch.
    """
    frames = longest + tmodel.context_frames(cfg)
    return -(-frames // cfg.frames_per_token) * cfg.frames_per_token


def evaluate(
    params: Any, cfg: TokenizerConfig, data: MotionData, *, split: str = "test", max_sequences: int | None = None
) -> dict[str, float]:
    """Reconstruction metrics of whole sequences of ``split``, normalised with ``data.normalizer``.

    To evaluate a trained tokenizer, ``data`` must carry the tokenizer's
    normaliser (:func:`evaluate_tokenizer` sees to it); training validates
    with the data it trains on, whose normaliser it saves.

    Returns:
      the metrics of :func:`mm_jax.tokenizer.quality.batch_metrics` (MPJPE,
      pelvis-relative MPJPE, acceleration error and magnitudes, jitter, velocity
      error within/across pairs, foot slide and skating) of the reconstruction
      as decoding gives it (through the foot lock when ``cfg.foot_lock``), plus
      ``foot_skating_before_lock`` and ``jitter_before_lock`` of the decoder's
      own output, utilisation and perplexity of the codes, num_sequences.

    Raises:
      DataError, ShapeError: a sequence of the split that
        :func:`~mm_jax.motion.validate.validate_features` refuses (NaN/inf,
        not floating point, another width), named by its id.
    """
    offsets, lengths = data.spans(split)
    ids = data.ids[data.resolve_split(split)]
    if max_sequences is not None:
        offsets, lengths, ids = offsets[:max_sequences], lengths[:max_sequences], ids[:max_sequences]
    for o, n, seq_id in zip(offsets, lengths, ids):
        validate_features(data.features[o : o + n], name=f"{data.source}: sequence {seq_id!r}", width=cfg.feature_dim)
    pad_to = padded_length(int(max(v.max() for v in data.lengths.values() if len(v))), cfg)
    model_cfg = dataclasses.replace(cfg, foot_lock=False)  # a post-step: one compile serves the lock on and off
    sums: dict[str, float] = {}
    all_ids = []
    for i in range(0, len(offsets), EVAL_CHUNK):
        o, n = offsets[i : i + EVAL_CHUNK], lengths[i : i + EVAL_CHUNK]
        x, mask = tdata.padded_batch(data.features, o, n, multiple=cfg.frames_per_token,
                                     normalizer=data.normalizer, pad_to=pad_to)
        x_hat, ids = reconstruct_batch(params, x, model_cfg)
        decoded = data.normalizer.denormalize(x_hat)
        gt = mfeat.joints_from_features_batch(data.normalizer.denormalize(jnp.asarray(x)))
        for k, v in _scored(decoded, gt, mask, n, cfg.foot_lock).items():
            sums[k] = sums.get(k, 0.0) + len(o) * v
        ids = np.asarray(ids)
        for row, length in zip(ids, n):
            all_ids.append(row[: -(-int(length) // cfg.frames_per_token)])
    out = {k: v / len(offsets) for k, v in sums.items()}
    util, ppl = codebook_usage(np.concatenate(all_ids), cfg.codebook_size)
    out.update(utilisation=util, perplexity=ppl, num_sequences=len(offsets))
    return out


def _scored(decoded_btf: jax.Array, gt_btj3: jax.Array, mask_bt: np.ndarray, lengths_b: np.ndarray,
            lock: bool) -> dict[str, float]:
    """:func:`quality.batch_metrics` of decoded features, through the foot lock when ``lock``.

    ``foot_skating_before_lock`` and ``jitter_before_lock`` score the decoder's own output
    (equal to ``foot_skating`` and ``jitter`` without the lock).
    """
    mask = jnp.asarray(mask_bt)
    raw = mfeat.joints_from_features_batch(decoded_btf)
    decoded = np.asarray(decoded_btf)
    if not lock or not np.isfinite(decoded).all():  # non-finite: left to evaluate_tokenizer's NonFiniteError
        out = quality.batch_metrics(raw, gt_btj3, mask)
        return {**out, "foot_skating_before_lock": out["foot_skating"], "jitter_before_lock": out["jitter"]}
    locked = foot_lock_batch(decoded, lengths_b)
    out = quality.batch_metrics(mfeat.joints_from_features_batch(jnp.asarray(locked)), gt_btj3, mask)
    out["foot_skating_before_lock"] = float(contact.skating_ratio(raw, mask).mean())
    out["jitter_before_lock"] = float(quality.jitter(raw, mask))
    return out


def evaluate_tokenizer(
    tok: LoadedTokenizer, data_dir: str | pathlib.Path, *, split: str | None = None,
    max_sequences: int | None = None,
) -> dict[str, Any]:
    """:func:`evaluate` of a trained tokenizer on a dataset, normalised with the tokenizer's statistics.

    Args:
      tok: the trained tokenizer (its ``normalizer`` is used, never the dataset's).
      data_dir: any dataset directory.
      split: the split to score; None for test, or val, or train, the first
        that holds sequences (imported data may have no test split).
      max_sequences: score only the first sequences of the split.

    Returns:
      The metrics of :func:`evaluate` plus ``split`` (the split scored).

    Raises:
      DataError: a sequence holding NaN/inf (named by id), as :func:`evaluate`.
      NonFiniteError: finite data gave a non-finite metric (the tokenizer's
        parameters are not finite); never NaN in the returned JSON.
    """
    data = open_motion_data(data_dir, normalizer=tok.normalizer)
    used = data.resolve_split(split)
    if split is None and used != "test":
        log.info("%s has no test split; evaluating its %s split", data_dir, used)
    metrics = evaluate(tok.params, tok.cfg, data, split=used, max_sequences=max_sequences)
    bad = sorted(k for k, v in metrics.items() if not np.isfinite(v))
    if bad:
        raise NonFiniteError(f"tokenizer (step {tok.step}) on {data_dir} ({used} split) gave non-finite {bad}: "
                             "its parameters are not finite")
    return {"split": used, **metrics}
