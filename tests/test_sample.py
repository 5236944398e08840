"""Tests of mm_jax.sample: KV cache vs full recomputation, determinism, EOS, minimum length, top-k, CFG, errors."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax.errors import ConfigError, ShapeError
from mm_jax.model import ModelConfig, decode_step, init_params, prefill
from mm_jax.sample import filter_logits, max_tokens_for_seconds, min_tokens_for_seconds, sample

# Prime-ish sizes: B=3, S=7, N=11, C=13, 15 codes (+3 specials = 18, padded to 24).
B, S, N, C = 3, 7, 11, 13
CFG = ModelConfig(num_layers=2, num_heads=4, num_kv_heads=2, width=40, text_dim=C,
                  fsq_levels=(5, 3), vocab_multiple=8, mlp_hidden_override=56, init_std=0.2)


@pytest.fixture(scope="module")
def params():
    return init_params(CFG, key=jax.random.key(0))


def _text(seed=0, b=B, s=S, real=(7, 4, 1)):
    """Random features; row i has ``real[i]`` real tokens, the rest is padding with garbage."""
    r = np.random.default_rng(seed)
    text = r.standard_normal((b, s, C)).astype(np.float32)
    mask = np.arange(s)[None, :] < np.asarray(real)[:, None]
    return jnp.asarray(text), jnp.asarray(mask)


def _check_layout(tokens, lengths, cfg=CFG):
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    for row, n in zip(tokens, lengths):
        assert np.all(row[:n] < cfg.codebook_size)
        if n < row.shape[0]:
            assert row[n] == cfg.eos_id
            assert np.all(row[n + 1:] == cfg.pad_id)


@pytest.mark.parametrize("scan", [False, True])
def test_cache_prefill_and_step_match_forward_logits(params, scan):
    """The decoder's cached path (prefill, then one token per step) gives the full forward's logits.

    With ``scan_layers`` the blocks are scanned over the stacked cache as well.
    """
    from mm_jax.model import forward
    cfg = dataclasses.replace(CFG, scan_layers=True) if scan else CFG
    if scan:
        params = {"blocks": jax.tree_util.tree_map(lambda *xs: jnp.stack(xs),
                                                   *[params[f"block_{i}"] for i in range(CFG.num_layers)]),
                  **{k: v for k, v in params.items() if not k.startswith("block_")}}
    text, mask = _text()
    motion = np.random.default_rng(1).integers(0, CFG.codebook_size, (B, N)).astype(np.int32)
    motion[:, 0] = CFG.bos_id
    full = jax.jit(forward, static_argnums=0)(cfg, params, text, mask, jnp.asarray(motion),
                                              jnp.ones((B, N), bool))
    cache = jax.jit(prefill, static_argnums=(0, 4))(cfg, params, text, mask, N)
    step = jax.jit(decode_step, static_argnums=0)
    for t in range(N):
        logits, cache = step(cfg, params, cache, jnp.asarray(motion[:, t]), jnp.int32(t))
        np.testing.assert_allclose(logits[:, :CFG.vocab_size], full[:, t, :CFG.vocab_size],
                                   rtol=1e-4, atol=1e-4)


def test_greedy_cache_equals_full_recomputation(params):
    text, mask = _text()
    kw = dict(key=jax.random.key(3), max_new_tokens=N, temperature=0.0)
    tok_c, len_c = sample(CFG, params, text, mask, use_cache=True, **kw)
    tok_f, len_f = sample(CFG, params, text, mask, use_cache=False, **kw)
    assert tok_c.shape == (B, N) and tok_c.dtype == jnp.int32 and len_c.shape == (B,)
    np.testing.assert_array_equal(tok_c, tok_f)
    np.testing.assert_array_equal(len_c, len_f)
    _check_layout(tok_c, len_c)


def test_padding_neutral_per_row(params):
    """A padded row samples the same tokens as the same prompt alone, unpadded."""
    text, mask = _text()
    tok, _ = sample(CFG, params, text, mask, key=jax.random.key(0), max_new_tokens=N, temperature=0.0)
    alone, _ = sample(CFG, params, text[1:2, :4], mask[1:2, :4], key=jax.random.key(0),
                      max_new_tokens=N, temperature=0.0)
    np.testing.assert_array_equal(tok[1], alone[0])


def test_sampling_is_deterministic_for_a_key_and_valid(params):
    text, mask = _text()
    kw = dict(max_new_tokens=N, temperature=1.3, top_p=0.9)
    a = sample(CFG, params, text, mask, key=jax.random.key(7), **kw)
    b = sample(CFG, params, text, mask, key=jax.random.key(7), **kw)
    c = sample(CFG, params, text, mask, key=jax.random.key(8), **kw)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    _check_layout(*a)
    # Sampled path through the cache equals the recomputed one too.
    f = sample(CFG, params, text, mask, key=jax.random.key(7), use_cache=False, **kw)
    np.testing.assert_array_equal(a[0], f[0])


def test_never_samples_bos_pad_or_padded_columns(params):
    """Bias the head towards BOS, PAD and padded columns: none may be drawn."""
    p = dict(params)
    head = np.asarray(params["head"]).copy()
    bad = [CFG.bos_id, CFG.pad_id] + list(range(CFG.vocab_size, CFG.padded_vocab_size))
    head[bad] *= 50.0
    p["head"] = jnp.asarray(head)
    text, mask = _text()
    tok, lengths = sample(CFG, p, text, mask, key=jax.random.key(1), max_new_tokens=N,
                          temperature=2.0)
    _check_layout(tok, lengths)


def _eos_params(params, bos_sign: float):
    """EOS dominates whenever the fed token's embedding has +100 on dim 0; BOS gets ``bos_sign``."""
    p = dict(params)
    embed = np.asarray(params["embed"]).copy()
    embed[:, 0] = 100.0
    embed[CFG.bos_id, 0] = 100.0 * bos_sign
    head = np.zeros_like(np.asarray(params["head"]))
    head[CFG.eos_id, 0] = 50.0
    p["embed"], p["head"] = jnp.asarray(embed), jnp.asarray(head)
    return p


@pytest.mark.parametrize("use_cache", [True, False])
def test_eos_handling(params, use_cache):
    text, mask = _text()
    # EOS at once: length 0, row = [EOS, PAD, ...].
    tok, lengths = sample(CFG, _eos_params(params, 1.0), text, mask, key=jax.random.key(0),
                          max_new_tokens=N, temperature=1.0, use_cache=use_cache)
    np.testing.assert_array_equal(lengths, 0)
    np.testing.assert_array_equal(tok[:, 0], CFG.eos_id)
    np.testing.assert_array_equal(tok[:, 1:], CFG.pad_id)
    # BOS pushes away from EOS (all logits 0 except EOS < 0): code 0 first, then EOS.
    tok, lengths = sample(CFG, _eos_params(params, -1.0), text, mask, key=jax.random.key(0),
                          max_new_tokens=N, temperature=0.0, use_cache=use_cache)
    np.testing.assert_array_equal(lengths, 1)
    np.testing.assert_array_equal(tok[:, :2], [[0, CFG.eos_id]] * B)
    np.testing.assert_array_equal(tok[:, 2:], CFG.pad_id)


@pytest.mark.parametrize("use_cache", [True, False])
def test_min_new_tokens_holds_eos_back(params, use_cache):
    """EOS dominates every step (biased head), yet no row stops before its minimum."""
    text, mask = _text()
    p = _eos_params(params, 1.0)
    u_text, u_mask = _text(seed=9, b=1, s=5, real=(2,))
    for kw in (dict(temperature=1.0), dict(temperature=0.0),
               dict(temperature=1.0, top_p=0.9, cfg_scale=2.5, uncond_text_bsc=u_text, uncond_text_mask_bs=u_mask)):
        for minimum in (4, [0, 3, 7], np.array([N, 1, 5])):
            tok, lengths = sample(CFG, p, text, mask, key=jax.random.key(1), max_new_tokens=N,
                                  min_new_tokens=minimum, use_cache=use_cache, **kw)
            want = np.broadcast_to(minimum, (B,))
            np.testing.assert_array_equal(lengths, want)  # EOS the first step it is allowed
            _check_layout(tok, lengths)


def test_min_new_tokens_only_masks_eos(params):
    """A floor the model does not reach changes nothing; cache and recomputation still agree."""
    text, mask = _text()
    kw = dict(key=jax.random.key(3), max_new_tokens=N, temperature=0.0)
    free_tok, free_len = sample(CFG, params, text, mask, **kw)
    floor = np.minimum(np.asarray(free_len), [2, 0, 1])
    tok, lengths = sample(CFG, params, text, mask, min_new_tokens=floor, **kw)
    np.testing.assert_array_equal(tok, free_tok)
    tok_c, len_c = sample(CFG, _eos_params(params, 1.0), text, mask, min_new_tokens=[2, 5, 9], **kw)
    tok_f, len_f = sample(CFG, _eos_params(params, 1.0), text, mask, min_new_tokens=[2, 5, 9],
                          use_cache=False, **kw)
    np.testing.assert_array_equal(tok_c, tok_f)
    np.testing.assert_array_equal(len_c, [2, 5, 9])


def test_min_new_tokens_bad_values(params):
    text, mask = _text()
    key = jax.random.key(0)
    for bad in (-1, N + 1, [1, 2], [1.5, 2, 3], [[1, 2, 3]]):
        with pytest.raises(ConfigError, match="min_new_tokens"):
            sample(CFG, params, text, mask, key=key, max_new_tokens=N, min_new_tokens=bad)


def test_min_tokens_for_seconds():
    assert min_tokens_for_seconds(0.0, seconds=4.0, frames_per_token=4) == 0
    assert min_tokens_for_seconds(2.4, seconds=4.0, frames_per_token=4) == 18
    assert min_tokens_for_seconds(4.0, seconds=4.0, frames_per_token=4) == max_tokens_for_seconds(
        4.0, frames_per_token=4)
    assert min_tokens_for_seconds(0.1, seconds=1.0, frames_per_token=4) == 1
    for bad in (-0.5, float("nan"), float("inf"), 4.5):
        with pytest.raises(ConfigError, match=r"min_seconds=.*seconds=4\.0"):
            min_tokens_for_seconds(bad, seconds=4.0, frames_per_token=4)


def test_top_k_one_equals_greedy(params):
    text, mask = _text()
    greedy = sample(CFG, params, text, mask, key=jax.random.key(0), max_new_tokens=N, temperature=0.0)
    top1 = sample(CFG, params, text, mask, key=jax.random.key(5), max_new_tokens=N, temperature=0.7,
                  top_k=1)
    np.testing.assert_array_equal(greedy[0], top1[0])


def test_cfg_scale_one_equals_conditional(params):
    text, mask = _text()
    u_text, u_mask = _text(seed=9, b=1, s=5, real=(2,))
    for temp in (1.0,):
        kw = dict(key=jax.random.key(2), max_new_tokens=N, temperature=temp)
        plain = sample(CFG, params, text, mask, **kw)
        guided = sample(CFG, params, text, mask, cfg_scale=1.0, uncond_text_bsc=u_text,
                        uncond_text_mask_bs=u_mask, **kw)
        np.testing.assert_array_equal(plain[0], guided[0])


def test_cfg_scale_changes_tokens_and_cache_matches(params):
    text, mask = _text()
    u_text, u_mask = _text(seed=9, b=1, s=5, real=(2,))
    kw = dict(key=jax.random.key(2), max_new_tokens=N, temperature=0.0, cfg_scale=4.0,
              uncond_text_bsc=u_text, uncond_text_mask_bs=u_mask)
    plain = sample(CFG, params, text, mask, key=jax.random.key(2), max_new_tokens=N, temperature=0.0)
    guided = sample(CFG, params, text, mask, **kw)
    full = sample(CFG, params, text, mask, use_cache=False, **kw)
    assert not np.array_equal(plain[0], guided[0])
    np.testing.assert_array_equal(guided[0], full[0])
    _check_layout(*guided)


def test_filter_logits_top_p():
    logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
    kept = np.isfinite(np.asarray(filter_logits(logits, temperature=1.0, top_k=0, top_p=0.7)))
    np.testing.assert_array_equal(kept, [[True, True, False, False]])
    kept = np.isfinite(np.asarray(filter_logits(logits, temperature=1.0, top_k=3, top_p=1.0)))
    np.testing.assert_array_equal(kept, [[True, True, True, False]])


def test_bad_inputs(params):
    text, mask = _text()
    key = jax.random.key(0)
    with pytest.raises(ShapeError):
        sample(CFG, params, text[..., :-1], mask, key=key, max_new_tokens=N)
    with pytest.raises(ShapeError):
        sample(CFG, params, text, mask[:, :-1], key=key, max_new_tokens=N)
    with pytest.raises(ConfigError):
        sample(CFG, params, text, mask, key=key, max_new_tokens=N, temperature=-0.5)
    with pytest.raises(ConfigError):
        sample(CFG, params, text, mask, key=key, max_new_tokens=0)
    with pytest.raises(ConfigError):
        sample(CFG, params, text, mask, key=key, max_new_tokens=N, top_p=0.0)
    with pytest.raises(ConfigError):
        sample(CFG, params, text, mask, key=key, max_new_tokens=N, cfg_scale=3.0)
    with pytest.raises(ShapeError):
        sample(CFG, params, text, mask, key=key, max_new_tokens=N, cfg_scale=3.0,
               uncond_text_bsc=text[:2], uncond_text_mask_bs=mask[:2])


def test_max_tokens_for_seconds():
    assert max_tokens_for_seconds(4.0, frames_per_token=4) == 30
    assert max_tokens_for_seconds(1.0, frames_per_token=4, fps=20) == 5
    assert max_tokens_for_seconds(0.1, frames_per_token=4) == 1
    with pytest.raises(ConfigError):
        max_tokens_for_seconds(0.0, frames_per_token=4)


def test_scan_layers_params_work(params):
    """The same weights stacked on a leading layer axis (scan_layers) sample the same tokens."""
    cfg = dataclasses.replace(CFG, scan_layers=True)
    blocks = [params[f"block_{i}"] for i in range(CFG.num_layers)]
    p = {k: v for k, v in params.items() if not k.startswith("block_")}
    p["blocks"] = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *blocks)
    assert jax.tree_util.tree_structure(p) == jax.tree_util.tree_structure(
        jax.eval_shape(lambda k: init_params(cfg, key=k), jax.random.key(1)))
    text, mask = _text()
    kw = dict(key=jax.random.key(3), max_new_tokens=N, temperature=0.0)
    np.testing.assert_array_equal(sample(cfg, p, text, mask, **kw)[0],
                                  sample(CFG, params, text, mask, **kw)[0])


def test_empty_text_feeds_guidance(params):
    from mm_jax.text import TextConfig
    from mm_jax.text import init_params as text_init
    from mm_jax.sample import empty_text
    tcfg = TextConfig(width=C, num_layers=1, num_heads=1, mlp_dim=17, vocab_size=103,
                      max_positions=8, max_tokens=5)
    u_text, u_mask = empty_text(text_init(tcfg, key=jax.random.key(0)), max_tokens=5)
    assert u_text.shape == (1, 5, C)
    np.testing.assert_array_equal(u_mask, [[True, True, False, False, False]])
    text, mask = _text()
    tok, lengths = sample(CFG, params, text, mask, key=jax.random.key(0), max_new_tokens=N,
                          temperature=0.0, cfg_scale=2.5, uncond_text_bsc=u_text,
                          uncond_text_mask_bs=u_mask)
    _check_layout(tok, lengths)
