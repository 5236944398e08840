"""The PyTorch runtime of an ``mm-jax export`` (stage: export).

Importable with torch, transformers and safetensors alone: nothing else of
mm_jax (no JAX, no Flax) is imported here or by its modules.

Modules:
  model:     :class:`MotionLlama` (``transformers.LlamaModel`` + text projection + motion head),
             the additive mixed mask and the real-token positions.
  sampler:   :func:`sample`, KV-cached, temperature/top-k/top-p and classifier-free guidance.
  tokenizer: :class:`MotionTokenizer` (Haar or CDF 5/3 levels + conv FSQ autoencoder, optional refinement
             head and output filter) and :func:`joints_from_features`.
  text:      :class:`TextEncoder` (MiniLM as ``BertModel`` + ``BertTokenizerFast``).
  foot_lock: :func:`foot_lock`, the decode-time post-step of ``mm_jax.motion.contact.foot_lock`` (numpy).
  pipeline:  :class:`TextToMotion`, prompt -> codes -> features (-> foot lock) -> joints.
"""

from mm_jax.torch_port.model import MotionLlama
from mm_jax.torch_port.pipeline import TextToMotion
from mm_jax.torch_port.sampler import sample
from mm_jax.torch_port.text import TextEncoder
from mm_jax.torch_port.tokenizer import MotionTokenizer, joints_from_features

__all__ = ["MotionLlama", "MotionTokenizer", "TextEncoder", "TextToMotion", "joints_from_features", "sample"]
