"""Orbax checkpoints for every training loop (stage: checkpoint).

One :class:`Checkpointer` per run directory. Each step's checkpoint holds

* ``state``: a pytree (params, optimizer state, step...), saved with
  ``StandardSave`` and restored onto an abstract target, so a run saved on
  one device topology restores onto another when the target carries
  shardings;
* ``meta``: JSON with the run's config and identity (tokenizer, text
  encoder...), checked on restore so a mismatched run is a named error and
  never a silent re-initialisation;
* ``data_iter`` (optional): the Grain iterator state, taken at the moment
  ``save`` is called, so a resumed run sees exactly the batches an
  uninterrupted one would.

Saves are asynchronous; ``close()`` (or ``wait()``) blocks until the last
one is on disk. Orbax writes to a temporary directory and renames it when
complete, so a killed process never leaves a half checkpoint that looks
finished.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any, Mapping

import orbax.checkpoint as ocp

from mm_jax.errors import CheckpointError

log = logging.getLogger(__name__)


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
    """

    def __init__(self, directory: str | pathlib.Path, *, max_to_keep: int = 3, async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
        opts = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=True
        )
        self._mngr = ocp.CheckpointManager(self.directory, options=opts)

    def latest_step(self) -> int | None:
        """The newest complete step, or None."""
        return self._mngr.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._mngr.all_steps())

    def save(self, step: int, state: Any, meta: Mapping[str, Any], data_iter: Any = None) -> None:
        """Starts saving ``step`` (asynchronously)."""
        items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(dict(meta))}
        if data_iter is not None:
            import grain

            items["data_iter"] = grain.checkpoint.CheckpointSave(data_iter)
        self._mngr.save(step, args=ocp.args.Composite(**items))

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
            shardings to restore onto another topology) giving the target.
          step: the step to restore (default: the latest).
          expected_meta: keys that must match what the checkpoint recorded
            (model/tokenizer/text-encoder identity); a difference raises.
          data_iter: a fresh Grain iterator to restore the saved position into.

        Raises:
          CheckpointError: no checkpoint, a meta mismatch, or a state whose
            structure or shapes differ from the target.
        """
        step = self._require_step(step)
        meta = self.read_meta(step)
        if expected_meta is not None:
            diffs = _diff_keys({k: meta.get(k) for k in expected_meta}, dict(expected_meta))
            if diffs:
                raise CheckpointError(
                    f"checkpoint {self.directory} step {step} was made with another config: "
                    + "; ".join(diffs[:8])
                )
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iter is not None:
            import grain

            items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
        try:
            out = self._mngr.restore(step, args=ocp.args.Composite(**items))
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"checkpoint {self.directory} step {step} does not match the model's parameters: {e}"
            ) from None
        return step, out["state"], meta

    def wait(self) -> None:
        self._mngr.wait_until_finished()

    def close(self) -> None:
        self._mngr.wait_until_finished()
        self._mngr.close()

    def _require_step(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
        if step is None or step not in self._mngr.all_steps():
            raise CheckpointError(
                f"no checkpoint{'' if step is None else f' at step {step}'} in {self.directory}; "
                f"available steps: {self.all_steps()}"
            )
        return step
