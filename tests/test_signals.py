"""SIGINT / SIGTERM during `tokenizer train` and `evaluator train`: the step under way finishes, a
checkpoint of it is written, one line is printed, exit 0 (SIGTERM) or 130 (SIGINT), no traceback, and
the resumed run equals an uninterrupted one. (The decoder's are in test_train.py.)"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from mm_jax.errors import CheckpointError
from mm_jax.tracking import read_metrics
from mm_jax.train.interrupt import StopRequest, stop_on_signals

ROOT = pathlib.Path(__file__).resolve().parent.parent
MM_JAX = pathlib.Path(sys.executable).with_name("mm-jax")  # the console script of this venv


def test_stop_on_signals_only_records_and_restores_the_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next bytecode
        assert stop.requested and stop.name == "SIGTERM" and stop.exit_code() == 0
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.name == "SIGTERM"  # the first signal is the one reported
    assert signal.getsignal(signal.SIGTERM) is before
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.exit_code() == 130
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C: stop now
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    with stop_on_signals(multi_host=True) as stop:  # JAX's preemption service keeps SIGTERM there
        assert signal.getsignal(signal.SIGTERM) is before


def _tok_cli(data, out, steps, *extra) -> subprocess.Popen:
    cmd = [str(MM_JAX), "tokenizer", "train", "--data", str(data), "--out", str(out),
           "--preset", "tiny", "--steps", str(steps), "--train-set", "log_every=1", "--train-set",
           f"val_every={steps}", "--train-set", f"ckpt_every={steps}", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _signal_after_first_row(proc: subprocess.Popen, run: pathlib.Path, signum: int) -> tuple[str, str]:
    metrics, deadline = run / "metrics.jsonl", time.time() + 240
    while not (metrics.exists() and metrics.stat().st_size > 0):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.01)
    proc.send_signal(signum)
    return proc.communicate(timeout=240)


def _stopped_line(err: str, signame: str) -> int:
    """The step named by the single "stopped by" line (and no traceback)."""
    lines = [x for x in err.splitlines() if "stopped by" in x]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert lines[0].startswith(f"mm-jax: tokenizer train stopped by {signame} at step "), lines
    assert lines[0].endswith("continue with --resume")
    return int(lines[0].split(" at step ")[1].split(";")[0])


def _assert_stopped_run(run: pathlib.Path, reached: int) -> None:
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [str(reached)]
    assert json.loads((run / "tokenizer.json").read_text())["trained_steps"] == reached
    assert max(r["step"] for r in read_metrics(run)) == reached


def test_sigterm_during_tokenizer_train_saves_the_step_reached(tiny_dataset, tmp_path):
    """`mm-jax tokenizer train`, SIGTERM after its first metrics row: rc 0, one line, a checkpoint there."""
    proc = _tok_cli(tiny_dataset, tmp_path / "run", 400)
    out, err = _signal_after_first_row(proc, tmp_path / "run", signal.SIGTERM)
    assert proc.returncode == 0, err[-3000:]
    reached = _stopped_line(err, "SIGTERM")
    assert 1 <= reached < 400 and out == ""  # no JSON of a finished run
    _assert_stopped_run(tmp_path / "run", reached)


@pytest.mark.slow
def test_sigint_during_tokenizer_train_then_resume_is_exact(tiny_dataset, tmp_path):
    from mm_jax.tokenizer import PRESETS
    from mm_jax.tokenizer.train import train

    proc = _tok_cli(tiny_dataset, tmp_path / "run", 300)
    out, err = _signal_after_first_row(proc, tmp_path / "run", signal.SIGINT)
    assert proc.returncode == 130, err[-3000:]
    _assert_stopped_run(tmp_path / "run", _stopped_line(err, "SIGINT"))
    proc = _tok_cli(tiny_dataset, tmp_path / "run", 300, "--resume")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
    mcfg, tcfg = PRESETS["tiny"]
    train(mcfg, dataclasses.replace(tcfg, steps=300, log_every=1, val_every=300, ckpt_every=300), tiny_dataset,
          tmp_path / "full")
    _assert_same_tokenizer(tmp_path / "full", tmp_path / "run")


def _assert_same_tokenizer(ref: pathlib.Path, got: pathlib.Path) -> None:
    from mm_jax.tokenizer.artifact import load_tokenizer

    rows = [[(r["step"], r["train/loss"]) for r in read_metrics(d) if "train/loss" in r] for d in (ref, got)]
    assert rows[0] == rows[1] and len({s for s, _ in rows[1]}) == len(rows[1])  # equal, no duplicates
    a, b = load_tokenizer(ref), load_tokenizer(got)
    assert a.step == b.step
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_tokenizer_stop_and_a_kill_then_resume_is_exact_without_duplicate_rows(tiny_dataset, tmp_path):
    """Stop request after step 4 (step 5 is saved, trained_steps=5); then a run killed at step 7 (rows 6
    and 7 written, no checkpoint); the final resume drops those rows (they were duplicated before)."""
    from mm_jax.tokenizer import PRESETS
    from mm_jax.tokenizer.train import train

    mcfg, tcfg = PRESETS["tiny"]
    tcfg = dataclasses.replace(tcfg, steps=12, log_every=1, val_every=12, ckpt_every=4)
    train(mcfg, tcfg, tiny_dataset, tmp_path / "full")
    run, stop = tmp_path / "split", StopRequest()

    def request_stop(done, total):
        if done == 4:
            stop.signum = signal.SIGTERM

    train(mcfg, tcfg, tiny_dataset, run, progress=request_stop, stop=stop)
    assert stop.stopped_at == 5
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["4", "5"]
    assert json.loads((run / "tokenizer.json").read_text())["trained_steps"] == 5

    def killed(done, total):
        if done == 7:
            raise KeyboardInterrupt  # a kill -9 after the rows of steps 6 and 7

    with pytest.raises(KeyboardInterrupt):
        train(mcfg, tcfg, tiny_dataset, run, resume=True, progress=killed)
    assert max(r["step"] for r in read_metrics(run)) == 7
    train(mcfg, tcfg, tiny_dataset, run, resume=True)
    _assert_same_tokenizer(tmp_path / "full", run)


@pytest.mark.slow  # ~30 s; the decoder and tokenizer stop tests stay in the default suite
def test_evaluator_stop_saves_its_state_refuses_a_plain_rerun_and_resumes_exactly(tiny_dataset, tmp_path):
    from mm_jax.eval import PRESETS, load_evaluator
    from mm_jax.eval.train import INTERRUPTED, train_evaluator

    cfg = dataclasses.replace(PRESETS["tiny"], val_every=3)
    full = train_evaluator(cfg, tiny_dataset, tmp_path / "full", steps=6)
    run, stop = tmp_path / "split", StopRequest()

    def request_stop(done, total):
        if done == 2:
            stop.signum = signal.SIGINT

    assert train_evaluator(cfg, tiny_dataset, run, steps=6, progress=request_stop, stop=stop) == {}
    assert stop.stopped_at == 2 and not (run / "evaluator.json").exists()
    assert sorted(p.name for p in (run / INTERRUPTED).iterdir()) == ["2"]
    with pytest.raises(CheckpointError, match="stopped at step 2; resume=True"):
        train_evaluator(cfg, tiny_dataset, run, steps=6)
    with pytest.raises(CheckpointError, match="another config: steps: checkpoint has 6, run has 7"):
        train_evaluator(cfg, tiny_dataset, run, steps=7, resume=True)
    assert train_evaluator(cfg, tiny_dataset, run, steps=6, resume=True) == full
    assert not (run / INTERRUPTED).exists()
    assert [r["step"] for r in read_metrics(run)] == [3, 6]
    a, b = load_evaluator(tmp_path / "full", text=False), load_evaluator(run, text=False)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
