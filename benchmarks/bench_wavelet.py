"""Throughput of the jnp wavelet transforms (Haar, CDF 5/3) beside pywavelets.

Run: ``.venv/bin/python benchmarks/bench_wavelet.py [--family cdf53]`` (about 20-40 s on CPU).
``--family cdf53`` times :mod:`mm_jax.wavelet_cdf53` (lifting) beside
``pywt.wavedec(x, 'bior2.2', mode='reflect', ...)``, the same filters.

For each shape [B, T, C] and level count it times, on the same float32 array:
  * jnp forward  ``wavelet.dwt`` (jitted, packed layout) and inverse ``wavelet.idwt``;
  * pywt forward ``pywt.wavedec(x, 'haar', mode='symmetric', level=L, axis=1)``
    and inverse ``pywt.waverec(..., axis=1)``.
jnp timings are taken after a warm-up call (compilation excluded) and wait on
``block_until_ready``. Each cell is the median over repeats of
``time.perf_counter``; throughput is frames/s = B * T / seconds per call.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time
from typing import Callable

import jax
import numpy as np
import pywt

try:
    from mm_jax import wavelet, wavelet_cdf53
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from mm_jax import wavelet, wavelet_cdf53

PYWT = {"haar": ("haar", "symmetric"), "cdf53": ("bior2.2", "reflect")}

SHAPES = ((1, 96, 272), (32, 96, 272), (256, 96, 272))
LEVELS = (1, 2)


def _median_seconds(fn: Callable[[], object], min_repeats: int, budget_s: float) -> float:
    """Median wall time of fn() over at least min_repeats calls (more while under budget)."""
    times = []
    start = time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - start < budget_s and len(times) < 1000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _bench_case(shape: tuple[int, int, int], levels: int, args: argparse.Namespace) -> dict[str, float]:
    b, t, c = shape
    x_np = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x = jax.device_put(x_np)
    module = wavelet_cdf53 if args.family == "cdf53" else wavelet
    name, mode = PYWT[args.family]
    fwd = jax.jit(module.dwt, static_argnums=1)
    inv = jax.jit(module.idwt, static_argnums=(1, 2))
    packed = fwd(x, levels).block_until_ready()  # warm-up (compiles)
    inv(packed, levels, t).block_until_ready()
    bands = pywt.wavedec(x_np, name, mode=mode, level=levels, axis=1)
    np.testing.assert_allclose(np.asarray(inv(packed, levels, t)), x_np, atol=1e-4)  # sanity

    timers = {
        "jnp_fwd": lambda: fwd(x, levels).block_until_ready(),
        "jnp_inv": lambda: inv(packed, levels, t).block_until_ready(),
        "pywt_fwd": lambda: pywt.wavedec(x_np, name, mode=mode, level=levels, axis=1),
        "pywt_inv": lambda: pywt.waverec(bands, name, mode=mode, axis=1),
    }
    frames = b * t
    return {k: frames / _median_seconds(f, args.min_repeats, args.budget_s) for k, f in timers.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-repeats", type=int, default=5, help="least timed calls per cell")
    parser.add_argument("--budget-s", type=float, default=0.5, help="time spent repeating each cell")
    parser.add_argument("--family", default="haar", choices=tuple(PYWT))
    args = parser.parse_args()

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; pywt {pywt.__version__}; {args.family}")
    print("frames/s (median of repeats); ratio = jnp / pywt")
    head = f"{'shape [B,T,C]':>16} {'L':>2} | {'jnp fwd':>11} {'pywt fwd':>11} {'ratio':>6} |"
    print(head + f" {'jnp inv':>11} {'pywt inv':>11} {'ratio':>6}")
    print("-" * (len(head) + 32))
    t_start = time.perf_counter()
    for shape in SHAPES:
        for levels in LEVELS:
            r = _bench_case(shape, levels, args)
            print(
                f"{str(list(shape)):>16} {levels:>2} | {r['jnp_fwd']:11.3e} {r['pywt_fwd']:11.3e} "
                f"{r['jnp_fwd'] / r['pywt_fwd']:6.2f} | {r['jnp_inv']:11.3e} {r['pywt_inv']:11.3e} "
                f"{r['jnp_inv'] / r['pywt_inv']:6.2f}"
            )
    print(f"total {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
