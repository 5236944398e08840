"""Tests of mm_jax.model: mixed attention, RoPE, padding neutrality, presets, loss, training."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from mm_jax.errors import ConfigError, ShapeError
from mm_jax.model import (PRESETS, Decoder, ModelConfig, abstract_params, forward_loss,
                          init_params, motion_loss, preset)
from mm_jax.model import forward as _eager_forward
from mm_jax.model import attention

# Prime sizes so a swapped axis cannot pass: B=3, S=7, N=11, C=13, vocab 5*3=15 codes.
B, S, N, C = 3, 7, 11, 13
CFG = ModelConfig(num_layers=2, num_heads=4, num_kv_heads=2, width=40, text_dim=C,
                  fsq_levels=(5, 3), vocab_multiple=8, mlp_hidden_override=56)


forward = jax.jit(_eager_forward, static_argnums=0)  # eager op-by-op is slow on CPU


def _grad(cfg, params, batch):
    return jax.jit(jax.grad(lambda p: forward_loss(cfg, p, *batch)[0]))(params)


@pytest.fixture(scope="module")
def params():
    return init_params(CFG, key=jax.random.key(0))


def _batch(seed=0, b=B, s=S, n=N, cfg=CFG):
    r = np.random.default_rng(seed)
    text = r.standard_normal((b, s, cfg.text_dim)).astype(np.float32)
    motion = r.integers(0, cfg.codebook_size, (b, n)).astype(np.int32)
    motion[:, 0] = cfg.bos_id
    return text, np.ones((b, s), bool), motion, np.ones((b, n), bool)


@jax.jit
def _apply_hidden_impl(params, text, tm, mo, mm):
    return Decoder(CFG).apply({"params": params}, text, tm, mo, mm, mutable=["intermediates"])


def _apply_hidden(cfg, *args):
    assert cfg is CFG
    return _apply_hidden_impl(*args)


def _hidden(params, text, tm, mo, mm, cfg=CFG):
    _, state = _apply_hidden(cfg, params, text, tm, mo, mm)
    return np.asarray(state["intermediates"]["hidden_btd"][0])


# ----------------------------------------------------------------------------- RoPE vs numpy


def _numpy_rope(x_te: np.ndarray, pos_t: np.ndarray, theta: float) -> np.ndarray:
    """Frozen reference: pairs (i, i + E/2) as complex numbers times exp(1j * angle)."""
    half = x_te.shape[-1] // 2
    z = x_te[:, :half].astype(np.float64) + 1j * x_te[:, half:].astype(np.float64)
    freq = theta ** (-2.0 * np.arange(half) / x_te.shape[-1])
    z = z * np.exp(1j * pos_t[:, None] * freq[None, :])
    return np.concatenate([z.real, z.imag], axis=-1)


def test_rope_matches_frozen_numpy_reference():
    r = np.random.default_rng(1)
    x = r.standard_normal((2, 11, 3, 10)).astype(np.float32)  # [B, T, heads, E]
    pos = r.integers(0, 300, (2, 11))
    sin, cos = attention.rope_angles(jnp.asarray(pos), 10, 500.0)
    got = np.asarray(attention.apply_rope(jnp.asarray(x), sin, cos))
    for b in range(2):
        for h in range(3):
            want = _numpy_rope(x[b, :, h], pos[b], 500.0)
            np.testing.assert_allclose(got[b, :, h], want, atol=2e-5)


def test_rope_hand_value():
    # E=4, theta=10000: frequencies (1, 0.01); x=(1,0,0,0) at position 1 -> (cos 1, 0, sin 1, 0).
    sin, cos = attention.rope_angles(jnp.array([[1]]), 4, 10000.0)
    got = attention.apply_rope(jnp.array([[[1.0, 0.0, 0.0, 0.0]]]), sin, cos)
    np.testing.assert_allclose(np.asarray(got)[0, 0], [np.cos(1), 0, np.sin(1), 0], atol=1e-6)


# ----------------------------------------------------------------------------- mask and positions


def test_mask_and_positions_by_hand():
    tm = jnp.array([[True, True, False]])
    mm = jnp.array([[True, True, False, False]])
    mask = np.asarray(attention.mixed_attention_mask(tm, mm))[0].astype(int)
    want = np.array([
        [1, 1, 0, 0, 0, 0, 0],  # text queries: real text only
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],  # a pad text query still sees real text (never NaN)
        [1, 1, 0, 1, 0, 0, 0],  # motion 0: text + itself
        [1, 1, 0, 1, 1, 0, 0],  # motion 1: text + motion <= 1
        [1, 1, 0, 1, 1, 0, 0],  # pad motion queries: no pad keys
        [1, 1, 0, 1, 1, 0, 0],
    ])
    np.testing.assert_array_equal(mask, want)
    pos = np.asarray(attention.token_positions(tm, mm))[0]
    np.testing.assert_array_equal(pos, [0, 1, 1, 2, 3, 3, 3])


# ----------------------------------------------------------------------------- attention structure


def test_text_is_bidirectional_and_blind_to_motion(params):
    text, tm, mo, mm = _batch()
    base = _hidden(params, text, tm, mo, mm)
    text2 = text.copy()
    text2[:, S - 1] += 1.0  # perturb the last text token
    h2 = _hidden(params, text2, tm, mo, mm)
    assert np.all(np.abs(h2[:, : S - 1] - base[:, : S - 1]).max(axis=-1) > 1e-4)
    mo2 = mo.copy()
    mo2[:, 1:] = (mo2[:, 1:] + 1) % CFG.codebook_size  # perturb all motion tokens
    h3 = _hidden(params, text, tm, mo2, mm)
    np.testing.assert_array_equal(h3[:, :S], base[:, :S])


@pytest.mark.parametrize("t", [1, 5, N - 1])
def test_motion_is_causal(params, t):
    text, tm, mo, mm = _batch()
    base = np.asarray(forward(CFG, params, text, tm, mo, mm))
    mo2 = mo.copy()
    mo2[:, t] = (mo2[:, t] + 7) % CFG.codebook_size
    got = np.asarray(forward(CFG, params, text, tm, mo2, mm))
    np.testing.assert_array_equal(got[:, :t], base[:, :t])
    assert np.all(np.abs(got[:, t:] - base[:, t:]).max(axis=-1) > 1e-5)


def test_padding_is_neutral(params):
    """A padded batch gives the logits of each unpadded sample on its real positions."""
    lengths = [(3, 4), (5, 9), (7, 11)]  # (real text, real motion) per sample
    text, _, mo, _ = _batch(seed=3)
    tm = np.zeros((B, S), bool)
    mm = np.zeros((B, N), bool)
    for i, (s, n) in enumerate(lengths):
        tm[i, :s], mm[i, :n] = True, True
        mo[i, n:] = CFG.pad_id
        text[i, s:] = 9.0  # garbage under the padding must not matter
    batch_logits = np.asarray(forward(CFG, params, text, tm, mo, mm))
    for i, (s, n) in enumerate(lengths):
        single = forward(CFG, params, text[i:i + 1, :s], tm[i:i + 1, :s], mo[i:i + 1, :n],
                         mm[i:i + 1, :n])
        np.testing.assert_allclose(batch_logits[i, :n], np.asarray(single)[0], atol=1e-5, rtol=0)


def test_empty_rows_are_finite_with_finite_grads(params):
    text, tm, mo, mm = _batch()
    tm[0] = False  # a sample without any text
    mm[1, 3:] = False
    mo[1, 3:] = CFG.pad_id
    logits = forward(CFG, params, text, tm, mo, mm)
    real = np.asarray(logits)[..., : CFG.vocab_size]
    assert np.isfinite(real).all()
    grads = _grad(CFG, params, (text, tm, mo, mm))
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


def test_padded_vocab_columns_are_masked(params):
    logits = np.asarray(forward(CFG, params, *_batch()))
    assert logits.shape == (B, N, CFG.padded_vocab_size)
    assert CFG.padded_vocab_size == 24 and CFG.vocab_size == 18
    assert (logits[..., 18:] <= -1e29).all()
    assert (np.abs(logits[..., :18]) < 1e3).all()


def _textbook_attention(q, k, v, mask):
    """Per query head h = (kv head kk, group g): softmax(q_h k_kk^T / sqrt(E) masked by -1e30) v_kk."""
    b, q_len, kv, g, e = q.shape
    out = []
    for kk in range(kv):
        for gg in range(g):
            s = jnp.einsum("bqe,bse->bqs", q[:, :, kk, gg], k[:, :, kk]) / np.sqrt(e)
            p = jax.nn.softmax(jnp.where(mask, s, -1e30), axis=-1)
            out.append(jnp.einsum("bqs,bse->bqe", p, v[:, :, kk]))
    return jnp.stack(out, axis=2).reshape(b, q_len, kv, g, e)


def test_attend_value_and_gradients_match_textbook_autodiff():
    """attention.attend's own VJP against autodiff of the per-head formula (GQA, masks, an all-masked row)."""
    r = np.random.default_rng(11)
    b, q_len, s_len, kv, g, e = 2, 5, 7, 3, 2, 6
    q = r.standard_normal((b, q_len, kv, g, e)).astype(np.float32)
    k = r.standard_normal((b, s_len, kv, e)).astype(np.float32)
    v = r.standard_normal((b, s_len, kv, e)).astype(np.float32)
    mask = r.random((b, q_len, s_len)) < 0.6
    mask[0, 2] = False  # a query with no key: uniform weights, finite gradients
    w = r.standard_normal((b, q_len, kv, g, e)).astype(np.float32)

    def run(fn):
        return jax.value_and_grad(lambda *qkv: jnp.sum(fn(*qkv, mask) * w), argnums=(0, 1, 2))(q, k, v)

    (got, got_grads), (want, want_grads) = run(attention.attend), run(_textbook_attention)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(attention.attend(q, k, v, mask), _textbook_attention(q, k, v, mask), atol=1e-5)
    for a, b_ in zip(got_grads, want_grads):
        assert np.isfinite(np.asarray(a)).all()
        np.testing.assert_allclose(a, b_, atol=2e-5)


# ----------------------------------------------------------------------------- variants


def _stack_layers(params, num_layers):
    blocks = [params[f"block_{i}"] for i in range(num_layers)]
    out = {k: v for k, v in params.items() if not k.startswith("block_")}
    out["blocks"] = jax.tree.map(lambda *xs: jnp.stack(xs), *blocks)
    return out


def test_scan_and_remat_match_loop(params):
    batch = _batch(seed=5)
    base = np.asarray(forward(CFG, params, *batch))
    remat = dataclasses.replace(CFG, remat=True)
    np.testing.assert_allclose(np.asarray(forward(remat, params, *batch)), base, atol=1e-5)
    scan = dataclasses.replace(CFG, scan_layers=True, remat=True)
    got = forward(scan, _stack_layers(params, CFG.num_layers), *batch)
    np.testing.assert_allclose(np.asarray(got), base, atol=1e-5)


def test_bfloat16_compute_is_close(params):
    batch = _batch(seed=6)
    base = np.asarray(forward(CFG, params, *batch))[..., : CFG.vocab_size]
    bf = np.asarray(forward(dataclasses.replace(CFG, dtype="bfloat16"), params, *batch))
    assert bf.dtype == np.float32
    np.testing.assert_allclose(bf[..., : CFG.vocab_size], base, atol=0.05)


def test_dropout_uses_the_explicit_key(params):
    cfg = dataclasses.replace(CFG, dropout=0.3)
    batch = _batch(seed=7)
    a = np.asarray(forward(cfg, params, *batch, key=jax.random.key(1)))
    b = np.asarray(forward(cfg, params, *batch, key=jax.random.key(1)))
    c = np.asarray(forward(cfg, params, *batch, key=jax.random.key(2)))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    det = np.asarray(forward(cfg, params, *batch))
    np.testing.assert_array_equal(det, np.asarray(forward(CFG, params, *batch)))


# ----------------------------------------------------------------------------- loss


def test_motion_loss_by_hand():
    logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]]))
    motion = jnp.array([[2, 1, 0]])
    mask = jnp.array([[True, True, False]])  # target of position 1 is padding
    loss, metrics = motion_loss(logits, motion, mask)
    np.testing.assert_allclose(loss, -np.log(0.25), rtol=1e-6)  # only position 0 -> target 1
    assert float(metrics["accuracy"]) == 0.0 and float(metrics["tokens"]) == 1.0
    _, m2 = motion_loss(logits, jnp.array([[2, 0, 2]]), jnp.array([[True, True, True]]))
    np.testing.assert_allclose(m2["accuracy"], 0.5)  # position 0 -> 0 right, position 1 -> 2 wrong
    with pytest.raises(ShapeError, match=r"\(1, 2\)"):
        motion_loss(logits, motion[:, :2], mask[:, :2])


def test_loss_falls_over_five_adam_steps():
    cfg = preset("tiny")
    p = init_params(cfg, key=jax.random.key(0))
    r = np.random.default_rng(0)
    text = r.standard_normal((4, 7, cfg.text_dim)).astype(np.float32)
    motion = r.integers(0, cfg.codebook_size, (4, 13)).astype(np.int32)
    masks = np.ones((4, 7), bool), np.ones((4, 13), bool)
    opt = optax.adam(3e-3)

    @jax.jit
    def step(p, o):
        loss, g = jax.value_and_grad(lambda q: forward_loss(cfg, q, text, masks[0], motion,
                                                            masks[1])[0])(p)
        upd, o = opt.update(g, o, p)
        return optax.apply_updates(p, upd), o, loss

    o = opt.init(p)
    losses = []
    for _ in range(6):
        p, o, loss = step(p, o)
        losses.append(float(loss))
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] - 0.5, losses


# ----------------------------------------------------------------------------- presets and configs


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_eval_shape_and_exact_param_count(name):
    cfg = PRESETS[name]
    boxed = abstract_params(cfg)
    leaves = jax.tree.leaves(nn.meta.unbox(boxed))
    assert all(isinstance(x, jax.ShapeDtypeStruct) and x.dtype == jnp.float32 for x in leaves)
    assert sum(x.size for x in leaves) == cfg.num_params()
    assert cfg.flops_per_token() > 6 * cfg.non_embedding_params()


def test_scan_tree_has_layers_axis_and_same_count():
    cfg = dataclasses.replace(PRESETS["70m"], scan_layers=True)
    boxed = abstract_params(cfg)
    assert boxed["blocks"]["attn"]["qkv"].names == ("layers", "kv_heads", "qkv", "head_dim", "embed")
    assert boxed["blocks"]["attn"]["qkv"].value.shape == (8, 8, 3, 64, 512)
    assert sum(x.size for x in jax.tree.leaves(nn.meta.unbox(boxed))) == cfg.num_params()


def test_reference_sizes():
    c = PRESETS["7b"]  # RECIPE.md: model_hf.py 7B = 36 x 32 x 4096
    assert (c.num_layers, c.num_heads, c.width, c.mlp_hidden) == (36, 32, 4096, 11008)
    c = PRESETS["1b"]
    assert (c.num_layers, c.num_heads, c.width, c.mlp_hidden, c.head_dim) == (48, 24, 1536, 4096, 64)
    assert (c.codebook_size, c.bos_id, c.eos_id, c.pad_id) == (64000, 64000, 64001, 64002)
    assert (c.vocab_size, c.padded_vocab_size, c.block_size) == (64003, 64128, 301)


def test_flops_formula_by_hand():
    c = CFG  # D=40, E=10, H=4, K=2, M=56, L=2, Vp=24
    per_layer = (4 + 4) * 10 * 40 + 40 * 4 * 10 + 3 * 56 * 40
    n = 2 * per_layer + 24 * 40
    assert c.non_embedding_params() == n
    assert c.flops_per_token(17) == 6 * n + 12 * 2 * 4 * 10 * 17


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ConfigError, match=r"'5b'.*1b, 343m.*tiny"):
        preset("5b")


@pytest.mark.parametrize("kw, needle", [
    (dict(width=130), "130"),
    (dict(num_kv_heads=3), "num_kv_heads=3"),
    (dict(dtype="float16"), "float16"),
    (dict(dropout=1.0), "dropout=1.0"),
    (dict(fsq_levels=(8, 1)), r"\(8, 1\)"),
    (dict(num_layers=0), "num_layers=0"),
])
def test_bad_config_raises_config_error(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        dataclasses.replace(CFG, **kw)


def test_bad_inputs_raise_shape_error(params):
    text, tm, mo, mm = _batch()
    with pytest.raises(ShapeError, match=r"\[B, S, 13\]"):
        forward(CFG, params, text[..., :5], tm, mo, mm)
    with pytest.raises(ShapeError, match="text_mask_bs"):
        forward(CFG, params, text, tm[:, :3], mo, mm)
    with pytest.raises(ShapeError, match="motion_mask_bn"):
        forward(CFG, params, text, tm, mo, mm[:, :5])
    with pytest.raises(ShapeError, match="float32"):
        forward(CFG, params, text, tm, mo.astype(np.float32), mm)
