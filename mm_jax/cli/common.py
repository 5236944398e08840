"""Helpers shared by the CLI handlers: progress bars and config overrides."""

from __future__ import annotations

import argparse
import contextlib
from typing import Callable, Iterator

from tqdm import tqdm


@contextlib.contextmanager
def progress_bar(desc: str, unit: str = "it") -> Iterator[Callable[[int, int], None]]:
    """Yields a ``progress(done, total)`` callback drawing a tqdm bar."""
    bar: tqdm | None = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def require_positive(**flags: int | None) -> None:
    """ConfigError naming the flag and value when a given count (``steps=args.steps``) is < 1.

    A count of 0 or less would train nothing (or, through a falsy check, the
    preset's default); None means the flag was not given.
    """
    from mm_jax.errors import ConfigError

    for name, value in flags.items():
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} {value}: must be a positive number of steps (>= 1)")


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Adds the repeated ``--set key=value`` flag (typed config overrides)."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field (repeatable), e.g. --set num=500",
    )
