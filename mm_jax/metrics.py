"""Metric logging (stage: metrics).

Metrics are flat dicts with slash keys (``train/loss``, ``val/mpjpe_mm``).
A :class:`MetricsWriter` appends them to ``metrics.jsonl`` (one JSON object
a line, with ``step`` and wall-clock ``time``) and, when tensorboardX is
installed, to TensorBoard event files in the same directory. Writers are
created by the caller and passed in explicitly; only process 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import time
from typing import Any, Mapping

import jax

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
        self._file.write(json.dumps(row, sort_keys=True) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k not in ("step", "time") and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, int(step))

    def close(self) -> None:
        if not self.active:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl`` (a run directory or the file itself)."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    rows = []
    with path.open() as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows
