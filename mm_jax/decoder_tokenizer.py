"""The motion tokenizer of a decoder run: recorded at train time, identity-checked on every load (stage: sample/eval).

A decoder predicts the codes of one tokenizer; the same codes decoded by
another tokenizer (retrained, or trained further, at the same path) are other
motion, with no error. So:

* at train time, :func:`record` names the tokenizer in the run's
  ``config.json`` by absolute path: ``exp.tokenizer_run`` as given, else the
  shard manifest's ``tokenizer.run`` (a decoder trained as the README shows,
  without ``--tokenizer``, still knows its tokenizer, and ``generate`` works
  from any directory). Its identity (config + trained step) is in every
  checkpoint's meta (``meta["tokenizer"]``, from the shard manifest);
* every load (``generate``, ``eval``, ``eval --suite``, the demo) goes through
  :func:`load`: the recorded run, or the caller's ``--tokenizer`` override, is
  loaded at the step the checkpoint records when that step is still on disk,
  and its identity must equal the checkpoint's; a mismatch is a
  ``CheckpointError`` naming both identities.

Inputs: an ``ExperimentConfig`` and a shard manifest (:func:`record`), or a
decoder's config and checkpoint meta (:func:`load`). Output: the config to save,
or a ``LoadedTokenizer`` and the absolute run path it came from.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Any, Mapping

from mm_jax.errors import CheckpointError
from mm_jax.tokenizer.artifact import load_tokenizer
from mm_jax.train.config import ExperimentConfig

log = logging.getLogger(__name__)


def record(exp: ExperimentConfig, manifest: Mapping[str, Any]) -> ExperimentConfig:
    """``exp`` with ``tokenizer_run`` set to the absolute path of the tokenizer its shards were made with.

    ``exp.tokenizer_run`` as given (made absolute) wins; else the manifest's
    ``tokenizer.run`` (absolute already); shards made without a tokenizer run
    (an injected encoder) leave it None.
    """
    run = exp.tokenizer_run or (manifest.get("tokenizer") or {}).get("run")
    if not run:
        return exp
    return dataclasses.replace(exp, tokenizer_run=str(pathlib.Path(run).absolute()))


def _normal(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def identity_diffs(have: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    """Keys of ``want`` (the checkpoint's identity) whose value ``have`` (the loaded tokenizer's) does not share."""
    return [k for k in want if _normal(have.get(k, "<missing>")) != _normal(want[k])]


def load(exp: ExperimentConfig, meta: Mapping[str, Any], *, decoder_run: str | pathlib.Path,
         override: str | pathlib.Path | None = None) -> tuple[Any, pathlib.Path]:
    """The tokenizer a decoder run was trained with, checked against the checkpoint's identity.

    Args:
      exp: the decoder's experiment config (``config.json``).
      meta: the decoder checkpoint's meta; ``meta["tokenizer"]`` is the identity
        of the tokenizer its shards were made with.
      decoder_run: the decoder run directory (named in errors).
      override: a tokenizer run to use instead of the recorded one (``--tokenizer``);
        it is checked the same way.

    Returns:
      (``LoadedTokenizer``, its absolute run directory).

    Raises:
      CheckpointError: no tokenizer recorded and none given, a run that cannot
        be loaded, or a tokenizer whose identity (config, trained step) or
        codebook differs from the decoder's.
    """
    source = "--tokenizer" if override is not None else f"{pathlib.Path(decoder_run) / 'config.json'}"
    path = override if override is not None else exp.tokenizer_run
    if path is None:
        raise CheckpointError(f"decoder run {decoder_run} records no tokenizer run (its shards were made "
                              "without one, or it was trained before runs recorded it): pass the tokenizer "
                              "it was trained with, --tokenizer DIR (tokenizer_run=)")
    path = pathlib.Path(path).absolute()
    want = dict(meta.get("tokenizer") or {})
    try:
        tok = _load_at_step(path, want.get("step"))
    except CheckpointError as e:
        raise CheckpointError(f"cannot load the tokenizer of decoder run {decoder_run} ({path}, from {source}): "
                              f"{e}; pass the tokenizer it was trained with, --tokenizer DIR") from None
    have = tok.identity()
    if not want:
        log.warning("decoder run %s records no tokenizer identity; %s is not checked", decoder_run, path)
    elif identity_diffs(have, want):
        raise CheckpointError(
            f"tokenizer {path} (from {source}) is not the one decoder run {decoder_run} was trained with: "
            f"it has identity {have}, the decoder's checkpoint records {want} (differs in "
            f"{', '.join(identity_diffs(have, want))}); pass the tokenizer it was trained with, --tokenizer DIR")
    if list(tok.cfg.fsq_levels) != list(exp.model.fsq_levels):
        raise CheckpointError(f"tokenizer {path} has fsq_levels {list(tok.cfg.fsq_levels)} but decoder run "
                              f"{decoder_run}'s are {list(exp.model.fsq_levels)}")
    log.info("tokenizer %s step %d (identity checked against decoder run %s)", path, tok.step, decoder_run)
    return tok, path


def _load_at_step(path: pathlib.Path, step: int | None) -> Any:
    """The tokenizer at ``step`` when that checkpoint is still on disk (a run trained further keeps
    the decoder's step if ``max_to_keep`` allows), else the latest one."""
    if step is not None:
        try:
            return load_tokenizer(path, step=int(step))
        except CheckpointError as e:
            if "no checkpoint at step" not in str(e):
                raise
    return load_tokenizer(path)
