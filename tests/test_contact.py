"""Tests of mm_jax.motion.contact: hand-made feet, and agreement with mm_jax.eval.quality."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax.errors import ShapeError
from mm_jax.eval.quality import foot_skating_ratio
from mm_jax.motion import contact
from mm_jax.motion.skeleton import FOOT_JOINTS

T = 7


def _body(foot_xyz_t3: np.ndarray) -> np.ndarray:
    """[T, 22, 3] joints high above the ground, every foot joint on the trajectory ``foot_xyz_t3``."""
    j = np.zeros((len(foot_xyz_t3), 22, 3), np.float32)
    j[..., 1] = 1.0
    j[:, list(FOOT_JOINTS)] = foot_xyz_t3[:, None, :]
    return j


def test_planted_foot_is_in_contact_and_moving_or_high_feet_are_not():
    still = _body(np.tile([0.1, 0.02, 0.3], (T, 1)))
    fast = _body(np.stack([np.arange(T) * 0.1, np.full(T, 0.02), np.zeros(T)], 1))  # 10 cm/frame: 0.01 m^2 > 0.002
    high = _body(np.tile([0.1, 0.2, 0.3], (T, 1)))
    slow = _body(np.stack([np.arange(T) * 0.01, np.full(T, 0.02), np.zeros(T)], 1))  # 1 cm/frame, planted
    got = np.asarray(contact.foot_contacts(jnp.asarray(np.stack([still, fast, high, slow]))))
    assert got.shape == (4, T - 1, 4)
    assert got[0].all() and not got[1].any() and not got[2].any() and got[3].all()


def test_slide_loss_is_the_squared_speed_in_cm_where_the_target_is_planted():
    target = jnp.asarray(_body(np.tile([0.0, 0.02, 0.0], (T, 1)))[None])
    slide = _body(np.stack([np.arange(T) * 0.01, np.full(T, 0.02), np.zeros(T)], 1))  # 1 cm/frame in x
    assert float(contact.contact_slide_loss(jnp.asarray(slide[None]), target)) == pytest.approx(1.0, rel=1e-4)
    airborne = jnp.asarray(_body(np.tile([0.0, 0.5, 0.0], (T, 1)))[None])  # no contact in the target: 0
    assert float(contact.contact_slide_loss(jnp.asarray(slide[None]), airborne)) == 0.0
    mask = jnp.asarray(np.arange(T)[None] < 3)  # only transitions 0->1, 1->2 count; still 1 cm/frame
    assert float(contact.contact_slide_loss(jnp.asarray(slide[None]), target, mask)) == pytest.approx(1.0, rel=1e-4)


def test_skating_ratio_agrees_with_eval_quality():
    rng = np.random.default_rng(3)
    j = rng.normal(size=(3, 40, 22, 3)) * 0.03
    j[..., 1] += 0.04
    mask = np.ones((3, 40), bool)
    mask[1, 29:] = False
    got = np.asarray(contact.skating_ratio(jnp.asarray(j), jnp.asarray(mask)))
    want = [foot_skating_ratio(j[0]), foot_skating_ratio(j[1, :29]), foot_skating_ratio(j[2])]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_bad_shape_is_a_shape_error():
    with pytest.raises(ShapeError, match="22, 3"):
        contact.foot_contacts(jnp.zeros((5, 21, 3)))
