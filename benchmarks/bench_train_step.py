"""Train-step throughput of the decoder on this CPU: JAX beside a PyTorch port, one run.

Usage::

    .venv/bin/python benchmarks/bench_train_step.py [--presets tiny,small] [--batch 8]
        [--text-tokens 32] [--motion-tokens 128] [--steps 10] [--variant default]
        [--no-torch] [--torch-compile] [--malloc-reuse] [--json]

For each preset: a jitted JAX train step (``value_and_grad`` of
``loss.forward_loss`` + ``optax.adamw``, params and optimizer state donated)
on a fixed batch [B, S text | N motion] (default 8 x (32 + 128) = 1,280
positions), timed after 2 warm-up steps as the median of ``--steps`` steps
(each ends in ``block_until_ready``). Reported: tokens/s (B * (S + N)
positions per second), model FLOP/s (``cfg.flops_per_token(S + N)`` x
tokens/s; note it charges the output head to the S text positions too, ~S/T
over-count when the head dominates), and the FLOP/s of a 2048^3 fp32
``jnp.matmul`` measured in the same process (the practical peak). Then it
shells out to ``.venv-ref/bin/python benchmarks/bench_train_step_torch.py
--json`` (same shapes, a faithful eager fp32 port with fused AdamW, its own
torch.matmul peak) and prints one table with the JAX / torch ratio, plus the
``uptime`` load average at the start and end (the machine is shared).

``--variant`` picks ModelConfig overrides (``dataclasses.replace``) and step
options to compare speed-ups without touching the library; see VARIANTS.
XLA flags go in the environment (``XLA_FLAGS=... python bench_train_step.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np
from timing import time_fn  # beside this script

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> ModelConfig overrides
VARIANTS: dict[str, dict] = {
    "default": {},
    "scan": {"scan_layers": True},
    "remat": {"remat": True},
    "bf16": {"dtype": "bfloat16"},
}


# glibc serves blocks over 32 MiB with a fresh mmap and unmaps them on free, so every
# step page-faults its big temporaries (the [B, N, Vp] logits of ``small``: 260 MB each)
# back in; these keep them on the heap for reuse. The torch subprocess inherits them.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(4 << 30), "MALLOC_TRIM_THRESHOLD_": str(16 << 30)}


def load() -> str:
    return os.getloadavg().__repr__()


def random_batch(cfg, b: int, s: int, n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Fixed batch: captions of 8..S real tokens, motions of N/2..N real tokens (BOS first)."""
    rng = np.random.default_rng(seed)
    text_len = rng.integers(min(8, s), s + 1, b)
    motion_len = rng.integers(n // 2, n + 1, b)
    text_mask = np.arange(s)[None] < text_len[:, None]
    motion_mask = np.arange(n)[None] < motion_len[:, None]
    text = rng.standard_normal((b, s, cfg.text_dim)).astype(np.float32) * text_mask[..., None]
    motion = np.where(motion_mask, rng.integers(0, cfg.codebook_size, (b, n)), cfg.pad_id)
    motion[:, 0] = cfg.bos_id
    return text, text_mask, motion.astype(np.int32), motion_mask


def matmul_flops(n: int = 2048, steps: int = 10) -> float:
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    return 2 * n ** 3 / time_fn(lambda: mm(a, b).block_until_ready(), steps)


def jax_step(preset: str, variant: str, b: int, s: int, n: int, steps: int) -> dict:
    import jax
    import optax

    from mm_jax.model import config as mconfig
    from mm_jax.model import llama, loss

    cfg = dataclasses.replace(mconfig.preset(preset), **VARIANTS[variant])
    params = llama.init_params(cfg, key=jax.random.key(0))
    opt = optax.adamw(3e-4, weight_decay=0.1)
    state = (params, opt.init(params))
    batch = tuple(jax.device_put(x) for x in random_batch(cfg, b, s, n))

    def step(state, batch):
        params, opt_state = state
        grad_fn = jax.value_and_grad(lambda p: loss.forward_loss(cfg, p, *batch), has_aux=True)
        (l, _), grads = grad_fn(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), l

    t0 = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    box = [state]

    def run():
        box[0], loss = compiled(box[0], batch)
        loss.block_until_ready()

    sec = time_fn(run, steps)
    mm = matmul_flops()  # right after the steps, so both see the same machine load
    tok_s = b * (s + n) / sec
    return {"preset": preset, "impl": f"jax:{variant}", "step_ms": sec * 1e3, "tokens_per_s": tok_s,
            "flop_s": cfg.flops_per_token(s + n) * tok_s, "compile_s": compile_s,
            "params": cfg.num_params(), "matmul_flop_s": mm, "load": os.getloadavg()[0]}


def torch_rows(args) -> tuple[list[dict], float | None]:
    py = ROOT / ".venv-ref" / "bin" / "python"
    cmd = [str(py), str(ROOT / "benchmarks" / "bench_train_step_torch.py"), "--json",
           "--presets", args.presets, "--batch", str(args.batch), "--text-tokens",
           str(args.text_tokens), "--motion-tokens", str(args.motion_tokens),
           "--steps", str(args.steps)] + (["--compile"] if args.torch_compile else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    res = json.loads(out.strip().splitlines()[-1])
    return res["rows"], res["matmul_flop_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--text-tokens", type=int, default=32)
    parser.add_argument("--motion-tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--variant", default="default",
                        help="comma list of " + ",".join(VARIANTS))
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--torch-compile", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--malloc-reuse", action="store_true",
                        help="re-exec with glibc told to keep big buffers on the heap (see MALLOC_ENV)")
    args = parser.parse_args()
    if args.malloc_reuse and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, **MALLOC_ENV})

    load0 = load()
    rows = [jax_step(p, v, args.batch, args.text_tokens, args.motion_tokens, args.steps)
            for p in args.presets.split(",") for v in args.variant.split(",")]
    jax_mm = statistics.median(r["matmul_flop_s"] for r in rows)
    torch_mm = None
    if not args.no_torch:
        trows, torch_mm = torch_rows(args)
        rows += trows
    load1 = load()
    if args.json:
        print(json.dumps({"rows": rows, "load": [load0, load1]}))
        return
    print(f"batch {args.batch} x ({args.text_tokens} text + {args.motion_tokens} motion) "
          f"= {args.batch * (args.text_tokens + args.motion_tokens)} positions/step, fp32, "
          f"median of {args.steps} steps; malloc reuse {'on' if 'MALLOC_MMAP_THRESHOLD_' in os.environ else 'off'}; "
          f"load avg start {load0} end {load1}")
    print(f"matmul 2048^3 fp32 (median over rows): jax {jax_mm / 1e9:.0f} GFLOP/s"
          + (f", torch {torch_mm / 1e9:.0f} GFLOP/s" if torch_mm else "")
          + "; '% own mm' uses the matmul timed right after that row's steps")
    hdr = (f"{'preset':6} {'impl':16} {'step ms':>8} {'tok/s':>8} {'GFLOP/s':>8} {'mm GF/s':>8} "
           f"{'% own mm':>8} {'vs torch':>8} {'load1m':>6}")
    print(hdr)
    for r in rows:
        ref = next((t for t in rows if t["preset"] == r["preset"] and t["impl"] == "torch:eager"), None)
        ratio = f"{r['tokens_per_s'] / ref['tokens_per_s']:.2f}x" if ref else "-"
        print(f"{r['preset']:6} {r['impl']:16} {r['step_ms']:8.1f} {r['tokens_per_s']:8.0f} "
              f"{r['flop_s'] / 1e9:8.1f} {r['matmul_flop_s'] / 1e9:8.0f} "
              f"{100 * r['flop_s'] / r['matmul_flop_s']:7.1f}% {ratio:>8} {r['load']:6.2f}")


if __name__ == "__main__":
    main()
