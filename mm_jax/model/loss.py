"""Next-token loss of the text-to-motion decoder.

Stage: model (used by train and eval). Inputs: logits [B, N, V] from
``llama.forward`` (position i predicts motion token i + 1), the motion ids
[B, N] and their mask [B, N]. Output: the mean cross-entropy over motion
positions whose *target* is a real token (codes and EOS; never PAD, never the
BOS that starts the sequence), and the token accuracy over the same set.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mm_jax.errors import ShapeError
from mm_jax.model.config import ModelConfig
from mm_jax.model.llama import forward


def motion_loss(logits_bnv: jax.Array, motion_bn: jax.Array, motion_mask_bn: jax.Array
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Cross-entropy and accuracy on real next-token targets.

    Args:
      logits_bnv: [B, N, V] logits; position i scores token i + 1.
      motion_bn: [B, N] int ids.
      motion_mask_bn: [B, N] bool, True for real tokens.

    Returns:
      (loss, metrics) with metrics ``{"loss", "accuracy", "tokens"}``; the loss
      is the mean over the real targets (0 when there are none).
    """
    if logits_bnv.ndim != 3 or logits_bnv.shape[:2] != motion_bn.shape:
        raise ShapeError(f"logits_bnv has shape {logits_bnv.shape}; expected "
                         f"{tuple(motion_bn.shape)} + (V,)")
    if motion_mask_bn.shape != motion_bn.shape:
        raise ShapeError(f"motion_mask_bn has shape {motion_mask_bn.shape}; "
                         f"expected {tuple(motion_bn.shape)}")
    logits = logits_bnv[:, :-1].astype(jnp.float32)
    target_bn = motion_bn[:, 1:]
    weight_bn = motion_mask_bn[:, 1:].astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll_bn = -jnp.take_along_axis(logp, target_bn[..., None], axis=-1)[..., 0]
    count = jnp.sum(weight_bn)
    denom = jnp.maximum(count, 1.0)
    loss = jnp.sum(nll_bn * weight_bn) / denom
    correct = (jnp.argmax(logits, axis=-1) == target_bn).astype(jnp.float32)
    accuracy = jnp.sum(correct * weight_bn) / denom
    return loss, {"loss": loss, "accuracy": accuracy, "tokens": count}


def forward_loss(cfg: ModelConfig, params: dict, text_bsc: jax.Array, text_mask_bs: jax.Array,
                 motion_bn: jax.Array, motion_mask_bn: jax.Array, *, key: jax.Array | None = None
                 ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``motion_loss(forward(...))``: the function to differentiate in a train step."""
    logits_bnv = forward(cfg, params, text_bsc, text_mask_bs, motion_bn, motion_mask_bn, key=key)
    return motion_loss(logits_bnv, motion_bn, motion_mask_bn)
