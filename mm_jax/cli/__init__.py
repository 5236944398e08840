"""The ``mm-jax`` command line: thin handlers over library functions.

Each submodule registers one command group; every handler parses its flags
and calls one library function. This package is the only place that prints,
draws progress bars or calls ``jax.config.update``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from mm_jax.cli import curate_cmd, data_cmd, demo_cmd, eval_cmd, export_cmd, render_cmd, tokenizer_cmd, train_cmd
from mm_jax.cli import sweep_cmd
from mm_jax.cli import config_cmd
from mm_jax import hostmem
from mm_jax.errors import MmJaxError

GROUPS = (data_cmd, curate_cmd, render_cmd, tokenizer_cmd, train_cmd, eval_cmd, export_cmd, demo_cmd, sweep_cmd,
          config_cmd)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used by the docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="mm-jax",
        description="Zero-shot text-to-motion generation in JAX (the MotionMillion recipe).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def _no_orbax_tracebacks(record: logging.LogRecord) -> bool:
    """Drops orbax's logged tracebacks (its background-save errors reach the user as a named error)."""
    return not (record.exc_info and "orbax" in record.pathname)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mm-jax`` console script."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tensorflow-text's C++ start-up chatter
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("absl", "jax._src", "orbax", "tensorflow", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not args.verbose:  # a failed async save is reported as one StorageError line, not orbax's traceback
        logging.getLogger("absl").addFilter(_no_orbax_tracebacks)
    try:
        return int(args.handler(args) or 0)
    except MmJaxError as e:
        return _failed(e)


def _failed(e: MmJaxError) -> int:
    """Prints a library error as one line naming its kind; the exit status of a failed command."""
    print(f"mm-jax: error: {type(e).__name__}: {e}", file=sys.stderr)
    return 2


def entry() -> int:
    """The ``mm-jax`` console script: this process is mm-jax's own, so before JAX starts it sets the host
    allocator (:func:`mm_jax.hostmem.configure`, mode from ``MM_JAX_HOST_MALLOC``, default ``auto``),
    then runs :func:`main` on ``sys.argv``."""
    try:
        applied = hostmem.configure(os.environ.get(hostmem.ENV_VAR, "auto"))
    except MmJaxError as e:
        return _failed(e)
    logging.getLogger(__name__).debug("host allocator: %s", applied)
    return main()


if __name__ == "__main__":
    sys.exit(entry())
