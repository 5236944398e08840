"""Encode/decode throughput of the wavelet FSQ tokenizer, and the Haar transform beside pywt.

Run: ``.venv/bin/python benchmarks/bench_tokenizer.py [--preset small]`` (about 1-2 min on 2 cores).

Part 1 times the jitted tokenizer (random weights of the preset: speed does not
depend on training) on [B, 96, 272] normalised features: ``encode`` (features
-> token ids) and ``decode`` (ids -> features), at B = 1, 32, 256, after a
warm-up call, waiting on ``block_until_ready``; frames/s = B * 96 / median
seconds, and the real-time factor against 30 fps motion. Part 2 runs the
Haar benchmark (benchmarks/bench_wavelet.py): jnp forward/inverse beside
pywt on the same arrays.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import pathlib
import sys
import time

import jax

try:
    import mm_jax  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import bench_wavelet  # noqa: E402  (beside this file)
from mm_jax.tokenizer import PRESETS  # noqa: E402
from mm_jax.tokenizer import model as tmodel  # noqa: E402

BATCHES = (1, 32, 256)
FRAMES = 96


def _bench_tokenizer(preset: str, args: argparse.Namespace) -> None:
    cfg = dataclasses.replace(PRESETS[preset][0], window=FRAMES)
    params = tmodel.init_params(cfg, key=jax.random.key(0))
    enc = jax.jit(functools.partial(tmodel.encode, cfg=cfg))
    dec = jax.jit(functools.partial(tmodel.decode, cfg=cfg))
    print(f"tokenizer preset {preset!r}: width {cfg.width}, wavelet levels {cfg.wavelet_levels}, "
          f"x{cfg.frames_per_token} frames per token, {sum(a.size for a in jax.tree.leaves(params)):,} params")
    print(f"{'batch':>6} | {'encode frames/s':>16} {'x real time':>12} | {'decode frames/s':>16} {'x real time':>12}")
    for b in BATCHES:
        x = jax.random.normal(jax.random.key(b), (b, FRAMES, cfg.feature_dim))
        ids = enc(params, x).block_until_ready()
        dec(params, ids).block_until_ready()
        t_enc = bench_wavelet._median_seconds(lambda: enc(params, x).block_until_ready(),
                                              args.min_repeats, args.budget_s)
        t_dec = bench_wavelet._median_seconds(lambda: dec(params, ids).block_until_ready(),
                                              args.min_repeats, args.budget_s)
        fe, fd = b * FRAMES / t_enc, b * FRAMES / t_dec
        print(f"{b:>6} | {fe:16.3e} {fe / 30:12.0f} | {fd:16.3e} {fd / 30:12.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="tokenizer preset (tiny, small, base)")
    parser.add_argument("--min-repeats", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=1.0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    _bench_tokenizer(args.preset, args)
    print()
    sys.argv = [sys.argv[0], "--min-repeats", str(args.min_repeats), "--budget-s", "0.5"]
    bench_wavelet.main()
    print(f"all done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
