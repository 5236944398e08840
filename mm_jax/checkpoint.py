"""Orbax checkpoints for every training loop (stage: checkpoint).

One :class:`Checkpointer` per run directory. Each step's checkpoint holds

* ``params``: the model's parameters, their own item, so that inference
  (:func:`load_params`: generation, evaluation, the tokenizer artifact,
  export) reads them without building, or importing, any optimizer;
* ``state``: the rest of the train state (step, optimizer state...);
  both are saved with ``StandardSave`` and restored onto an abstract target,
  so a run saved on one device topology restores onto another when the
  target carries shardings;
* ``meta``: JSON with the run's config and identity (tokenizer, text
  encoder...), checked on restore so a mismatched run is a named error and
  never a silent re-initialisation;
* ``data_iter`` (optional): the Grain iterator state, taken at the moment
  ``save`` is called, so a resumed run sees exactly the batches an
  uninterrupted one would.

Saves are asynchronous; ``close()`` (or ``wait()``) blocks until the last
one is on disk. Orbax writes to a temporary directory and renames it when
complete, so a killed process never leaves a half checkpoint that looks
finished. A save that fails in the background (a full disk) is reported by
the next :meth:`Checkpointer.check` (the loops call it after every step),
``save``, ``wait`` or ``close`` as a ``StorageError`` naming the step's path,
the free space and the size of a checkpoint; its partial directory is
removed at ``close`` and the previous checkpoints stay as they were.

The state given to :meth:`Checkpointer.save` and :meth:`Checkpointer.restore`
is a dict; its ``"params"`` entry becomes the ``params`` item and the other
entries the ``state`` item (a state without ``"params"`` is all ``state``).
Checkpoints written before params were an item of their own (params inside
``state``) still restore, and :func:`load_params` reads their params alone.

Loops call :meth:`Checkpointer.save` after *every* step, with ``force`` on
the steps they checkpoint: orbax then also saves on the step at which a
multi-host job's preemption notice is synchronised (JAX's preemption
service), which only works when ``save`` is called on that step
(:meth:`Checkpointer.reached_preemption` tells the loop to stop after it).
As a context manager, a Checkpointer closes on exit; after an error it
closes without raising again over it.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import time
from typing import Any, Mapping

import jax
import orbax.checkpoint as ocp

from mm_jax.errors import CheckpointError, StorageError

log = logging.getLogger(__name__)

PARAMS = "params"  # the item (and the state dict's key) holding the model's parameters
STATE = "state"  # the item holding the rest of the train state


def _split(state: Any) -> tuple[Any, Any]:
    """(params or None, the rest or None) of a state dict: its ``"params"`` entry and the other entries."""
    if isinstance(state, Mapping) and PARAMS in state:
        rest = {k: v for k, v in state.items() if k != PARAMS}
        return state[PARAMS], rest or None
    return None, state


def _on_device(abstract: Any) -> Any:
    """``abstract`` with the first local device as the sharding of leaves that carry none.

    Without a sharding orbax would use the one recorded at save time, which
    names devices (a mesh) that may not exist here.
    """
    dev = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def leaf(a: Any) -> Any:
        sh = getattr(a, "sharding", None)
        return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh if sh is not None else dev)

    return jax.tree.map(leaf, abstract)


def load_params(run_dir: str | pathlib.Path, abstract_params: Any, *, step: int | None = None,
                expected_meta: Mapping[str, Any] | None = None) -> tuple[int, Any, dict[str, Any]]:
    """``(step, params, meta)`` of the run in ``run_dir`` (checkpoints in ``run_dir/checkpoints``).

    Restores the ``params`` item alone: no optimizer state is built or read,
    and no optimizer is imported. Leaves of ``abstract_params`` with a
    sharding are restored onto it; the others onto the first local device,
    whatever mesh saved them.

    Args:
      run_dir: a run directory (decoder, tokenizer or evaluator).
      abstract_params: the params' tree of arrays or ``jax.ShapeDtypeStruct``.
      step: the step to restore (default: the latest).
      expected_meta: keys that must match the checkpoint's metadata.

    Raises:
      CheckpointError: no checkpoint, a meta mismatch, or params whose
        structure or shapes differ from ``abstract_params``.
    """
    ckpt = Checkpointer(pathlib.Path(run_dir) / "checkpoints", async_save=False)
    try:
        return ckpt.load_params(abstract_params, step=step, expected_meta=expected_meta)
    finally:
        ckpt.close()


def _diff_keys(saved: Mapping[str, Any], expected: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    out = []
    for key in sorted(set(saved) | set(expected)):
        a, b = saved.get(key, "<missing>"), expected.get(key, "<missing>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _diff_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: checkpoint has {a!r}, run has {b!r}")
    return out


class Checkpointer:
    """Saves and restores ``(state, meta, data_iter)`` under ``directory``.

    Args:
      directory: the run's checkpoint directory (created if missing).
      max_to_keep: how many most recent steps to keep.
      async_save: write in a background thread.
      save_every: the interval of unforced saves (``save(..., force=False)``
        saves steps divisible by it, and a preemption step); None: only
        forced saves and preemption steps.
    """

    def __init__(self, directory: str | pathlib.Path, *, max_to_keep: int = 3, async_save: bool = True,
                 save_every: int | None = None):
        self.directory = pathlib.Path(directory).absolute()
        opts = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=True,
            should_save_fn=lambda step, _last: bool(save_every) and step % save_every == 0,
        )
        self._mngr = ocp.CheckpointManager(self.directory, options=opts)
        self._pending: tuple[int, int] | None = None  # (step, bytes) of the save in flight
        self._failed_steps: list[int] = []  # their partial directories go once the writer threads are done

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # cleanup after an error (an interrupted run still finishes the save it started)
            self.close()
        except Exception as e:  # noqa: BLE001  never raise over the error being handled
            log.error("closing checkpoints in %s after an error also failed: %s", self.directory, e)

    def latest_step(self) -> int | None:
        """The newest complete step, or None."""
        return self._mngr.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._mngr.all_steps())

    def save(self, step: int, state: Any, meta: Mapping[str, Any], data_iter: Any = None, *,
             force: bool = True) -> bool:
        """Starts saving ``step`` (asynchronously) if ``force``, its interval or a preemption asks; True if so.

        ``state``: a dict whose ``"params"`` entry is saved as the ``params``
        item and the other entries as the ``state`` item (module docstring).

        Raises:
          StorageError: this save, or the previous one, could not be written.
        """
        if not force and not self._mngr.should_save(step):
            self.check()
            return False
        self._finish()  # orbax waits for the previous save here anyway; this names its failure
        latest = self._mngr.latest_step()
        if latest is not None and latest >= step:  # orbax never overwrites a step nor saves behind one
            log.warning("%s already holds step %d: step %d not saved", self.directory, latest, step)
            return False
        params, rest = _split(state)
        items = {"meta": ocp.args.JsonSave(dict(meta))}
        if params is not None:
            items[PARAMS] = ocp.args.StandardSave(params)
        if rest is not None:
            items[STATE] = ocp.args.StandardSave(rest)
        if data_iter is not None:
            import grain

            items["data_iter"] = grain.checkpoint.CheckpointSave(data_iter)
        size = sum(int(getattr(x, "nbytes", 0)) for x in jax.tree.leaves(state))
        try:
            self._mngr.save(step, args=ocp.args.Composite(**items), force=True)
        except OSError as e:
            raise self._failed(step, size, e) from None
        self._pending = (step, size)
        return True

    def check(self) -> None:
        """Raises StorageError if the save in flight has failed; returns at once while it runs."""
        if self._pending is not None and not self._mngr.is_saving_in_progress():
            self._finish()

    def reached_preemption(self, step: int) -> bool:
        """True at the step a multi-host preemption notice was synchronised to (saved by ``save``)."""
        return self._mngr.reached_preemption(step)

    def _finish(self) -> None:
        """Waits for the save in flight; StorageError naming it if it failed."""
        if self._pending is None:
            return
        (step, size), self._pending = self._pending, None
        try:
            self._mngr.wait_until_finished()
        except Exception as e:  # noqa: BLE001  whatever the writer thread raised
            raise self._failed(step, size, e) from None

    def _failed(self, step: int, size: int, err: BaseException) -> StorageError:
        """The error naming ``step``'s path and the space it needs (its partial directory goes at close)."""
        self._failed_steps.append(step)
        latest = self._mngr.latest_step()
        kept = f"step {latest}" if latest is not None and latest != step else "none"
        return StorageError.of(self.directory / str(step), err, needed=size,
                               note=f"checkpoint of step {step} not written; the last complete one ({kept}) "
                                    "is kept: free space, then --resume")

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata saved with ``step`` (default: the latest)."""
        step = self._require_step(step)
        out = self._mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out["meta"])

    def restore(
        self,
        abstract_state: Any,
        *,
        step: int | None = None,
        expected_meta: Mapping[str, Any] | None = None,
        data_iter: Any = None,
    ) -> tuple[int, Any, dict[str, Any]]:
        """Restores ``(step, state, meta)``; ``data_iter`` is restored in place.

        Args:
          abstract_state: a pytree of arrays or ``jax.ShapeDtypeStruct`` (with
            shardings to restore onto another topology) giving the target;
            a dict with ``"params"`` as it was given to :meth:`save`.
          step: the step to restore (default: the latest).
          expected_meta: keys that must match what the checkpoint recorded
            (model/tokenizer/text-encoder identity); a difference raises.
          data_iter: a fresh Grain iterator to restore the saved position into.

        Raises:
          CheckpointError: no checkpoint, a meta mismatch, or a state whose
            structure or shapes differ from the target.
        """
        step, meta = self._checked_meta(step, expected_meta)
        params, rest = _split(abstract_state)
        if params is not None and not self._has_params_item(step):  # written before params had their own item
            params, rest = None, abstract_state
        items = {}
        if params is not None:
            items[PARAMS] = ocp.args.StandardRestore(params)
        if rest is not None:
            items[STATE] = ocp.args.StandardRestore(rest)
        if data_iter is not None:
            import grain

            items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
        out = self._restore_items(step, items)
        if params is None:
            return step, out[STATE], meta
        return step, {PARAMS: out[PARAMS], **(out[STATE] if rest is not None else {})}, meta

    def load_params(self, abstract_params: Any, *, step: int | None = None,
                    expected_meta: Mapping[str, Any] | None = None) -> tuple[int, Any, dict[str, Any]]:
        """``(step, params, meta)``: the ``params`` item alone (:func:`load_params`)."""
        step, meta = self._checked_meta(step, expected_meta)
        target = _on_device(abstract_params)
        if self._has_params_item(step):
            return step, self._restore_items(step, {PARAMS: ocp.args.StandardRestore(target)})[PARAMS], meta
        # A checkpoint written before params had their own item: "state" is the params, or holds them.
        path = self.directory / str(step) / STATE
        restore_args = jax.tree.map(lambda a: ocp.ArrayRestoreArgs(sharding=a.sharding), target)
        try:
            with ocp.PyTreeCheckpointer() as c:
                md = c.metadata(path)
                if PARAMS not in getattr(md, "item_metadata", md):
                    return step, c.restore(path, args=ocp.args.PyTreeRestore(target, restore_args)), meta
                args = ocp.args.PyTreeRestore({PARAMS: target}, {PARAMS: restore_args}, partial_restore=True)
                return step, c.restore(path, args=args)[PARAMS], meta
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"checkpoint {self.directory} step {step} does not match the model's parameters: {e}"
            ) from None

    def _checked_meta(self, step: int | None, expected_meta: Mapping[str, Any] | None) -> tuple[int, dict]:
        """(step, meta) of ``step`` (default: the latest); CheckpointError if meta differs from ``expected_meta``."""
        step = self._require_step(step)
        meta = self.read_meta(step)
        if expected_meta is not None:
            diffs = _diff_keys({k: meta.get(k) for k in expected_meta}, dict(expected_meta))
            if diffs:
                raise CheckpointError(
                    f"checkpoint {self.directory} step {step} was made with another config: "
                    + "; ".join(diffs[:8])
                )
        return step, meta

    def _has_params_item(self, step: int) -> bool:
        return (self.directory / str(step) / PARAMS).is_dir()

    def _restore_items(self, step: int, items: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._mngr.restore(step, args=ocp.args.Composite(**items))
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"checkpoint {self.directory} step {step} does not match the model's parameters: {e}"
            ) from None

    def wait(self) -> None:
        """Blocks until the last save is on disk; StorageError if it failed."""
        self._finish()
        self._mngr.wait_until_finished()

    def close(self) -> None:
        """Waits for the last save and closes; StorageError if it failed (closed either way)."""
        try:
            self._finish()
        except BaseException:
            try:
                self._mngr.close()
            except Exception as e:  # noqa: BLE001  keep the first error
                log.error("closing checkpoints in %s also failed: %s", self.directory, e)
            self._remove_partial()
            raise
        self._mngr.close()
        self._remove_partial()

    def _remove_partial(self) -> None:
        """Deletes the temporary directories of failed saves (the writer threads have ended); never raises."""
        if jax.process_index() != 0:
            return
        for step in self._failed_steps:
            for tmp in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
                for _ in range(40):  # a failed save's array writes can still be landing for a moment
                    shutil.rmtree(tmp, ignore_errors=True)
                    if not tmp.exists():
                        log.info("removed the partial checkpoint %s", tmp)
                        break
                    time.sleep(0.05)
                else:
                    log.warning("could not remove the partial checkpoint %s (the next run removes it)", tmp)

    def _require_step(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
        if step is None or step not in self._mngr.all_steps():
            raise CheckpointError(
                f"no checkpoint{'' if step is None else f' at step {step}'} in {self.directory}; "
                f"available steps: {self.all_steps()}"
            )
        return step
