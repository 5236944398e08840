"""Train-step throughput of the decoder on this CPU: JAX variants beside PyTorch, interleaved repeats, one process.

Usage::

    .venv/bin/python benchmarks/bench_train_step.py [--presets tiny,small] [--batch 8]
        [--text-tokens 32] [--motion-tokens 128] [--steps 3] [--repeats 5]
        [--variant default,full_head,chunk,bf16] [--torch eager,compile] [--syncs] [--json FILE]
        [--host-malloc auto|reuse|system]

For each preset and implementation: a train step on a fixed batch
[B, S text | N motion] (default 8 x (32 + 128) = 1,280 positions), fp32.

* JAX ``--variant``: a jitted ``value_and_grad`` of the loss + ``optax.adamw``
  (params and optimizer state donated). ``default`` is the library's step
  loss, :func:`mm_jax.model.loss.forward_loss` (loss-only head: final norm +
  head on the N - 1 positions with a target); ``full_head`` is the loss as it
  was before issue 18, ``motion_loss(forward(...))`` (head on all N motion
  positions, then ``logits[:, :-1]``); ``chunk`` adds the chunked
  cross-entropy (``--chunk`` columns, default 8,016 = 64,128 / 8);
  ``bf16`` computes in bfloat16 (fp32 params); ``branches2`` is the
  default step with ``TrainConfig.batch_branches=2`` (the rows dealt into
  two independent branches of the program, which XLA:CPU runs on both cores
  at once).
* PyTorch ``--torch``: the port in ``bench_train_step_torch.py`` (eager fp32,
  fused AdamW; ``compile`` wraps the loss in ``torch.compile``), imported
  into this process (torch 2.13.0+cpu is in ``.venv``), 2 threads.

Repeats are *interleaved*: repeat r times every implementation once before
repeat r + 1, so load drifts hit all of them alike; each cell is the median of
``--steps`` blocking steps after one warm-up, and the 1-minute load average is
recorded beside it. Reported: per implementation the median over repeats and
the ratio JAX / torch eager computed per repeat (then the median), and the
process's minor page faults and kernel (sys) CPU time per step (getrusage over
the timed steps and their warm-up: the cost of a per-step allocation that is
mapped anew).

``--syncs`` adds the host-sync lever: ``--steps`` default steps dispatched back
to back with one fetch of each step's metrics (as the train loop does, one
step late) against one fetch at the end.

``--host-malloc`` sets this process's C allocator as the ``mm-jax`` console
script does (:mod:`mm_jax.hostmem`; ``auto`` = ``reuse`` on a CPU-only host):
both the JAX and the PyTorch steps run under it. It is process-wide, so
``system`` against ``reuse`` is measured in separate runs.

XLA flags go in the environment (``XLA_FLAGS=... python bench_train_step.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import resource
import statistics
import sys
import time

import numpy as np
from timing import time_fn  # beside this script

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from mm_jax import hostmem  # noqa: E402  (plain Python: configure() runs before JAX and torch start threads)

WARMUP = 1  # untimed steps before each cell's timed ones (their page faults are counted with them)

# name -> (ModelConfig overrides, loss: "step" | "full", ce_chunk flag, batch branches)
VARIANTS: dict[str, tuple[dict, str, bool, int]] = {
    "default": ({}, "step", False, 1),
    "branches2": ({}, "step", False, 2),
    "full_head": ({}, "full", False, 1),
    "chunk": ({}, "step", True, 1),
    "bf16": ({"dtype": "bfloat16"}, "step", False, 1),
    "scan": ({"scan_layers": True}, "step", False, 1),
}


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


def jax_step(preset: str, variant: str, b: int, s: int, n: int, chunk: int):
    """(blocking step(), dispatch-only step() returning the metrics, compile seconds, FLOPs per token)."""
    import jax
    import optax

    from mm_jax.model import config as mconfig
    from mm_jax.model import llama, loss

    changes, kind, chunked, branches = VARIANTS[variant]
    cfg = dataclasses.replace(mconfig.preset(preset), **changes)
    params = llama.init_params(cfg, key=jax.random.key(0))
    opt = optax.adamw(3e-4, weight_decay=0.1)
    state = (params, opt.init(params))
    batch = tuple(jax.device_put(x) for x in random_batch(cfg, b, s, n))
    if kind == "full":
        loss_fn = lambda p: loss.motion_loss(llama.forward(cfg, p, *batch), batch[2], batch[3])  # noqa: E731
    else:
        loss_fn = lambda p: loss.forward_loss(cfg, p, *batch, ce_chunk=chunk if chunked else 0,  # noqa: E731
                                              branches=branches)

    def step(state, batch):
        params, opt_state = state
        (l, m), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), m

    t0 = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    box = [state]

    def dispatch():
        box[0], m = compiled(box[0], batch)
        return m

    return (lambda: jax.block_until_ready(dispatch())), dispatch, compile_s, cfg.flops_per_token(s + n)


def sync_lever(dispatch, steps: int) -> dict[str, float]:
    """ms/step with a host fetch of every step's metrics (one step late) vs one fetch at the end."""
    import jax

    out = {}
    for mode in ("fetch_each", "fetch_end"):
        jax.block_until_ready(dispatch())
        t0, prev = time.perf_counter(), None
        for _ in range(steps):
            m = dispatch()
            if mode == "fetch_each" and prev is not None:
                jax.device_get(prev)
            prev = m
        jax.device_get(prev)
        out[mode] = (time.perf_counter() - t0) / steps * 1e3
    return out


def build(args) -> dict[tuple[str, str], dict]:
    """Every (preset, impl) -> {"step", "dispatch", "compile_s", "fpt"} (compiled once, before any timing)."""
    import bench_train_step_torch as bt

    impls = {}
    for p in args.presets.split(","):
        for v in args.variant.split(","):
            step, dispatch, compile_s, fpt = jax_step(p, v, args.batch, args.text_tokens, args.motion_tokens,
                                                      args.chunk)
            impls[(p, f"jax:{v}")] = {"step": step, "dispatch": dispatch, "compile_s": compile_s, "fpt": fpt}
        for t in filter(None, args.torch.split(",")):
            step, first_s = bt.make_step(p, args.batch, args.text_tokens, args.motion_tokens, t)
            seq = args.text_tokens + args.motion_tokens
            fpt = bt.Cfg(**bt.PRESETS[p]).flops_per_token(seq)
            impls[(p, f"torch:{t}")] = {"step": step, "compile_s": first_s, "fpt": fpt}
    return impls


def summarize(rows: list[dict], positions: int) -> list[dict]:
    out = []
    for key in dict.fromkeys((r["preset"], r["impl"]) for r in rows):
        mine = [r for r in rows if (r["preset"], r["impl"]) == key]
        ref = {r["repeat"]: r for r in rows if r["preset"] == key[0] and r["impl"] == "torch:eager"}
        ratios = [ref[r["repeat"]]["step_ms"] / r["step_ms"] for r in mine if r["repeat"] in ref]
        ms = statistics.median(r["step_ms"] for r in mine)
        out.append({"preset": key[0], "impl": key[1], "step_ms_median": ms,
                    "step_ms_all": [round(r["step_ms"], 1) for r in mine], "tokens_per_s": positions / ms * 1e3,
                    "vs_torch_eager_median": statistics.median(ratios) if ratios else None,
                    "vs_torch_eager_all": [round(x, 2) for x in ratios],
                    "load_all": [round(r["load"], 2) for r in mine], "compile_s": mine[0]["compile_s"],
                    "page_faults_per_step": statistics.median(r["page_faults_per_step"] for r in mine),
                    "sys_ms_per_step": statistics.median(r["sys_ms_per_step"] for r in mine)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--text-tokens", type=int, default=32)
    parser.add_argument("--motion-tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variant", default="default,full_head,chunk,bf16", help="comma list of " + ",".join(VARIANTS))
    parser.add_argument("--chunk", type=int, default=8016, help="vocabulary columns per chunk of 'chunk'")
    parser.add_argument("--torch", default="eager", help="comma list of eager,compile ('' = none)")
    parser.add_argument("--syncs", action="store_true", help="also measure the host-sync lever")
    parser.add_argument("--json", default=None, help="also write the rows and summary to this file")
    parser.add_argument("--host-malloc", default="auto", choices=hostmem.MODES,
                        help="this process's allocator, as the mm-jax console script sets it "
                             "(mm_jax.hostmem; default auto, as MM_JAX_HOST_MALLOC's)")
    args = parser.parse_args()
    host_malloc = hostmem.configure(args.host_malloc)
    positions = args.batch * (args.text_tokens + args.motion_tokens)
    load0 = os.getloadavg()
    impls = build(args)
    rows = []
    for r in range(args.repeats):
        for (preset, impl), it in impls.items():
            use0 = resource.getrusage(resource.RUSAGE_SELF)
            sec = time_fn(it["step"], args.steps, warmup=WARMUP)
            use1, calls = resource.getrusage(resource.RUSAGE_SELF), args.steps + WARMUP
            rows.append({"repeat": r, "preset": preset, "impl": impl, "step_ms": sec * 1e3,
                         "load": os.getloadavg()[0], "compile_s": it["compile_s"],
                         "gflop_s": it["fpt"] * positions / sec / 1e9,
                         "page_faults_per_step": (use1.ru_minflt - use0.ru_minflt) / calls,
                         "sys_ms_per_step": (use1.ru_stime - use0.ru_stime) / calls * 1e3})
            print(json.dumps(rows[-1]), flush=True)
    syncs = {p: sync_lever(it["dispatch"], max(args.steps, 5)) for (p, impl), it in impls.items()
             if args.syncs and impl == "jax:default"}
    summary = summarize(rows, positions)
    result = {"args": vars(args), "host_malloc": host_malloc, "load_start": load0, "load_end": os.getloadavg(),
              "rows": rows,
              "summary": summary, "syncs": syncs}
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"B={args.batch} x (S={args.text_tokens} + N={args.motion_tokens}) = {positions} positions/step, "
          f"median of {args.steps} steps x {args.repeats} interleaved repeats; host allocator {host_malloc}; "
          f"load {load0} -> {os.getloadavg()}")
    print(f"{'preset':6} {'impl':16} {'ms (median)':>11} {'tok/s':>8} {'vs torch eager':>14} {'faults':>7} "
          f"{'sys ms':>6}  per-repeat ms / load")
    for s in summary:
        ratio = f"{s['vs_torch_eager_median']:.2f}x" if s["vs_torch_eager_median"] else "-"
        print(f"{s['preset']:6} {s['impl']:16} {s['step_ms_median']:11.1f} {s['tokens_per_s']:8.0f} {ratio:>14} "
              f"{s['page_faults_per_step']:7.0f} {s['sys_ms_per_step']:6.1f}  {s['step_ms_all']} / {s['load_all']}")
    for p, d in syncs.items():
        print(f"host syncs ({p}): fetch every step {d['fetch_each']:.1f} ms/step, once at the end "
              f"{d['fetch_end']:.1f} ms/step")


if __name__ == "__main__":
    main()
