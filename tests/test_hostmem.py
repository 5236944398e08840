"""mm_jax.hostmem: the mode decision, and that ``reuse`` really stops a big block being page-faulted anew."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mm_jax import hostmem
from mm_jax.errors import ConfigError

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@pytest.mark.parametrize("mode, platforms, accelerator, expected", [
    ("reuse", None, True, "reuse"),
    ("system", "cpu", False, "system"),
    ("auto", None, False, "reuse"),
    ("auto", None, True, "system"),
    ("auto", "cpu", True, "reuse"),
    ("auto", " CPU ", False, "reuse"),
    ("auto", "tpu", False, "system"),
    ("auto", "cuda,cpu", False, "system"),
])
def test_resolve(mode, platforms, accelerator, expected):
    assert hostmem.resolve(mode, platforms, accelerator) == expected


def test_unknown_mode_names_the_variable():
    with pytest.raises(ConfigError, match="MM_JAX_HOST_MALLOC='fast'.*auto, reuse, system"):
        hostmem.resolve("fast", None, False)


def test_console_script_rejects_unknown_mode(tmp_path):
    out = subprocess.run([sys.executable, "-c", "import sys; from mm_jax.cli import entry; sys.exit(entry())",
                          "config", "show", "train"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "MM_JAX_HOST_MALLOC": "fast"})
    assert out.returncode == 2
    assert "MM_JAX_HOST_MALLOC='fast'" in out.stderr and "Traceback" not in out.stderr


# A child process (the allocator is process-wide): set the mode, then in a new thread (as XLA's workers
# allocate) malloc, fill and free a 64 MiB block three times, counting the minor page faults of each fill.
_CHILD = r"""
import ctypes, json, resource, sys, threading
from mm_jax import hostmem
applied = hostmem.configure(sys.argv[1])
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
size = 64 << 20
faults = []
def work():
    for i in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = libc.malloc(size)  # as XLA:CPU's runtime allocates (no madvise, unlike numpy)
        libc.memset(block, 1, size)  # every page written
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        libc.free(block)
t = threading.Thread(target=work)
t.start(); t.join()
print(json.dumps({"applied": applied, "faults": faults}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or hostmem._glibc() is None, reason="glibc only")
def test_reuse_keeps_a_big_block_mapped_between_allocations():
    pages = (64 << 20) // PAGE  # faults of one fresh 64 MiB block: one per page
    runs = {}
    for mode in ("system", "reuse"):
        out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, check=True)
        runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        assert "refused" not in out.stderr, out.stderr  # every mallopt call took
    assert runs["system"]["applied"] == "system" and runs["reuse"]["applied"] == "reuse"
    # glibc's default: the block is mmapped and unmapped each time, so every fill faults every page.
    assert min(runs["system"]["faults"][1:]) > 0.9 * pages
    # reuse: the second and third fills find the block already mapped.
    assert max(runs["reuse"]["faults"][1:]) < 0.05 * pages
