"""The decoder's cross-entropy pass, before and after the logsumexp change, interleaved in one process.

Run: ``.venv/bin/python benchmarks/bench_loss.py`` (about 20 s). Times value_and_grad of the
next-token NLL over [B=8, N=128, V=64128] float32 logits with the old formulation
(log_softmax + take_along_axis: the gradient is a zero-fill plus a scatter over the
logits) beside the one in mm_jax/model/loss.py (logsumexp minus the target logit picked
with an iota compare), and checks they agree.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

B, N, V = 8, 128, 64128


def nll_old(logits, target, weight):
    logp = jax.nn.log_softmax(logits[:, :-1], -1)
    return jnp.sum(-jnp.take_along_axis(logp, target[:, 1:, None], -1)[..., 0] * weight)


def nll_new(logits, target, weight):
    logits = logits[:, :-1]
    hit = jnp.sum(jnp.where(jnp.arange(V) == target[:, 1:, None], logits, 0.0), -1)
    return jnp.sum((jax.nn.logsumexp(logits, -1) - hit) * weight)


def main() -> None:
    logits = jax.random.normal(jax.random.key(0), (B, N, V))
    target = jax.random.randint(jax.random.key(1), (B, N), 0, 64000)
    weight = jnp.ones((B, N - 1))
    fns = {name: jax.jit(jax.value_and_grad(f)) for name, f in (("old", nll_old), ("new", nll_new))}
    (va, ga), (vb, gb) = (fns[k](logits, target, weight) for k in ("old", "new"))
    print(f"value rel. diff {float(abs(va - vb) / abs(va)):.2e}, grad max diff {float(jnp.abs(ga - gb).max()):.2e}")
    times: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(6):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(logits, target, weight)[1].block_until_ready()
            times[name].append(time.perf_counter() - t0)
    old, new = (1e3 * float(np.median(times[k])) for k in ("old", "new"))
    print(f"log_softmax + take_along_axis: {old:.1f} ms; logsumexp - target logit: {new:.1f} ms "
          f"({100 * (new - old) / old:+.0f}%)")


if __name__ == "__main__":
    main()
