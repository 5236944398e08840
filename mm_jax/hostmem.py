"""How this process's C allocator serves XLA:CPU's per-execution buffers (stage: process set-up).

XLA:CPU allocates one temporary block per execution of a compiled program
(68.7 MB for a ``tiny`` train step at B = 8 x 160 positions) and frees it when
the execution ends. glibc's ``malloc`` serves a block above its mmap threshold
(at most 32 MiB) with a fresh ``mmap`` and gives it back with ``munmap``, so
every step page-faults the whole block again: ~17,400 minor faults and
35-45 ms of kernel time per ``tiny`` step (~300,000 faults, ~0.7 s per
``small`` step) on the project's 2-core CPU host (docs/benchmarks.md, "The
host allocator").

Mode ``reuse`` makes such blocks come from the heap and stay there for the
next execution (``mallopt``):

* ``M_ARENA_MAX = 1``: every thread allocates from the main arena. XLA's
  worker threads would otherwise each get an arena whose heaps are capped at
  64 MiB, and a bigger block is mmapped again;
* ``M_MMAP_MAX = 0``: no block is served by ``mmap``;
* ``M_TRIM_THRESHOLD = -1``: free memory at the top of the heap is never
  given back to the OS (a ``small`` step's block is 1.2 GB: any finite
  threshold below it would unmap it again after every step).

The price: memory a process has freed stays with it (its resident size is its
peak use, as with a GPU framework's caching allocator), and all threads share
one arena lock. Mode ``system`` leaves glibc's defaults. Mode ``auto`` is
``reuse`` when JAX will run on the CPU only (``JAX_PLATFORMS`` lists only
``cpu``, or it is unset and no accelerator plugin is installed) and ``system``
otherwise: on a TPU or GPU host the big buffers live on the device.

:func:`configure` must run before JAX starts its runtime (a thread keeps the
arena it first allocates from). The ``mm-jax`` console script
(:func:`mm_jax.cli.entry`) calls it first, with the mode from the
``MM_JAX_HOST_MALLOC`` environment variable (default ``auto``); a library user
calls it at the top of their own program. It changes the whole process's
allocator, which is why nothing in the library calls it on import.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import logging
import os

from mm_jax.errors import ConfigError

log = logging.getLogger(__name__)

MODES = ("auto", "reuse", "system")
ENV_VAR = "MM_JAX_HOST_MALLOC"

# glibc's malloc.h parameter numbers.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
REUSE_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))  # -1: never trim (man mallopt)


def accelerator_installed() -> bool:
    """Whether a JAX accelerator backend could load here (libtpu, or a PJRT plugin: CUDA, ROCm, ...)."""
    if importlib.util.find_spec("libtpu") is not None:
        return True
    if importlib.metadata.entry_points(group="jax_plugins"):
        return True
    return importlib.util.find_spec("jax_plugins") is not None


def resolve(mode: str, jax_platforms: str | None, accelerator: bool) -> str:
    """``reuse`` or ``system`` for ``mode`` given the ``JAX_PLATFORMS`` value (None: unset) and whether an
    accelerator plugin is installed (pure; :func:`configure` passes the real values)."""
    if mode not in MODES:
        raise ConfigError(f"{ENV_VAR}={mode!r}: expected one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    if jax_platforms:
        names = {p.strip().lower() for p in jax_platforms.split(",") if p.strip()}
        return "reuse" if names == {"cpu"} else "system"
    return "system" if accelerator else "reuse"


def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (has ``mallopt`` and ``gnu_get_libc_version``), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version")):
        return None
    return libc


def configure(mode: str = "auto") -> str:
    """Sets this process's allocator for ``mode`` (see the module doc); returns what it applied:
    ``"reuse"`` or ``"system"`` (also when the C library is not glibc, which is logged).

    ``auto`` decides on this process's ``JAX_PLATFORMS`` and, when that is
    unset, on whether an accelerator plugin is installed.
    """
    jax_platforms = os.environ.get("JAX_PLATFORMS")
    accelerator = mode == "auto" and not jax_platforms and accelerator_installed()
    chosen = resolve(mode, jax_platforms, accelerator)
    if chosen == "system":
        return "system"
    libc = _glibc()
    if libc is None:
        log.info("%s=%s: the C library is not glibc, its allocator is left as it is", ENV_VAR, mode)
        return "system"
    for param, value in REUSE_SETTINGS:
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1:
            log.warning("%s: mallopt(%d, %d) was refused; the allocator is partly set", ENV_VAR, param, value)
    return "reuse"
