"""``runs.jsonl``: one JSON line per finished sweep point, its schema, reading and merging (stage: sweep).

Input: a trained point's run directory (``config.json``, ``metrics.jsonl``),
its evaluation metrics and timings. Output: the line :func:`build_record`
returns and :func:`append` writes (one ``write`` of one line, flushed and
fsynced, so a killed sweep never leaves half a line that counts).

Fields (``SCHEMA_VERSION`` 1): ``schema``, ``sweep``, ``point``, ``status``
(``finished``), ``git_revision``, ``git_dirty``; the point: ``size``,
``preset``, ``tokenizer``, ``data_fraction``, ``seed``, ``overrides``,
``config`` (the resolved :class:`ExperimentConfig` the loop trained, after
data binding); the shape: ``layers``, ``heads``, ``kv_heads``, ``width``,
``mlp_hidden``, ``codebook_size``; counts: ``total_params``,
``non_embedding_params`` (all but the two vocabulary tables:
``ModelConfig.non_vocab_params``), ``vocab_table_params``,
``matmul_params_per_token`` (the FLOP count's N); cost: ``seq_len``,
``global_batch_size``, ``steps``, ``lr``, ``warmup_steps``, ``lr_rule``,
``flops_per_token``, ``flop_convention``, ``causal_attention_halved``,
``tokens_seen`` (decoder positions), ``training_flops``, ``epochs`` (samples
seen / train records); losses: ``final_val_loss``, ``best_val_loss``,
``final_train_loss``, ``val_curve`` ([[step, loss], ...]); ``eval`` (the
metrics of :func:`mm_jax.sweep.evaluate.score_point`, each with its sample
size, FID with its bootstrap interval and the tokenizer floor); timing and
hardware: ``train_wall_s`` and ``resumed_from_step`` (this invocation's
training; a resumed point counts only the part after its restart),
``eval_wall_s``, ``wall_s``, ``tokens_per_s`` (median of the logged
windows), ``mfu``, ``device_kind``, ``num_devices``, ``num_processes``,
``mesh``.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import subprocess
from typing import Any, Iterable

from mm_jax.errors import DataError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RUNS = "runs.jsonl"
REQUIRED = ("point", "status", "git_revision", "config", "layers", "heads", "width", "codebook_size",
            "total_params", "non_embedding_params", "vocab_table_params", "flops_per_token", "flop_convention",
            "causal_attention_halved", "tokens_seen", "training_flops", "final_val_loss", "best_val_loss", "eval",
            "wall_s", "tokens_per_s", "mfu", "device_kind", "num_devices", "mesh")


def git_revision() -> tuple[str, bool]:
    """(HEAD of the checkout holding this package, whether its tracked files differ); ("unknown", False) outside git."""
    root = pathlib.Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown", False
    if rev.returncode != 0:
        return "unknown", False
    return rev.stdout.strip(), bool(dirty.stdout.strip())


def read_metrics(run_dir: str | pathlib.Path) -> list[dict[str, Any]]:
    """The rows of ``RUN/metrics.jsonl`` (empty when absent)."""
    path = pathlib.Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def loss_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Final and best validation loss, the validation curve, final train loss and median tokens/s."""
    val = [(int(r["step"]), float(r["val/loss"])) for r in rows if "val/loss" in r]
    train = [float(r["train/loss"]) for r in rows if "train/loss" in r]
    rates = sorted(float(r["perf/tokens_per_s"]) for r in rows if "perf/tokens_per_s" in r)
    if not val:
        raise DataError("the run logged no validation loss (set train.val_every > 0 and give a val split)")
    return {"final_val_loss": val[-1][1], "best_val_loss": min(v for _, v in val),
            "final_train_loss": train[-1] if train else None, "val_curve": [list(v) for v in val],
            "tokens_per_s": rates[len(rates) // 2] if rates else None}


def append(out_dir: str | pathlib.Path, record: dict[str, Any]) -> None:
    """Appends one line to ``OUT/runs.jsonl`` (flushed and fsynced)."""
    path = pathlib.Path(out_dir) / RUNS
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_runs(paths: Iterable[str | pathlib.Path]) -> list[dict[str, Any]]:
    """Finished records of one or more ``runs.jsonl`` files (or directories holding one), merged.

    A point that appears more than once (a re-run, or two slices) keeps its
    last finished line. A torn last line (a killed writer) is skipped with a
    log line; any other unreadable line is a DataError naming the file and line.
    """
    by_point: dict[str, dict[str, Any]] = {}
    for p in paths:
        path = pathlib.Path(p)
        path = path / RUNS if path.is_dir() else path
        if not path.is_file():
            continue
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if n == len(lines):
                    log.warning("%s: skipping a torn last line", path)
                    continue
                raise DataError(f"{path} line {n} is not JSON") from None
            if rec.get("status") == "finished":
                by_point[rec["point"]] = rec
    return list(by_point.values())


def finished_points(out_dir: str | pathlib.Path) -> set[str]:
    """Ids of the points ``OUT/runs.jsonl`` records as finished."""
    return {r["point"] for r in read_runs([out_dir])}


def merge(sources: Iterable[str | pathlib.Path], out_dir: str | pathlib.Path) -> int:
    """Writes the merged finished records of ``sources`` to ``OUT/runs.jsonl`` (replacing it); returns the count."""
    records = read_runs(sources)
    path = pathlib.Path(out_dir) / RUNS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records))
    os.replace(tmp, path)
    return len(records)
