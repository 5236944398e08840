"""Reconstruction quality of motion (stage: tokenizer evaluation).

All functions take joint positions in metres, ``[B, T, J, 3]``, and a frame
mask ``[B, T]`` (True for real frames), and return plain floats:

* ``mpjpe_mm``: mean per-joint position error, millimetres, of the global
  joints (the root trajectory is integrated, so its drift counts);
* ``mpjpe_local_mm``: the same with the root subtracted per frame (pose only).
* ``accel_error_mm``: mean norm of the difference of second time differences
  (accelerations) of prediction and target, mm/frame^2.
* ``jitter``: mean norm of the third time difference (jerk) of a motion,
  in m/s^3 (x fps^3); reported for reconstructions and targets alike, so the
  excess jerk that quantisation adds is ``jitter_pred - jitter_gt``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mm_jax.motion.features import FPS


def _masked_mean(x_bt: jax.Array, mask_bt: jax.Array) -> jax.Array:
    m = mask_bt.astype(x_bt.dtype)
    return jnp.sum(x_bt * m) / jnp.maximum(jnp.sum(m), 1.0)


def _diff_mask(mask_bt: jax.Array, order: int) -> jax.Array:
    """A difference of ``order`` is valid where all frames it touches are real."""
    out = mask_bt
    for _ in range(order):
        out = out[:, 1:] & out[:, :-1]
    return out


@jax.jit
def mpjpe_mm(pred_btj3: jax.Array, gt_btj3: jax.Array, mask_bt: jax.Array) -> jax.Array:
    err = jnp.linalg.norm(pred_btj3 - gt_btj3, axis=-1).mean(-1)
    return 1000.0 * _masked_mean(err, mask_bt)


@jax.jit
def mpjpe_local_mm(pred_btj3: jax.Array, gt_btj3: jax.Array, mask_bt: jax.Array) -> jax.Array:
    return mpjpe_mm(pred_btj3 - pred_btj3[..., :1, :], gt_btj3 - gt_btj3[..., :1, :], mask_bt)


@jax.jit
def accel_error_mm(pred_btj3: jax.Array, gt_btj3: jax.Array, mask_bt: jax.Array) -> jax.Array:
    acc = jnp.diff(pred_btj3, n=2, axis=1) - jnp.diff(gt_btj3, n=2, axis=1)
    return 1000.0 * _masked_mean(jnp.linalg.norm(acc, axis=-1).mean(-1), _diff_mask(mask_bt, 2))


@jax.jit
def jitter(joints_btj3: jax.Array, mask_bt: jax.Array) -> jax.Array:
    jerk = jnp.linalg.norm(jnp.diff(joints_btj3, n=3, axis=1), axis=-1).mean(-1) * FPS**3
    return _masked_mean(jerk, _diff_mask(mask_bt, 3))
