"""The wavelet FSQ motion tokenizer: config, autoencoder, training, metrics."""

from mm_jax.tokenizer.config import PRESETS, TokenizerConfig, TokenizerTrainConfig

__all__ = ["PRESETS", "TokenizerConfig", "TokenizerTrainConfig"]
