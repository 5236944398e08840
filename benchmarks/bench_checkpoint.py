"""Step-time hit of an asynchronous checkpoint save at the ``small`` preset (issue 18).

Usage::

    .venv/bin/python benchmarks/bench_checkpoint.py [--preset small] [--window 4] [--repeats 5]
        [--dir /tmp/bench_ckpt] [--json FILE]

The train step ``mm-jax train`` compiles (:func:`mm_jax.train.setup.fresh_run`:
AdamW state, donation, the frozen text encoder, random text weights) on a
fixed random batch of the preset's shapes. Each repeat times ``--window``
steps without a save (the baseline), then calls
:meth:`mm_jax.checkpoint.Checkpointer.save` (async, as the loop does) and
times ``--window`` steps while orbax writes in the background, then waits
for the write. Reported per repeat and as medians:

* ``save_call_ms``: how long ``save()`` blocks the loop (orbax copies the
  device arrays to host memory before returning; the write is in a thread);
* ``steps_during_write_ms``: the steps after it, slower while the writer
  thread competes for the 2 cores and the memory bus;
* ``hit_ms``: ``save_call_ms + sum(steps during write) - window * baseline``,
  the wall time the save adds to the run; ``wait_ms``: what was still to
  write after the window (a later save would wait for it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _batch(exp, placement):
    import jax

    from mm_jax.train import setup

    rng = np.random.default_rng(0)
    specs = setup.batch_specs(exp.pipeline, placement.batch_sharding)
    out = {}
    for k, spec in specs.items():
        if spec.dtype == np.bool_:
            host = np.ones(spec.shape, bool)
        else:
            host = rng.integers(0, 100, spec.shape).astype(np.int32)
        out[k] = jax.device_put(host, spec.sharding)
    return out


def timed_steps(step, state, n: int) -> tuple[object, list[float]]:
    import jax

    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        state, m = step(state)
        jax.block_until_ready(m)
        times.append((time.perf_counter() - t0) * 1e3)
    return state, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default="/tmp/bench_ckpt")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import jax

    from mm_jax import sharding, train
    from mm_jax.checkpoint import Checkpointer
    from mm_jax.train import setup

    exp = dataclasses.replace(train.preset(args.preset), text_weights="random")
    run = setup.fresh_run(exp, sharding.make_mesh(exp.mesh))
    batch = _batch(exp, run.placement)

    def step(state):
        return run.compiled.train_step(state, batch, run.key, run.text_params)

    state, _ = timed_steps(step, run.state, 2)  # warm-up
    size = sum(x.nbytes for x in jax.tree.leaves(state.to_dict()))
    shutil.rmtree(args.dir, ignore_errors=True)
    rows, load0 = [], os.getloadavg()
    with Checkpointer(args.dir, max_to_keep=2, async_save=True) as ckpt:
        for r in range(args.repeats):
            state, base = timed_steps(step, state, args.window)
            t0 = time.perf_counter()
            ckpt.save(r + 1, state.to_dict(), {"bench": True})
            call_ms = (time.perf_counter() - t0) * 1e3
            state, during = timed_steps(step, state, args.window)
            t0 = time.perf_counter()
            ckpt.wait()
            wait_ms = (time.perf_counter() - t0) * 1e3
            b = statistics.median(base)
            rows.append({"repeat": r, "baseline_step_ms": b, "save_call_ms": call_ms,
                         "steps_during_write_ms": [round(x, 1) for x in during],
                         "hit_ms": call_ms + sum(during) - args.window * b, "wait_ms": wait_ms,
                         "load": os.getloadavg()[0]})
            print(json.dumps(rows[-1]), flush=True)
    keys = ("baseline_step_ms", "save_call_ms", "hit_ms", "wait_ms")
    med = {k: statistics.median(r[k] for r in rows) for k in keys}
    result = {"preset": args.preset, "state_bytes": size, "load_start": load0, "load_end": os.getloadavg(),
              "rows": rows, "median": med}
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"{args.preset}: state {size / 2**20:.0f} MiB; median baseline step {med['baseline_step_ms']:.0f} ms, "
          f"save() blocks {med['save_call_ms']:.0f} ms, hit {med['hit_ms']:.0f} ms per save "
          f"({med['hit_ms'] / med['baseline_step_ms']:.2f} steps), still writing after the window "
          f"{med['wait_ms']:.0f} ms; load {load0} -> {os.getloadavg()}")


if __name__ == "__main__":
    main()
