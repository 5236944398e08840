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
* ``accel_mm``: mean norm of one motion's own acceleration, mm/frame^2: the
  reference's "acceleration" metric (the prediction's, reported beside the
  ground truth's; not an error).
* ``vel_error_pairs_mm``: the frame-to-frame velocity error (mean norm of the
  difference of first differences, mm/frame) split into transitions within a
  pair (2k -> 2k+1) and across pairs (2k+1 -> 2k+2): a Haar synthesis rebuilds
  each pair from one coefficient row, so its error shows up as "across" >> "within".
* ``foot_slide_mm``: the prediction's horizontal foot speed (mm/frame) where
  the target's feet are planted (:func:`mm_jax.motion.contact.foot_contacts`).

``mpjpe_local_mm`` is the reference's pelvis-relative MPJPE: joint 0 is the
pelvis. :func:`batch_metrics` gathers every metric of one batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mm_jax.motion import contact
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


@jax.jit
def accel_mm(joints_btj3: jax.Array, mask_bt: jax.Array) -> jax.Array:
    acc = jnp.linalg.norm(jnp.diff(joints_btj3, n=2, axis=1), axis=-1).mean(-1)
    return 1000.0 * _masked_mean(acc, _diff_mask(mask_bt, 2))


@jax.jit
def vel_error_pairs_mm(pred_btj3: jax.Array, gt_btj3: jax.Array, mask_bt: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(within, across): velocity error of transitions 2k -> 2k+1 and 2k+1 -> 2k+2, mm/frame."""
    err = jnp.linalg.norm(jnp.diff(pred_btj3, axis=1) - jnp.diff(gt_btj3, axis=1), axis=-1).mean(-1)  # [B, T-1]
    m = _diff_mask(mask_bt, 1)
    within = (jnp.arange(err.shape[1]) % 2 == 0)[None, :]
    return 1000.0 * _masked_mean(err, m & within), 1000.0 * _masked_mean(err, m & ~within)


@jax.jit
def foot_slide_mm(pred_btj3: jax.Array, gt_btj3: jax.Array, mask_bt: jax.Array) -> jax.Array:
    planted = contact.foot_contacts(gt_btj3) & _diff_mask(mask_bt, 1)[..., None]
    slide = contact.foot_slide(pred_btj3)
    return 1000.0 * jnp.sum(slide * planted) / jnp.maximum(jnp.sum(planted), 1.0)


def batch_metrics(pred_btj3: jax.Array, gt_btj3: jax.Array, mask_bt: jax.Array) -> dict[str, float]:
    """Every reconstruction metric of one batch (means over its real frames; the skating ratios per clip).

    ``foot_skating`` / ``foot_skating_gt``: the share of frame transitions with a sliding
    planted foot (``mm_jax.eval.quality.foot_skating_ratio``, :func:`mm_jax.motion.contact.skating_ratio`)
    of each clip's real frames, averaged over clips.
    """
    within, across = vel_error_pairs_mm(pred_btj3, gt_btj3, mask_bt)
    out = {
        "mpjpe_mm": mpjpe_mm(pred_btj3, gt_btj3, mask_bt),
        "mpjpe_local_mm": mpjpe_local_mm(pred_btj3, gt_btj3, mask_bt),
        "accel_error_mm": accel_error_mm(pred_btj3, gt_btj3, mask_bt),
        "accel_mm": accel_mm(pred_btj3, mask_bt),
        "accel_gt_mm": accel_mm(gt_btj3, mask_bt),
        "jitter": jitter(pred_btj3, mask_bt),
        "jitter_gt": jitter(gt_btj3, mask_bt),
        "vel_error_within_mm": within,
        "vel_error_across_mm": across,
        "foot_slide_mm": foot_slide_mm(pred_btj3, gt_btj3, mask_bt),
        "foot_skating": contact.skating_ratio(pred_btj3, mask_bt).mean(),
        "foot_skating_gt": contact.skating_ratio(gt_btj3, mask_bt).mean(),
    }
    return {k: float(v) for k, v in out.items()}
