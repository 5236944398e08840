"""Issue 15: the reference preset, wavelet variants (equal depth, CDF 5/3, gain, refinement head),
the new loss terms and the new reconstruction metrics, with hand-computed expectations."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mm_jax import wavelet
from mm_jax.errors import ConfigError
from mm_jax.motion.normalize import Normalizer
from mm_jax.tokenizer import PRESETS
from mm_jax.tokenizer import model as tmodel
from mm_jax.tokenizer import quality
from mm_jax.tokenizer.reconstruction import reconstruct_batch
from mm_jax.tokenizer.train import loss_terms, make_optimizer

TINY_M, TINY_T = PRESETS["tiny"]
F = 13  # prime feature width: the model's tests do not need the 272-d layout


def _cfg(**kw):
    return dataclasses.replace(TINY_M, feature_dim=F, width=16, **kw)


def _stacks(tree) -> list[str]:
    return sorted(k for k in tree if "Stack" in k or "stack" in k)


def test_reference_preset_is_the_issue_list():
    m, t = PRESETS["reference"]
    assert (m.width, m.down_t, m.wavelet_levels, m.window, m.depth, m.dilation_growth) == (512, 1, 0, 96, 3, 3)
    assert m.frames_per_token == 2 and tuple(m.fsq_levels) == (8, 8, 8, 5, 5, 5)
    assert m.latent_kernel == 1 and m.encoder_dilations_descending
    assert (t.loss_type, t.w_recon, t.w_local_pos, t.w_vel, t.w_accel) == ("smooth_l1", 1.0, 0.5, 0.0, 0.0)
    assert (t.adam_b1, t.adam_b2, t.weight_decay, t.grad_clip, t.lr, t.lr_schedule) == (
        0.9, 0.99, 0.0, None, 5e-5, "constant")
    shapes = jax.eval_shape(lambda: tmodel.init_params(m, key=jax.random.key(0)))
    assert shapes["encoder"]["Conv_2"]["kernel"].shape == (1, 512, 6)  # Linear 512 -> 6
    assert shapes["decoder"]["Conv_0"]["kernel"].shape == (1, 6, 512)  # Linear 6 -> 512
    assert len(_stacks(shapes["encoder"])) == 1 and len(_stacks(shapes["decoder"])) == 1


def test_constant_schedule_holds_lr_after_warmup_and_no_clipping():
    _, t = PRESETS["reference"]
    t = dataclasses.replace(t, steps=40, warmup_steps=10, lr=1.0, weight_decay=0.0)
    opt = make_optimizer(t)
    params = {"w": jnp.zeros(())}
    state = opt.init(params)
    grads = {"w": jnp.asarray(1e6)}  # no clipping: Adam's first update is -lr * sign
    for _ in range(30):
        upd, state = opt.update(grads, state, params)
    np.testing.assert_allclose(float(upd["w"]), -1.0, rtol=1e-3)  # step 30 > warm-up: lr 1.0, not decayed
    assert isinstance(opt, optax.GradientTransformation)


def test_default_param_tree_is_unchanged_and_depth_matched_keeps_two_stacks():
    base = jax.eval_shape(lambda: tmodel.init_params(_cfg(wavelet_levels=0, down_t=2), key=jax.random.key(0)))
    depth = jax.eval_shape(lambda: tmodel.init_params(
        _cfg(wavelet_levels=1, down_t=1, wavelet_res_stacks=True), key=jax.random.key(0)))
    plain = jax.eval_shape(lambda: tmodel.init_params(_cfg(wavelet_levels=1, down_t=1), key=jax.random.key(0)))
    assert _stacks(base["encoder"]) == ["ResStack_0", "ResStack_1"]
    assert _stacks(plain["encoder"]) == ["ResStack_0"]  # a level replaced a down block and its stack
    assert _stacks(depth["encoder"]) == ["ResStack_0", "wavelet_stack_0"]
    assert _stacks(depth["decoder"]) == ["ResStack_0", "wavelet_stack_0"]
    assert "refine" not in depth


def test_refinement_head_starts_as_the_identity():
    with_head = _cfg(wavelet_levels=1, down_t=1, refine_width=8)
    params = tmodel.init_params(with_head, key=jax.random.key(1))
    assert not np.any(np.asarray(params["refine"]["Conv_1"]["kernel"]))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, F)), jnp.float32)
    got, ids = reconstruct_batch(params, x, with_head)
    without = {k: v for k, v in params.items() if k != "refine"}
    want, want_ids = reconstruct_batch(without, x, dataclasses.replace(with_head, refine_width=0))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(ids), np.asarray(want_ids))


@pytest.mark.parametrize("family", ["haar", "cdf53"])
def test_gain_scales_coefficients_and_the_round_trip_is_exact(family):
    cfg = _cfg(wavelet_levels=2, down_t=0, wavelet_family=family, wavelet_gain=0.5)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 32, F)), jnp.float32)
    plain = tmodel.analyse(x, dataclasses.replace(cfg, wavelet_gain=1.0))
    np.testing.assert_allclose(np.asarray(tmodel.analyse(x, cfg)), 0.25 * np.asarray(plain), atol=1e-6)
    np.testing.assert_allclose(np.asarray(tmodel.synthesise(tmodel.analyse(x, cfg), cfg, 32)), np.asarray(x),
                               atol=1e-5)
    if family == "haar":  # the reference patcher's one level: (x0 + x1) / 2 / sqrt(2) (Cosmos, rescale by 1/2)
        one = tmodel.analyse(x, dataclasses.replace(cfg, wavelet_levels=1, down_t=1))
        want = (x[:, 0::2] + x[:, 1::2]) / (2 * np.sqrt(2))
        np.testing.assert_allclose(np.asarray(one[..., :F]), np.asarray(want), atol=1e-6)


def test_config_rejects_bad_variant_fields():
    for kw in ({"wavelet_family": "db4"}, {"wavelet_gain": 0.0}, {"refine_width": -1}, {"latent_kernel": 0}):
        with pytest.raises(ConfigError):
            _cfg(**kw)
    with pytest.raises(ConfigError, match="lr_schedule"):
        dataclasses.replace(TINY_T, lr_schedule="step")
    with pytest.raises(ConfigError, match="grad_clip"):
        dataclasses.replace(TINY_T, grad_clip=0.0)


def test_position_difference_terms_known_answer():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 272)).astype(np.float32)
    bump = np.zeros_like(x)
    bump[:, 4, 8:74] = 1.0  # one frame of every position channel off by 1
    terms = loss_terms(jnp.asarray(x + bump), jnp.asarray(x), "mse")
    # first difference: +1 then -1 on 66 channels over 8 transitions -> 2/8; second: 1, -2, 1 over 7 -> 6/7
    np.testing.assert_allclose(float(terms["pos_velocity"]), 2 / 8, rtol=1e-5)
    np.testing.assert_allclose(float(terms["pos_accel"]), 6 / 7, rtol=1e-5)
    np.testing.assert_allclose(float(terms["local_pos"]), 1 / 9, rtol=1e-5)
    np.testing.assert_allclose(float(terms["recon"]), 66 / (9 * 272), rtol=1e-5)
    assert float(terms["vel"]) == 0.0 and float(terms["accel"]) == 0.0
    assert "foot_contact" not in terms
    identity = Normalizer(mean=np.zeros(272, np.float32), std=np.ones(272, np.float32))
    assert "foot_contact" in loss_terms(jnp.asarray(x), jnp.asarray(x), "mse", normalizer=identity)


def test_pair_velocity_error_and_reference_acceleration_known_answers():
    t = 8
    gt = jnp.zeros((1, t, 22, 3))
    offset = np.array([0, 0, 1, 1, 0, 0, 1, 1], np.float32) * 1e-3  # each pair shifted as one block (1 mm)
    pred = gt + jnp.asarray(offset)[None, :, None, None] * jnp.asarray([1.0, 0.0, 0.0])
    mask = jnp.ones((1, t), bool)
    within, across = quality.vel_error_pairs_mm(pred, gt, mask)
    assert float(within) == pytest.approx(0.0, abs=1e-6) and float(across) == pytest.approx(1.0, rel=1e-4)
    steps = jnp.arange(t, dtype=jnp.float32)[None, :, None, None]
    accelerating = jnp.broadcast_to(0.5 * 0.002 * steps**2, (1, t, 22, 3))  # 2 mm/frame^2 per axis
    np.testing.assert_allclose(float(quality.accel_mm(accelerating, mask)), 2 * np.sqrt(3), rtol=1e-4)
    metrics = quality.batch_metrics(pred, gt, mask)
    assert metrics["vel_error_across_mm"] > metrics["vel_error_within_mm"]
    assert metrics["foot_skating_gt"] == 0.0  # every foot is on the ground (y = 0) and still


@pytest.mark.parametrize("kw", [
    pytest.param({"wavelet_levels": 1, "down_t": 1, "wavelet_res_stacks": True}, marks=pytest.mark.slow),
    pytest.param({"wavelet_levels": 2, "down_t": 0, "wavelet_family": "cdf53", "wavelet_res_stacks": True},
                 marks=pytest.mark.slow),
    {"wavelet_levels": 1, "down_t": 1, "refine_width": 8, "wavelet_family": "cdf53", "wavelet_res_stacks": True,
     "output_smoothing_frames": 1.5},
])
def test_context_frames_cover_the_variants(kw):
    from mm_jax.tokenizer.reconstruction import padded_length

    cfg = _cfg(**kw)
    params = tmodel.init_params(cfg, key=jax.random.key(0))
    if cfg.refine_width:  # a live head: the zero init would hide its reach
        params["refine"]["Conv_1"]["kernel"] = jnp.ones_like(params["refine"]["Conv_1"]["kernel"]) * 0.1
    n = 53
    clip = np.random.default_rng(0).normal(size=(n, F)).astype(np.float32)

    def run(frames):
        x = np.concatenate([clip, np.repeat(clip[-1:], frames - n, 0)])[None]
        return np.asarray(reconstruct_batch(params, jnp.asarray(x), cfg)[0][0, :n])

    near = run(padded_length(n, cfg))
    far = run(padded_length(n, cfg) + 16 * cfg.frames_per_token)
    np.testing.assert_allclose(near, far, atol=1e-5)


def test_packed_width_is_shared_by_both_families():
    x = jnp.zeros((1, 16, F))
    for family in ("haar", "cdf53"):
        packed = tmodel.analyse(x, _cfg(wavelet_levels=2, down_t=0, wavelet_family=family))
        assert packed.shape == (1, 4, wavelet.packed_channels(F, 2))


def test_output_smoothing_is_a_normalised_gaussian_with_edge_padding():
    k = tmodel.smoothing_kernel(1.0)
    e = np.exp(-0.5 * np.arange(-3, 4) ** 2.0)  # radius ceil(3 * 1) = 3
    np.testing.assert_allclose(k, e / e.sum(), rtol=1e-6)
    assert list(tmodel.smoothing_kernel(0.0)) == [1.0]
    x = np.zeros((1, 11, 2), np.float32)
    x[0, 5, 0] = 1.0  # an impulse comes back as the kernel; a constant stays constant
    y = np.asarray(tmodel.smooth_time(jnp.asarray(x), 1.0))
    np.testing.assert_allclose(y[0, 2:9, 0], k, atol=1e-7)
    np.testing.assert_allclose(np.asarray(tmodel.smooth_time(jnp.full((1, 5, 2), 3.0), 2.0)), 3.0, rtol=1e-6)
    edge = np.asarray(tmodel.smooth_time(jnp.asarray(np.arange(6, dtype=np.float32)[None, :, None]), 1.0))
    np.testing.assert_allclose(edge[0, 0, 0], sum(k[i] * max(i - 3, 0) for i in range(7)), rtol=1e-6)


def test_ablation_zero_level_row_is_the_plain_tokenizer():
    from mm_jax.tokenizer.ablation import variants

    design = _cfg(wavelet_levels=1, down_t=1, wavelet_family="cdf53", wavelet_res_stacks=True, wavelet_gain=0.5,
                  output_smoothing_frames=1.0)
    zero, one, two = variants(design, (0, 1, 2))
    assert (zero.wavelet_family, zero.wavelet_gain, zero.wavelet_res_stacks, zero.down_t) == ("haar", 1.0, False, 2)
    assert zero.output_smoothing_frames == 1.0  # the output filter acts without a wavelet too
    assert (one, two.wavelet_levels, two.down_t, two.wavelet_family) == (design, 2, 0, "cdf53")


def test_auxiliary_terms_are_off_then_ramp_in():
    from mm_jax.tokenizer.train import loss_fn

    m = dataclasses.replace(TINY_M, width=16)
    params = tmodel.init_params(m, key=jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 272)), jnp.float32)
    t = dataclasses.replace(TINY_T, w_pos_accel=5.0, aux_ramp_steps=10)
    loss = jax.jit(lambda step: loss_fn(params, x, m, t, None, step))
    base, terms = loss(0)
    assert float(loss(10)[0]) == pytest.approx(float(base), rel=1e-6)  # off for the first R steps
    full = float(base) + 5.0 * float(terms["pos_accel"])
    assert float(loss(15)[0]) == pytest.approx(float(base) + 0.5 * (full - float(base)), rel=1e-5)
    assert float(loss(40)[0]) == pytest.approx(full, rel=1e-5)
