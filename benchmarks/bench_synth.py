"""Throughput of the synthetic motion-caption generator.

Usage (CPU)::

    .venv/bin/python benchmarks/bench_synth.py [--num 1000] [--batch 32] [--seed 0] [--out DIR]

Runs ``synthesize`` end to end into a temporary directory (or ``--out``) and
prints sequences/s, frames/s, the hours of motion written and the time
extrapolated to 10k and 1M sequences; then times the three stages apart on
the first ``min(num, 256)`` sequences: drawing (planning + captions, numpy,
one core), the poser + 272-d features (one jitted program on fixed-shape
batches; the first call's compile time is reported apart) and writing.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mm_jax.motion.synth import PRESETS, load_dataset, synthesize  # noqa: E402
from mm_jax.motion.synth.dataset import draw, padded_frames  # noqa: E402
from mm_jax.motion.synth.pose import features_batch, plan_arrays, stack_plans  # noqa: E402


def stages(cfg, n: int) -> dict:
    """Seconds per sequence of drawing, planning arrays, and posing + features."""
    t0 = time.perf_counter()
    drawn = [draw(cfg, i) for i in range(n)]
    t1 = time.perf_counter()
    frames = padded_frames(cfg)
    plans = [plan_arrays(seq.segment, cfg.fps, frames) for seq, _, _ in drawn]
    t2 = time.perf_counter()
    batches = [plans[i: i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
    batches = [b + [b[0]] * (cfg.batch_size - len(b)) for b in batches]
    tc = time.perf_counter()
    np.asarray(features_batch(stack_plans(batches[0])))  # compile (cached if synthesize ran first)
    t3 = time.perf_counter()
    for b in batches:
        np.asarray(features_batch(stack_plans(b)))
    t4 = time.perf_counter()
    return {"draw": (t1 - t0) / n, "plan": (t2 - t1) / n, "first_call_s": t3 - tc, "features": (t4 - t3) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="keep the data set here (default: a temporary directory)")
    args = ap.parse_args()
    cfg = dataclasses.replace(PRESETS["demo"], num=args.num, seed=args.seed, batch_size=args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(args.out) if args.out else pathlib.Path(tmp) / "synth"
        t0 = time.perf_counter()
        info = synthesize(cfg, out, overwrite=True)
        wall = time.perf_counter() - t0
        ds = load_dataset(out)
        caps = [c for r in ds.records for c in r["captions"]]
        words = {w for c in caps for w in c.lower().replace(",", " ").replace(".", " ").split()}
        print(f"synthesize: {args.num} sequences, {info.total_frames} frames "
              f"({info.total_frames / cfg.fps / 3600:.2f} h) in {wall:.1f} s")
        print(f"  {args.num / wall:.1f} sequences/s, {info.total_frames / wall:,.0f} frames/s "
              f"(includes the one-off jit compile)")
        print(f"  extrapolated: 10k sequences {10_000 / args.num * wall / 60:.1f} min, "
              f"1M sequences {1_000_000 / args.num * wall / 3600:.1f} h (one process)")
        print(f"  captions: {len(caps)} total, distinct {len(set(caps)) / len(caps):.4f}, "
              f"distinct first captions / sequences "
              f"{len({r['captions'][0] for r in ds.records}) / len(ds):.4f}, "
              f"{len(words)} distinct words")
        n = min(args.num, 256)
        s = stages(cfg, n)
        print(f"stages on {n} sequences (ms/sequence): draw {1e3 * s['draw']:.2f}, plan arrays "
              f"{1e3 * s['plan']:.2f}, pose+features {1e3 * s['features']:.2f} "
              f"(batch {cfg.batch_size} x {padded_frames(cfg)} frames; first call {s['first_call_s']:.2f} s)")


if __name__ == "__main__":
    main()
