"""Shared fixtures, built once per session: a tiny synthetic dataset, a tiny trained tokenizer, a 2-step decoder."""

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


@pytest.fixture(scope="session")
def decoder_run(tiny_tokenizer, tmp_path_factory):
    """A 2-step decoder run whose codebook and shard identity are the tiny tokenizer's (fake text vocabulary)."""
    import train_fixtures as tfx

    from mm_jax.train import loop
    from mm_jax.tokenizer.artifact import load_tokenizer
    from mm_jax.train import setup

    levels = tuple(load_tokenizer(tiny_tokenizer).cfg.fsq_levels)
    exp = tfx.experiment("", steps=2, warmup_steps=1, val_every=0, ckpt_every=2, log_every=1)
    exp = dataclasses.replace(exp, model=dataclasses.replace(exp.model, fsq_levels=levels),
                              tokenizer_run=str(tiny_tokenizer))
    shards = tfx.make_train_shards(tmp_path_factory.mktemp("gen_shards"), num=40,
                                   identity=setup.tokenizer_identity(exp))
    exp = dataclasses.replace(exp, shards_dir=str(shards))
    workdir = tmp_path_factory.mktemp("gen_decoder")
    loop.run(exp, workdir)
    return workdir
