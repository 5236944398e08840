"""Next-token loss of the text-to-motion decoder.

Stage: model (used by train and eval). Inputs: logits [B, N, V] from
``llama.forward`` (position i predicts motion token i + 1), the motion ids
[B, N] and their mask [B, N]. Output: the mean cross-entropy over motion
positions whose *target* is a real token (codes and EOS; never PAD, never the
BOS that starts the sequence), and the token accuracy over the same set.

:func:`motion_loss` scores full logits. :func:`forward_loss` (its sums,
:func:`loss_sums`, are what a train step differentiates) is a *loss-only forward*: it runs the blocks,
then the final norm and the output head only on the N - 1 motion positions
that have a target (``x[:, S:-1]``), never on the S text positions nor the
last one, so neither the [B, N, V] slice copy of ``logits[:, :-1]`` nor its
padded gradient exist. With ``ce_chunk`` > 0 the head and the cross-entropy
run over vocabulary chunks (:func:`chunked_nll`, a custom VJP with an online
log-sum-exp), so the [B, N, V] logits are never held: four head matmuls
instead of three (the backward recomputes each chunk's logits), one pass over
the weights per chunk. Both equal ``motion_loss(forward(...))`` (tested).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from mm_jax.errors import ConfigError, ShapeError
from mm_jax.model.config import ModelConfig
from mm_jax.model.dense import linear
from mm_jax.model.llama import NEG_INF, Decoder, RMSNorm


def pick_target(logits_bmv: jax.Array, target_bm: jax.Array) -> jax.Array:
    """The target's logit, ``logits[b, m, target[b, m]]`` [B, M]: a gather forward, and a one-hot built by
    comparing the columns with the target backward.

    Autodiff of the gather would zero-fill a [B, M, V] tensor and scatter into
    it; the one-hot instead fuses with the softmax's gradient into one
    ``softmax - one_hot`` pass (the loss pass measured 23% faster at B=8,
    N=128, V=64k on the CPU than the scatter); the gather forward reads one
    value per row instead of a compare-and-sum over all V columns.
    """
    return _pick(logits_bmv.shape[-1], logits_bmv, target_bm)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _pick(v: int, logits_bmv: jax.Array, target_bm: jax.Array) -> jax.Array:
    del v
    return jnp.take_along_axis(logits_bmv, target_bm[..., None], axis=-1)[..., 0]


def _pick_fwd(v, logits_bmv, target_bm):
    return _pick(v, logits_bmv, target_bm), target_bm


def _pick_bwd(v, target_bm, g_bm):
    one_hot = jnp.arange(v, dtype=target_bm.dtype) == target_bm[..., None]
    return (jnp.where(one_hot, g_bm[..., None], jnp.zeros((), g_bm.dtype)),
            np.zeros(target_bm.shape, dtype=jax.dtypes.float0))


_pick.defvjp(_pick_fwd, _pick_bwd)


def motion_loss(logits_bnv: jax.Array, motion_bn: jax.Array, motion_mask_bn: jax.Array
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Cross-entropy and accuracy on real next-token targets.

    Args:
      logits_bnv: [B, N, V] logits; position i scores token i + 1.
      motion_bn: [B, N] int ids.
      motion_mask_bn: [B, N] bool, True for real tokens.

    Returns:
      (loss, metrics) with metrics ``{"loss", "accuracy", "tokens"}``; the loss
      is the mean over the real targets (0 when there are none).
    """
    if logits_bnv.ndim != 3 or logits_bnv.shape[:2] != motion_bn.shape:
        raise ShapeError(f"logits_bnv has shape {logits_bnv.shape}; expected "
                         f"{tuple(motion_bn.shape)} + (V,)")
    if motion_mask_bn.shape != motion_bn.shape:
        raise ShapeError(f"motion_mask_bn has shape {motion_mask_bn.shape}; "
                         f"expected {tuple(motion_bn.shape)}")
    logits = logits_bnv[:, :-1].astype(jnp.float32)
    target_bn = motion_bn[:, 1:]
    weight_bn = motion_mask_bn[:, 1:].astype(jnp.float32)
    nll_bn = jax.nn.logsumexp(logits, axis=-1) - pick_target(logits, target_bn)
    count = jnp.sum(weight_bn)
    denom = jnp.maximum(count, 1.0)
    loss = jnp.sum(nll_bn * weight_bn) / denom
    correct = (jnp.argmax(logits, axis=-1) == target_bn).astype(jnp.float32)
    accuracy = jnp.sum(correct * weight_bn) / denom
    return loss, {"loss": loss, "accuracy": accuracy, "tokens": count}


def _nll_full(x_bmd: jax.Array, w_vd: jax.Array, target_bm: jax.Array, vocab_size: int
              ) -> tuple[jax.Array, jax.Array]:
    """(NLL [B, M], correct [B, M]) from the head applied to all Vp columns at once (padded ones at -inf)."""
    logits_bmv = linear(x_bmd, w_vd.astype(x_bmd.dtype)).astype(jnp.float32)
    logits_bmv = nn.with_logical_constraint(logits_bmv, ("batch", "seq", "act_vocab"))
    # Column numbers as float32 (exact below 2**24), for the padding mask and the first maximum below.
    col_v = jnp.arange(logits_bmv.shape[-1], dtype=jnp.float32)
    logits_bmv = jnp.where(col_v < vocab_size, logits_bmv, NEG_INF)
    nll_bm = jax.nn.logsumexp(logits_bmv, axis=-1) - pick_target(logits_bmv, target_bm)
    # argmax's first maximum as the smallest column holding the row's maximum: a plain min-reduce that
    # fuses with the compare, where jnp.argmax is a variadic (value, index) reduce that XLA:CPU runs
    # as a separate slow loop (4.3 ms of a 170 ms tiny step in a profile). Same result, ties included.
    # A float min-reduce is one fast XLA:CPU kernel; an int32 one over 64k columns is a tree of
    # reduce-windows.
    max_bm1 = jnp.max(logits_bmv, axis=-1, keepdims=True)
    first_bm = jnp.min(jnp.where(logits_bmv == max_bm1, col_v, float(logits_bmv.shape[-1])), axis=-1)
    return nll_bm, (first_bm == target_bm.astype(jnp.float32)).astype(jnp.float32)


def _chunks(w_vd: jax.Array, chunk: int) -> jax.Array:
    """[Vp, D] -> [C, chunk, D], zero rows appended up to C * chunk (masked as padding)."""
    v, d = w_vd.shape
    c = -(-v // chunk)
    return jnp.pad(w_vd, ((0, c * chunk - v), (0, 0))).reshape(c, chunk, d)


def _chunk_logits(x_md, w_cd, start, vocab_size):
    logits_mc = jnp.einsum("md,cd->mc", x_md, w_cd.astype(x_md.dtype), preferred_element_type=jnp.float32)
    col_c = start + jnp.arange(w_cd.shape[0])
    return jnp.where(col_c < vocab_size, logits_mc, NEG_INF), col_c


def _chunked_fwd(x_md, w_vd, target_m, vocab_size, chunk):
    """Online log-sum-exp, target logit and argmax over the vocabulary chunks."""
    m = x_md.shape[0]

    def body(carry, xs):
        mx, se, tgt, best, arg = carry
        j, w_cd = xs
        logits_mc, col_c = _chunk_logits(x_md, w_cd, j * chunk, vocab_size)
        new_mx = jnp.maximum(mx, jnp.max(logits_mc, axis=1))
        se = se * jnp.exp(mx - new_mx) + jnp.sum(jnp.exp(logits_mc - new_mx[:, None]), axis=1)
        tgt = tgt + jnp.sum(jnp.where(col_c == target_m[:, None], logits_mc, 0.0), axis=1)
        cmax, carg = jnp.max(logits_mc, axis=1), j * chunk + jnp.argmax(logits_mc, axis=1)
        better = cmax > best  # the first maximum wins, as jnp.argmax
        return (new_mx, se, tgt, jnp.where(better, cmax, best), jnp.where(better, carg, arg)), None

    w_ccd = _chunks(w_vd, chunk)
    neg = jnp.full((m,), -jnp.inf, jnp.float32)
    init = (neg, jnp.zeros((m,), jnp.float32), jnp.zeros((m,), jnp.float32), neg, jnp.zeros((m,), jnp.int32))
    (mx, se, tgt, _, arg), _ = jax.lax.scan(body, init, (jnp.arange(w_ccd.shape[0]), w_ccd))
    lse = mx + jnp.log(se)
    return lse - tgt, (arg == target_m).astype(jnp.float32), lse


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def chunked_nll(x_md: jax.Array, w_vd: jax.Array, target_m: jax.Array, vocab_size: int, chunk: int
                ) -> tuple[jax.Array, jax.Array]:
    """(NLL [M], correct [M]) of ``x_md @ w_vd.T`` (columns >= ``vocab_size`` excluded), ``chunk`` columns at a time.

    Never materialises [M, Vp]; the backward recomputes each chunk's logits
    and accumulates ``dx = sum_c g_c @ w_c`` and ``dw_c = g_c^T @ x`` with
    ``g = dnll * (softmax - onehot)``. ``correct`` has no gradient.
    """
    nll, correct, _ = _chunked_fwd(x_md, w_vd, target_m, vocab_size, chunk)
    return nll, correct


def _chunked_vjp_fwd(x_md, w_vd, target_m, vocab_size, chunk):
    nll, correct, lse = _chunked_fwd(x_md, w_vd, target_m, vocab_size, chunk)
    return (nll, correct), (x_md, w_vd, target_m, lse)


def _chunked_vjp_bwd(vocab_size, chunk, res, cts):
    x_md, w_vd, target_m, lse = res
    g_m = cts[0].astype(jnp.float32)

    def body(dx_md, xs):
        j, w_cd = xs
        logits_mc, col_c = _chunk_logits(x_md, w_cd, j * chunk, vocab_size)
        d_mc = (jnp.exp(logits_mc - lse[:, None]) - (col_c == target_m[:, None])) * g_m[:, None]
        d_mc = d_mc.astype(x_md.dtype)
        dx_md = dx_md + jnp.einsum("mc,cd->md", d_mc, w_cd.astype(x_md.dtype), preferred_element_type=jnp.float32)
        return dx_md, jnp.einsum("mc,md->cd", d_mc, x_md, preferred_element_type=jnp.float32)

    w_ccd = _chunks(w_vd, chunk)
    dx_md, dw_ccd = jax.lax.scan(body, jnp.zeros(x_md.shape, jnp.float32), (jnp.arange(w_ccd.shape[0]), w_ccd))
    dw_vd = dw_ccd.reshape(-1, w_vd.shape[1])[: w_vd.shape[0]]
    zero_t = jnp.zeros(target_m.shape, jax.dtypes.float0)
    return dx_md.astype(x_md.dtype), dw_vd.astype(w_vd.dtype), zero_t


chunked_nll.defvjp(_chunked_vjp_fwd, _chunked_vjp_bwd)


def hidden_states(cfg: ModelConfig, params: dict, text_bsc: jax.Array, text_mask_bs: jax.Array,
                  motion_bn: jax.Array, motion_mask_bn: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
    """The blocks' output [B, T, D] before the final norm (the head's logits are unused and compiled away)."""
    rngs = {} if key is None else {"dropout": key}
    _, state = Decoder(cfg).apply({"params": params}, text_bsc, text_mask_bs, motion_bn, motion_mask_bn,
                                  train=key is not None, rngs=rngs, mutable=["intermediates"])
    return state["intermediates"]["hidden_btd"][0]


def _branch_sums(cfg: ModelConfig, params: dict, text_bsc, text_mask_bs, motion_bn, motion_mask_bn, key,
                 ce_chunk: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(summed NLL, summed correct, real targets) of one group of rows (the loss-only forward)."""
    hidden_btd = hidden_states(cfg, params, text_bsc, text_mask_bs, motion_bn, motion_mask_bn, key=key)
    x_bmd = RMSNorm(cfg.norm_eps).apply({"params": params["final_norm"]}, hidden_btd[:, text_bsc.shape[1]:-1])
    target_bm = motion_bn[:, 1:]
    weight_bm = motion_mask_bn[:, 1:].astype(jnp.float32)
    if ce_chunk:
        b, m, d = x_bmd.shape
        nll, correct = chunked_nll(x_bmd.reshape(b * m, d), params["head"], target_bm.reshape(b * m),
                                   cfg.vocab_size, ce_chunk)
        nll_bm, correct_bm = nll.reshape(b, m), correct.reshape(b, m)
    else:
        nll_bm, correct_bm = _nll_full(x_bmd, params["head"], target_bm, cfg.vocab_size)
    return jnp.sum(nll_bm * weight_bm), jnp.sum(correct_bm * weight_bm), jnp.sum(weight_bm)


def loss_sums(cfg: ModelConfig, params: dict, text_bsc: jax.Array, text_mask_bs: jax.Array,
              motion_bn: jax.Array, motion_mask_bn: jax.Array, *, key: jax.Array | None = None,
              ce_chunk: int = 0, branches: int = 1) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(summed NLL, summed correct, real targets) of the loss-only forward: :func:`forward_loss` before
    its division by the target count, what a gradient-accumulation step adds up over micro-batches.

    ``ce_chunk`` > 0: the cross-entropy over vocabulary chunks of that many
    columns (:func:`chunked_nll`); 0: one pass over all of them.

    ``branches`` > 1: the rows are dealt into that many groups (group i =
    rows i, i + branches, ...: on a data-sharded batch every device keeps
    its share of each group), each group runs through the model as its own
    branch of the program, and the groups' sums are added: the same sums
    and gradient up to float summation order (with dropout, group i draws
    from ``fold_in(key, i)``). The branches share no op until that sum, so
    XLA:CPU's executor can run them on different cores at once, where one
    branch's small kernels (width 128) split poorly over cores
    (``TrainConfig.batch_branches``, docs/benchmarks.md). B must be a
    multiple of ``branches``.
    """
    if ce_chunk < 0:
        raise ConfigError(f"ce_chunk={ce_chunk} must be >= 0 (0 = unchunked)")
    if motion_mask_bn.shape != motion_bn.shape:
        raise ShapeError(f"motion_mask_bn has shape {motion_mask_bn.shape}; expected {tuple(motion_bn.shape)}")
    b = motion_bn.shape[0]
    if not isinstance(branches, int) or branches < 1 or b % branches:
        raise ShapeError(f"branches={branches!r} must be a positive int dividing the batch of {b} rows")
    inputs = (text_bsc, text_mask_bs, motion_bn, motion_mask_bn)
    sums = []
    for i in range(branches):
        key_i = key if key is None or branches == 1 else jax.random.fold_in(key, i)
        sums.append(_branch_sums(cfg, params, *(x[i::branches] for x in inputs), key_i, ce_chunk))
    nll, correct, count = (sum(part) for part in zip(*sums))
    return nll, correct, count


def forward_loss(cfg: ModelConfig, params: dict, text_bsc: jax.Array, text_mask_bs: jax.Array,
                 motion_bn: jax.Array, motion_mask_bn: jax.Array, *, key: jax.Array | None = None,
                 ce_chunk: int = 0, branches: int = 1) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``motion_loss(forward(...))`` computed as a loss-only forward (module docstring): the step's loss.

    The means of :func:`loss_sums` (same arguments) over the real targets.
    """
    nll, correct, count = loss_sums(cfg, params, text_bsc, text_mask_bs, motion_bn, motion_mask_bn, key=key,
                                    ce_chunk=ce_chunk, branches=branches)
    denom = jnp.maximum(count, 1.0)
    loss = nll / denom
    return loss, {"loss": loss, "accuracy": correct / denom, "tokens": count}
