"""Evaluation stage: a contrastive text/motion evaluator, HumanML3D-protocol metrics, motion quality.

Modules:
  metrics:   FID, R-precision, MM-Dist, Diversity, MultiModality on embeddings.
  quality:   jerk, acceleration, foot skating, floating, penetration from joints [T, 22, 3].
  evaluator: :class:`EvaluatorConfig` (+ ``PRESETS``), the TMR-style model, embed_motion/embed_text,
             save/load of the versioned artefact.
  train:     :func:`train_evaluator` (not imported here: it needs optax).
  prompts:   the zero-shot prompt-suite file format and loader.
  suite:     scores a decoder on the prompt suite; suite_report writes its report.
"""

from mm_jax.eval.evaluator import (
    EVALUATOR_VERSION,
    PRESETS,
    Evaluator,
    EvaluatorConfig,
    embed_motion,
    embed_sentences,
    embed_text,
    load_evaluator,
)

__all__ = [
    "EVALUATOR_VERSION",
    "PRESETS",
    "Evaluator",
    "EvaluatorConfig",
    "embed_motion",
    "embed_sentences",
    "embed_text",
    "load_evaluator",
]
