"""mm_jax.checkpoint faults: a failed save (ENOSPC, injected into orbax's writer) is a StorageError
naming the path and the space, the previous step stays restorable, and cleanup never raises again."""

from __future__ import annotations

import errno
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mm_jax.checkpoint import Checkpointer
from mm_jax.errors import StorageError

STATE = {"w": jnp.arange(7.0), "b": jnp.ones((3, 5))}


@pytest.fixture
def full_disk_from(monkeypatch):
    """``full_disk_from(step)``: every save of ``step`` or later fails with ENOSPC in orbax's writer."""
    real = ocp.handlers.JsonCheckpointHandler._save_fn

    def install(first_bad: int) -> None:
        async def save_fn(self, x, directory):
            if int(directory.parent.name.split(".")[0]) >= first_bad:
                raise OSError(errno.ENOSPC, "No space left on device", str(directory))
            return await real(self, x, directory)

        monkeypatch.setattr(ocp.handlers.JsonCheckpointHandler, "_save_fn", save_fn)

    return install


def _tmp_dirs(ckpt: Checkpointer) -> list[str]:
    return sorted(p.name for p in ckpt.directory.iterdir() if "tmp" in p.name)


def test_a_failed_background_save_is_named_and_the_last_step_kept(tmp_path, full_disk_from):
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, STATE, {"run": "a"})
    ckpt.wait()
    full_disk_from(2)
    assert ckpt.save(2, STATE, {"run": "a"})  # starts; fails in the background
    deadline = time.time() + 60
    with pytest.raises(StorageError, match=r"cannot write .*/ckpt/2: \[Errno 28\] No space left on device.*"
                                           r"MB free there, about 0\.0 MB needed; checkpoint of step 2 not "
                                           r"written; the last complete one \(step 1\) is kept"):
        while time.time() < deadline:
            ckpt.check()  # non-blocking: returns while the save runs, raises once it has failed
            time.sleep(0.01)
    assert ckpt.latest_step() == 1
    ckpt.close()  # nothing left to raise
    assert _tmp_dirs(ckpt) == []  # the partial directory is gone
    again = Checkpointer(tmp_path / "ckpt", async_save=False)
    step, tree, meta = again.restore(jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), STATE))
    again.close()
    assert step == 1 and meta == {"run": "a"} and np.array_equal(tree["b"], STATE["b"])


def test_a_failed_synchronous_save_raises_at_once(tmp_path, full_disk_from):
    ckpt = Checkpointer(tmp_path / "ckpt", async_save=False)
    ckpt.save(1, STATE, {})
    full_disk_from(2)
    with pytest.raises(StorageError, match="ckpt/2: .*No space left"):
        ckpt.save(2, STATE, {})
    ckpt.close()
    assert ckpt.all_steps() == [1] and _tmp_dirs(ckpt) == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's aborted writer
def test_cleanup_after_an_error_never_raises_over_it(tmp_path, full_disk_from):
    full_disk_from(1)
    with pytest.raises(KeyboardInterrupt):  # not the StorageError that closing meets
        with Checkpointer(tmp_path / "ckpt") as ckpt:
            ckpt.save(1, STATE, {})
            raise KeyboardInterrupt
    with pytest.raises(StorageError):  # without an error in flight, closing reports the failed save
        with Checkpointer(tmp_path / "ckpt2") as ckpt:
            ckpt.save(1, STATE, {})


def test_unforced_saves_follow_the_interval_and_old_steps_are_not_rewritten(tmp_path, caplog):
    with Checkpointer(tmp_path / "ckpt", save_every=3, async_save=False) as ckpt:
        saved = [s for s in range(1, 8) if ckpt.save(s, STATE, {}, force=False)]
        assert saved == [3, 6] and ckpt.save(7, STATE, {})  # forced: the stop step
        with caplog.at_level(logging.WARNING, logger="mm_jax.checkpoint"):
            assert not ckpt.save(6, STATE, {})
        assert "already holds step 7: step 6 not saved" in caplog.text
        assert ckpt.all_steps() == [3, 6, 7]
