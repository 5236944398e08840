"""mm_jax.tracking: a torn last line (power loss) is skipped and reported, a damaged middle line is a
named error, resumed runs drop rows past their checkpoint, and a full disk is a StorageError."""

from __future__ import annotations

import json
import logging
import os

import pytest

from mm_jax.errors import DataError, StorageError
from mm_jax.tracking import MetricsWriter, read_metrics, truncate_metrics


def _write_rows(path, steps, tail: bytes = b""):
    rows = [json.dumps({"step": s, "time": 0.0, "train/loss": 5.0 - s / 10, "train/accuracy": s / 100,
                        "train/lr": 1e-3}) for s in steps]
    path.write_bytes("".join(r + "\n" for r in rows).encode() + tail)


TORN = b'{"step": 7, "time": 0.0, "train/lo'


@pytest.mark.parametrize("tail", [TORN, TORN + b"\n", b"\0" * 40, b'{"step": 7, "ti\0\0\0\n'],
                         ids=["cut", "cut+newline", "zeros", "cut+zeros"])
def test_a_torn_last_line_is_skipped_and_reported(tmp_path, caplog, tail):
    _write_rows(tmp_path / "metrics.jsonl", range(1, 7), tail)
    with caplog.at_level(logging.WARNING, logger="mm_jax.tracking"):
        rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert ("torn last line" in caplog.text) == (tail.strip(b"\0\n") != b"")


def test_a_damaged_middle_line_is_a_named_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_rows(path, range(1, 4))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:1] + ['{"step": 2, "ti'] + lines[1:]) + "\n")
    with pytest.raises(DataError, match=rf"{path}: line 2 is not a metrics row"):
        read_metrics(path)
    path.write_text("\n".join(lines[:1] + ["[1, 2]"] + lines[1:]) + "\n")
    with pytest.raises(DataError, match="line 2 is not a metrics row .*a JSON list, not an object"):
        read_metrics(path)


def test_plot_of_a_run_with_a_torn_last_line(tmp_path, caplog):
    from mm_jax.plot import plot_run

    _write_rows(tmp_path / "metrics.jsonl", range(1, 7), TORN)
    with caplog.at_level(logging.WARNING, logger="mm_jax.tracking"):
        out = plot_run(tmp_path, tmp_path / "curves.png")
    assert out.stat().st_size > 1000 and "torn last line" in caplog.text


def test_plot_adds_the_in_training_evaluation_panels_when_the_run_has_them(tmp_path):
    """3 panels (loss, accuracy, lr) at 5 inches x 100 dpi each; eval/* rows add jerk and foot skating."""
    from PIL import Image

    from mm_jax.plot import plot_run

    rows = [{"step": s, "train/loss": 3.0 - 0.1 * s, "train/accuracy": 0.1 * s, "train/lr": 1e-3} for s in range(1, 7)]
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rows += [{"step": 3, "eval/jerk": 300.0, "eval/foot_skating": 0.4, "eval/real_jerk": 100.0,
              "eval/real_foot_skating": 0.1}, {"step": 6, "eval/jerk": 200.0, "eval/foot_skating": 0.3}]
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = Image.open(plot_run(tmp_path / "plain", tmp_path / "plain.png")).size
    with_eval = Image.open(plot_run(tmp_path / "eval", tmp_path / "eval.png")).size
    assert plain[0] == 3 * 500 and with_eval[0] == 5 * 500 and plain[1] == with_eval[1]


def test_truncate_drops_rows_past_the_step_and_a_torn_tail(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_rows(path, range(1, 10), TORN)
    truncate_metrics(tmp_path, 6)
    assert [r["step"] for r in read_metrics(path)] == list(range(1, 7))
    assert path.read_bytes().endswith(b"}\n")
    inode = os.stat(path).st_ino
    truncate_metrics(path, 6)  # nothing to drop: the file is left alone
    assert os.stat(path).st_ino == inode
    truncate_metrics(tmp_path / "missing.jsonl", 3)  # nothing there: nothing to do


def test_writer_appends_after_a_torn_line_on_a_line_of_its_own(tmp_path, caplog):
    _write_rows(tmp_path / "metrics.jsonl", range(1, 4), TORN)
    with caplog.at_level(logging.WARNING, logger="mm_jax.tracking"), \
            MetricsWriter(tmp_path, tensorboard=False, active=True) as w:
        w.write(4, {"train/loss": 1.0})
    assert "dropping its torn last line" in caplog.text
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]
    (tmp_path / "metrics.jsonl").open("a").write('{"step": 5, "train/loss": 0.5}')  # whole, no newline
    with MetricsWriter(tmp_path, tensorboard=False, active=True) as w:
        w.write(6, {"train/loss": 0.25})
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5, 6]


def test_a_full_disk_is_a_storage_error_and_closing_after_it_does_not_raise(tmp_path):
    (tmp_path / "metrics.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(StorageError, match=r"cannot write .*metrics.jsonl: \[Errno 28\] No space left on "
                                           r"device; .* MB free there, about 0\.0 MB needed"):
        with MetricsWriter(tmp_path, tensorboard=False, active=True) as w:
            w.write(1, {"train/loss": 1.0})  # __exit__ closes (flush fails again) without raising over it
