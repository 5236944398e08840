"""One owner per shared size: a decoder run's S, N, codebook and text width come from their owners.

Stage: train (start-up). Input: an :class:`ExperimentConfig` built from
presets and overrides, the shard manifest, and the set of keys the user set
explicitly. Output: the same config with every copy of a shared size set from
its owner, which is what the run trains, checkpoints and samples with:

==================  =============================  ===============================================
size                owner                          copies set from it
==================  =============================  ===============================================
S  caption budget   shards (``text.max_tokens``)   ``pipeline.max_text_tokens``,
                                                   ``model.max_text_tokens``, ``text.max_tokens``
codebook            shards (tokenizer identity     ``model.fsq_levels`` (so the vocabulary, BOS/EOS/PAD)
                    ``fsq_levels``)
N  motion tokens    shards (longest train record   ``pipeline.max_motion_tokens`` and
                    + BOS + EOS), capped by        ``model.max_motion_tokens`` (the sampler's cap)
                    ``pipeline.max_motion_tokens``
text width          the text encoder (``text``)    ``model.text_dim``
==================  =============================  ===============================================

``pipeline.max_motion_tokens`` is the longest training window a preset
allows (longer records are cropped at random), not a copy of the data: the
run's N is ``min(data, cap)``, and the model samples at most the positions it
trained on. Shards written before the manifest recorded the longest record
give N = the cap, as before.

An explicit override that contradicts an owner (``--set model.fsq_levels=...``
against shards of another codebook, ``--set model.max_motion_tokens=300`` when
the data gives 77) is a ``ConfigError`` naming both values; it is never
silently replaced.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Collection, Mapping

from mm_jax.errors import ConfigError
from mm_jax.shards.manifest import max_motion_tokens
from mm_jax.train.config import ExperimentConfig

log = logging.getLogger(__name__)

# Keys a user may not set to anything but their owner's value.
S_KEYS = ("pipeline.max_text_tokens", "model.max_text_tokens", "text.max_tokens")
CODEBOOK_KEYS = ("model.fsq_levels",)
N_MODEL_KEYS = ("model.max_motion_tokens",)
WIDTH_KEYS = ("model.text_dim",)


def override_keys(overrides: Collection[str]) -> frozenset[str]:
    """The dotted keys of ``section.key=value`` overrides (``train.lr=3e-4`` -> ``train.lr``)."""
    return frozenset(item.split("=", 1)[0].strip() for item in overrides)


def _contradiction(key: str, value: Any, owner: str, owned: Any) -> ConfigError:
    return ConfigError(f"{key}={value!r} contradicts {owner} = {owned!r}; this size is owned by {owner} "
                       f"(drop the override, or use data made for {value!r})")


def _check_explicit(exp: ExperimentConfig, keys: tuple[str, ...], explicit: Collection[str], owner: str,
                    owned: Any) -> None:
    for key in keys:
        if key in explicit:
            section, field = key.split(".")
            value = getattr(getattr(exp, section), field)
            if (list(value) if isinstance(value, tuple) else value) != owned:
                raise _contradiction(key, value, owner, owned)


def bind_to_data(exp: ExperimentConfig, manifest: Mapping[str, Any],
                 explicit: Collection[str] = ()) -> ExperimentConfig:
    """``exp`` with S, N, the codebook and the text width taken from their owners (module docstring).

    Args:
      exp: the experiment as built from presets and overrides.
      manifest: the shards' ``manifest.json`` (:func:`mm_jax.shards.read_manifest`).
      explicit: dotted keys the user set (:func:`override_keys`); those must
        agree with the owners.

    Raises:
      ConfigError: an explicit value contradicts its owner.
    """
    s = int(manifest["text"]["max_tokens"])
    levels = [int(v) for v in manifest["tokenizer"]["identity"]["fsq_levels"]]
    _check_explicit(exp, S_KEYS, explicit, "the shards' caption budget S", s)
    _check_explicit(exp, CODEBOOK_KEYS, explicit, "the shards' tokenizer fsq_levels", levels)
    _check_explicit(exp, WIDTH_KEYS, explicit, "text.width (the text encoder's width)", exp.text.width)
    data_n = max_motion_tokens(manifest, "train")
    cap = exp.pipeline.max_motion_tokens
    n = cap if data_n is None else min(data_n, cap)
    _check_explicit(exp, N_MODEL_KEYS, explicit,
                    "N = min(the shards' longest train record + BOS/EOS, pipeline.max_motion_tokens)", n)
    if data_n is None:
        log.info("the shards' manifest does not record its longest record: N = pipeline.max_motion_tokens = %d", n)
    elif data_n > cap:
        log.info("records up to %d motion tokens are cropped to windows of N = %d "
                 "(pipeline.max_motion_tokens)", data_n, cap)
    model = dataclasses.replace(exp.model, max_text_tokens=s, max_motion_tokens=n, fsq_levels=tuple(levels),
                                text_dim=exp.text.width)
    pipeline = dataclasses.replace(exp.pipeline, max_text_tokens=s, max_motion_tokens=n)
    text = dataclasses.replace(exp.text, max_tokens=s)
    return dataclasses.replace(exp, model=model, pipeline=pipeline, text=text)
