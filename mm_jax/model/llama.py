"""The LLaMA text-to-motion decoder (Flax linen) and its pure-function entry points.

Stage: model. Inputs: frozen text features ``text_bsc`` [B, S, C] (C = 384,
MiniLM per-token states, computed outside the model) with ``text_mask_bs``
[B, S] (True = real token), and motion token ids ``motion_bn`` [B, N] int32 in
the motion vocab (FSQ codes, BOS, EOS, PAD; see config.py) with
``motion_mask_bn`` [B, N]. Output: logits [B, N, Vp] float32 for the motion
positions only; position i predicts motion token i + 1. Vp is
``cfg.padded_vocab_size``; the columns >= ``cfg.vocab_size`` hold -1e30 and are
never chosen.

Letters: B batch, S text tokens, N motion tokens, T = S + N decoder positions,
C text width, D model width, H query heads, K kv heads, G = H / K query heads
per kv head, E head dim, M MLP hidden, V vocab.

Architecture: text prefix = linear projection C -> D; motion = embedding
lookup; sequence [S | N]; pre-norm LLaMA blocks (RMSNorm, RoPE, grouped-query
attention, SwiGLU, no biases); final RMSNorm; untied output head. Masks and
positions: attention.py (mixed attention, padding-neutral positions). Dropout
(``cfg.dropout``) acts on the embeddings and on each residual branch, with an
explicit key; attention probabilities are not dropped.

Decoding uses the same modules: :func:`prefill` runs the text prefix once and
:func:`decode_step` one motion token per row against a :class:`KVCache`
(``Attention`` takes an optional per-layer cache, as in the Flax gemma example
and Levanter). tests/test_sample.py checks that greedy decoding through the
cache equals full recomputation.

Why Flax linen rather than NNX: linen's ``init``/``apply`` give a plain nested
dict of arrays that optax, orbax and the PyTorch export consume as is, and
``nn.with_logical_partitioning`` attaches logical axis names to every
parameter, which ``jax.eval_shape(init)`` exposes without materialising
anything; sharding.py turns those names into mesh shardings. NNX would need
``nnx.split``/``merge`` at every jit boundary to get the same pure pytree.

Parameter layout (weights are [out, in] and contracted as ``...i,oi->...o``,
which XLA:CPU runs faster than [in, out]; QKV and gate/up are fused; every matmul goes through
:func:`mm_jax.model.dense.linear`, whose weight gradient avoids a wide transpose)::

    text_proj               [D, C]        (embed, text_embed)
    embed                   [Vp, D]       (vocab, embed)
    block_{i}/attn_norm/scale, block_{i}/mlp_norm/scale, final_norm/scale  [D]  (norm,)
    block_{i}/attn/qkv      [K, G+2, E, D] (kv_heads, qkv, head_dim, embed)
    block_{i}/attn/out      [D, H, E]     (embed, heads, head_dim)
    block_{i}/mlp/gate_up   [2, M, D]     (gate_up, mlp, embed)
    block_{i}/mlp/down      [D, M]        (embed, mlp)
    head                    [Vp, D]       (vocab, embed)

In ``qkv`` slot g < G of kv head k is query head h = k * G + g, slot G is the
key and slot G + 1 the value of kv head k. With ``cfg.scan_layers`` the blocks
are one ``blocks/...`` subtree with a leading L axis (logical name 'layers').
A Python loop over layers is the default (faster on XLA:CPU than lax.scan);
scan compiles much faster for deep models.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn

from mm_jax.errors import ShapeError
from mm_jax.model import attention
from mm_jax.model.dense import linear
from mm_jax.model.config import ModelConfig

NEG_INF = attention.NEG_INF
ACT_BTD = ("batch", "seq", "act_embed")


def _constrain(x: jax.Array, names: tuple) -> jax.Array:
    """Logical sharding constraint; a no-op unless ``mm_jax.sharding.activation_rules`` is active."""
    return nn.with_logical_constraint(x, names)


def _weight(module: nn.Module, name: str, shape: tuple[int, ...], names: tuple, std: float) -> jax.Array:
    init = nn.with_logical_partitioning(nn.initializers.normal(std), names)
    return module.param(name, init, shape, jnp.float32)


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) * scale, computed in float32."""

    eps: float

    @nn.compact
    def __call__(self, x_btd: jax.Array) -> jax.Array:
        init = nn.with_logical_partitioning(nn.initializers.ones, ("norm",))
        scale = self.param("scale", init, (x_btd.shape[-1],), jnp.float32)
        x32 = x_btd.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * scale).astype(x_btd.dtype)


class LayerCache(NamedTuple):
    """One layer's rotated keys and values, [B, T, K, E] each (T = S + N slots)."""

    k_btke: jax.Array
    v_btke: jax.Array


class Attention(nn.Module):
    """Grouped-query self-attention with RoPE, a boolean mask and an optional KV cache.

    Without ``cache`` the queries attend to the keys of ``x_btd`` itself
    (mask [B, T, T]); the second output is those keys and values (what
    :func:`prefill` stores). With ``cache`` the Q new keys and values are
    written at slot ``index`` and the queries attend to all T cache slots
    (mask [B, Q, T]); the second output is the updated cache.
    """

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x_btd, mask_btt, sin_bti, cos_bti, cache: LayerCache | None = None,
                 index: jax.Array | None = None) -> tuple[jax.Array, LayerCache]:
        cfg = self.cfg
        k_, g_, e_, d_ = cfg.num_kv_heads, cfg.queries_per_kv, cfg.head_dim, cfg.width
        dt = jnp.dtype(cfg.dtype)
        out_std = cfg.init_std / (2 * cfg.num_layers) ** 0.5
        w_qkv = _weight(self, "qkv", (k_, g_ + 2, e_, d_),
                        ("kv_heads", "qkv", "head_dim", "embed"), cfg.init_std)
        w_out = _weight(self, "out", (d_, cfg.num_heads, e_), ("embed", "heads", "head_dim"), out_std)
        qkv = linear(x_btd, w_qkv.astype(dt).reshape(-1, d_)).reshape(x_btd.shape[:2] + w_qkv.shape[:3])
        qk_btkje = attention.apply_rope(qkv[..., :g_ + 1, :], sin_bti, cos_bti)  # q and k in one rotation
        q_btkge, k_btke, v_btke = qk_btkje[..., :g_, :], qk_btkje[..., g_, :], qkv[..., g_ + 1, :]
        if cache is not None:  # write the new slots, attend to the whole cache
            at = (0, index, 0, 0)
            k_btke = jax.lax.dynamic_update_slice(cache.k_btke, k_btke.astype(cache.k_btke.dtype), at)
            v_btke = jax.lax.dynamic_update_slice(cache.v_btke, v_btke.astype(cache.v_btke.dtype), at)
        o_btkge = attention.attend(q_btkge, k_btke, v_btke, mask_btt)
        o_btf = o_btkge.reshape(o_btkge.shape[:2] + (cfg.num_heads * e_,))  # F = H * E, head-major
        return linear(o_btf, w_out.astype(dt).reshape(d_, -1)), LayerCache(k_btke, v_btke)


class Mlp(nn.Module):
    """SwiGLU: down(silu(gate x) * up x), gate and up fused."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x_btd):
        cfg = self.cfg
        dt = jnp.dtype(cfg.dtype)
        m_, d_ = cfg.mlp_hidden, cfg.width
        out_std = cfg.init_std / (2 * cfg.num_layers) ** 0.5
        w_gu = _weight(self, "gate_up", (2, m_, d_), ("gate_up", "mlp", "embed"), cfg.init_std)
        w_down = _weight(self, "down", (d_, m_), ("embed", "mlp"), out_std)
        h_btcm = linear(x_btd, w_gu.astype(dt).reshape(-1, d_)).reshape(x_btd.shape[:2] + (2, m_))
        h_btm = nn.silu(h_btcm[:, :, 0]) * h_btcm[:, :, 1]
        return linear(h_btm, w_down.astype(dt))


class Block(nn.Module):
    """Pre-norm LLaMA block -> (x, kv) so it can be scanned; kv is None unless ``keep_kv``.

    ``cache``/``index`` go to :class:`Attention`; with ``keep_kv`` the second
    output is the layer's keys and values (the updated cache when one is given).
    """

    cfg: ModelConfig
    deterministic: bool = True
    keep_kv: bool = False

    @nn.compact
    def __call__(self, x_btd, mask_btt, sin_bti, cos_bti, cache: LayerCache | None = None,
                 index: jax.Array | None = None):
        cfg = self.cfg
        drop = nn.Dropout(cfg.dropout, deterministic=self.deterministic)
        h, kv = Attention(cfg, name="attn")(RMSNorm(cfg.norm_eps, name="attn_norm")(x_btd),
                                            mask_btt, sin_bti, cos_bti, cache, index)
        x_btd = _constrain(x_btd + drop(h), ACT_BTD)
        h = Mlp(cfg, name="mlp")(RMSNorm(cfg.norm_eps, name="mlp_norm")(x_btd))
        return _constrain(x_btd + drop(h), ACT_BTD), (kv if self.keep_kv else None)


def _block_stack(cfg: ModelConfig, cached: bool = False) -> type[nn.Module]:
    """Block, optionally rematerialised and/or scanned over layers (``cached``: scan the cache too)."""
    block = nn.remat(Block, prevent_cse=not cfg.scan_layers) if cfg.remat else Block
    if not cfg.scan_layers:
        return block
    in_axes = (nn.broadcast,) * 3 + ((0, nn.broadcast) if cached else ())
    return nn.scan(block, variable_axes={"params": 0},
                   split_rngs={"params": True, "dropout": True},
                   in_axes=in_axes, length=cfg.num_layers,
                   metadata_params={nn.PARTITION_NAME: "layers"})


def check_inputs(cfg: ModelConfig, text_bsc, text_mask_bs, motion_bn, motion_mask_bn) -> None:
    """Raises ShapeError when the four inputs do not fit each other or ``cfg``."""
    if text_bsc.ndim != 3 or text_bsc.shape[-1] != cfg.text_dim:
        raise ShapeError(f"text_bsc has shape {text_bsc.shape}; expected [B, S, {cfg.text_dim}]")
    b, s = text_bsc.shape[:2]
    if tuple(text_mask_bs.shape) != (b, s):
        raise ShapeError(f"text_mask_bs has shape {text_mask_bs.shape}; expected {(b, s)}")
    if motion_bn.ndim != 2 or motion_bn.shape[0] != b:
        raise ShapeError(f"motion_bn has shape {motion_bn.shape}; expected [{b}, N]")
    if not jnp.issubdtype(motion_bn.dtype, jnp.integer):
        raise ShapeError(f"motion_bn has dtype {motion_bn.dtype}; expected an integer type")
    if tuple(motion_mask_bn.shape) != tuple(motion_bn.shape):
        raise ShapeError(f"motion_mask_bn has shape {motion_mask_bn.shape}; "
                         f"expected {tuple(motion_bn.shape)}")


class KVCache(NamedTuple):
    """The decoding cache: per-layer rotated keys and values plus the text bookkeeping.

    Attributes:
      k_lbtke: [L, B, T, K, E] keys after RoPE (T = S + N slots: text, then motion).
      v_lbtke: [L, B, T, K, E] values.
      text_mask_bs: [B, S] bool, the real text tokens.
      text_len_b: [B] int32, number of real text tokens (first motion position).
    """

    k_lbtke: jax.Array
    v_lbtke: jax.Array
    text_mask_bs: jax.Array
    text_len_b: jax.Array


class Decoder(nn.Module):
    """Text-prefix LLaMA decoder over motion tokens (see the module docstring).

    One forward pass, three uses (each through the same blocks):
      * full (``cache`` None): logits [B, N, Vp] of every motion position;
      * prefill (``motion_bn`` None): the text prefix alone; returns its
        :class:`LayerCache` stacked over layers ([L, B, S, K, E] each). Text
        queries never attend to motion, so these keys and values are final;
      * decode (``text_bsc`` None, ``cache`` given): Q motion tokens at motion
        index ``index`` attend to the real text keys and the motion slots up to
        their own; returns (logits [B, Q, Vp], the updated [L, B, T, K, E] cache).
    """

    cfg: ModelConfig

    @nn.compact
    def __call__(self, text_bsc, text_mask_bs, motion_bn, motion_mask_bn, train: bool = False, *,
                 cache: KVCache | None = None, index: jax.Array | None = None):
        cfg = self.cfg
        dt = jnp.dtype(cfg.dtype)
        prefill = motion_bn is None
        w_text = _weight(self, "text_proj", (cfg.width, cfg.text_dim), ("embed", "text_embed"),
                         cfg.text_dim ** -0.5)
        table = _weight(self, "embed", (cfg.padded_vocab_size, cfg.width), ("vocab", "embed"),
                        cfg.init_std)
        table = _constrain(table, ("vocab", None))  # gather D over fsdp first, as FSDP does
        if cache is None:
            if prefill:
                motion_bn = jnp.zeros((text_bsc.shape[0], 0), jnp.int32)
                motion_mask_bn = jnp.zeros((text_bsc.shape[0], 0), bool)
            check_inputs(cfg, text_bsc, text_mask_bs, motion_bn, motion_mask_bn)
            s = text_bsc.shape[1]
            text_mask_bs, motion_mask_bn = text_mask_bs.astype(bool), motion_mask_bn.astype(bool)
            x_bsd = jnp.einsum("bsc,dc->bsd", text_bsc.astype(dt), w_text.astype(dt))
            x_bnd = jnp.take(table, motion_bn, axis=0, mode="clip").astype(dt)
            x_btd = nn.Dropout(cfg.dropout, deterministic=not train)(jnp.concatenate([x_bsd, x_bnd], 1))
            mask_btt = attention.mixed_attention_mask(text_mask_bs, motion_mask_bn)
            pos_bt = attention.token_positions(text_mask_bs, motion_mask_bn)
        else:
            s = 0  # every position of x is a motion token
            x_btd = jnp.take(table, motion_bn, axis=0, mode="clip").astype(dt)
            mask_btt, pos_bt = _decode_mask_positions(cache, motion_bn.shape[1], index)
        x_btd = _constrain(x_btd, ACT_BTD)
        sin_bti, cos_bti = attention.rope_angles(pos_bt, cfg.head_dim, cfg.rope_theta)
        x_btd, kv = self._blocks(x_btd, mask_btt, sin_bti, cos_bti, train, prefill, cache, index)
        if prefill:
            return kv

        # Final hidden states [B, T, D] (before the final norm), for tests and feature probes:
        # apply(..., mutable=["intermediates"]) returns them; otherwise this is a no-op.
        self.sow("intermediates", "hidden_btd", x_btd)
        x_bnd = RMSNorm(cfg.norm_eps, name="final_norm")(x_btd[:, s:])
        w_head = _weight(self, "head", (cfg.padded_vocab_size, cfg.width), ("vocab", "embed"),
                         cfg.init_std)
        logits_bnv = linear(x_bnd, w_head.astype(dt)).astype(jnp.float32)
        logits_bnv = _constrain(logits_bnv, ("batch", "seq", "act_vocab"))
        real_v = jnp.arange(cfg.padded_vocab_size) < cfg.vocab_size
        logits_bnv = jnp.where(real_v, logits_bnv, NEG_INF)
        return logits_bnv if cache is None else (logits_bnv, kv)

    def _blocks(self, x_btd, mask_btt, sin_bti, cos_bti, train, prefill, cache, index):
        """The L blocks -> (x, kv): kv stacked [L, ...] when prefilling or decoding, else None."""
        cfg = self.cfg
        keep = prefill or cache is not None
        stack = _block_stack(cfg, cached=cache is not None)
        slot = None if cache is None else cache.text_mask_bs.shape[1] + index  # cache slot of motion index
        if cfg.scan_layers:
            extra = () if cache is None else (LayerCache(cache.k_lbtke, cache.v_lbtke), slot)
            return stack(cfg, not train, keep, name="blocks")(x_btd, mask_btt, sin_bti, cos_bti, *extra)
        kvs = []
        for i in range(cfg.num_layers):
            extra = () if cache is None else (LayerCache(cache.k_lbtke[i], cache.v_lbtke[i]), slot)
            x_btd, kv = stack(cfg, not train, keep, name=f"block_{i}")(x_btd, mask_btt, sin_bti, cos_bti, *extra)
            kvs.append(kv)
        if not keep:
            return x_btd, None
        return x_btd, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *kvs)


def _decode_mask_positions(cache: KVCache, q: int, index: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mask [B, Q, T] (real text keys, motion slots up to each query's own) and RoPE positions [B, Q].

    Positions follow ``attention.token_positions`` (s real text tokens, then s + index, ...):
    every generated motion token is real while it can still influence a live row.
    """
    b, s = cache.text_mask_bs.shape
    n = cache.k_lbtke.shape[2] - s
    motion_qn = jnp.arange(n)[None, :] <= index + jnp.arange(q)[:, None]
    mask_bqt = jnp.concatenate([jnp.broadcast_to(cache.text_mask_bs[:, None, :], (b, q, s)),
                                jnp.broadcast_to(motion_qn, (b, q, n))], axis=2)
    pos_bq = cache.text_len_b[:, None] + index + jnp.arange(q)[None, :]
    return mask_bqt, pos_bq


# ----------------------------------------------------------------------------- pure entry points


def _dummy_inputs(cfg: ModelConfig) -> tuple[jax.Array, ...]:
    return (jnp.zeros((1, 1, cfg.text_dim), jnp.float32), jnp.ones((1, 1), bool),
            jnp.zeros((1, 1), jnp.int32), jnp.ones((1, 1), bool))


def init_boxed(cfg: ModelConfig, *, key: jax.Array) -> dict:
    """Initial parameters still wrapped in ``nn.LogicallyPartitioned`` boxes."""
    return Decoder(cfg).init({"params": key}, *_dummy_inputs(cfg))["params"]


def init_params(cfg: ModelConfig, *, key: jax.Array) -> dict:
    """Initial float32 parameters as a plain nested dict of arrays (jitted init)."""
    return jax.jit(lambda k: nn.meta.unbox(init_boxed(cfg, key=k)))(key)


def abstract_params(cfg: ModelConfig) -> dict:
    """Boxed ``jax.ShapeDtypeStruct`` parameters via ``jax.eval_shape``: nothing is allocated.

    Each leaf is an ``nn.LogicallyPartitioned`` whose ``value`` is a
    ShapeDtypeStruct and whose ``names`` are the logical axis names, the input
    of ``mm_jax.sharding.param_shardings``. ``nn.meta.unbox`` strips the boxes.
    """
    return jax.eval_shape(lambda k: init_boxed(cfg, key=k), jax.random.key(0))


def forward(cfg: ModelConfig, params: dict, text_bsc: jax.Array, text_mask_bs: jax.Array,
            motion_bn: jax.Array, motion_mask_bn: jax.Array, *, key: jax.Array | None = None
            ) -> jax.Array:
    """Logits [B, N, Vp] (float32); ``key`` given = training mode (dropout on).

    Args:
      cfg: the model config.
      params: plain parameter dict from :func:`init_params` (or a checkpoint).
      text_bsc: [B, S, C] float text features.
      text_mask_bs: [B, S] bool, True for real text tokens.
      motion_bn: [B, N] int motion ids (BOS first, then codes, EOS, PAD).
      motion_mask_bn: [B, N] bool, True for real motion tokens (incl. BOS, EOS).
      key: dropout key; None runs deterministically (evaluation, sampling).
    """
    rngs = {} if key is None else {"dropout": key}
    return Decoder(cfg).apply({"params": params}, text_bsc, text_mask_bs, motion_bn,
                              motion_mask_bn, train=key is not None, rngs=rngs)


def prefill(cfg: ModelConfig, params: dict, text_bsc: jax.Array, text_mask_bs: jax.Array,
            max_motion: int) -> KVCache:
    """Runs the text prefix once -> a :class:`KVCache` with room for ``max_motion`` motion slots.

    Args:
      cfg: the model config.
      params: plain parameter dict.
      text_bsc: [B, S, C] text features.
      text_mask_bs: [B, S] bool, True for real text tokens.
      max_motion: N, the motion slots to reserve (BOS included).

    Returns:
      A cache whose text slots [0, S) are filled and whose motion slots are zero.
    """
    text_mask_bs = jnp.asarray(text_mask_bs).astype(bool)
    kv = Decoder(cfg).apply({"params": params}, text_bsc, text_mask_bs, None, None)
    pad = ((0, 0), (0, 0), (0, max_motion), (0, 0), (0, 0))
    text_len_b = jnp.sum(text_mask_bs, axis=1).astype(jnp.int32)
    return KVCache(jnp.pad(kv.k_btke, pad), jnp.pad(kv.v_btke, pad), text_mask_bs, text_len_b)


def decode_step(cfg: ModelConfig, params: dict, cache: KVCache, token_b: jax.Array,
                t: jax.Array) -> tuple[jax.Array, KVCache]:
    """One motion token per row at motion index ``t`` -> (logits [B, Vp] float32, new cache).

    Args:
      cfg: the model config.
      params: plain parameter dict.
      cache: from :func:`prefill` (and earlier steps 0..t-1).
      token_b: [B] int motion ids at index ``t`` (BOS at t = 0).
      t: scalar int32 motion index (traced).
    """
    logits_b1v, kv = Decoder(cfg).apply({"params": params}, None, None, token_b[:, None], None,
                                        cache=cache, index=t)
    return logits_b1v[:, 0], cache._replace(k_lbtke=kv.k_btke, v_lbtke=kv.v_btke)
