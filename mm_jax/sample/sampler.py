"""Autoregressive sampling of motion tokens from text (jitted loop, KV cache, CFG).

Stage: sample. Inputs: a ``ModelConfig`` and its parameter dict, text features
``text_bsc`` [B, S, C] with ``text_mask_bs`` [B, S] (and, for classifier-free
guidance, the empty caption's features). Output: ``tokens_bn`` [B, N] int32
(N = ``max_new_tokens``) and ``lengths_b`` [B] int32.

Output layout: row b holds ``lengths_b[b]`` codebook ids, then EOS if one was
sampled within N steps, then PAD. ``lengths_b`` counts codes only (never EOS or
PAD), so ``tokens_bn[b, :lengths_b[b]]`` is what the tokenizer decodes. BOS,
PAD and the padded vocab columns (ids >= ``cfg.vocab_size``) are never sampled.

Sampling: temperature 0 is greedy (argmax); otherwise logits / temperature,
then optional top-k and nucleus (top-p) filtering, then a categorical draw with
the key ``fold_in(key, step)``. Classifier-free guidance runs conditional and
unconditional rows in one batch of 2B and mixes
``uncond + cfg_scale * (cond - uncond)``; both halves are fed the same token.

Minimum length: ``min_new_tokens`` (an int, or one per row [B]) suppresses EOS
while a row has produced fewer codes than that: its logit is set to -inf in the
logits the token is drawn from. With guidance that is the mixed row, so the one
guided distribution of a prompt (conditional and unconditional alike) never
offers EOS early; masking each half before the mix would give -inf - -inf =
NaN. :func:`min_tokens_for_seconds` converts a floor in seconds.

The loop is one ``lax.while_loop`` inside ``jax.jit`` that stops when every row
has finished. ``use_cache=True`` prefills the text once and decodes one token
per step (``llama.prefill``/``llama.decode_step``: the decoder's own modules with
a KV cache); ``use_cache=False`` re-runs ``llama.forward`` on the whole
[B, 1 + N] motion buffer every step (the reference the cache is tested against).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mm_jax.errors import ConfigError, ShapeError
from mm_jax.model.config import ModelConfig
from mm_jax.model.llama import decode_step, forward, prefill
from mm_jax.text.encoder import encode
from mm_jax.text.tokenize import empty_prompt

_MASKED = -jnp.inf
SEED_LIMIT = 2**32  # jax.random.key(seed) keeps seed mod 2**32 (x64 off): larger seeds would repeat streams


def seed_key(seed: int) -> jax.Array:
    """``jax.random.key(seed)`` for a seed in [0, 2**32), the range in which distinct seeds give distinct keys.

    ``jax.random.key`` reduces seeds mod 2**32 (``key(2**32) == key(0)``,
    ``key(-1) == key(2**32 - 1)``) and overflows past 2**63, so a seed outside
    the range is refused rather than silently aliased.

    Raises:
      ConfigError: ``seed`` is not an int, or is outside [0, 2**32 - 1].
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < SEED_LIMIT:
        raise ConfigError(f"seed={seed!r} must be an int in [0, {SEED_LIMIT - 1}] (a 32-bit seed: larger or "
                          "negative seeds would give the streams of others)")
    return jax.random.key(int(seed))


def max_tokens_for_seconds(seconds: float, *, frames_per_token: int, fps: float = 30.0) -> int:
    """Motion codes needed for ``seconds`` of motion: ceil(seconds * fps / frames_per_token).

    Pass the result (+ 1 to leave room for EOS) as ``max_new_tokens``.
    """
    if not seconds > 0 or not fps > 0 or not (isinstance(frames_per_token, int) and frames_per_token > 0):
        raise ConfigError(f"seconds={seconds!r}, fps={fps!r} must be > 0 and "
                          f"frames_per_token={frames_per_token!r} a positive int")
    return int(math.ceil(seconds * fps / frames_per_token - 1e-9))


def min_tokens_for_seconds(min_seconds: float, *, seconds: float, frames_per_token: int,
                           fps: float = 30.0) -> int:
    """Motion codes that make at least ``min_seconds`` of motion (0 for 0): the floor for ``min_new_tokens``.

    The same conversion as :func:`max_tokens_for_seconds`, ceil(min_seconds * fps
    / frames_per_token), so ``min_seconds == seconds`` gives the whole budget.

    Raises:
      ConfigError: ``min_seconds`` negative, not finite, or above ``seconds`` (both named).
    """
    if not (math.isfinite(min_seconds) and 0 <= min_seconds <= seconds):
        raise ConfigError(f"min_seconds={min_seconds!r} must be finite and in [0, seconds={seconds!r}]")
    if min_seconds == 0:
        return 0
    return max_tokens_for_seconds(min_seconds, frames_per_token=frames_per_token, fps=fps)


def filter_logits(logits_bv: jax.Array, *, temperature: float, top_k: int, top_p: float) -> jax.Array:
    """Temperature, top-k and top-p filtering; removed entries become -inf.

    Args:
      logits_bv: [B, V] float32 logits, disallowed ids already at -inf.
      temperature: > 0.
      top_k: keep the k largest (0 = all).
      top_p: keep the smallest set whose probability reaches top_p (1 = all).
    """
    logits_bv = logits_bv / temperature
    if top_k > 0:
        kth_b1 = jax.lax.top_k(logits_bv, min(top_k, logits_bv.shape[-1]))[0][:, -1:]
        logits_bv = jnp.where(logits_bv < kth_b1, _MASKED, logits_bv)
    if top_p < 1.0:
        sorted_bv = jnp.sort(logits_bv, axis=-1)[:, ::-1]
        probs_bv = jax.nn.softmax(sorted_bv, axis=-1)
        before_bv = jnp.cumsum(probs_bv, axis=-1) - probs_bv  # mass strictly above each entry
        keep_bv = before_bv < top_p  # the first entry is always kept
        cutoff_b1 = jnp.min(jnp.where(keep_bv, sorted_bv, jnp.inf), axis=-1, keepdims=True)
        logits_bv = jnp.where(logits_bv < cutoff_b1, _MASKED, logits_bv)
    return logits_bv


class _Options(NamedTuple):
    """Static sampling options (hashable, so jit compiles once per set)."""

    max_new_tokens: int
    temperature: float
    top_k: int
    top_p: float
    cfg_scale: float
    guided: bool
    use_cache: bool


def _allowed(cfg: ModelConfig) -> jax.Array:
    """[V] bool: codebook ids and EOS (never BOS, PAD or padded columns)."""
    ids = jnp.arange(cfg.padded_vocab_size)
    return (ids < cfg.codebook_size) | (ids == cfg.eos_id)


def _choose(cfg: ModelConfig, opts: _Options, logits_bv: jax.Array, no_eos_b: jax.Array,
            key: jax.Array) -> jax.Array:
    """Guided mix, masking and the draw: logits [B or 2B, V] -> ids [B] int32.

    ``no_eos_b`` [B] bool: rows whose EOS is masked (still under their minimum length).
    """
    if opts.guided:
        cond_bv, uncond_bv = jnp.split(logits_bv, 2, axis=0)
        logits_bv = uncond_bv + opts.cfg_scale * (cond_bv - uncond_bv)
    is_eos_v = jnp.arange(cfg.padded_vocab_size) == cfg.eos_id
    allowed_bv = _allowed(cfg)[None, :] & ~(no_eos_b[:, None] & is_eos_v)
    logits_bv = jnp.where(allowed_bv, logits_bv, _MASKED)
    if opts.temperature == 0.0:
        return jnp.argmax(logits_bv, axis=-1).astype(jnp.int32)
    logits_bv = filter_logits(logits_bv, temperature=opts.temperature, top_k=opts.top_k,
                              top_p=opts.top_p)
    return jax.random.categorical(key, logits_bv, axis=-1).astype(jnp.int32)


def _step_fns(cfg: ModelConfig, opts: _Options, params: dict, text_bsc, text_mask_bs):
    """(initial model state, fn(state, token_b, t) -> (logits, state)) for either path."""
    n = opts.max_new_tokens
    if opts.use_cache:
        state = prefill(cfg, params, text_bsc, text_mask_bs, n)

        def step(state, token_b, t):
            return decode_step(cfg, params, state, token_b, t)
        return state, step

    rows = text_bsc.shape[0]
    buffer_bn = jnp.full((rows, n), cfg.bos_id, jnp.int32)  # slots 0..N-1; slot 0 = BOS
    mask_bn = jnp.ones((rows, n), bool)  # causal: later slots never reach slot t

    def step(buffer_bn, token_b, t):
        buffer_bn = jax.lax.dynamic_update_slice(buffer_bn, token_b[:, None], (0, t))
        logits_bnv = forward(cfg, params, text_bsc, text_mask_bs, buffer_bn, mask_bn)
        return jax.lax.dynamic_index_in_dim(logits_bnv, t, axis=1, keepdims=False), buffer_bn
    return buffer_bn, step


@functools.partial(jax.jit, static_argnums=(0, 1))
def _sample_jit(cfg: ModelConfig, opts: _Options, params: dict, text_bsc, text_mask_bs, min_b, key):
    b = text_bsc.shape[0] // (2 if opts.guided else 1)
    n = opts.max_new_tokens
    model_state, step = _step_fns(cfg, opts, params, text_bsc, text_mask_bs)

    def cond(carry):
        t, _, _, done_b, _, _ = carry
        return (t < n) & ~jnp.all(done_b)

    def body(carry):
        t, token_b, tokens_bn, done_b, lengths_b, model_state = carry
        feed_b = jnp.concatenate([token_b, token_b]) if opts.guided else token_b
        logits_bv, model_state = step(model_state, feed_b, t)
        # a live row has produced t codes so far; under its minimum it may not stop
        new_b = _choose(cfg, opts, logits_bv, t < min_b, jax.random.fold_in(key, t))
        is_eos_b = new_b == cfg.eos_id
        out_b = jnp.where(done_b, cfg.pad_id, new_b)
        tokens_bn = jax.lax.dynamic_update_slice(tokens_bn, out_b[:, None], (0, t))
        lengths_b = lengths_b + (~done_b & ~is_eos_b).astype(jnp.int32)
        return t + 1, new_b, tokens_bn, done_b | is_eos_b, lengths_b, model_state

    carry = (jnp.int32(0), jnp.full((b,), cfg.bos_id, jnp.int32),
             jnp.full((b, n), cfg.pad_id, jnp.int32), jnp.zeros((b,), bool),
             jnp.zeros((b,), jnp.int32), model_state)
    _, _, tokens_bn, _, lengths_b, _ = jax.lax.while_loop(cond, body, carry)
    return tokens_bn, lengths_b


def _check_text(cfg: ModelConfig, text_bsc, text_mask_bs, what: str) -> None:
    if text_bsc.ndim != 3 or text_bsc.shape[-1] != cfg.text_dim:
        raise ShapeError(f"{what} has shape {tuple(text_bsc.shape)}; expected [B, S, {cfg.text_dim}]")
    if tuple(text_mask_bs.shape) != tuple(text_bsc.shape[:2]):
        raise ShapeError(f"{what} mask has shape {tuple(text_mask_bs.shape)}; "
                         f"expected {tuple(text_bsc.shape[:2])}")


def _check_options(cfg: ModelConfig, opts: _Options) -> None:
    n = opts.max_new_tokens
    if not isinstance(n, int) or not 1 <= n <= cfg.max_motion_tokens - 1:
        raise ConfigError(f"max_new_tokens={n!r} must be an int in [1, {cfg.max_motion_tokens - 1}] "
                          f"(max_motion_tokens={cfg.max_motion_tokens} counts BOS)")
    if not opts.temperature >= 0:
        raise ConfigError(f"temperature={opts.temperature!r} must be >= 0 (0 = greedy)")
    if not isinstance(opts.top_k, int) or opts.top_k < 0:
        raise ConfigError(f"top_k={opts.top_k!r} must be an int >= 0 (0 = off)")
    if not 0.0 < opts.top_p <= 1.0:
        raise ConfigError(f"top_p={opts.top_p!r} must be in (0, 1] (1 = off)")
    if not math.isfinite(opts.cfg_scale):
        raise ConfigError(f"cfg_scale={opts.cfg_scale!r} must be finite")


def _min_per_row(min_new_tokens, b: int, n: int) -> jax.Array:
    """``min_new_tokens`` (an int or [B] ints) -> [B] int32, each in [0, N]."""
    m_b = np.asarray(min_new_tokens)
    if m_b.ndim == 0:
        m_b = np.full((b,), m_b)
    if m_b.shape != (b,) or not np.issubdtype(m_b.dtype, np.integer):
        raise ConfigError(f"min_new_tokens must be an int or {b} ints (one per row), got {min_new_tokens!r}")
    if m_b.min() < 0 or m_b.max() > n:
        raise ConfigError(f"min_new_tokens={m_b.tolist()} must lie in [0, max_new_tokens={n}]")
    return jnp.asarray(m_b, jnp.int32)


def _pad_text(text_bsc, mask_bs, s: int):
    """Right-pads [B, S', C] features and [B, S'] mask to S (position-neutral padding)."""
    extra = s - text_bsc.shape[1]
    return (jnp.pad(text_bsc, ((0, 0), (0, extra), (0, 0))),
            jnp.pad(mask_bs.astype(bool), ((0, 0), (0, extra))))


def sample(cfg: ModelConfig, params: dict, text_bsc: jax.Array, text_mask_bs: jax.Array, *,
           key: jax.Array, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, cfg_scale: float = 1.0, uncond_text_bsc: jax.Array | None = None,
           uncond_text_mask_bs: jax.Array | None = None, use_cache: bool = True,
           min_new_tokens: int | Sequence[int] | np.ndarray = 0) -> tuple[jax.Array, jax.Array]:
    """Samples motion tokens for B prompts, starting from BOS, until EOS or ``max_new_tokens``.

    Args:
      cfg: the model config.
      params: plain parameter dict (``mm_jax.model.init_params`` or a checkpoint).
      text_bsc: [B, S, C] text features; text_mask_bs: [B, S] bool (True = real).
      key: PRNG key; the same key gives the same tokens.
      max_new_tokens: N, the most tokens to sample per row (EOS included).
      temperature: 0 = greedy argmax, else the softmax temperature.
      top_k: keep the k most likely ids (0 = off); top_p: nucleus mass (1 = off).
      cfg_scale: classifier-free guidance scale; used (even at 1) whenever
        ``uncond_text_bsc`` is given, as ``uncond + cfg_scale * (cond - uncond)``.
      uncond_text_bsc: [B or 1, S', C] features of the empty caption (see
        :func:`empty_text`); uncond_text_mask_bs: [B or 1, S'] its mask.
      use_cache: KV-cached decoding (True) or full recomputation each step.
      min_new_tokens: EOS is never drawn before a row has this many codes: an
        int for every row or [B] ints, each in [0, N] (0 = the model may stop
        at once, the default; N = no EOS at all). A traced input: changing it
        does not recompile.

    Returns:
      ``(tokens_bn [B, N] int32, lengths_b [B] int32)``; see the module docstring.

    Raises:
      ShapeError: inputs of the wrong rank or width.
      ConfigError: a bad option, or ``cfg_scale != 1`` without unconditional features.
    """
    opts = _Options(max_new_tokens, float(temperature), top_k, float(top_p), float(cfg_scale),
                    uncond_text_bsc is not None, bool(use_cache))
    _check_options(cfg, opts)
    _check_text(cfg, text_bsc, text_mask_bs, "text_bsc")
    min_b = _min_per_row(min_new_tokens, text_bsc.shape[0], opts.max_new_tokens)
    text_bsc, text_mask_bs = jnp.asarray(text_bsc), jnp.asarray(text_mask_bs).astype(bool)
    if opts.guided:
        if uncond_text_mask_bs is None:
            raise ConfigError("uncond_text_bsc was given without uncond_text_mask_bs")
        _check_text(cfg, uncond_text_bsc, uncond_text_mask_bs, "uncond_text_bsc")
        b, ub = text_bsc.shape[0], uncond_text_bsc.shape[0]
        if ub not in (1, b):
            raise ShapeError(f"uncond_text_bsc has batch {ub}; expected 1 or {b}")
        u_bsc = jnp.broadcast_to(jnp.asarray(uncond_text_bsc), (b,) + tuple(uncond_text_bsc.shape[1:]))
        u_bs = jnp.broadcast_to(jnp.asarray(uncond_text_mask_bs).astype(bool),
                                (b, uncond_text_bsc.shape[1]))
        s = max(text_bsc.shape[1], u_bsc.shape[1])
        c_bsc, c_bs = _pad_text(text_bsc, text_mask_bs, s)
        u_bsc, u_bs = _pad_text(u_bsc, u_bs, s)
        text_bsc = jnp.concatenate([c_bsc, u_bsc.astype(c_bsc.dtype)])
        text_mask_bs = jnp.concatenate([c_bs, u_bs])
    elif opts.cfg_scale != 1.0:
        raise ConfigError(f"cfg_scale={cfg_scale} needs uncond_text_bsc (the empty caption's features)")
    return _sample_jit(cfg, opts, params, text_bsc, text_mask_bs, min_b, key)


def empty_text(text_params: dict, *, max_tokens: int, batch: int = 1) -> tuple[jax.Array, jax.Array]:
    """Features of the empty caption ``[CLS] [SEP]`` for guidance: ([B, S, C], [B, S] bool).

    The tokenizer refuses empty captions, so the ids come from
    :func:`mm_jax.text.tokenize.empty_prompt` and run through the frozen encoder.
    """

    if max_tokens < 2 or batch < 1:
        raise ConfigError(f"max_tokens={max_tokens} must be >= 2 and batch={batch} >= 1")
    ids_s, mask_s = (jnp.asarray(a) for a in empty_prompt(max_tokens))
    ids_bs = jnp.broadcast_to(ids_s, (batch, max_tokens))
    mask_bs = jnp.broadcast_to(mask_s, (batch, max_tokens))
    tokens_bsc, _ = jax.jit(encode)(text_params, ids_bs, mask_bs)
    return tokens_bsc, mask_bs
