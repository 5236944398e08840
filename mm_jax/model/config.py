"""ModelConfig: sizes of the LLaMA text-to-motion decoder, its presets and cost model.

Stage: model. Input: nothing (a config). Output: a frozen ``ModelConfig`` whose
properties give the motion vocabulary (FSQ codes + BOS/EOS/PAD), the MLP width,
the exact parameter count and the training FLOPs per token.

Vocabulary. The motion vocabulary is the FSQ codebook (``prod(fsq_levels)``,
64,000 for the default (8, 8, 8, 5, 5, 5)) followed by three special ids:
``bos_id = codebook_size``, ``eos_id = codebook_size + 1``,
``pad_id = codebook_size + 2``, so ``vocab_size = codebook_size + 3``. The
embedding and output tables are padded up to ``padded_vocab_size`` (a multiple
of ``vocab_multiple``, default 128, so the vocab axis divides tensor-parallel
meshes); the model masks the padded logit columns.

MLP width (LLaMA convention): ``mlp_hidden = multiple_of * ceil((8/3 * width)
/ multiple_of)`` with ``mlp_multiple_of = 256`` unless ``mlp_hidden_override``
is set; e.g. width 4096 -> 11008 (LLaMA-7B), 1536 -> 4096, 128 -> 512.

Block size: ``max_text_tokens`` (32) + ``max_motion_tokens`` (269) = 301, the
reference block size. ``max_motion_tokens`` counts BOS and EOS.

Preset names (the naming rule). ``tiny`` and ``small`` are CPU sizes. The
ladder presets carry the *reference's* names (``models/lit_llama/model_hf.py``
of MotionMillion-Codes), which count the lit-llama text vocabulary, not ours:
a name identifies a layers/heads/width shape, never a parameter count. With
the 64,000-code motion codebook the computed counts (``num_params``;
``non_vocab_params`` = all but the two vocabulary tables) are:

======  ==================  ========  ==========  ==============
preset  layers/heads/width  total     non-vocab   vocab tables
======  ==================  ========  ==========  ==============
70m     8 / 8 / 512         93.1M     27.5M       65.7M (71%)
111m    12 / 12 / 768       183.7M    85.2M       98.5M (54%)
343m    24 / 16 / 1024      440.1M    308.7M      131.3M (30%)
775m    36 / 20 / 1280      896.1M    732.0M      164.2M (18%)
1b      48 / 24 / 1536      1556.7M   1359.7M     197.0M (13%)
3b      24 / 32 / 3200      3400.2M   2989.8M     410.4M (12%)
7b      36 / 32 / 4096      7812.7M   7287.4M     525.3M (7%)
======  ==================  ========  ==========  ==============

``7b`` is the released model's 36 layers (``model_hf.py``; the older
``model.py`` lists 32). ``mm-jax plan`` and every sweep run report the computed
counts; scaling-law fits use those, never the names.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from mm_jax.configs import get_preset, require_ints
from mm_jax.errors import ConfigError
from mm_jax.vocab import NUM_SPECIAL, SpecialIds

DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Sizes of the decoder. Letters: L layers, D width, H heads, K kv heads, C text width."""

    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    width: int = 128
    mlp_multiple_of: int = 256
    mlp_hidden_override: int | None = None
    fsq_levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5)
    vocab_multiple: int = 128
    text_dim: int = 384
    max_text_tokens: int = 32
    max_motion_tokens: int = 269
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02
    dropout: float = 0.0
    dtype: Literal["float32", "bfloat16"] = "float32"
    remat: bool = False
    scan_layers: bool = False

    def __post_init__(self) -> None:
        require_ints(self, ("num_layers", "num_heads", "num_kv_heads", "width", "mlp_multiple_of",
                            "vocab_multiple", "text_dim", "max_text_tokens", "max_motion_tokens"), 1)
        if self.width % self.num_heads:
            raise ConfigError(
                f"ModelConfig.width={self.width} is not divisible by num_heads={self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"ModelConfig.num_heads={self.num_heads} is not a multiple of "
                              f"num_kv_heads={self.num_kv_heads}")
        if self.head_dim % 2:
            raise ConfigError(f"head_dim={self.head_dim} (width/num_heads) must be even for RoPE")
        if not self.fsq_levels or any((not isinstance(v, int)) or v < 2 for v in self.fsq_levels):
            raise ConfigError(f"ModelConfig.fsq_levels={self.fsq_levels!r} must be ints >= 2")
        if self.mlp_hidden_override is not None and self.mlp_hidden_override < 1:
            raise ConfigError(f"ModelConfig.mlp_hidden_override={self.mlp_hidden_override} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"ModelConfig.dropout={self.dropout} must be in [0, 1)")
        if self.dtype not in DTYPES:
            raise ConfigError(f"ModelConfig.dtype={self.dtype!r} is not one of {list(DTYPES)}")
        for name in ("rope_theta", "norm_eps", "init_std"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"ModelConfig.{name}={getattr(self, name)!r} must be > 0")

    # ------------------------------------------------------------------ derived sizes
    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def queries_per_kv(self) -> int:
        """G: query heads sharing one key/value head."""
        return self.num_heads // self.num_kv_heads

    @property
    def mlp_hidden(self) -> int:
        if self.mlp_hidden_override is not None:
            return self.mlp_hidden_override
        m = self.mlp_multiple_of
        return m * math.ceil(8 * self.width / 3 / m)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.fsq_levels)

    @property
    def special_ids(self) -> SpecialIds:
        return SpecialIds.for_codebook(self.codebook_size)

    @property
    def bos_id(self) -> int:
        return self.special_ids.bos

    @property
    def eos_id(self) -> int:
        return self.special_ids.eos

    @property
    def pad_id(self) -> int:
        return self.special_ids.pad

    @property
    def vocab_size(self) -> int:
        """Real motion vocabulary: codes + BOS, EOS, PAD."""
        return self.codebook_size + NUM_SPECIAL

    @property
    def padded_vocab_size(self) -> int:
        m = self.vocab_multiple
        return m * math.ceil(self.vocab_size / m)

    @property
    def block_size(self) -> int:
        return self.max_text_tokens + self.max_motion_tokens

    # ------------------------------------------------------------------ cost model
    def layer_matmul_params(self) -> int:
        """Matmul weights of one block: fused QKV, output, fused gate/up, down."""
        d, e, h, k, m = self.width, self.head_dim, self.num_heads, self.num_kv_heads, self.mlp_hidden
        return (h + 2 * k) * e * d + d * h * e + 3 * m * d

    def num_params(self) -> int:
        """Exact parameter count (equals the leaf-size sum of the initialised tree).

        = text projection D*C + embedding Vp*D + L * (2 norms of D + matmuls)
          + final norm D + output head Vp*D, with Vp the padded vocab.
        """
        d, vp = self.width, self.padded_vocab_size
        per_layer = 2 * d + self.layer_matmul_params()
        return d * self.text_dim + 2 * vp * d + self.num_layers * per_layer + d

    def non_embedding_params(self) -> int:
        """Matmul parameters touched per token: the blocks plus the output head.

        Excludes the embedding table (a gather), the norms and the text
        projection (applied to the S text positions only, once per sequence).
        """
        return self.num_layers * self.layer_matmul_params() + self.padded_vocab_size * self.width

    def vocab_table_params(self) -> int:
        """The two vocabulary tables: the motion embedding and the output head, ``2 * Vp * D``."""
        return 2 * self.padded_vocab_size * self.width

    def non_vocab_params(self) -> int:
        """Parameters outside the vocabulary tables: :meth:`num_params` - :meth:`vocab_table_params`.

        This is the scaling-law x-axis "non-embedding parameters" (Kaplan et
        al. exclude the vocabulary matrices): the blocks, the norms and the
        text projection. It differs from :meth:`non_embedding_params` (the
        FLOP count's matmul weights per token), which keeps the output head
        because every token multiplies it.
        """
        return self.num_params() - self.vocab_table_params()

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward), PaLM/Chinchilla style.

        flops = 6 * N + 12 * L * H * E * T, with N = :meth:`non_embedding_params`,
        E the head dim and T the context length (``block_size`` by default).
        The first term is 2 FLOPs per multiply-add times 3 (forward, and the two
        backward matmuls); the second counts QK^T and AV (2 matmuls * 2 FLOPs * 3)
        against the full T keys, i.e. it ignores the causal saving like PaLM's
        MFU formula. Remat recomputation is not counted (as for MFU).
        """
        t = self.block_size if seq_len is None else seq_len
        if t < 1:
            raise ConfigError(f"seq_len={seq_len} must be >= 1")
        attn = 12 * self.num_layers * self.num_heads * self.head_dim * t
        return float(6 * self.non_embedding_params() + attn)


def _ladder(layers: int, heads: int, width: int) -> ModelConfig:
    """A reference-ladder size: MHA (K = H), dropout 0.1, bf16 compute, remat, scanned layers.

    Scan keeps compile time flat in depth and lets XLA gather FSDP weights one
    layer at a time: planning ``1b`` on 8 fake CPU devices (fsdp 8, batch 128)
    compiles in 7 s instead of 50 s, with 7.0 GiB of temporaries per device
    instead of 51.4 GiB. (The Python loop stays the default for tiny/small,
    where it is ~13% faster per step on XLA:CPU.)
    """
    return ModelConfig(num_layers=layers, num_heads=heads, num_kv_heads=heads, width=width,
                       dropout=0.1, dtype="bfloat16", remat=True, scan_layers=True)


PRESETS: dict[str, ModelConfig] = {
    # CPU-trainable in minutes (float32, no remat, GQA). Their FSQ levels match the tokenizer
    # presets of the same name (tiny: (8, 5, 5, 5) = 1,000 codes; small: the 64,000 reference).
    "tiny": ModelConfig(num_layers=2, num_heads=4, num_kv_heads=2, width=128, fsq_levels=(8, 5, 5, 5)),
    "small": ModelConfig(num_layers=4, num_heads=8, num_kv_heads=4, width=256),
    # Reference ladder (layers / heads / width), RECIPE.md.
    "70m": _ladder(8, 8, 512),
    "111m": _ladder(12, 12, 768),
    "343m": _ladder(24, 16, 1024),
    "775m": _ladder(36, 20, 1280),
    "1b": _ladder(48, 24, 1536),
    "3b": _ladder(24, 32, 3200),
    "7b": _ladder(36, 32, 4096),  # model_hf.py, the released 7B (the older model.py: 32 layers)
}


def preset(name: str) -> ModelConfig:
    """``PRESETS[name]``, or ConfigError listing the valid names."""
    return get_preset(PRESETS, name, kind="model preset")
