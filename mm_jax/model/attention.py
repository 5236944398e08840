"""Mixed attention mask, padding-neutral positions and rotary embeddings (RoPE).

Stage: model. The decoder sequence is ``[text prefix (S) | motion (N)]``,
T = S + N positions. Inputs: ``text_mask_bs`` [B, S] and ``motion_mask_bn``
[B, N] (True for real tokens). Outputs: a boolean mask [B, T, T] (query,
key), integer RoPE positions [B, T], and rotated q/k tensors.

Mask rules (``mixed_attention_mask``):
  * a text query attends to every real text token (bidirectional), never to
    motion;
  * a motion query attends to every real text token and causally to real
    motion tokens at motion index <= its own;
  * padding (text or motion) is never attended as a key. Pad queries still
    see the real text keys; a row with no key at all (empty text and a pad
    motion query at index 0 with no real motion) is handled by the finite
    mask value in the softmax (uniform weights, no NaN), and its output is
    never used.

Positions (``token_positions``) count real tokens only: real text tokens get
0..s-1 (s = number of real text tokens) and real motion tokens continue
s, s+1, ... in order. Pad tokens get the position of the last real token
before them (they are never attended, so the value does not matter). With
this, a padded batch gives the same outputs at real positions as the
unpadded single sample: padding is position-neutral.

RoPE convention: the "rotate half" layout of HF LLaMA (pairs (i, i + E/2)),
angles ``pos * theta ** (-2i / E)`` for i < E/2, computed in float32.

Attention itself (``attend``) is grouped-query softmax attention with its
own VJP: scores [B, K, G, Q, S] with the keys minor, the probabilities kept
for the backward pass, and the softmax gradient through the row sums of
``dO * O`` ([B, K, G, Q], over the head dimension) instead of ``P * dP``
(over the keys). Autodiff of the plain einsums laid the scores out keys-major
and transposed them at every step; on this CPU one layer's attention
(forward + backward, the ``tiny`` preset's shapes) runs ~1.1x faster this way
(``benchmarks/bench_attention.py``: 9.7 -> 8.6 ms; the tiny train step
1.05-1.08x, docs/benchmarks.md). The math and the memory (one
[B, K, G, Q, S] tensor kept per layer) are those of the autodiff version.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NEG_INF = -1e30  # the masked-score value: finite, so a row with no key gives uniform weights, not NaN


def token_positions(text_mask_bs: jax.Array, motion_mask_bn: jax.Array) -> jax.Array:
    """RoPE positions counting real tokens only.

    Args:
      text_mask_bs: [B, S] bool, True for real text tokens.
      motion_mask_bn: [B, N] bool, True for real motion tokens.

    Returns:
      [B, S + N] int32 positions.
    """
    text = text_mask_bs.astype(jnp.int32)
    motion = motion_mask_bn.astype(jnp.int32)
    count_bt = jnp.cumsum(jnp.concatenate([text, motion], axis=1), axis=1)
    return jnp.maximum(count_bt - 1, 0).astype(jnp.int32)


def mixed_attention_mask(text_mask_bs: jax.Array, motion_mask_bn: jax.Array) -> jax.Array:
    """Boolean attention mask of the [text | motion] sequence (True = may attend).

    Args:
      text_mask_bs: [B, S] bool.
      motion_mask_bn: [B, N] bool.

    Returns:
      [B, T, T] bool with T = S + N, indexed (batch, query, key).
    """
    s, n = text_mask_bs.shape[1], motion_mask_bn.shape[1]
    text_key_bk = jnp.concatenate([text_mask_bs, jnp.zeros_like(motion_mask_bn)], axis=1)
    motion_key_bk = jnp.concatenate([jnp.zeros_like(text_mask_bs), motion_mask_bn], axis=1)
    idx = jnp.arange(s + n)
    is_motion_q = (idx >= s)[:, None]
    causal_qk = idx[None, :] <= idx[:, None]
    # Every query sees real text keys; motion queries also see causal real motion keys.
    text_part = text_key_bk[:, None, :]
    motion_part = (is_motion_q & causal_qk)[None] & motion_key_bk[:, None, :]
    return text_part | motion_part


def rope_angles(pos_bt: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """sin and cos of the rotary angles.

    Args:
      pos_bt: [B, T] integer positions.
      head_dim: E, even.
      theta: base period (10000 for LLaMA).

    Returns:
      (sin, cos), each [B, T, E/2] float32.
    """
    half = head_dim // 2
    inv_freq = theta ** (-jnp.arange(half, dtype=jnp.float32) * 2.0 / head_dim)
    angle_bti = pos_bt.astype(jnp.float32)[..., None] * inv_freq
    return jnp.sin(angle_bti), jnp.cos(angle_bti)


def apply_rope(x: jax.Array, sin_bti: jax.Array, cos_bti: jax.Array) -> jax.Array:
    """Rotates the last axis of ``x`` [B, T, ..., E] by the angles [B, T, E/2].

    Any head axes sit between T and E; the rotation is done in float32 and
    cast back to ``x.dtype``.
    """
    extra = x.ndim - 3
    shape = sin_bti.shape[:2] + (1,) * extra + sin_bti.shape[2:]
    sin, cos = sin_bti.reshape(shape), cos_bti.reshape(shape)
    x32 = x.astype(jnp.float32)
    x1, x2 = jnp.split(x32, 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


def _attend_heads(qh, kh, vh, mask_bqs):
    """Scaled head-major q [B, K, G, Q, E], k/v [B, K, S, E] -> (out [B, K, G, Q, E], probs float32)."""
    scores = jnp.einsum("bkgqe,bkse->bkgqs", qh, kh).astype(jnp.float32)
    scores = jnp.where(mask_bqs[:, None, None], scores, NEG_INF)
    peak = jnp.max(scores, axis=-1, keepdims=True)
    weights = jnp.exp(scores - peak)
    probs = weights / jnp.sum(weights, axis=-1, keepdims=True)
    return jnp.einsum("bkgqs,bkse->bkgqe", probs.astype(vh.dtype), vh), probs


def _to_heads(q_bqkge, k_bske, v_bske):
    scale = q_bqkge.shape[-1] ** -0.5
    return ((q_bqkge * scale).astype(q_bqkge.dtype).transpose(0, 2, 3, 1, 4),
            k_bske.transpose(0, 2, 1, 3), v_bske.transpose(0, 2, 1, 3))


@jax.custom_vjp
def attend(q_bqkge: jax.Array, k_bske: jax.Array, v_bske: jax.Array, mask_bqs: jax.Array) -> jax.Array:
    """Grouped-query attention ``softmax(q k^T / sqrt(E), masked) v``.

    Args:
      q_bqkge: [B, Q, K, G, E] queries (RoPE applied), K key/value heads with G queries each.
      k_bske: [B, S, K, E] keys (RoPE applied).
      v_bske: [B, S, K, E] values.
      mask_bqs: [B, Q, S] bool, True where the query may attend to the key.

    Returns:
      [B, Q, K, G, E] in the dtype of ``v``; scores and softmax in float32.
    """
    out, _ = _attend_heads(*_to_heads(q_bqkge, k_bske, v_bske), mask_bqs)
    return out.transpose(0, 3, 1, 2, 4)


def _attend_fwd(q_bqkge, k_bske, v_bske, mask_bqs):
    qh, kh, vh = _to_heads(q_bqkge, k_bske, v_bske)
    out, probs = _attend_heads(qh, kh, vh, mask_bqs)
    return out.transpose(0, 3, 1, 2, 4), (qh, kh, vh, probs, out, mask_bqs)


def _attend_bwd(res, d_bqkge):
    qh, kh, vh, probs, out, mask_bqs = res
    dout = d_bqkge.transpose(0, 2, 3, 1, 4)
    dv = jnp.einsum("bkgqs,bkgqe->bkse", probs.astype(dout.dtype), dout)
    dprobs = jnp.einsum("bkgqe,bkse->bkgqs", dout, vh).astype(jnp.float32)
    # softmax backward: dS = P * (dP - rowsum(P * dP)), and rowsum(P * dP) = rowsum(dO * O).
    row = jnp.sum(dout.astype(jnp.float32) * out.astype(jnp.float32), axis=-1, keepdims=True)
    # Masked scores are constants (the select), so their gradient is 0 even in a row with no key at all,
    # where the probabilities are uniform over the masked keys rather than 0.
    dscores = jnp.where(mask_bqs[:, None, None], probs * (dprobs - row), 0.0).astype(qh.dtype)
    scale = qh.shape[-1] ** -0.5
    dq = jnp.einsum("bkgqs,bkse->bkgqe", dscores, kh) * scale
    dk = jnp.einsum("bkgqs,bkgqe->bkse", dscores, qh)
    return (dq.astype(qh.dtype).transpose(0, 3, 1, 2, 4), dk.transpose(0, 2, 1, 3),
            dv.transpose(0, 2, 1, 3), None)


attend.defvjp(_attend_fwd, _attend_bwd)
