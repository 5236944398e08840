"""Building blocks of the decoder's training (stage: train); the loop is :mod:`mm_jax.train`.

Modules:
  config: :class:`TrainConfig` (optimisation, cadence) and :class:`ExperimentConfig`
          (model + train + pipeline + mesh + text encoder + data paths), their
          ``PRESETS`` and dotted ``section.key=value`` overrides.
  step:   the optimizer (AdamW, warm-up + cosine, clipping, weight-decay mask),
          :class:`TrainState`, the pure ``train_step(state, batch, key, text_params)``
          with gradient accumulation, and the evaluation step.
  setup:  shardings, state initialisation, the jitted (AOT-compiled) steps,
          text-encoder params and the identities checked against shards and checkpoints.
"""

from mm_jax.trainer.config import (PRESETS, TRAIN_PRESETS, ExperimentConfig, TrainConfig, apply_overrides,
                                   preset)

__all__ = ["PRESETS", "TRAIN_PRESETS", "ExperimentConfig", "TrainConfig", "apply_overrides", "preset"]
