"""KV-cached forward of the text-to-motion decoder, on the ``llama.py`` parameter tree.

Stage: sample. Inputs: the plain parameter dict of ``mm_jax.model.init_params``
(or a checkpoint), text features ``text_bsc`` [B, S, C] with ``text_mask_bs``
[B, S], and one motion token id per row per step. Outputs: a :class:`KVCache`
and next-token logits [B, Vp] float32 (padded columns hold ``NEG_INF`` as in
``llama.forward``).

This module re-implements ``llama.Decoder`` as pure functions, reading the
same weights (stored [out, in]; fused QKV ``[K, G+2, E, D]``: slot g < G of kv
head k is query head k * G + g, slot G the key, slot G + 1 the value). It must
agree with ``llama.forward``; tests/test_sample.py checks that greedy decoding
through the cache equals full recomputation.

  * :func:`prefill` runs the text prefix once. Text queries attend to every
    real text token (bidirectional) and never to motion, so the text keys and
    values do not depend on motion and can be cached.
  * :func:`decode_step` embeds one motion token at motion index ``t``, writes
    its key/value into slot ``S + t`` and attends to all real text keys plus
    motion slots ``<= t``.

Positions follow ``attention.token_positions``: real text tokens are 0..s-1
(s real text tokens), and motion index t has position s + t (every generated
motion token is real while it can still influence a live row).

Letters: B batch, S text tokens, N motion slots, T = S + N cache slots, C text
width, D model width, H heads, K kv heads, G = H / K, E head dim, M MLP hidden,
V padded vocab.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mm_jax.model import attention
from mm_jax.model.config import ModelConfig
from mm_jax.model.llama import NEG_INF


class KVCache(NamedTuple):
    """Per-layer rotated keys and values plus the text bookkeeping.

    Attributes:
      k_lbtke: [L, B, T, K, E] keys after RoPE (T = S + N slots).
      v_lbtke: [L, B, T, K, E] values.
      text_mask_bs: [B, S] bool, the real text tokens.
      text_len_b: [B] int32, number of real text tokens (first motion position).
    """

    k_lbtke: jax.Array
    v_lbtke: jax.Array
    text_mask_bs: jax.Array
    text_len_b: jax.Array


def layer_params(cfg: ModelConfig, params: dict, i: int) -> dict:
    """The parameter subtree of block ``i`` (handles ``cfg.scan_layers`` stacking)."""
    if cfg.scan_layers:
        return jax.tree_util.tree_map(lambda x: x[i], params["blocks"])
    return params[f"block_{i}"]


def _rms_norm(x_btd: jax.Array, scale_d: jax.Array, eps: float) -> jax.Array:
    x32 = x_btd.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return (y * scale_d).astype(x_btd.dtype)


def _qkv(cfg: ModelConfig, lp: dict, x_btd: jax.Array, pos_bt: jax.Array):
    """Rotated queries [B, T, K, G, E], rotated keys and values [B, T, K, E]."""
    g_ = cfg.queries_per_kv
    dt = jnp.dtype(cfg.dtype)
    qkv = jnp.einsum("btd,kged->btkge", x_btd, lp["attn"]["qkv"].astype(dt))
    sin_bti, cos_bti = attention.rope_angles(pos_bt, cfg.head_dim, cfg.rope_theta)
    q_btkge = attention.apply_rope(qkv[..., :g_, :], sin_bti, cos_bti)
    k_btke = attention.apply_rope(qkv[..., g_, :], sin_bti, cos_bti)
    return q_btkge, k_btke, qkv[..., g_ + 1, :]


def _attend(cfg: ModelConfig, lp: dict, q_bqkge, k_bske, v_bske, mask_bqs) -> jax.Array:
    """Masked grouped-query attention plus the output projection -> [B, Q, D]."""
    dt = jnp.dtype(cfg.dtype)
    scores = jnp.einsum("bqkge,bske->bkgqs", q_bqkge, k_bske).astype(jnp.float32)
    scores = jnp.where(mask_bqs[:, None, None], scores * cfg.head_dim ** -0.5, NEG_INF)
    probs = jax.nn.softmax(scores, axis=-1).astype(dt)
    o_bqkge = jnp.einsum("bkgqs,bske->bqkge", probs, v_bske)
    o_bqhe = o_bqkge.reshape(o_bqkge.shape[:2] + (cfg.num_heads, cfg.head_dim))
    return jnp.einsum("bqhe,dhe->bqd", o_bqhe, lp["attn"]["out"].astype(dt))


def _mlp(cfg: ModelConfig, lp: dict, x_btd: jax.Array) -> jax.Array:
    dt = jnp.dtype(cfg.dtype)
    h_btcm = jnp.einsum("btd,cmd->btcm", x_btd, lp["mlp"]["gate_up"].astype(dt))
    h_btm = jax.nn.silu(h_btcm[:, :, 0]) * h_btcm[:, :, 1]
    return jnp.einsum("btm,dm->btd", h_btm, lp["mlp"]["down"].astype(dt))


def prefill(cfg: ModelConfig, params: dict, text_bsc: jax.Array, text_mask_bs: jax.Array,
            max_motion: int) -> KVCache:
    """Runs the text prefix and returns a cache with room for ``max_motion`` motion slots.

    Args:
      cfg: the model config.
      params: plain parameter dict.
      text_bsc: [B, S, C] text features.
      text_mask_bs: [B, S] bool, True for real text tokens.
      max_motion: N, the motion slots to reserve (BOS included).

    Returns:
      A :class:`KVCache` whose text slots [0, S) are filled and motion slots are zero.
    """
    dt = jnp.dtype(cfg.dtype)
    text_mask_bs = text_mask_bs.astype(bool)
    b, s = text_mask_bs.shape
    x_bsd = jnp.einsum("bsc,dc->bsd", text_bsc.astype(dt), params["text_proj"].astype(dt))
    pos_bs = jnp.maximum(jnp.cumsum(text_mask_bs.astype(jnp.int32), axis=1) - 1, 0)
    mask_bqs = jnp.broadcast_to(text_mask_bs[:, None, :], (b, s, s))
    ks, vs = [], []
    for i in range(cfg.num_layers):
        lp = layer_params(cfg, params, i)
        q, k, v = _qkv(cfg, lp, _rms_norm(x_bsd, lp["attn_norm"]["scale"], cfg.norm_eps), pos_bs)
        x_bsd = x_bsd + _attend(cfg, lp, q, k, v, mask_bqs)
        x_bsd = x_bsd + _mlp(cfg, lp, _rms_norm(x_bsd, lp["mlp_norm"]["scale"], cfg.norm_eps))
        ks.append(k)
        vs.append(v)
    pad = ((0, 0), (0, 0), (0, max_motion), (0, 0), (0, 0))
    k_lbtke = jnp.pad(jnp.stack(ks), pad)
    v_lbtke = jnp.pad(jnp.stack(vs), pad)
    text_len_b = jnp.sum(text_mask_bs, axis=1).astype(jnp.int32)
    return KVCache(k_lbtke, v_lbtke, text_mask_bs, text_len_b)


def decode_step(cfg: ModelConfig, params: dict, cache: KVCache, token_b: jax.Array,
                t: jax.Array) -> tuple[jax.Array, KVCache]:
    """One motion token per row at motion index ``t`` -> (logits [B, V] float32, new cache).

    Args:
      cfg: the model config.
      params: plain parameter dict.
      cache: from :func:`prefill` (and earlier steps 0..t-1).
      token_b: [B] int motion ids at index ``t`` (BOS at t = 0).
      t: scalar int32 motion index (traced).
    """
    dt = jnp.dtype(cfg.dtype)
    s = cache.text_mask_bs.shape[1]
    n = cache.k_lbtke.shape[2] - s
    x_b1d = jnp.take(params["embed"], token_b, axis=0, mode="clip").astype(dt)[:, None]
    pos_b1 = (cache.text_len_b + t)[:, None]
    motion_key_n = jnp.arange(n) <= t
    key_bt = jnp.concatenate(
        [cache.text_mask_bs, jnp.broadcast_to(motion_key_n, (token_b.shape[0], n))], axis=1)
    mask_b1t = key_bt[:, None, :]
    k_all, v_all = cache.k_lbtke, cache.v_lbtke
    for i in range(cfg.num_layers):
        lp = layer_params(cfg, params, i)
        q, k, v = _qkv(cfg, lp, _rms_norm(x_b1d, lp["attn_norm"]["scale"], cfg.norm_eps), pos_b1)
        k_all = jax.lax.dynamic_update_slice(k_all, k[None].astype(k_all.dtype), (i, 0, s + t, 0, 0))
        v_all = jax.lax.dynamic_update_slice(v_all, v[None].astype(v_all.dtype), (i, 0, s + t, 0, 0))
        x_b1d = x_b1d + _attend(cfg, lp, q, k_all[i], v_all[i], mask_b1t)
        x_b1d = x_b1d + _mlp(cfg, lp, _rms_norm(x_b1d, lp["mlp_norm"]["scale"], cfg.norm_eps))
    return head_logits(cfg, params, x_b1d[:, 0]), cache._replace(k_lbtke=k_all, v_lbtke=v_all)


def head_logits(cfg: ModelConfig, params: dict, x_bd: jax.Array) -> jax.Array:
    """Final norm and output head -> [B, V] float32 with padded columns at ``NEG_INF``."""
    dt = jnp.dtype(cfg.dtype)
    y_bd = _rms_norm(x_bd, params["final_norm"]["scale"], cfg.norm_eps)
    logits_bv = jnp.einsum("bd,vd->bv", y_bd, params["head"].astype(dt)).astype(jnp.float32)
    real_v = jnp.arange(cfg.padded_vocab_size) < cfg.vocab_size
    return jnp.where(real_v, logits_bv, NEG_INF)
