"""The text-to-motion decoder: config and presets, the LLaMA network, its loss, the memory planner.

``plan`` (the memory planner) is not imported here: it needs mm_jax.sharding
and optax; import it as ``mm_jax.model.plan``.
"""

from mm_jax.model.config import PRESETS, ModelConfig, preset
from mm_jax.model.llama import Decoder, abstract_params, forward, init_boxed, init_params
from mm_jax.model.loss import forward_loss, motion_loss

__all__ = ["PRESETS", "ModelConfig", "preset", "Decoder", "abstract_params", "forward", "init_boxed",
           "init_params", "forward_loss", "motion_loss"]
