"""The PyTorch runtime of an ``mm-jax export`` (stage: export).

Importable with torch, transformers and safetensors alone: no JAX or Flax is
imported here or by its modules. Of the rest of mm_jax only the numpy foot lock
(:mod:`mm_jax.motion.foot_lock`, which imports numpy, ``mm_jax.errors`` and
``mm_jax.motion.layout``) is used, so both runtimes apply the one implementation
(``tests/test_foot_lock.py`` checks that importing this package loads no JAX).

Modules:
  model:     :class:`MotionLlama` (``transformers.LlamaModel`` + text projection + motion head),
             the additive mixed mask and the real-token positions.
  sampler:   :func:`sample`, KV-cached, temperature/top-k/top-p and classifier-free guidance.
  tokenizer: :class:`MotionTokenizer` (Haar or CDF 5/3 levels + conv FSQ autoencoder, optional refinement
             head and output filter) and :func:`joints_from_features`.
  text:      :class:`TextEncoder` (MiniLM as ``BertModel`` + ``BertTokenizerFast``).
  pipeline:  :class:`TextToMotion`, prompt -> codes -> features (-> foot lock) -> joints.
"""

from mm_jax.torch_port.model import MotionLlama
from mm_jax.torch_port.pipeline import TextToMotion
from mm_jax.torch_port.sampler import sample
from mm_jax.torch_port.text import TextEncoder
from mm_jax.torch_port.tokenizer import MotionTokenizer, joints_from_features

__all__ = ["MotionLlama", "MotionTokenizer", "TextEncoder", "TextToMotion", "joints_from_features", "sample"]
