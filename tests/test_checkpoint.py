"""mm_jax.checkpoint: params are their own item, read alone by load_params (also from checkpoints written
before); faults: a failed save (ENOSPC, injected into orbax's writer) is a StorageError naming the path
and the space, the previous step stays restorable, and cleanup never raises again."""

from __future__ import annotations

import errno
import logging
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mm_jax.checkpoint import Checkpointer, load_params
from mm_jax.errors import CheckpointError, StorageError

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


TRAIN_STATE = {"step": jnp.int32(5), "params": {"w": jnp.arange(7.0) / 3, "b": {"c": jnp.ones((3, 5))}},
               "opt_state": ({"mu": jnp.full((7,), 0.25)}, jnp.arange(4))}


def _abstract(tree):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


def _bitwise_equal(a, b) -> bool:
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        x.dtype == y.dtype and np.asarray(x).tobytes() == np.asarray(y).tobytes()
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_params_are_their_own_item_and_load_alone(tmp_path):
    with Checkpointer(tmp_path / "run" / "checkpoints", async_save=False) as ckpt:
        ckpt.save(5, TRAIN_STATE, {"model": {"d": 7}})
        step, full, _ = ckpt.restore(_abstract(TRAIN_STATE))  # resume: the whole state, reassembled
    assert step == 5 and _bitwise_equal(full, TRAIN_STATE)
    step_dir = tmp_path / "run" / "checkpoints" / "5"
    assert (step_dir / "params").is_dir() and (step_dir / "state").is_dir()
    shutil.rmtree(step_dir / "state")  # load_params never reads the optimizer state
    step, params, meta = load_params(tmp_path / "run", _abstract(TRAIN_STATE["params"]),
                                     expected_meta={"model": {"d": 7}})
    assert step == 5 and meta == {"model": {"d": 7}} and _bitwise_equal(params, TRAIN_STATE["params"])
    assert all(x.sharding == jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
               for x in jax.tree.leaves(params))  # no sharding asked: the first local device
    with pytest.raises(CheckpointError, match="another config: model.d: checkpoint has 7, run has 8"):
        load_params(tmp_path / "run", _abstract(TRAIN_STATE["params"]), expected_meta={"model": {"d": 8}})
    wrong = {"w": jax.ShapeDtypeStruct((6,), jnp.float32), "b": {"c": jax.ShapeDtypeStruct((3, 5), jnp.float32)}}
    with pytest.raises(CheckpointError, match="does not match the model's parameters"):
        load_params(tmp_path / "run", wrong)
    with pytest.raises(CheckpointError, match="no checkpoint at step 4"):
        load_params(tmp_path / "run", _abstract(TRAIN_STATE["params"]), step=4)


@pytest.mark.parametrize("layout", ["train_state", "params_only"])
def test_checkpoints_with_params_inside_state_still_load(tmp_path, layout):
    """The format before params had their own item: one ``state`` item (a train state, or bare params)."""
    saved = TRAIN_STATE if layout == "train_state" else TRAIN_STATE["params"]
    mngr = ocp.CheckpointManager(tmp_path / "run" / "checkpoints",
                                 options=ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False))
    mngr.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(saved), meta=ocp.args.JsonSave({"k": 1})))
    mngr.close()
    step, params, _ = load_params(tmp_path / "run", _abstract(TRAIN_STATE["params"]), expected_meta={"k": 1})
    assert step == 3 and _bitwise_equal(params, TRAIN_STATE["params"])
    with Checkpointer(tmp_path / "run" / "checkpoints", async_save=False) as ckpt:
        _, full, _ = ckpt.restore(_abstract(saved))
    assert _bitwise_equal(full, saved)


def test_a_state_without_params_is_one_item(tmp_path):
    with Checkpointer(tmp_path / "ckpt", async_save=False) as ckpt:
        ckpt.save(1, STATE, {})
        _, tree, _ = ckpt.restore(_abstract(STATE))
    assert _bitwise_equal(tree, STATE) and not (tmp_path / "ckpt" / "1" / "params").exists()
