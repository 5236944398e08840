"""Known-answer tests of mm_jax.eval.metrics and mm_jax.eval.quality."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mm_jax.errors import DataError, ShapeError
from mm_jax.eval import metrics as M
from mm_jax.eval import quality as Q
from mm_jax.motion.features import FPS
from mm_jax.motion.skeleton import FOOT_JOINTS


def _key(seed: int = 0) -> jax.Array:
    return jax.random.key(seed)


# --- FID --------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(257, 7))
    assert abs(M.fid(x, x)) < 1e-6
    assert abs(M.fid(x, x, use_scipy=False)) < 1e-6


def test_frechet_distance_matches_closed_form_for_commuting_covariances():
    # Diagonal covariances commute: FID = |dmu|^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([3.0, 1.0, -2.0])
    want = 9.0 + 16.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    for use_scipy in (True, False):
        got = M.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), use_scipy=use_scipy)
        assert got == pytest.approx(want, rel=1e-9)


def test_scipy_and_eigen_routes_agree_on_general_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    c1, c2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu = rng.normal(size=5)
    d1 = M.frechet_distance(mu, c1, -mu, c2, use_scipy=True)
    d2 = M.frechet_distance(mu, c1, -mu, c2, use_scipy=False)
    assert d1 == pytest.approx(d2, rel=1e-8)


def test_fid_of_samples_approaches_the_gaussians_closed_form():
    rng = np.random.default_rng(2)
    n = 200_000
    x = rng.normal(size=(n, 3)) * np.sqrt([1.0, 4.0, 0.25]) + [0.0, 1.0, 2.0]
    y = rng.normal(size=(n, 3)) * np.sqrt([9.0, 1.0, 0.25]) + [3.0, 1.0, -2.0]
    want = 25.0 + ((np.sqrt([1.0, 4.0, 0.25]) - np.sqrt([9.0, 1.0, 0.25])) ** 2).sum()
    assert M.fid(x, y) == pytest.approx(want, rel=0.01)


def test_fid_bad_inputs():
    with pytest.raises(ShapeError):
        M.fid(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ShapeError):
        M.fid(np.zeros(10), np.zeros(10))
    with pytest.raises(DataError):
        M.fid(np.zeros((1, 3)), np.zeros((10, 3)))
    with pytest.raises(DataError):
        M.fid(np.full((5, 3), np.nan), np.zeros((5, 3)))


# --- retrieval ------------------------------------------------------------------


def test_r_precision_of_perfect_embeddings_is_one():
    x = np.random.default_rng(3).normal(size=(96, 11))
    r = M.r_precision(x, x, key=_key())
    assert r == {"top1": 1.0, "top2": 1.0, "top3": 1.0}
    assert M.matching_score(x, x) == pytest.approx(0.0, abs=1e-12)


def test_r_precision_of_random_embeddings_is_chance():
    rng = np.random.default_rng(4)
    n = 32 * 300
    r = M.r_precision(rng.normal(size=(n, 13)), rng.normal(size=(n, 13)), key=_key(1))
    for k in (1, 2, 3):
        assert r[f"top{k}"] == pytest.approx(k / 32, abs=0.01)


def test_r_precision_drops_the_remainder_and_checks_sizes():
    x = np.random.default_rng(5).normal(size=(40, 5))
    y = x.copy()
    y[32:] = 100.0  # only in the dropped remainder when unshuffled
    assert M.r_precision(x, y)["top1"] == 1.0
    with pytest.raises(DataError):
        M.r_precision(x[:31], y[:31])
    with pytest.raises(ShapeError):
        M.r_precision(x, y[:, :4])


def test_matching_score_known_value():
    t = np.zeros((4, 2))
    m = np.array([[3.0, 4.0], [0.0, 1.0], [0.0, 0.0], [6.0, 8.0]])
    assert M.matching_score(t, m) == pytest.approx((5 + 1 + 0 + 10) / 4)


def test_diversity_of_known_points():
    assert M.diversity(np.ones((300, 4)), key=_key()) == 0.0
    simplex = np.eye(300) / np.sqrt(2.0)  # every distinct pair is 1 apart
    d = M.diversity(simplex, key=_key(2))
    assert 0.97 <= d <= 1.0  # a pair is rarely a row with itself (prob 1/300)
    assert M.diversity(3.0 * simplex, key=_key(2)) == pytest.approx(3.0 * d)
    with pytest.raises(DataError):
        M.diversity(simplex[:299], key=_key())


def test_multimodality_of_known_points():
    same = np.repeat(np.random.default_rng(6).normal(size=(5, 1, 3)), 12, axis=1)
    assert M.multimodality(same, key=_key()) == pytest.approx(0.0, abs=1e-12)
    gens = np.random.default_rng(7).normal(size=(5, 12, 3))
    assert M.multimodality(2 * gens, key=_key(3)) == pytest.approx(2 * M.multimodality(gens, key=_key(3)))
    with pytest.raises(DataError):
        M.multimodality(gens[:, :9], key=_key())
    with pytest.raises(ShapeError):
        M.multimodality(gens[0], key=_key())


def test_text_motion_metrics_keys():
    x = np.random.default_rng(8).normal(size=(320, 6))
    out = M.text_motion_metrics(x, x, key=_key(), real_motion_bd=x)
    assert out["r_precision/top1"] == 1.0 and out["mm_dist"] == 0.0
    assert out["fid"] == pytest.approx(0.0, abs=1e-6) and out["diversity"] > 0


# --- motion quality --------------------------------------------------------------


def _standing(t: int = 30, foot_height: float = 0.0) -> np.ndarray:
    j = np.zeros((t, 22, 3))
    j[:, :, 1] = 1.0
    j[:, list(FOOT_JOINTS), 1] = foot_height
    j[:, :, 0] = np.linspace(-0.3, 0.3, 22)  # distinct x per joint
    return j


def test_static_pose_has_no_skating_jerk_floating_or_penetration():
    q = Q.motion_quality(_standing())
    assert q == {k: 0.0 for k in q}


def test_sliding_planted_foot_skates_every_frame():
    j = _standing()
    j[:, :, 0] += 0.01 * np.arange(30)[:, None]  # 1 cm/frame, feet on the ground
    assert Q.foot_skating_ratio(j) == 1.0
    slow = _standing()
    slow[:, :, 0] += 0.001 * np.arange(30)[:, None]  # 1 mm/frame: under the threshold
    assert Q.foot_skating_ratio(slow) == 0.0
    lifted = _standing(foot_height=0.2)
    lifted[:, :, 2] += 0.01 * np.arange(30)[:, None]  # moving in the air is not skating
    assert Q.foot_skating_ratio(lifted) == 0.0


def test_half_sliding_clip():
    j = _standing(31)
    j[16:, :, 2] += 0.01 * np.arange(1, 16)[:, None]  # still for 15 transitions, then slides
    assert Q.foot_skating_ratio(j) == pytest.approx(15 / 30)


def test_floating_and_penetration():
    assert Q.floating(_standing(foot_height=0.2)) == pytest.approx(0.2)
    assert Q.floating(_standing(foot_height=0.03)) == 0.0  # below the 5 cm threshold
    assert Q.penetration(_standing(foot_height=-0.03)) == pytest.approx(0.03)
    assert Q.penetration(_standing(foot_height=0.1)) == 0.0


def test_jerk_and_acceleration_of_a_cubic():
    t = np.arange(40) / FPS
    j = _standing(40)
    j[:, :, 0] += (2.0 * t**3 / 6.0)[:, None]  # x''' = 2 m/s^3
    assert Q.jerk(j) == pytest.approx(2.0, rel=1e-6)
    j = _standing(40)
    j[:, :, 1] += (0.5 * 3.0 * t**2)[:, None]  # y'' = 3 m/s^2
    assert Q.acceleration(j) == pytest.approx(3.0, rel=1e-6)


def test_quality_bad_inputs():
    with pytest.raises(ShapeError):
        Q.jerk(np.zeros((10, 21, 3)))
    with pytest.raises(DataError):
        Q.jerk(np.zeros((3, 22, 3)))
    with pytest.raises(DataError):
        Q.mean_quality([])
