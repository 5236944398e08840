"""Foot contacts from joint positions, and the foot lock (stage: motion; used by the tokenizer's loss,
its evaluation and every decode of motion codes).

Input: global joint positions ``[..., T, 22, 3]`` in metres (y up, ground at
y = 0, 30 fps), e.g. ``features.joints_from_features_batch`` of denormalised
features. The foot joints are ``skeleton.FOOT_JOINTS`` (both ankles, both
toes), the ones ``mm_jax.eval.quality.foot_skating_ratio`` scores.

The rule is the one of the reference's representation code (HumanML3D's
``foot_detect``, kept by the 272-d processing of MotionStreamer and
MotionMillion): a foot joint is in contact at transition t -> t+1 when its
squared displacement over that frame is below ``SQ_DISPLACEMENT`` = 0.002 m^2
and, as in ``foot_skating_ratio``, it is below ``CONTACT_HEIGHT`` = 5 cm in
both frames. These functions are ``jnp`` (jit-able; the contact mask carries no
gradient, the slide does).

:func:`skating_ratio` is ``mm_jax.eval.quality.foot_skating_ratio`` (height-only
contact, slide above ``SLIDE_PER_FRAME`` = 2.5 mm) over a batch with a frame
mask, in ``jnp``; the tokenizer scores with it, since importing ``mm_jax.eval``
would pull the evaluator's trainer into inference code. ``tests/test_contact.py``
checks the two agree.

The thresholds are ``mm_jax.motion.layout``'s (their one owner). The
decode-time foot lock that holds planted feet still is
:mod:`mm_jax.motion.foot_lock` (numpy, no JAX: the torch runtime uses it too).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mm_jax.errors import ShapeError
from mm_jax.motion.layout import CONTACT_HEIGHT, FOOT_JOINTS, NUM_JOINTS, SLIDE_PER_FRAME, SQ_DISPLACEMENT


def _feet(joints: jax.Array) -> jax.Array:
    if joints.ndim < 3 or joints.shape[-2:] != (NUM_JOINTS, 3):
        raise ShapeError(f"joints must be [..., T, {NUM_JOINTS}, 3]; got shape {tuple(joints.shape)}")
    return joints[..., jnp.asarray(FOOT_JOINTS), :]  # [..., T, 4, 3]


def foot_contacts(joints: jax.Array, *, sq_displacement: float = SQ_DISPLACEMENT,
                  contact_height: float = CONTACT_HEIGHT) -> jax.Array:
    """Contact mask [..., T-1, 4] (bool) of the foot joints for each frame transition."""
    feet = jax.lax.stop_gradient(_feet(joints))
    step = jnp.sum(jnp.square(jnp.diff(feet, axis=-3)), axis=-1)  # [..., T-1, 4]
    low = feet[..., 1] < contact_height  # [..., T, 4]
    return (step < sq_displacement) & low[..., 1:, :] & low[..., :-1, :]


def foot_slide(joints: jax.Array) -> jax.Array:
    """Horizontal (x, z) displacement norm [..., T-1, 4] of the foot joints per frame transition, metres."""
    feet = _feet(joints)
    d = jnp.diff(feet[..., jnp.asarray([0, 2])], axis=-3)
    return jnp.sqrt(jnp.sum(jnp.square(d), axis=-1) + 1e-12)


def contact_slide_loss(pred: jax.Array, target: jax.Array, mask_bt: jax.Array | None = None) -> jax.Array:
    """Mean squared horizontal foot speed of ``pred`` (cm/frame)^2 where ``target``'s feet are planted.

    Args:
      pred, target: joints [B, T, 22, 3] (metres) of a reconstruction and its input.
      mask_bt: optional [B, T] real-frame mask; a transition counts when both frames are real.

    Returns:
      A scalar; 0 when no foot of ``target`` is planted.
    """
    contact = foot_contacts(target).astype(pred.dtype)  # [B, T-1, 4]
    if mask_bt is not None:
        contact = contact * (mask_bt[:, 1:] & mask_bt[:, :-1])[..., None]
    d = jnp.diff(_feet(pred)[..., jnp.asarray([0, 2])], axis=-3) * 100.0  # cm
    sq = jnp.sum(jnp.square(d), axis=-1)
    return jnp.sum(sq * contact) / jnp.maximum(jnp.sum(contact), 1.0)


def skating_ratio(joints_btj3: jax.Array, mask_bt: jax.Array) -> jax.Array:
    """Per clip [B]: the fraction of its real frame transitions in which a foot joint below
    ``CONTACT_HEIGHT`` in both frames slides more than ``SLIDE_PER_FRAME`` (foot_skating_ratio)."""
    feet = _feet(joints_btj3)
    low = feet[..., 1] < CONTACT_HEIGHT
    sliding = (low[:, 1:] & low[:, :-1] & (foot_slide(joints_btj3) > SLIDE_PER_FRAME)).any(-1)  # [B, T-1]
    real = (mask_bt[:, 1:] & mask_bt[:, :-1]).astype(feet.dtype)
    return jnp.sum(sliding * real, axis=1) / jnp.maximum(jnp.sum(real, axis=1), 1.0)
