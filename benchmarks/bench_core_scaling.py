"""What the second core gives: one single-threaded train step alone on a core, then two side by side.

Usage::

    .venv/bin/python benchmarks/bench_core_scaling.py [--preset tiny] [--batch 4] [--steps 30]
        [--rounds 2] [--impls jax,torch] [--host-malloc auto|reuse|system] [--json FILE]

Each measurement runs in child processes of this script, each pinned to one
CPU (``os.sched_setaffinity``) and single-threaded (JAX:
``--xla_cpu_multi_thread_eigen=false``; PyTorch: ``torch.set_num_threads(1)``),
on the decoder train step that ``bench_train_step.py`` times (JAX: the
library's loss-only forward + ``optax.adamw``, donated; PyTorch: the eager
port with fused AdamW), fp32, a fixed batch of ``--batch`` rows x (32 text +
128 motion) positions.

* ``alone``: one child on CPU 0, nothing else of ours running.
* ``pair``: two children of the same implementation on CPUs 0 and 1. Both
  compile and warm up first, then start timing on the same signal, so their
  timed steps overlap.

Reported per implementation: the median step of ``alone`` and of each
``pair`` child, the slowdown ``pair / alone``, and what two cores would give a
data-parallel job of that implementation, ``2 x alone / pair`` (2.0 = the second
core is a whole core; 1.0 = it adds nothing). Rounds are interleaved (every
implementation's alone and pair once per round) and the 1-minute load average
is printed beside each row.

The question it answers: whether a slow second core is the machine's (both
implementations slow down side by side) or one implementation's.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mm_jax import hostmem  # noqa: E402


def child(impl: str, preset: str, batch: int, steps: int, cpu: int, host_malloc: str) -> None:
    """Pins this process to ``cpu``, sets its allocator, builds the step, prints "ready", waits for a line on
    stdin, times."""
    os.sched_setaffinity(0, {cpu})
    sys.path.insert(0, str(ROOT / "benchmarks"))
    hostmem.configure(host_malloc)
    if impl == "jax":
        from bench_train_step import jax_step

        step = jax_step(preset, "default", batch, 32, 128, 0)[0]
    else:
        import torch

        torch.set_num_threads(1)
        import bench_train_step_torch as bt

        step = bt.make_step(preset, batch, 32, 128, "eager")[0]
    for _ in range(3):
        step()
    print("ready", flush=True)
    sys.stdin.readline()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"cpu": cpu, "median_ms": statistics.median(times), "min_ms": min(times)}), flush=True)


def spawn(impl: str, args, cpus: list[int]) -> list[dict]:
    """Runs one child per CPU in ``cpus``; all start timing together; returns their results."""
    env = dict(os.environ)
    if impl == "jax":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, __file__, "--child", impl, "--preset", args.preset,
                               "--batch", str(args.batch), "--steps", str(args.steps), "--cpu", str(c),
                               "--host-malloc", args.host_malloc],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for c in cpus]
    for p in procs:
        line = p.stdout.readline().strip()
        if line != "ready":
            for q in procs:
                q.kill()
            raise SystemExit(f"bench_core_scaling: the {impl} child on CPU {cpus[procs.index(p)]} did not "
                             f"start (printed {line!r}); run it alone with --child {impl} to see why")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    out = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"bench_core_scaling: a {impl} child failed")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--impls", default="jax,torch", help="comma list of jax,torch")
    parser.add_argument("--json", default=None, help="also write the rows and summary to this file")
    parser.add_argument("--host-malloc", default="auto", choices=hostmem.MODES,
                        help="each child's allocator (mm_jax.hostmem), as the mm-jax console script sets it")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.preset, args.batch, args.steps, args.cpu, args.host_malloc)
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit(f"bench_core_scaling: needs 2 CPUs, this process may use {len(cpus)} ({cpus})")
    impls = [i for i in args.impls.split(",") if i]
    unknown = sorted(set(impls) - {"jax", "torch"})
    if unknown:
        raise SystemExit(f"bench_core_scaling: unknown --impls {unknown}; known: jax, torch")
    load0 = os.getloadavg()
    rows = []
    for r in range(args.rounds):
        for impl in impls:
            for mode, use in (("alone", cpus[:1]), ("pair", cpus[:2])):
                res = spawn(impl, args, use)
                rows.append({"round": r, "impl": impl, "mode": mode, "ms": [x["median_ms"] for x in res],
                             "load": os.getloadavg()[0]})
                print(json.dumps(rows[-1]), flush=True)
    summary = []
    for impl in impls:
        alone = statistics.median(x for r in rows if (r["impl"], r["mode"]) == (impl, "alone") for x in r["ms"])
        pair = statistics.median(x for r in rows if (r["impl"], r["mode"]) == (impl, "pair") for x in r["ms"])
        summary.append({"impl": impl, "alone_ms": alone, "pair_ms": pair, "slowdown": pair / alone,
                        "two_core_gain": 2 * alone / pair})
    print(f"\n{args.preset}, B={args.batch} x (32 + 128), 1 thread per process, median of {args.steps} steps "
          f"x {args.rounds} rounds; host allocator {args.host_malloc}; load {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"{'impl':6} {'alone ms':>9} {'pair ms':>8} {'pair/alone':>10} {'2-core gain':>11}")
    for s in summary:
        print(f"{s['impl']:6} {s['alone_ms']:9.1f} {s['pair_ms']:8.1f} {s['slowdown']:10.2f} "
              f"{s['two_core_gain']:10.2f}x")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"args": vars(args), "load_start": load0,
                                                       "load_end": os.getloadavg(), "rows": rows,
                                                       "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
