"""Timing shared by the benchmark scripts (standard library only: the PyTorch script runs in another venv)."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def time_fn(fn: Callable[[], object], steps: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` (which must block) after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
