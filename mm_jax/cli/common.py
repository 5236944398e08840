"""Helpers shared by the CLI handlers: progress bars, config files and config overrides."""

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


class _ConfigFile(argparse.Action):
    """``--config FILE``: the file's keys become overrides placed *before* every ``--set``.

    The file is read when the flag is parsed (:func:`mm_jax.configs.read_config_file`,
    flattened by :func:`mm_jax.configs.file_overrides`); its items go to the front
    of ``namespace.overrides`` (after earlier files' items: a later file wins),
    so ``--set`` wins wherever it appears on the line. A file that cannot be
    read is a usage error (exit 2) naming it.
    """

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        from mm_jax.configs import file_overrides, read_config_file
        from mm_jax.errors import ConfigError

        try:
            items = file_overrides(read_config_file(value))
        except ConfigError as e:
            parser.error(f"ConfigError: {e}")
        existing = list(getattr(namespace, "overrides", None) or [])
        n = getattr(namespace, "file_override_count", 0)
        namespace.overrides = existing[:n] + items + existing[n:]
        namespace.file_override_count = n + len(items)
        namespace.config_files = list(getattr(namespace, "config_files", None) or []) + [value]


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Adds ``--config FILE.yaml|json`` and the repeated ``--set key=value`` flag (typed config overrides).

    Handlers read one list, ``args.overrides``: the files' keys first (in the
    order given), then every ``--set``.
    """
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field (repeatable), e.g. --set num=500; applied after --config",
    )
    parser.add_argument(
        "--config", action=_ConfigFile, default=None, metavar="FILE",
        help="config file (.yaml/.yml or .json) of the same keys as --set; nested mappings are dotted keys",
    )
