"""Configs of the wavelet FSQ motion tokenizer and of its training.

The token rate is ``fps / 2**(wavelet_levels + down_t)``: each wavelet level
halves the time axis (the Haar sub-bands become channels) and each encoder
down block halves it again. The wavelet ablation holds
``wavelet_levels + down_t`` fixed so every variant emits the same number of
tokens per second and only the placement of the compression changes.
With ``wavelet_res_stacks`` a level that replaces a down block keeps that
block's residual stack (equal token rate *and* equal depth).

Presets: ``reference`` is the paper's tokenizer (MotionMillion-Codes, read in
``../shared/RECIPE.md``); the CPU presets (``tiny``, ``small``) are shrunk
copies whose docstrings below say how each differs from it.
"""

from __future__ import annotations

import dataclasses

from mm_jax import configs
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
      wavelet_levels: wavelet levels before the encoder (0 = off).
      fsq_levels: FSQ levels per latent dimension.
      window: training crop length in frames; a multiple of the compression.
      wavelet_family: ``haar`` (non-overlapping pairs, :mod:`mm_jax.wavelet`)
        or ``cdf53`` (the overlapping CDF 5/3 lifting wavelet,
        :mod:`mm_jax.wavelet_cdf53`); both exactly invertible.
      wavelet_gain: coefficients are multiplied by this after analysis and
        divided by it before synthesis; 1.0 is orthonormal Haar, 0.5 the
        reference patcher's scaling (analysis x1/2, synthesis x2).
      wavelet_res_stacks: each wavelet level gets a residual stack at the
        coefficient rate (encoder after the input conv, decoder before the
        output convs), the one its replaced down block had: equal depth.
      refine_width: channels of a full-rate refinement head after the inverse
        transform (conv k3 -> 2 residual blocks -> conv k3 with zero-initialised
        kernel and bias, added to the synthesis output); 0 = none.
      latent_kernel: kernel of the convs into and out of the FSQ latent (3 here;
        1 is the reference's Linear 512 -> 6 and 6 -> 512).
      encoder_dilations_descending: the encoder stacks use dilations
        9, 3, 1 (the reference, both stacks) instead of 1, 3, 9; the decoder
        always uses 9, 3, 1.
      output_smoothing_frames: sigma (frames) of a fixed Gaussian low-pass
        along time on the decoder's output (after the inverse wavelet and the
        refinement head; radius ceil(3 sigma), edge-padded, no parameters) in
        decoding, encoding-free evaluation and generation; the training loss
        sees the unfiltered output (trained through it, the decoder learns to
        undo it). 0 = off.
      foot_lock: after denormalising decoded features, hold planted feet still
        (:func:`mm_jax.motion.foot_lock.foot_lock`: root drift removed, planted
        ankles and toes pinned within 10 cm of the decoded ones, knees by
        two-bone IK) in every decode of codes (``generate.decode_codes``: generation
        and every evaluation) and in the reconstruction report
        (``tokenizer.reconstruction.evaluate``). Decode-only like
        ``output_smoothing_frames``: the codes, the loss and the tokenizer's
        identity do not depend on it.
    """

    feature_dim: int = 272
    width: int = 512
    depth: int = 3
    dilation_growth: int = 3
    down_t: int = 1
    wavelet_levels: int = 1
    fsq_levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5)
    window: int = 96
    wavelet_family: str = "haar"
    wavelet_gain: float = 1.0
    wavelet_res_stacks: bool = False
    refine_width: int = 0
    latent_kernel: int = 3
    encoder_dilations_descending: bool = False
    output_smoothing_frames: float = 0.0
    foot_lock: bool = False

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
        if self.wavelet_family not in WAVELET_FAMILIES:
            raise ConfigError(f"wavelet_family={self.wavelet_family!r} is not one of {WAVELET_FAMILIES}")
        if not self.wavelet_gain > 0:
            raise ConfigError(f"wavelet_gain={self.wavelet_gain!r} must be > 0")
        if not 0 <= self.output_smoothing_frames <= 8:
            raise ConfigError(f"output_smoothing_frames={self.output_smoothing_frames!r} must be in [0, 8]")
        if not isinstance(self.foot_lock, bool):
            raise ConfigError(f"foot_lock={self.foot_lock!r} must be true or false")
        if self.refine_width < 0 or self.latent_kernel < 1:
            raise ConfigError(f"refine_width={self.refine_width} must be >= 0 and latent_kernel="
                              f"{self.latent_kernel} >= 1")

    @property
    def frames_per_token(self) -> int:
        return 2 ** (self.wavelet_levels + self.down_t)

    @property
    def fsq(self) -> FSQ:
        return FSQ(levels=tuple(self.fsq_levels))

    @property
    def codebook_size(self) -> int:
        return self.fsq.codebook_size

    def trained_fields(self) -> dict:
        """What training depends on, as a dict: the config without the decode-only fields
        (:data:`DECODE_ONLY_FIELDS`), and without the wavelet's own fields (:data:`WAVELET_ONLY_FIELDS`)
        when it has no wavelet level. A run resumes, or is reused, under a config that differs only there."""
        drop = DECODE_ONLY_FIELDS + (WAVELET_ONLY_FIELDS if self.wavelet_levels == 0 else ())
        return {k: v for k, v in configs.to_dict(self).items() if k not in drop}

    def identity(self) -> dict:
        """What a token id means: the fields a consumer of tokens must match."""
        return {
            "feature_dim": self.feature_dim,
            "fsq_levels": list(self.fsq_levels),
            "frames_per_token": self.frames_per_token,
            "wavelet_levels": self.wavelet_levels,
        }


WAVELET_FAMILIES = ("haar", "cdf53")
# Applied only when decoding (never in the training forward pass or the loss): they change neither the
# codes nor the parameters, so a run's config check ignores them (TokenizerConfig.trained_fields).
DECODE_ONLY_FIELDS = ("output_smoothing_frames", "foot_lock")
# Without a wavelet level these have no effect (no transform, no level, no stack of a level).
WAVELET_ONLY_FIELDS = ("wavelet_family", "wavelet_gain", "wavelet_res_stacks")


# smooth_l1 is the reference's loss. On the embedded data it stalls near the
# mean prediction for the first thousands of steps (heavy-tailed velocity
# channels get clipped gradients); overfitting one batch for 300 steps gave a
# normalised MSE of 0.45 with smooth_l1, 0.78 with l1 and 0.19 with mse
# (mean prediction: 0.77), so the CPU presets train with mse.
LOSS_TYPES = ("smooth_l1", "mse", "l1")
LR_SCHEDULES = ("cosine", "constant")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenizerTrainConfig:
    """Optimisation of the tokenizer (AdamW, warm-up + cosine).

    ``loss_type`` applies to every term (see :func:`mm_jax.tokenizer.train.loss_fn`):
    ``w_recon`` all channels; ``w_vel`` the velocity channels of the frame;
    ``w_local_pos`` the local-position channels [8:74] (the reference's
    0.5 x "vel" term); ``w_accel`` the time difference of the velocity
    channels; ``w_pos_velocity`` / ``w_pos_accel`` the first / second time
    difference of the local-position channels; ``w_foot_contact`` the
    horizontal speed (m/frame, squared) of the reconstruction's foot joints
    where the input's feet are planted (:mod:`mm_jax.motion.contact`);
    ``w_joint_accel`` the squared acceleration error (cm/frame^2) of the global
    joints recovered from the features (root integrated), the quantity that
    ``accel_error_mm`` and jitter measure.
    ``aux_ramp_steps`` R: the difference, joint and contact terms (every term
    but recon, vel and local_pos) are off for the first R steps, then ramp in
    linearly over the next R. Every run passes a constant-output plateau near
    step 100 (recon at the data's variance, gradient norm ~0.02); where these
    terms are on, even ramping in from step 0, it never left it (README).
    ``grad_clip`` None: no clipping (the reference). ``lr_schedule``: ``cosine``
    decays to 5% after warm-up, ``constant`` holds ``lr`` (the reference).
    """

    steps: int = 2000
    batch_size: int = 64
    lr: float = 5e-5
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    grad_clip: float | None = 1.0
    loss_type: str = "smooth_l1"
    w_recon: float = 1.0
    w_vel: float = 0.5
    w_accel: float = 0.0
    w_local_pos: float = 0.0
    w_pos_velocity: float = 0.0
    w_pos_accel: float = 0.0
    w_foot_contact: float = 0.0
    w_joint_accel: float = 0.0
    aux_ramp_steps: int = 0
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    lr_schedule: str = "cosine"
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
        configs.require_ints(self, ("warmup_steps", "seed", "aux_ramp_steps"), 0)
        if not self.lr > 0:  # NaN fails too
            raise ConfigError(f"TokenizerTrainConfig.lr={self.lr!r} must be > 0")
        for name in ("weight_decay", "w_recon", "w_vel", "w_accel", "w_local_pos", "w_pos_velocity",
                     "w_pos_accel", "w_foot_contact", "w_joint_accel"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"TokenizerTrainConfig.{name}={getattr(self, name)!r} must be >= 0")
        if self.grad_clip is not None and not self.grad_clip > 0:  # clip(0) would zero every update
            raise ConfigError(f"TokenizerTrainConfig.grad_clip={self.grad_clip!r} must be > 0 or None")
        for name in ("adam_b1", "adam_b2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"TokenizerTrainConfig.{name}={getattr(self, name)!r} must be in [0, 1)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule={self.lr_schedule!r} is not one of {LR_SCHEDULES}")
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"loss_type={self.loss_type!r} is not one of {LOSS_TYPES}")


REFERENCE = (
    TokenizerConfig(width=512, depth=3, dilation_growth=3, down_t=1, wavelet_levels=0, window=96,
                    fsq_levels=(8, 8, 8, 5, 5, 5), latent_kernel=1, encoder_dilations_descending=True),
    TokenizerTrainConfig(steps=6_000_000, batch_size=256, lr=5e-5, warmup_steps=48_000, weight_decay=0.0,
                         grad_clip=None, loss_type="smooth_l1", w_recon=1.0, w_vel=0.0, w_local_pos=0.5,
                         adam_b1=0.9, adam_b2=0.99, lr_schedule="constant"),
)
"""The paper's tokenizer as released (MotionMillion-Codes; ../shared/RECIPE.md): width 512, one
stride-2 down block (x2, 15 tokens/s), window 96, residual stacks of depth 3 with dilations 9, 3, 1
in encoder and decoder, pre-LayerNorm blocks, a linear 512 -> 6 projection into FSQ [8,8,8,5,5,5]
and 6 -> 512 out, SmoothL1 on all 272 channels + 0.5 x SmoothL1 on the local positions [8:74],
AdamW betas (0.9, 0.99), weight decay 0, no clipping, lr 5e-5 constant after 48k warm-up steps,
6M iterations at batch 256, and no wavelet (every released script passes patch size 1); no foot
lock (the reference decodes without a post-step). Left as is here: our encoder normalises
(LayerNorm + ReLU) before the latent projection."""

CPU_DESIGN = {"wavelet_levels": 1, "down_t": 1, "wavelet_family": "cdf53", "wavelet_res_stacks": True,
              "output_smoothing_frames": 1.0, "foot_lock": True}
"""The CPU presets' design, chosen from the variant sweep (README, experiments/results/tokenizer_variants):
one CDF 5/3 level that keeps the residual stack of the down block it replaces (equal rate and depth),
then a Gaussian low-pass (sigma 1 frame) on the decoded output. At x4, width 64, 3,000 steps, test
split: accel. error 5.6 mm/frame² and jitter 1.2x the data's, vs 17.5 and 8.3x without a wavelet or
filter. Decoded features then go through the foot lock (experiments/results/foot_lock.md: on the demo
tokenizer's test-split reconstructions, foot skating 0.84 -> 0.06, the data's 0.05)."""

PRESETS: dict[str, tuple[TokenizerConfig, TokenizerTrainConfig]] = {
    "reference": REFERENCE,
    # Seconds on a laptop CPU; for tests and the smoke demo. Differs from `reference`: width 32,
    # depth 2, window 32, x4 (7.5 tokens/s: one Haar level that replaces a down block and its stack,
    # not the CPU design below, whose larger context (83 frames vs 60) tests' encode budgets are sized
    # against), FSQ [8,5,5,5], k3 latent convs, dilations 1,3 in the encoder, MSE loss with 0.5 x the
    # velocity channels, lr 2e-3 cosine, clipping 1.0, weight decay 1e-4, betas (0.9, 0.999), 60 steps
    # at batch 16; no foot lock (decoded features are the decoder's own).
    "tiny": (
        TokenizerConfig(width=32, depth=2, window=32, fsq_levels=(8, 5, 5, 5)),
        TokenizerTrainConfig(steps=60, batch_size=16, lr=2e-3, warmup_steps=10, val_every=30, ckpt_every=30,
                             loss_type="mse"),
    ),
    # Minutes on 2 CPU cores; the demo and the wavelet ablation. Differs from `reference`: width 96,
    # window 64, x4 compression (7.5 tokens/s) through the CPU design below (foot lock on), k3 latent convs,
    # dilations 1,3,9 in the encoder, MSE loss with 0.5 x the velocity channels, lr 1e-3 cosine,
    # clipping 1.0, weight decay 1e-4, betas (0.9, 0.999), 1,500 steps at batch 32.
    "small": (
        TokenizerConfig(width=96, depth=3, window=64, **CPU_DESIGN),
        TokenizerTrainConfig(steps=1500, batch_size=32, lr=1e-3, warmup_steps=100, val_every=250,
                             loss_type="mse"),
    ),
    # The reference's width and rate with this codebase's other defaults (one Haar level on top).
    "base": (
        TokenizerConfig(width=512, depth=3, window=96),
        TokenizerTrainConfig(steps=100_000, batch_size=256, lr=5e-5, warmup_steps=1000),
    ),
}
