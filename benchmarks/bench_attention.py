"""The decoder's attention (forward + backward), autodiff of the einsums vs ``attention.attend``'s own VJP.

Run: ``.venv/bin/python benchmarks/bench_attention.py [--preset tiny] [--rounds 5]`` (about 20 s).

Times ``value_and_grad`` of one layer's attention from the projected
``qkv`` [B, T, K, G + 2, E] to the output [B, T, K, G, E] (RoPE, scores, mask,
softmax, values), at the preset's head shapes and the benchmark batch
(B = 8, T = 32 text + 128 motion). The peer is the formulation the decoder
used before issue 18 (RoPE on q and k separately, ``bqkge,bske->bkgqs``
einsums differentiated by autodiff); both run in this process, interleaved,
and their values and gradients are compared first. Prints the median of each
round and the 1-minute load average.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from mm_jax.model import attention, config  # noqa: E402


def autodiff_attention(qkv, sin, cos, mask, g):
    """The pre-issue-18 layer: two RoPE calls, keys-major einsums, ``jax.nn.softmax``; autodiff backward."""
    q = attention.apply_rope(qkv[..., :g, :], sin, cos)
    k = attention.apply_rope(qkv[..., g, :], sin, cos)
    scores = jnp.einsum("bqkge,bske->bkgqs", q, k)
    scores = jnp.where(mask[:, None, None], scores * q.shape[-1] ** -0.5, attention.NEG_INF)
    return jnp.einsum("bkgqs,bske->bqkge", jax.nn.softmax(scores, axis=-1), qkv[..., g + 1, :])


def library_attention(qkv, sin, cos, mask, g):
    """As ``llama.Attention`` now: one RoPE call on q and k, then :func:`attention.attend`."""
    qk = attention.apply_rope(qkv[..., :g + 1, :], sin, cos)
    return attention.attend(qk[..., :g, :], qk[..., g, :], qkv[..., g + 1, :], mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    cfg = config.preset(args.preset)
    b, s, n = 8, 32, 128
    k, g, e = cfg.num_kv_heads, cfg.queries_per_kv, cfg.head_dim
    rng = np.random.default_rng(0)
    qkv = jnp.asarray(rng.standard_normal((b, s + n, k, g + 2, e)), jnp.float32)
    text_mask = np.arange(s)[None] < rng.integers(8, s + 1, b)[:, None]
    motion_mask = np.arange(n)[None] < rng.integers(n // 2, n + 1, b)[:, None]
    mask = attention.mixed_attention_mask(jnp.asarray(text_mask), jnp.asarray(motion_mask))
    sin, cos = attention.rope_angles(attention.token_positions(jnp.asarray(text_mask), jnp.asarray(motion_mask)),
                                     e, cfg.rope_theta)
    w = jnp.asarray(rng.standard_normal((b, s + n, k, g, e)), jnp.float32)
    fns = {name: jax.jit(jax.value_and_grad(lambda x, f=f: jnp.sum(f(x, sin, cos, mask, g) * w)))
           for name, f in (("autodiff", autodiff_attention), ("attend", library_attention))}
    (va, ga), (vb, gb) = (fns[name](qkv) for name in ("autodiff", "attend"))
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; preset {args.preset}: B={b} T={s + n} K={k} "
          f"G={g} E={e}; value rel. diff {float(abs(va - vb) / abs(va)):.1e}, "
          f"grad max diff {float(jnp.abs(ga - gb).max()):.1e}")
    rows = []
    for _ in range(args.rounds):
        row = {}
        for name, fn in fns.items():
            fn(qkv)[1].block_until_ready()
            times = []
            for _ in range(args.steps):
                t0 = time.perf_counter()
                fn(qkv)[1].block_until_ready()
                times.append(time.perf_counter() - t0)
            row[name] = 1e3 * statistics.median(times)
        row["load"] = os.getloadavg()[0]
        rows.append(row)
        print(f"  autodiff {row['autodiff']:6.2f} ms   attend {row['attend']:6.2f} ms   "
              f"speed {row['autodiff'] / row['attend']:.2f}x   load {row['load']:.2f}")
    med = {name: statistics.median(r[name] for r in rows) for name in fns}
    print(f"median of {args.rounds} rounds: autodiff {med['autodiff']:.2f} ms, attend {med['attend']:.2f} ms "
          f"({med['autodiff'] / med['attend']:.2f}x); load {os.getloadavg()}")


if __name__ == "__main__":
    main()
