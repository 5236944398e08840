"""Configs of the wavelet FSQ motion tokenizer and of its training.

The token rate is ``fps / 2**(wavelet_levels + down_t)``: each wavelet level
halves the time axis (the Haar sub-bands become channels) and each encoder
down block halves it again. The wavelet ablation holds
``wavelet_levels + down_t`` fixed so every variant emits the same number of
tokens per second and only the placement of the compression changes.
"""

from __future__ import annotations

import dataclasses

from mm_jax.errors import ConfigError
from mm_jax.fsq import FSQ


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    """Architecture of the FSQ autoencoder.

    Attributes:
      feature_dim: F, width of a motion frame (272).
      width: channels of the conv stacks.
      depth: dilated residual blocks per stack.
      dilation_growth: dilation multiplier between consecutive blocks.
      down_t: stride-2 down blocks in the encoder (x2 each).
      wavelet_levels: Haar levels before the encoder (0 = off).
      fsq_levels: FSQ levels per latent dimension.
      window: training crop length in frames; a multiple of the compression.
    """

    feature_dim: int = 272
    width: int = 512
    depth: int = 3
    dilation_growth: int = 3
    down_t: int = 1
    wavelet_levels: int = 1
    fsq_levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5)
    window: int = 96

    def __post_init__(self) -> None:
        for name in ("feature_dim", "width", "depth", "dilation_growth", "window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TokenizerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.down_t < 0 or self.wavelet_levels < 0:
            raise ConfigError(
                f"down_t and wavelet_levels must be >= 0, got {self.down_t} and {self.wavelet_levels}"
            )
        if self.window % self.frames_per_token:
            raise ConfigError(
                f"window={self.window} is not a multiple of the compression "
                f"2**(wavelet_levels+down_t)={self.frames_per_token}"
            )
        FSQ(levels=tuple(self.fsq_levels))  # validates the levels

    @property
    def frames_per_token(self) -> int:
        return 2 ** (self.wavelet_levels + self.down_t)

    @property
    def fsq(self) -> FSQ:
        return FSQ(levels=tuple(self.fsq_levels))

    @property
    def codebook_size(self) -> int:
        return self.fsq.codebook_size

    def identity(self) -> dict:
        """What a token id means: the fields a consumer of tokens must match."""
        return {
            "feature_dim": self.feature_dim,
            "fsq_levels": list(self.fsq_levels),
            "frames_per_token": self.frames_per_token,
            "wavelet_levels": self.wavelet_levels,
        }


# smooth_l1 is the reference's loss. On the embedded data it stalls near the
# mean prediction for the first thousands of steps (heavy-tailed velocity
# channels get clipped gradients); overfitting one batch for 300 steps gave a
# normalised MSE of 0.45 with smooth_l1, 0.78 with l1 and 0.19 with mse
# (mean prediction: 0.77), so the CPU presets train with mse.
LOSS_TYPES = ("smooth_l1", "mse", "l1")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenizerTrainConfig:
    """Optimisation of the tokenizer (AdamW, warm-up + cosine).

    ``loss_type`` applies to the reconstruction, to the velocity term (the
    velocity channels of the frame, as the reference) and to the acceleration
    term (their time difference; off by default, see train.loss_fn).
    """

    steps: int = 2000
    batch_size: int = 64
    lr: float = 5e-5
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    loss_type: str = "smooth_l1"
    w_recon: float = 1.0
    w_vel: float = 0.5
    w_accel: float = 0.0
    log_every: int = 25
    val_every: int = 250
    val_batches: int = 4
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        # Every count is checked: 0 would train nothing, or divide by zero at the first log/val/checkpoint.
        for name in ("steps", "batch_size", "log_every", "val_every", "val_batches", "ckpt_every",
                     "keep_checkpoints"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"TokenizerTrainConfig.{name}={value!r} must be an int >= 1")
        for name in ("warmup_steps", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"TokenizerTrainConfig.{name}={value!r} must be an int >= 0")
        if not self.lr > 0:  # NaN fails too
            raise ConfigError(f"TokenizerTrainConfig.lr={self.lr!r} must be > 0")
        for name in ("weight_decay", "w_recon", "w_vel", "w_accel"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"TokenizerTrainConfig.{name}={getattr(self, name)!r} must be >= 0")
        if not self.grad_clip > 0:  # clip_by_global_norm(0) would zero every update
            raise ConfigError(f"TokenizerTrainConfig.grad_clip={self.grad_clip!r} must be > 0")
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"loss_type={self.loss_type!r} is not one of {LOSS_TYPES}")


PRESETS: dict[str, tuple[TokenizerConfig, TokenizerTrainConfig]] = {
    # Seconds on a laptop CPU; for tests and the smoke demo.
    "tiny": (
        TokenizerConfig(width=32, depth=2, window=32, fsq_levels=(8, 5, 5, 5)),
        TokenizerTrainConfig(steps=60, batch_size=16, lr=2e-3, warmup_steps=10, val_every=30, ckpt_every=30,
                             loss_type="mse"),
    ),
    # Minutes on 2 CPU cores; the demo and the wavelet ablation.
    "small": (
        TokenizerConfig(width=96, depth=3, window=64),
        TokenizerTrainConfig(steps=1500, batch_size=32, lr=1e-3, warmup_steps=100, val_every=250,
                             loss_type="mse"),
    ),
    # The reference architecture (width 512, x2 down, window 96).
    "base": (
        TokenizerConfig(width=512, depth=3, window=96),
        TokenizerTrainConfig(steps=100_000, batch_size=256, lr=5e-5, warmup_steps=1000),
    ),
}
