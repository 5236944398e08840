"""Test helpers of the decoder's training: learnable fake shards and a seconds-fast experiment.

Not a test module. The shards come from ``shards_fake`` (fake dataset, fake
text tokenizer, no tensorflow) with a *learnable* motion encoder: each
sequence's codes are an arithmetic run ``start, start + 1, ...`` modulo the
codebook, so a decoder can predict the next code from the previous one and
the loss falls well below the uniform ln(125) = 4.83 within tens of steps.
"""

from __future__ import annotations

import hashlib
import pathlib

import numpy as np
import shards_fake as sf

from mm_jax.model.config import ModelConfig
from mm_jax.pipeline import PipelineConfig
from mm_jax.sharding import MeshConfig
from mm_jax.text.config import TextConfig
from mm_jax.train.config import ExperimentConfig, TrainConfig

VOCAB_IDENTITY = "fake:fake-v1"  # FakeTextTokenizer's identity


def learnable_encode(seqs):
    """ceil(T / FPT) codes ``(start + i) % CODEBOOK``; ``start`` from the sequence's bytes."""
    out = []
    for s in seqs:
        start = int.from_bytes(hashlib.sha256(np.asarray(s).tobytes()).digest()[:4], "little") % sf.CODEBOOK
        n = -(-len(s) // sf.FPT)
        out.append(((start + np.arange(n)) % sf.CODEBOOK).astype(np.int32))
    return out


def make_train_shards(out: pathlib.Path, *, num: int = 120, identity: dict | None = None) -> pathlib.Path:
    """Train (2 shards) and val (1 shard) splits of FakeDataset(num) in ``out``."""
    ds = sf.FakeDataset(num)
    ident = identity or sf.FAKE_IDENTITY
    sf.make_shards(out, dataset=ds, num_shards=2, split="train", encode_fn=learnable_encode,
                   tokenizer_identity=ident)
    sf.make_shards(out, dataset=ds, num_shards=1, split="val", encode_fn=learnable_encode,
                   tokenizer_identity=ident)
    return out


TEXT = TextConfig(width=32, num_layers=1, num_heads=2, mlp_dim=64, vocab_size=1024, max_positions=16,
                  max_tokens=8)
MODEL = ModelConfig(num_layers=2, num_heads=4, num_kv_heads=2, width=64, fsq_levels=(5, 5, 5), text_dim=32,
                    max_text_tokens=8, max_motion_tokens=32)
PIPELINE = PipelineConfig(global_batch_size=8, max_text_tokens=8, max_motion_tokens=32, text_dropout=0.1)
TRAIN = TrainConfig(steps=20, lr=3e-3, warmup_steps=3, log_every=1, val_every=10, val_batches=2,
                    ckpt_every=10, keep_checkpoints=3)


def experiment(shards_dir: str | pathlib.Path, **train_changes) -> ExperimentConfig:
    """A decoder run of seconds on CPU over ``shards_dir`` (random 1-layer text encoder)."""
    import dataclasses

    return ExperimentConfig(model=MODEL, train=dataclasses.replace(TRAIN, **train_changes), pipeline=PIPELINE,
                            mesh=MeshConfig(data=-1), text=TEXT, shards_dir=str(shards_dir),
                            text_weights="random", text_vocab_identity=VOCAB_IDENTITY)
