"""Random access to one split's shards, with errors naming shard and record (stage: shards).

:class:`ShardSource` is a Grain ``RandomAccessDataSource`` (``len``,
``[key]`` -> bytes) over the shards a manifest lists, in manifest order, so a
record key is stable: key k is record ``k - start(shard)`` of the shard
holding it. Record counts come from the manifest (no file is opened up
front); each file's size is checked against the manifest when the source is
built, so a truncated or missing shard is named at start-up. Read or decode
failures become :class:`~mm_jax.errors.DataError` naming the shard file and
the record index inside it.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import pathlib
from typing import Any, Mapping

from mm_jax.errors import DataError, MmJaxError
from mm_jax.shards.manifest import read_manifest, split_entry
from mm_jax.shards.record import ShardRecord, decode_record

log = logging.getLogger(__name__)


def check_shard_files(shards_dir: pathlib.Path, entry: Mapping[str, Any]) -> list[str]:
    """Problems (missing file, size differing from the manifest), one line per shard."""
    problems = []
    for shard in entry["shards"]:
        path = shards_dir / shard["file"]
        if not path.is_file():
            problems.append(f"shard {path} is missing")
        elif path.stat().st_size != shard["bytes"]:
            problems.append(f"shard {path} has {path.stat().st_size} bytes, the manifest says "
                            f"{shard['bytes']} (truncated or rewritten)")
    return problems


class ShardSource:
    """The records of ``split`` in ``shards_dir``.

    Args:
      shards_dir: a directory with ``manifest.json``.
      split: which split's shards to read.
      allow_bad_files: log (instead of raising) missing or wrongly sized
        shards; their records then fail one by one at read time.

    Raises:
      DataError: no manifest, no such split, or (unless ``allow_bad_files``)
        a missing/truncated shard, named with the manifest's and actual sizes.
    """

    def __init__(self, shards_dir: str | pathlib.Path, split: str, *, allow_bad_files: bool = False):
        from grain.sources import ArrayRecordDataSource

        self.shards_dir = pathlib.Path(shards_dir)
        self.manifest = read_manifest(self.shards_dir)
        self.split = split
        entry = split_entry(self.manifest, split)
        problems = check_shard_files(self.shards_dir, entry)
        if problems and not allow_bad_files:
            raise DataError("; ".join(problems))
        for line in problems:
            log.warning("%s; its records will be skipped", line)
        self.files = [str(self.shards_dir / s["file"]) for s in entry["shards"]]
        counts = [int(s["num_records"]) for s in entry["shards"]]
        self._ends = list(itertools.accumulate(counts))
        nonempty = [(f, n) for f, n in zip(self.files, counts) if n > 0]
        if not nonempty:
            raise DataError(f"split {split!r} in {self.shards_dir} has no records")
        self._source = ArrayRecordDataSource([f"{f}[0:{n}]" for f, n in nonempty])

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def locate(self, key: int) -> tuple[str, int]:
        """(shard file, record index inside it) of global record ``key``."""
        if not 0 <= key < len(self):
            raise DataError(f"record key {key} out of range [0, {len(self)}) of split {self.split!r}")
        shard = bisect.bisect_right(self._ends, key)
        return self.files[shard], key - (self._ends[shard - 1] if shard else 0)

    def __getitem__(self, key: int) -> bytes:
        """Raw bytes of record ``key``; DataError naming shard and index on a read failure."""
        key = int(key)
        file, index = self.locate(key)
        try:
            return self._source[key]
        except (RuntimeError, OSError, ValueError) as e:
            raise DataError(f"cannot read record {index} of shard {file}: {e}") from None

    def record(self, key: int) -> ShardRecord:
        """Decoded record ``key``; DataError naming shard and index if corrupt."""
        data = self[key]
        try:
            return decode_record(data)
        except MmJaxError as e:
            file, index = self.locate(int(key))
            raise DataError(f"corrupt record {index} of shard {file}: {e}") from None
