"""The decoder's matmuls against [out, in] weights, with a weight gradient laid out for XLA:CPU.

Stage: model. Input: activations ``x`` [..., I] and a weight ``w_oi`` [O, I]
(every decoder weight, viewed as 2-D: qkv [K*(G+2)*E, D], out [D, H*E],
gate_up [2*M, D], down [D, M], head [Vp, D]). Output: ``x @ w.T`` [..., O].

Why a custom VJP: autodiff writes the weight gradient as
``dw[o, i] = sum_t dy[t, o] x[t, i]``, a dot contracting the major axis of
both operands. XLA:CPU's YNNPACK dots want the contracted axis minor on the
left operand, so XLA copies ``dy`` [T, O] into [O, T] before the dot; when O is
the wide side (gate_up: 1,024 vs 128 on ``tiny``; the head: 64,128 vs 256 on
``small``) that copy moves O/I times more bytes than copying ``x``. Here the
gradient of a widening matmul (O > I) is computed as ``(x^T dy)^T``: XLA copies
the narrow ``x`` [T, I] and transposes the small [I, O] result. An
``optimization_barrier`` keeps XLA from folding the outer transpose back into
the dot (which would restore the wide copy). Narrowing matmuls (O <= I) keep
autodiff's form, which already copies the narrow side. Same values (one dot,
another operand order: float summation order only). Measured on the ``tiny``
train step, interleaved A/B in one process (docs/benchmarks.md): 1.15-1.2x.
Only on the CPU backend (a multi-device CPU mesh included): TPU and GPU dots
take either operand layout, and on an accelerator's sharded mesh the barrier
would stand between the gradient's dot and the reduce-scatter XLA fuses into
it for FSDP; there autodiff's form is kept.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_vjp
def linear(x: jax.Array, w_oi: jax.Array) -> jax.Array:
    """``x`` [..., I] times ``w_oi`` [O, I] transposed -> [..., O] (``einsum('...i,oi->...o')``)."""
    return jnp.einsum("...i,oi->...o", x, w_oi)


def _linear_fwd(x: jax.Array, w_oi: jax.Array):
    return linear(x, w_oi), (x, w_oi)


def _linear_bwd(res, dy):
    x, w_oi = res
    dx = jnp.einsum("...o,oi->...i", dy, w_oi)
    x_ti, dy_to = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    if w_oi.shape[0] > w_oi.shape[1] and jax.default_backend() == "cpu":  # widening, on XLA:CPU
        dw_oi = jax.lax.optimization_barrier(jnp.einsum("ti,to->io", x_ti, dy_to)).T
    else:
        dw_oi = jnp.einsum("to,ti->oi", dy_to, x_ti)
    return dx.astype(x.dtype), dw_oi.astype(w_oi.dtype)


linear.defvjp(_linear_fwd, _linear_bwd)
