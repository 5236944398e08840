"""Training of the text-to-motion decoder (stage: train).

Modules, in the order a run uses them:
  config:    :class:`TrainConfig` (optimisation, cadence) and :class:`ExperimentConfig`
             (model + train + pipeline + mesh + text encoder + data paths), their
             ``PRESETS`` and dotted ``section.key=value`` overrides.
  step:      the optimizer (AdamW, warm-up + cosine, clipping, weight-decay mask),
             :class:`TrainState`, the pure ``train_step(state, batch, key, text_params)``
             with gradient accumulation, and the evaluation step.
  setup:     shardings, state initialisation, the jitted (AOT-compiled) steps,
             text-encoder params and the identities checked against shards and checkpoints.
  loop:      ``run(exp, workdir)``: the training loop (checkpoints, metrics, resume).
  plan:      the memory plan of the step ``loop.run`` compiles, from abstract shapes.
  interrupt: SIGINT/SIGTERM as a stop request that every trainer's loop honours.

Importing this package imports only :mod:`config` (cheap: no optax, no jit);
generation reads a run's :class:`ExperimentConfig` without trainer code.
"""

from mm_jax.train.config import (PRESETS, TRAIN_PRESETS, ExperimentConfig, TrainConfig, apply_overrides,
                                 preset)

__all__ = ["PRESETS", "TRAIN_PRESETS", "ExperimentConfig", "TrainConfig", "apply_overrides", "preset"]
