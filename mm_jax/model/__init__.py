"""The text-to-motion decoder: config and presets, the LLaMA network, its loss, the memory planner.

``plan`` (the memory planner) is not imported here: it needs mm_jax.sharding
and optax; import it as ``mm_jax.model.plan``.
"""

from mm_jax.model.config import PRESETS, ModelConfig, preset
from mm_jax.model.llama import (Decoder, KVCache, abstract_params, decode_step, forward, init_boxed, init_params,
                                prefill)
from mm_jax.model.loss import forward_loss, motion_loss

__all__ = ["PRESETS", "ModelConfig", "preset", "Decoder", "KVCache", "abstract_params", "decode_step", "forward",
           "init_boxed", "init_params", "prefill", "forward_loss", "motion_loss"]
