"""Checks and inspects a shard directory (stage: shards; ``mm-jax data inspect``).

:func:`verify_shards` re-hashes every shard against the manifest, checks its
record count, and decodes every record (magic, version, CRC32); problems are
collected over all shards and raised together as one
:class:`~mm_jax.errors.DataError` naming each bad shard file and, for a
corrupt record, its index. :func:`inspect_shards` adds the manifest summary
and the first records, decoded, for printing.
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any, Callable, Sequence

import numpy as np

from mm_jax.errors import DataError, MmJaxError
from mm_jax.shards.bookkeeping import file_sha256
from mm_jax.shards.manifest import nonempty_splits, read_manifest, split_entry
from mm_jax.shards.reader import ShardSource
from mm_jax.shards.record import decode_record, ShardRecord

log = logging.getLogger(__name__)
MAX_LISTED = 10


def _check_shard(path: pathlib.Path, shard: dict[str, Any], decode: bool) -> str | None:
    """The first problem of one shard file, or None."""
    from array_record.python.array_record_module import ArrayRecordReader

    if not path.is_file():
        return f"shard {path} is missing"
    size = path.stat().st_size
    if size != shard["bytes"]:
        return f"shard {path} has {size} bytes, the manifest says {shard['bytes']}"
    if file_sha256(path) != shard["sha256"]:
        return f"shard {path} fails its sha256 checksum (manifest {shard['sha256'][:16]}...)"
    index = -1
    try:
        reader = ArrayRecordReader(str(path))
        try:
            if reader.num_records() != shard["num_records"]:
                return (f"shard {path} has {reader.num_records()} records, "
                        f"the manifest says {shard['num_records']}")
            if decode:
                for index in range(shard["num_records"]):
                    decode_record(reader.read([index])[0])
        finally:
            reader.close()
    except (RuntimeError, OSError, ValueError, MmJaxError) as e:
        where = f"record {index} of " if index >= 0 else ""
        return f"corrupt {where}shard {path}: {e}"
    return None


def verify_shards(shards_dir: str | pathlib.Path, *, decode: bool = True,
                  progress: Callable[[int, int], None] | None = None,
                  splits: Sequence[str] | None = None) -> dict[str, Any]:
    """Verifies every shard of every split listed in the manifest (or of ``splits``).

    Args:
      shards_dir: directory with ``manifest.json``.
      decode: also decode each record (CRC32, schema); else hashes and counts only.
      progress: ``progress(shards_done, shards_total)``.
      splits: only these splits (each must be in the manifest); None for all.

    Returns:
      ``{"ok": True, "splits": {split: {"num_shards", "num_records", "bytes"}}, "seconds"}``.

    Raises:
      DataError: listing every bad shard (file name, and record index when a
        record is corrupt).
    """
    t0 = time.perf_counter()
    root = pathlib.Path(shards_dir)
    manifest = read_manifest(root)
    if splits is None:
        chosen = sorted(manifest["splits"])
        entries = [manifest["splits"][split] for split in chosen]
    else:
        chosen = list(splits)
        entries = [split_entry(manifest, split) for split in chosen]  # DataError naming an absent/empty one
    shards = [(split, s) for split, e in zip(chosen, entries) for s in e["shards"]]
    problems = []
    for done, (_, shard) in enumerate(shards, 1):
        problem = _check_shard(root / shard["file"], shard, decode)
        if problem:
            log.error("%s", problem)
            problems.append(problem)
        if progress is not None:
            progress(done, len(shards))
    if problems:
        more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        raise DataError(f"{len(problems)} bad shard(s) in {root}: " + "; ".join(problems[:MAX_LISTED]) + more)
    summary = {split: {"num_shards": e["num_shards"], "num_records": e["num_records"],
                       "bytes": int(sum(s["bytes"] for s in e["shards"]))}
               for split, e in manifest["splits"].items() if split in chosen}
    return {"ok": True, "splits": summary, "seconds": round(time.perf_counter() - t0, 3)}


def record_summary(rec: ShardRecord, max_codes: int = 16) -> dict[str, Any]:
    """A JSON-friendly view of one record (codes cut to ``max_codes``)."""
    codes = rec.motion_codes.tolist()
    return {
        "id": rec.id, "split": rec.split, "num_frames": rec.num_frames,
        "num_motion_tokens": len(codes),
        "motion_codes": codes[:max_codes] + (["..."] if len(codes) > max_codes else []),
        "captions": list(rec.captions),
        "caption_ids": [row.tolist() for row in rec.caption_ids],
    }


def inspect_shards(shards_dir: str | pathlib.Path, num_records: int = 3, *, split: str | None = None,
                   verify: bool = True) -> dict[str, Any]:
    """Manifest summary, shard list, verification report and the first records.

    Args:
      shards_dir: directory with ``manifest.json``.
      num_records: records to decode and show (from the first shards of ``split``).
      split: which split to show records of (default: the first in the manifest).
      verify: run :func:`verify_shards` (raises DataError on a bad shard).
    """

    root = pathlib.Path(shards_dir)
    manifest = read_manifest(root)
    split = split or (nonempty_splits(manifest) or sorted(manifest["splits"]))[0]
    out: dict[str, Any] = {
        "dir": str(root.absolute()), "tokenizer": manifest["tokenizer"], "text": manifest["text"],
        "splits": {name: {k: v for k, v in e.items() if k != "shards"}
                   for name, e in manifest["splits"].items()},
        "shards": [{"file": s["file"], "num_records": s["num_records"], "bytes": s["bytes"],
                    "sha256": s["sha256"][:16]} for e in manifest["splits"].values() for s in e["shards"]],
    }
    if verify:
        out["verify"] = verify_shards(root)
    source = ShardSource(root, split)
    count = int(np.clip(num_records, 0, len(source)))
    out["records"] = [record_summary(source.record(k)) for k in range(count)]
    return out
