"""Shared fixtures: a tiny synthetic dataset and a tiny trained tokenizer, built once per session."""

from __future__ import annotations

import dataclasses

import pytest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A 64-sequence synthetic dataset directory (the generator's 'tiny' preset)."""
    from mm_jax.motion.synth import PRESETS, synthesize

    out = tmp_path_factory.mktemp("data") / "tiny"
    synthesize(PRESETS["tiny"], out)
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_dataset, tmp_path_factory):
    """A tokenizer run trained for a few steps on ``tiny_dataset`` (the 'tiny' preset)."""
    from mm_jax.tokenizer import PRESETS
    from mm_jax.tokenizer.train import train

    mcfg, tcfg = PRESETS["tiny"]
    tcfg = dataclasses.replace(tcfg, steps=8, val_every=8, ckpt_every=8, log_every=4)
    run = tmp_path_factory.mktemp("tok") / "run"
    train(mcfg, tcfg, tiny_dataset, run)
    return run
