"""The frozen text encoder: all-MiniLM-L6-v2 (a 6-layer post-LN BERT) in jnp.

Stage: text. Input: token ids int [B, S] and a mask [B, S] from
:mod:`mm_jax.text.tokenize`, and a params pytree from
:mod:`mm_jax.text.weights`. Output: per-token last hidden states
``tokens_bsd`` [B, S, D] (the decoder's text prefix) and the
sentence-transformers embedding ``sentence_bd`` [B, D] (mean over real tokens,
then L2-normalised).

Pure functions of the params pytree: :func:`encode` is jit-able, holds no
state and never updates the weights (the encoder is frozen). Attention is
masked on keys, so padding never changes a real token's output.

Shape legend: B batch, S text tokens (R the same tokens as attention keys),
D width, H heads, K per-head width (D = H K), M feed-forward width, L layers,
V vocabulary, P positions, Y token types.

Params layout (every layer leaf is stacked on a leading L axis)::

    embed:  word_vd [V,D]  pos_pd [P,D]  type_yd [Y,D]  ln_scale_d  ln_bias_d
    layers: q_ldhk k_ldhk v_ldhk [L,D,H,K]  q_bias_lhk k_bias_lhk v_bias_lhk [L,H,K]
            o_lhkd [L,H,K,D]  o_bias_ld  attn_ln_scale_ld  attn_ln_bias_ld
            mlp_in_ldm [L,D,M]  mlp_in_bias_lm  mlp_out_lmd [L,M,D]  mlp_out_bias_ld
            mlp_ln_scale_ld  mlp_ln_bias_ld
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mm_jax.errors import DataError, ShapeError
from mm_jax.text.config import TextConfig

logger = logging.getLogger(__name__)

Params = dict[str, dict[str, jax.Array]]

LN_EPS = 1e-12


def _layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    """LayerNorm over the last axis (biased variance, as torch)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * scale + bias


def _embed(embed: dict[str, jax.Array], ids_bs: jax.Array, eps: float) -> jax.Array:
    """Word + position + token-type(0) embeddings, then LayerNorm -> [B,S,D]."""
    s = ids_bs.shape[1]
    x_bsd = embed["word_vd"][ids_bs] + embed["pos_pd"][:s][None] + embed["type_yd"][0]
    return _layer_norm(x_bsd, embed["ln_scale_d"], embed["ln_bias_d"], eps)


def _attention(x_bsd: jax.Array, lp: dict[str, jax.Array], mask_br: jax.Array) -> jax.Array:
    """Multi-head self-attention with a key mask -> [B,S,D] (before residual)."""
    q_bshk = jnp.einsum("BSD,DHK->BSHK", x_bsd, lp["q_ldhk"]) + lp["q_bias_lhk"]
    k_brhk = jnp.einsum("BRD,DHK->BRHK", x_bsd, lp["k_ldhk"]) + lp["k_bias_lhk"]
    v_brhk = jnp.einsum("BRD,DHK->BRHK", x_bsd, lp["v_ldhk"]) + lp["v_bias_lhk"]
    scale = 1.0 / math.sqrt(q_bshk.shape[-1])
    logits_bhsr = jnp.einsum("BSHK,BRHK->BHSR", q_bshk, k_brhk) * scale
    big_neg = jnp.finfo(logits_bhsr.dtype).min
    logits_bhsr = jnp.where(mask_br[:, None, None, :], logits_bhsr, big_neg)
    probs_bhsr = jax.nn.softmax(logits_bhsr, axis=-1)
    ctx_bshk = jnp.einsum("BHSR,BRHK->BSHK", probs_bhsr, v_brhk)
    return jnp.einsum("BSHK,HKD->BSD", ctx_bshk, lp["o_lhkd"]) + lp["o_bias_ld"]


def _layer(x_bsd: jax.Array, lp: dict[str, jax.Array], mask_br: jax.Array, eps: float) -> jax.Array:
    """One post-LN BERT layer (attention, add & norm, erf-GELU MLP, add & norm)."""
    x_bsd = _layer_norm(x_bsd + _attention(x_bsd, lp, mask_br),
                        lp["attn_ln_scale_ld"], lp["attn_ln_bias_ld"], eps)
    h_bsm = jnp.einsum("BSD,DM->BSM", x_bsd, lp["mlp_in_ldm"]) + lp["mlp_in_bias_lm"]
    h_bsm = jax.nn.gelu(h_bsm, approximate=False)
    out_bsd = jnp.einsum("BSM,MD->BSD", h_bsm, lp["mlp_out_lmd"]) + lp["mlp_out_bias_ld"]
    return _layer_norm(x_bsd + out_bsd, lp["mlp_ln_scale_ld"], lp["mlp_ln_bias_ld"], eps)


def _check_inputs(params: Params, ids_bs: Any, mask_bs: Any) -> None:
    """Raises ShapeError/DataError on inputs the encoder cannot take."""
    ids_shape, mask_shape = tuple(np.shape(ids_bs)), tuple(np.shape(mask_bs))
    if len(ids_shape) != 2:
        raise ShapeError(f"ids_bs must be [B, S]; got shape {ids_shape}")
    if mask_shape != ids_shape:
        raise ShapeError(f"mask_bs shape {mask_shape} != ids_bs shape {ids_shape}")
    if not jnp.issubdtype(jnp.result_type(ids_bs), jnp.integer):
        raise DataError(f"ids_bs dtype {jnp.result_type(ids_bs)} is not an integer type")
    max_positions = params["embed"]["pos_pd"].shape[0]
    if ids_shape[1] > max_positions:
        raise ShapeError(f"S={ids_shape[1]} exceeds the {max_positions} position embeddings")


def mean_pool(tokens_bsd: jax.Array, mask_bs: jax.Array) -> jax.Array:
    """Mean over real tokens, then L2 normalisation (sentence-transformers) -> [B,D]."""
    m_bs1 = mask_bs.astype(tokens_bsd.dtype)[..., None]
    summed_bd = jnp.sum(tokens_bsd * m_bs1, axis=1)
    mean_bd = summed_bd / jnp.maximum(jnp.sum(m_bs1, axis=1), 1e-9)
    norm_b1 = jnp.linalg.norm(mean_bd, axis=-1, keepdims=True)
    return mean_bd / jnp.maximum(norm_b1, 1e-12)


def encode(params: Params, ids_bs: jax.Array, mask_bs: jax.Array, *,
           ln_eps: float = LN_EPS) -> tuple[jax.Array, jax.Array]:
    """Runs the frozen encoder.

    Args:
      params: the pytree of :func:`mm_jax.text.weights.load_params`.
      ids_bs: int [B, S] token ids (S <= P).
      mask_bs: bool or int [B, S]; nonzero on real tokens.
      ln_eps: LayerNorm epsilon (1e-12 for MiniLM).

    Returns:
      ``(tokens_bsd, sentence_bd)``: float32 [B, S, D] last hidden states
      (padding rows are computed but meaningless) and [B, D] unit-norm
      sentence embeddings.

    Raises:
      ShapeError: ids/mask are not [B, S] alike or S exceeds P.
      DataError: ids are not integers.
    """
    _check_inputs(params, ids_bs, mask_bs)
    mask_bs = jnp.asarray(mask_bs).astype(bool)
    x_bsd = _embed(params["embed"], jnp.asarray(ids_bs), ln_eps)

    def body(x: jax.Array, lp: dict[str, jax.Array]) -> tuple[jax.Array, None]:
        return _layer(x, lp, mask_bs, ln_eps), None

    tokens_bsd, _ = jax.lax.scan(body, x_bsd, params["layers"])
    return tokens_bsd, mean_pool(tokens_bsd, mask_bs)


def encode_captions(params: Params, tokenizer: Any, captions: Sequence[str]
                    ) -> tuple[jax.Array, jax.Array, np.ndarray]:
    """Tokenizes and encodes captions (host convenience; not jitted).

    Args:
      params: encoder params.
      tokenizer: a :class:`mm_jax.text.tokenize.TextTokenizer`.
      captions: B captions.

    Returns:
      ``(tokens_bsd, sentence_bd, mask_bs)`` with S = ``tokenizer.max_tokens``.
    """
    batch = tokenizer.encode(captions)
    tokens_bsd, sentence_bd = jax.jit(encode)(params, batch.ids, batch.mask)
    return tokens_bsd, sentence_bd, batch.mask


def init_params(config: TextConfig, *, key: jax.Array, std: float = 0.02) -> Params:
    """Random params in the loaded layout (for tests and shrunken configs).

    All weight matrices come from one normal draw of ``key``, cut into leaves
    (a single random op keeps compile time low). Pure and jit-able.

    Args:
      config: architecture (V, P, Y, D, H, M, L are read from it).
      key: PRNG key.
      std: normal std of weight matrices; biases 0, LayerNorm scale 1.

    Returns:
      A params pytree with the same structure as the loaded weights.
    """
    v, p, y = config.vocab_size, config.max_positions, config.type_vocab_size
    d, h, k, m, n = config.width, config.num_heads, config.head_dim, config.mlp_dim, config.num_layers
    shapes = {
        "word_vd": (v, d), "pos_pd": (p, d), "type_yd": (y, d),
        "q_ldhk": (n, d, h, k), "k_ldhk": (n, d, h, k), "v_ldhk": (n, d, h, k),
        "o_lhkd": (n, h, k, d), "mlp_in_ldm": (n, d, m), "mlp_out_lmd": (n, m, d),
    }
    sizes = [math.prod(shape) for shape in shapes.values()]
    flat = std * jax.random.normal(key, (sum(sizes),), jnp.float32)
    pieces = jnp.split(flat, np.cumsum(sizes)[:-1])
    weights = {name: piece.reshape(shape) for (name, shape), piece in zip(shapes.items(), pieces)}
    layers = {name: weights[name] for name in list(shapes)[3:]}
    for name in ("q_bias_lhk", "k_bias_lhk", "v_bias_lhk"):
        layers[name] = jnp.zeros((n, h, k))
    for name, width in (("o_bias_ld", d), ("mlp_in_bias_lm", m), ("mlp_out_bias_ld", d),
                        ("attn_ln_bias_ld", d), ("mlp_ln_bias_ld", d)):
        layers[name] = jnp.zeros((n, width))
    layers["attn_ln_scale_ld"] = jnp.ones((n, d))
    layers["mlp_ln_scale_ld"] = jnp.ones((n, d))
    embed = {"word_vd": weights["word_vd"], "pos_pd": weights["pos_pd"],
             "type_yd": weights["type_yd"], "ln_scale_d": jnp.ones((d,)),
             "ln_bias_d": jnp.zeros((d,))}
    return {"embed": embed, "layers": layers}
