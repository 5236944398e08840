"""The text-to-motion decoder: config and presets, the LLaMA network (with its KV cache), its loss.

The memory plan of its train step is :mod:`mm_jax.train.plan`.
"""

from mm_jax.model.config import PRESETS, ModelConfig, preset
from mm_jax.model.llama import (Decoder, KVCache, abstract_params, decode_step, forward, init_boxed, init_params,
                                prefill)
from mm_jax.model.loss import forward_loss, motion_loss

__all__ = ["PRESETS", "ModelConfig", "preset", "Decoder", "KVCache", "abstract_params", "decode_step", "forward",
           "init_boxed", "init_params", "prefill", "forward_loss", "motion_loss"]
