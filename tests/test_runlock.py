"""mm_jax.runlock: one writer per directory; a second fails naming the holder; a killed holder frees it.

The writers that take the lock (decoder, tokenizer and evaluator trainers,
``data tokenize``, ``data synth``) are each checked against a directory held
by another process: they fail at once, before writing anything.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys

import pytest

from mm_jax.errors import LockError
from mm_jax.runlock import lock_dir, lock_target

ROOT = pathlib.Path(__file__).resolve().parent.parent
HOLDER = ("import sys, time\n"
          "from mm_jax.runlock import hold\n"
          "with hold(sys.argv[1]):\n"
          "    print('HELD', flush=True)\n"
          "    time.sleep(600)\n")


@pytest.fixture
def holder():
    """``holder(lock_file)`` starts a process holding that lock; killed (SIGKILL) at teardown."""
    procs = []

    def start(lock_file: pathlib.Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_file)], stdout=subprocess.PIPE,
                                text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        procs.append(proc)
        assert proc.stdout.readline().strip() == "HELD"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_second_writer_fails_naming_pid_and_host_and_a_killed_holder_frees_it(holder, tmp_path):
    run = tmp_path / "run"
    proc = holder(run / ".lock")
    with pytest.raises(LockError, match=rf"{run} is being written by pid {proc.pid} on host "
                                        rf"{socket.gethostname()} \(since "):
        with lock_dir(run):
            pass
    proc.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the lock with the process
    proc.wait(timeout=30)
    with lock_dir(run) as path:
        assert path == run / ".lock" and str(os.getpid()) in path.read_text()
    assert path.read_text() == ""  # released: nothing names a holder any more
    with lock_dir(run):  # and it can be taken again
        pass


def test_two_holders_in_one_process_also_conflict(tmp_path):
    with lock_dir(tmp_path):
        with pytest.raises(LockError, match=f"pid {os.getpid()}"):
            with lock_dir(tmp_path):
                pass
    target = tmp_path / "data"
    with lock_target(target) as path:
        assert path == tmp_path / ".data.lock" and not target.exists()
        with pytest.raises(LockError, match=f"{target} is being written"):
            with lock_target(target):
                pass


def test_a_lock_error_leaves_the_block_unrun_and_the_holder_intact(tmp_path):
    ran = []
    with lock_dir(tmp_path) as path:
        with pytest.raises(LockError):
            with lock_dir(tmp_path):
                ran.append(1)
        assert str(os.getpid()) in path.read_text()  # the failed attempt did not clear the holder's record
        with pytest.raises(LockError):  # nor release its lock (flock belongs to the open file, not the pid)
            with lock_dir(tmp_path):
                pass
    assert ran == []


# ----------------------------------------------------------------------------- the writers that lock


def _only_the_lock(directory: pathlib.Path) -> None:
    assert sorted(p.name for p in directory.iterdir()) == [".lock"], "a refused writer wrote something"


def test_decoder_training_on_a_held_workdir_fails_before_writing(holder, tmp_path):
    import train_fixtures as tfx

    from mm_jax.train import loop

    proc = holder(tmp_path / ".lock")
    with pytest.raises(LockError, match=f"pid {proc.pid} on host"):
        loop.run(tfx.experiment(tmp_path / "no_shards_needed"), tmp_path)
    _only_the_lock(tmp_path)


def test_tokenizer_and_evaluator_training_on_a_held_directory_fail(holder, tiny_dataset, tmp_path):
    from mm_jax.eval import PRESETS as EV_PRESETS
    from mm_jax.eval.train import train_evaluator
    from mm_jax.tokenizer import PRESETS
    from mm_jax.tokenizer.train import train

    proc = holder(tmp_path / ".lock")
    with pytest.raises(LockError, match=f"pid {proc.pid} on host"):
        train(*PRESETS["tiny"], tiny_dataset, tmp_path)
    with pytest.raises(LockError, match=f"pid {proc.pid} on host"):
        train_evaluator(EV_PRESETS["tiny"], tiny_dataset, tmp_path, steps=2)
    _only_the_lock(tmp_path)


def test_tokenize_and_synth_targets_are_locked(holder, tmp_path, capsys):
    import shards_fake as sf

    from mm_jax.cli import main

    proc = holder(tmp_path / "shards" / ".lock")
    with pytest.raises(LockError, match=f"pid {proc.pid} on host"):
        sf.make_shards(tmp_path / "shards")
    _only_the_lock(tmp_path / "shards")
    proc = holder(tmp_path / ".data.lock")  # synth builds .data.partial, then renames it to data
    assert main(["data", "synth", "--out", str(tmp_path / "data"), "--preset", "tiny", "--num", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mm-jax: error: LockError: ") and f"pid {proc.pid} on host" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "data").exists()
    assert not (tmp_path / ".data.partial").exists()


def test_importer_and_convert_targets_are_locked_by_the_dataset_writer(holder, tmp_path):
    """Every DatasetWriter target (synth, importers, convert) holds .NAME.lock; a second writer used to
    delete the first one's .NAME.partial on start."""
    from mm_jax.motion.synth import DatasetWriter

    first = DatasetWriter(tmp_path / "ds")
    try:
        with pytest.raises(LockError, match=f"pid {os.getpid()} on host"):
            DatasetWriter(tmp_path / "ds")
        assert (tmp_path / ".ds.partial" / "features.npy").exists()  # the first writer's work is intact
    finally:
        first.abort()
    DatasetWriter(tmp_path / "ds").abort()  # released by abort: a new writer may start
