"""The optimizer, the train state and the pure train/eval steps of the decoder (stage: train).

Inputs: a ``ModelConfig``, a ``TrainConfig``, device batches
``{text_ids [B,S] int32, text_mask [B,S] bool, motion_ids [B,N] int32,
motion_mask [B,N] bool}`` and the frozen text encoder's params. Outputs: a
new :class:`TrainState` and a flat dict of scalar metrics.

* Optimizer: global-norm clipping -> AdamW (decoupled weight decay under a
  mask from the parameter paths: no decay on RMSNorm scales nor on the motion
  embedding table) with linear warm-up and cosine decay to
  ``lr * min_lr_ratio``. Params stay float32 (master copy); the model casts
  them to ``model_cfg.dtype`` (bf16 compute) inside the forward pass.
* Text encoder: run inside the step on the token ids (docs/shards.md: < 1%
  of a step from 70M parameters up; caching per-token features would take
  ~1 TB for MotionMillion), its output behind ``stop_gradient`` and its
  params outside the optimizer.
* Gradient accumulation: the batch is cut into A micro-batches (micro-batch
  j = rows j, A + j, 2A + j, ..., so every data shard holds part of each) and
  a ``lax.scan`` sums per-micro-batch gradients of the *summed* token loss;
  dividing by the total token count gives exactly the big batch's
  token-mean loss and gradient (up to float summation order).
* Keys: the step's dropout key is ``fold_in(key, state.step)``, micro-batch j
  uses ``fold_in(step_key, j)``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from mm_jax.model.config import ModelConfig
from mm_jax.model.loss import loss_sums
from mm_jax.text.encoder import encode as text_encode
from mm_jax.train import recipe
from mm_jax.train.config import TrainConfig
from mm_jax.train.recipe import TrainState

BATCH_KEYS = ("text_ids", "text_mask", "motion_ids", "motion_mask")


def decay_mask(params: Any) -> Any:
    """True for leaves that get weight decay: matmul weights, not norms nor the embedding table.

    Decided from each leaf's path: any key containing ``norm`` (RMSNorm
    scales) or a leaf named ``embed`` (the motion token table) is excluded.
    """
    def keep(path: tuple, _leaf: Any) -> bool:
        names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
        return not (any("norm" in n for n in names) or names[-1] == "embed")

    return jax.tree_util.tree_map_with_path(keep, params)


def lr_schedule(cfg: TrainConfig) -> optax.Schedule:
    """The rate of update ``count`` (0-based): linear warm-up, then cosine decay.

    Update k uses ``lr * (k + 1) / warmup_steps`` during warm-up (so the first
    update is not wasted at rate 0), reaches ``lr`` at update
    ``warmup_steps - 1`` and decays along a cosine to ``lr * min_lr_ratio``
    at the last update (``steps - 1``).
    """
    return recipe.warmup_cosine(cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio, shift=1)


def make_optimizer(cfg: TrainConfig, params: Any) -> optax.GradientTransformation:
    """Clipping + AdamW (:func:`recipe.adamw`) with :func:`lr_schedule` and the mask of :func:`decay_mask`."""
    return recipe.adamw(lr_schedule(cfg), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay,
                        grad_clip=cfg.grad_clip, mask=decay_mask(params))


def split_micro(batch: dict[str, jax.Array], accum_steps: int) -> dict[str, jax.Array]:
    """[B, ...] -> [A, B/A, ...]: micro-batch j takes rows j, A + j, 2A + j, ..."""
    def one(x: jax.Array) -> jax.Array:
        b = x.shape[0]
        return jnp.swapaxes(x.reshape((b // accum_steps, accum_steps) + x.shape[1:]), 0, 1)

    return {k: one(batch[k]) for k in BATCH_KEYS}


def _sum_loss(model_cfg: ModelConfig, params: Any, text_params: Any, mb: dict[str, jax.Array],
              key: jax.Array | None, ce_chunk: int = 0, branches: int = 1) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Summed next-token NLL of one micro-batch and its (correct, tokens) sums (loss-only forward)."""
    tokens_bsc, _ = text_encode(text_params, mb["text_ids"], mb["text_mask"])
    tokens_bsc = jax.lax.stop_gradient(tokens_bsc)
    nll, correct, tokens = loss_sums(model_cfg, params, tokens_bsc, mb["text_mask"], mb["motion_ids"],
                                     mb["motion_mask"], key=key, ce_chunk=ce_chunk, branches=branches)
    return nll, {"correct": correct, "tokens": tokens}


def accumulated_grads(model_cfg: ModelConfig, params: Any, text_params: Any, batch: dict[str, jax.Array],
                      key: jax.Array, accum_steps: int, ce_chunk: int = 0, branches: int = 1
                      ) -> tuple[Any, dict[str, jax.Array]]:
    """Token-mean gradient and metrics over ``accum_steps`` micro-batches of ``batch``.

    ``ce_chunk``: vocabulary chunk of the cross-entropy (0 = unchunked; ``TrainConfig.ce_chunk``).
    ``branches``: row branches of each micro-batch (``TrainConfig.batch_branches``).

    Returns:
      (grads like params, {"loss", "accuracy", "tokens"}); equal to one pass
      over the whole batch when there is no dropout.
    """
    grad_fn = jax.value_and_grad(lambda p, mb, k: _sum_loss(model_cfg, p, text_params, mb, k, ce_chunk, branches),
                                 has_aux=True)
    if accum_steps == 1:
        (nll, aux), grad_sum = grad_fn(params, {k: batch[k] for k in BATCH_KEYS}, jax.random.fold_in(key, 0))
    else:
        def body(carry, xs):
            j, mb = xs
            (nll_j, aux_j), g_j = grad_fn(params, mb, jax.random.fold_in(key, j))
            return jax.tree.map(jnp.add, carry, (g_j, nll_j, aux_j)), None

        zero = (jax.tree.map(jnp.zeros_like, params), jnp.float32(0.0),
                {"correct": jnp.float32(0.0), "tokens": jnp.float32(0.0)})
        (grad_sum, nll, aux), _ = jax.lax.scan(body, zero, (jnp.arange(accum_steps),
                                                            split_micro(batch, accum_steps)))
    denom = jnp.maximum(aux["tokens"], 1.0)
    grads = jax.tree.map(lambda g: g / denom, grad_sum)
    return grads, {"loss": nll / denom, "accuracy": aux["correct"] / denom, "tokens": aux["tokens"]}


def make_train_step(model_cfg: ModelConfig, train_cfg: TrainConfig, opt: optax.GradientTransformation
                    ) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
    """The pure ``train_step(state, batch, key, text_params) -> (state, metrics)``.

    ``key`` is the run's root dropout key (the step folds in ``state.step``);
    ``text_params`` are the frozen encoder's (never updated). Metrics:
    ``loss``, ``accuracy``, ``tokens`` (real targets), ``grad_norm`` (before
    clipping), ``param_norm`` (after the update: an exploded update shows
    here before the next loss) and ``lr`` (the rate of this update).
    """
    schedule = lr_schedule(train_cfg)

    def train_step(state: TrainState, batch: dict[str, jax.Array], key: jax.Array, text_params: Any
                   ) -> tuple[TrainState, dict[str, jax.Array]]:
        step_key = jax.random.fold_in(key, state.step)
        grads, metrics = accumulated_grads(model_cfg, state.params, text_params, batch, step_key,
                                           train_cfg.grad_accum_steps, train_cfg.ce_chunk,
                                           train_cfg.batch_branches)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {**metrics, "grad_norm": optax.tree.norm(grads), "param_norm": optax.tree.norm(params),
                   "lr": schedule(state.step)}
        return TrainState(state.step + 1, params, opt_state), metrics

    return train_step


def make_eval_step(model_cfg: ModelConfig) -> Callable[..., dict[str, jax.Array]]:
    """The pure ``eval_step(params, batch, text_params) -> {"nll", "correct", "tokens"}``.

    Sums over the batch's real targets, without dropout; divide by ``tokens``.
    """
    def eval_step(params: Any, batch: dict[str, jax.Array], text_params: Any) -> dict[str, jax.Array]:
        nll, aux = _sum_loss(model_cfg, params, text_params, {k: batch[k] for k in BATCH_KEYS}, None)
        return {"nll": nll, **aux}

    return eval_step
