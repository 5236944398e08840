"""Metric logging (stage: metrics).

Metrics are flat dicts with slash keys (``train/loss``, ``val/mpjpe_mm``).
A :class:`MetricsWriter` appends them to ``metrics.jsonl`` (one JSON object
a line, with ``step`` and wall-clock ``time``) and, when tensorboardX is
installed, to TensorBoard event files in the same directory. Writers are
created by the caller and passed in explicitly; only process 0 writes.

A power loss can leave the last line of ``metrics.jsonl`` torn (cut short,
or zero bytes): :func:`read_metrics` skips and reports such a final line, and
a line that cannot be parsed anywhere else is a ``DataError`` naming the
file and the line. :func:`truncate_metrics` is what a resumed trainer calls
before it appends: it drops the rows past the restored step (a killed run
wrote them; they would be repeated) and a torn tail.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import time
from typing import Any, Mapping

import jax

from mm_jax.errors import DataError, StorageError

log = logging.getLogger(__name__)


def _to_float(v: Any) -> float | int | str:
    if isinstance(v, (str, int)) and not isinstance(v, bool):
        return v
    f = float(v)
    return f if math.isfinite(f) else str(f)


class MetricsWriter:
    """Appends metrics to ``<directory>/metrics.jsonl`` (+ TensorBoard events).

    Args:
      directory: run directory.
      tensorboard: also write event files (needs tensorboardX).
      active: write at all; defaults to ``jax.process_index() == 0``.
    """

    def __init__(self, directory: str | pathlib.Path, *, tensorboard: bool = True, active: bool | None = None):
        self.directory = pathlib.Path(directory)
        self.active = jax.process_index() == 0 if active is None else active
        self._tb = None
        if not self.active:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "metrics.jsonl"
        _end_with_newline(self.path)
        self._file = self.path.open("a")
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(str(self.directory / "tb"))
            except ImportError:
                log.info("tensorboardX not installed: writing metrics.jsonl only")

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Writes one row of scalars for ``step``."""
        if not self.active:
            return
        row = {"step": int(step), "time": round(time.time(), 3)}
        row.update({k: _to_float(v) for k, v in metrics.items()})
        line = json.dumps(row, sort_keys=True) + "\n"
        try:
            self._file.write(line)
            self._file.flush()
        except OSError as e:
            raise StorageError.of(self.path, e, needed=len(line)) from None
        if self._tb is not None:
            for k, v in row.items():
                if k not in ("step", "time") and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, int(step))

    def close(self) -> None:
        """Closes the files; StorageError when the last rows cannot be flushed."""
        if not self.active:
            return
        try:
            self._file.close()
        except OSError as e:
            raise StorageError.of(self.path, e) from None
        finally:
            if self._tb is not None:
                self._tb.close()

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # cleanup after an error: never raise over it
            self.close()
        except Exception as e:  # noqa: BLE001
            log.error("closing %s after an error also failed: %s", self.directory, e)


def _metrics_file(path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    return path / "metrics.jsonl" if path.is_dir() else path


def _parse_lines(path: pathlib.Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, row) of every non-empty line; a torn final line is skipped with a warning.

    Raises:
      DataError: a line other than the last that is not a JSON object.
    """
    with path.open("rb") as f:
        lines = [(n, raw) for n, raw in enumerate(f.read().split(b"\n"), 1) if raw.strip(b" \t\r\0")]
    out = []
    for i, (n, raw) in enumerate(lines):
        try:
            row = json.loads(raw.decode())
            if not isinstance(row, dict):
                raise ValueError(f"a JSON {type(row).__name__}, not an object")
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if i == len(lines) - 1:
                log.warning("%s: skipping its torn last line %d (%d bytes, %s); a write was cut short",
                            path, n, len(raw), e)
                break
            raise DataError(f"{path}: line {n} is not a metrics row ({e}); only a torn last line is "
                            "skipped (cut short by a crash), a damaged line before it is not") from None
        out.append((raw.decode(), row))
    return out


def read_metrics(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl`` (a run directory or the file itself).

    Raises:
      DataError: a damaged line before the last (a torn last line is skipped with a warning).
    """
    return [row for _, row in _parse_lines(_metrics_file(path))]


def truncate_metrics(path: str | pathlib.Path, step: int) -> None:
    """Drops rows after ``step`` and a torn last line, so a resumed run appends without duplicates.

    ``path`` is a run directory or its ``metrics.jsonl``; a missing file is
    fine. The file is rewritten atomically only when something is dropped.

    Raises:
      DataError: a damaged line before the last.
    """
    path = _metrics_file(path)
    if not path.exists():
        return
    lines = _parse_lines(path)
    kept = [line for line, row in lines if row.get("step", 0) <= step]
    if len(kept) != len(lines):
        log.info("dropping %d metric rows after step %d from %s", len(lines) - len(kept), step, path)
    if len(kept) == len(lines) and path.read_bytes() == "".join(line + "\n" for line in kept).encode():
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def _end_with_newline(path: pathlib.Path) -> None:
    """Before appending to ``path``: a last line cut short is dropped (warned), so rows never merge."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    try:
        whole = isinstance(json.loads(data[cut:].decode()), dict)
    except ValueError:
        whole = False
    if whole:  # a complete row without its newline (an edited file): keep it
        with path.open("ab") as f:
            f.write(b"\n")
        return
    log.warning("%s: dropping its torn last line (%d bytes) before appending", path, len(data) - cut)
    with path.open("r+b") as f:
        f.truncate(cut)
