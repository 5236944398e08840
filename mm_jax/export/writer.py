"""A streaming safetensors writer: one tensor in host memory at a time (stage: export).

Input: an ordered list of (name, shape, read) where ``read()`` returns the
tensor as a numpy array, a dtype (``float32`` or ``bfloat16``) and a shard
size. Output: ``PREFIX.safetensors`` or, above the size, shards
``PREFIX-00001-of-0000K.safetensors`` with ``PREFIX.safetensors.index.json``
(``{"metadata": {"total_size": bytes}, "weight_map": {name: file}}``), the
layout ``transformers`` and ``safetensors`` read.

The safetensors format is an 8-byte little-endian header length, a JSON
header ``{name: {"dtype", "shape", "data_offsets": [begin, end]}}`` (padded
with spaces to 8 bytes), then the raw little-endian data. Every shape is
known before any data is read, so the header is written first and each tensor
is read, converted, written and dropped in turn: the writer's own peak is one
tensor (beside the restored parameters).
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import struct
import sys
from typing import Callable, Sequence

import ml_dtypes
import numpy as np

from mm_jax.errors import ExportError

log = logging.getLogger(__name__)

DTYPES = {"float32": (np.dtype(np.float32), "F32"), "bfloat16": (np.dtype(ml_dtypes.bfloat16), "BF16")}
DEFAULT_SHARD_BYTES = 5 * 10**9  # transformers' default max_shard_size ("5GB")

Item = tuple[str, tuple[int, ...], Callable[[], np.ndarray]]


def _nbytes(shape: Sequence[int], dtype: str) -> int:
    return math.prod(shape) * DTYPES[dtype][0].itemsize


def _plan_shards(items: Sequence[Item], dtype: str, max_shard_bytes: int) -> list[list[Item]]:
    """Consecutive groups of tensors, each under ``max_shard_bytes`` (a bigger tensor gets its own shard)."""
    shards: list[list[Item]] = [[]]
    size = 0
    for item in items:
        n = _nbytes(item[1], dtype)
        if shards[-1] and size + n > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(item)
        size += n
    return shards


def _write_file(path: pathlib.Path, items: Sequence[Item], dtype: str, metadata: dict[str, str]) -> int:
    """Writes one safetensors file, streaming the tensors; returns its data bytes."""
    np_dtype, st_dtype = DTYPES[dtype]
    header: dict = {"__metadata__": metadata}
    offset = 0
    for name, shape, _ in items:
        n = _nbytes(shape, dtype)
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for name, shape, read in items:
            arr = np.asarray(read())
            if tuple(arr.shape) != tuple(shape):
                raise ExportError(f"tensor {name} has shape {tuple(arr.shape)}, the header says {tuple(shape)}")
            fh.write(np.ascontiguousarray(arr.astype(np_dtype)).tobytes())  # little-endian hosts (checked below)
            del arr
    return offset


def write_safetensors(out_dir: pathlib.Path, prefix: str, items: Sequence[Item], *, dtype: str = "float32",
                      max_shard_bytes: int = DEFAULT_SHARD_BYTES, metadata: dict[str, str] | None = None
                      ) -> list[str]:
    """Writes ``items`` as ``PREFIX.safetensors`` or shards plus an index; returns the file names written.

    Raises:
      ExportError: an unknown dtype, duplicate names, or a tensor whose shape is not its declared one.
    """
    if sys.byteorder != "little":
        raise ExportError("safetensors data is little-endian; this writer runs on little-endian hosts only")
    if dtype not in DTYPES:
        raise ExportError(f"dtype={dtype!r} is not one of {sorted(DTYPES)}")
    names = [it[0] for it in items]
    if len(set(names)) != len(names):
        raise ExportError(f"duplicate tensor names in the export: {sorted({n for n in names if names.count(n) > 1})}")
    meta = {"format": "pt", **(metadata or {})}
    shards = _plan_shards(items, dtype, max_shard_bytes)
    if len(shards) == 1:
        _write_file(out_dir / f"{prefix}.safetensors", shards[0], dtype, meta)
        return [f"{prefix}.safetensors"]
    files, weight_map, total = [], {}, 0
    for i, shard in enumerate(shards):
        fname = f"{prefix}-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        total += _write_file(out_dir / fname, shard, dtype, meta)
        weight_map.update({name: fname for name, _, _ in shard})
        files.append(fname)
        log.info("wrote %s (%d tensors)", fname, len(shard))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / f"{prefix}.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return files + [f"{prefix}.safetensors.index.json"]
