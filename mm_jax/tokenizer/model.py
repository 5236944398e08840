"""The wavelet FSQ autoencoder (stage: tokenizer).

``x [B, T, F]`` (normalised features) -> wavelet DWT along time (Haar or
CDF 5/3, times ``wavelet_gain`` per level) ``[B, T/2^L, F*2^L]`` -> 1D-conv
encoder (with ``wavelet_res_stacks``, one residual stack per wavelet level at
the coefficient rate) with ``down_t`` stride-2 blocks -> ``z [B, N, d]`` ->
FSQ -> codes ``[B, N]`` -> decoder (nearest upsampling, then the wavelet
levels' stacks) -> ``[B, T/2^L, F*2^L]`` -> inverse DWT -> optional
full-rate refinement head (zero-initialised, so it starts as the identity)
-> optional fixed Gaussian low-pass along time -> ``x_hat [B, T, F]``, with
``N = T / 2^(L + down_t)``. Everything is a
pure function of ``params``. Modules added by the options have explicit
names (``wavelet_stack_i``, ``refine``), so the parameter tree of a config
without them is unchanged.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mm_jax import wavelet, wavelet_cdf53
from mm_jax.errors import ShapeError
from mm_jax.tokenizer.config import TokenizerConfig


class ResBlock(nn.Module):
    """LayerNorm -> ReLU -> dilated conv(k3) -> LayerNorm -> ReLU -> conv(k1), residual."""

    width: int
    dilation: int

    @nn.compact
    def __call__(self, x_btc: jax.Array) -> jax.Array:
        h = nn.relu(nn.LayerNorm()(x_btc))
        h = nn.Conv(self.width, (3,), kernel_dilation=(self.dilation,), padding="SAME")(h)
        h = nn.relu(nn.LayerNorm()(h))
        h = nn.Conv(self.width, (1,))(h)
        return x_btc + h


class ResStack(nn.Module):
    width: int
    depth: int
    growth: int
    reverse: bool = False

    @nn.compact
    def __call__(self, x_btc: jax.Array) -> jax.Array:
        dilations = [self.growth**i for i in range(self.depth)]
        for d in reversed(dilations) if self.reverse else dilations:
            x_btc = ResBlock(self.width, d)(x_btc)
        return x_btc


def _wavelet_stacks(cfg: TokenizerConfig) -> int:
    return cfg.wavelet_levels if cfg.wavelet_res_stacks else 0


class Encoder(nn.Module):
    cfg: TokenizerConfig

    @nn.compact
    def __call__(self, x_btc: jax.Array) -> jax.Array:
        c = self.cfg
        rev = c.encoder_dilations_descending
        h = nn.relu(nn.Conv(c.width, (3,), padding="SAME")(x_btc))
        for i in range(_wavelet_stacks(c)):
            h = ResStack(c.width, c.depth, c.dilation_growth, reverse=rev, name=f"wavelet_stack_{i}")(h)
        for _ in range(c.down_t):
            h = nn.Conv(c.width, (4,), strides=(2,), padding=((1, 1),))(h)
            h = ResStack(c.width, c.depth, c.dilation_growth, reverse=rev)(h)
        # The residual stream is pre-norm: normalise it before projecting to
        # the FSQ latent, or its growth saturates the tanh bound (dead codes).
        h = nn.relu(nn.LayerNorm()(h))
        return nn.Conv(len(c.fsq_levels), (c.latent_kernel,), padding="SAME")(h)


class Decoder(nn.Module):
    cfg: TokenizerConfig
    out_channels: int

    @nn.compact
    def __call__(self, z_bnd: jax.Array) -> jax.Array:
        c = self.cfg
        h = nn.relu(nn.Conv(c.width, (c.latent_kernel,), padding="SAME")(z_bnd))
        for _ in range(c.down_t):
            h = ResStack(c.width, c.depth, c.dilation_growth, reverse=True)(h)
            h = jnp.repeat(h, 2, axis=1)
            h = nn.Conv(c.width, (3,), padding="SAME")(h)
        for i in range(_wavelet_stacks(c)):
            h = ResStack(c.width, c.depth, c.dilation_growth, reverse=True, name=f"wavelet_stack_{i}")(h)
        h = nn.relu(nn.Conv(c.width, (3,), padding="SAME")(h))
        return nn.Conv(self.out_channels, (3,), padding="SAME")(h)


class RefineHead(nn.Module):
    """Full-rate residual head after the inverse wavelet: x + conv(k3) . 2 res blocks . conv(k3, zero init).

    The last conv's kernel and bias start at zero, so an untrained head is
    the identity and training starts from the plain synthesis output.
    """

    width: int
    out_channels: int

    @nn.compact
    def __call__(self, x_btf: jax.Array) -> jax.Array:
        h = nn.Conv(self.width, (3,), padding="SAME")(x_btf)
        h = ResBlock(self.width, 1)(h)
        h = ResBlock(self.width, 3)(h)
        h = nn.relu(nn.LayerNorm()(h))
        zero = nn.initializers.zeros
        return x_btf + nn.Conv(self.out_channels, (3,), padding="SAME", kernel_init=zero, bias_init=zero)(h)


def smoothing_kernel(sigma: float) -> np.ndarray:
    """Normalised Gaussian taps [2r + 1], r = ceil(3 sigma) (``[1.]`` for sigma 0)."""
    if sigma <= 0:
        return np.ones(1, np.float32)
    r = math.ceil(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def smooth_time(x_btf: jax.Array, sigma: float) -> jax.Array:
    """x [B, T, F] convolved along T with :func:`smoothing_kernel`, edge-padded (same length)."""
    k = smoothing_kernel(sigma)
    r = len(k) // 2
    if r == 0:
        return x_btf
    t = x_btf.shape[1]
    xp = jnp.concatenate([jnp.repeat(x_btf[:, :1], r, axis=1), x_btf, jnp.repeat(x_btf[:, -1:], r, axis=1)], axis=1)
    return sum(float(k[i]) * xp[:, i:i + t] for i in range(len(k)))


def _transform(cfg: TokenizerConfig):
    return wavelet_cdf53 if cfg.wavelet_family == "cdf53" else wavelet


def analyse(x_btf: jax.Array, cfg: TokenizerConfig) -> jax.Array:
    """The encoder's input: ``wavelet_gain**L`` x the packed DWT [B, T/2^L, F*2^L] of x [B, T, F]."""
    packed = _transform(cfg).dwt(x_btf, cfg.wavelet_levels)
    return packed * cfg.wavelet_gain**cfg.wavelet_levels if cfg.wavelet_levels else packed


def synthesise(packed: jax.Array, cfg: TokenizerConfig, length: int) -> jax.Array:
    """Inverse of :func:`analyse`: [B, N, F*2^L] -> [B, length, F]."""
    if cfg.wavelet_levels:
        packed = packed / cfg.wavelet_gain**cfg.wavelet_levels
    return _transform(cfg).idwt(packed, cfg.wavelet_levels, length)


class MotionTokenizer(nn.Module):
    """Encoder + FSQ + decoder around the wavelet transform (+ the optional refinement head)."""

    cfg: TokenizerConfig

    def setup(self) -> None:
        c = self.cfg
        self.encoder = Encoder(c)
        self.decoder = Decoder(c, wavelet.packed_channels(c.feature_dim, c.wavelet_levels))
        self.refine = RefineHead(c.refine_width, c.feature_dim) if c.refine_width else None

    def encode_latent(self, x_btf: jax.Array) -> jax.Array:
        """x [B, T, F] -> pre-quantisation latents z [B, N, d]."""
        return self.encoder(analyse(x_btf, self.cfg))

    def decode_codes(self, zhat_bnd: jax.Array) -> jax.Array:
        """Grid codes [B, N, d] -> x_hat [B, N * frames_per_token, F]."""
        n = zhat_bnd.shape[1]
        x_hat = synthesise(self.decoder(zhat_bnd), self.cfg, n * self.cfg.frames_per_token)
        x_hat = x_hat if self.refine is None else self.refine(x_hat)
        return smooth_time(x_hat, self.cfg.output_smoothing_frames)

    def __call__(self, x_btf: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [B, T, F] -> (x_hat [B, T, F], token ids [B, N])."""
        fsq = self.cfg.fsq
        zhat = fsq.quantize(self.encode_latent(x_btf))
        return self.decode_codes(zhat), fsq.codes_to_indices(zhat)


def check_input(x_btf: jax.Array, cfg: TokenizerConfig) -> None:
    """Raises ShapeError unless x is [B, T, F] with F and T fitting the tokenizer."""
    if x_btf.ndim != 3 or x_btf.shape[-1] != cfg.feature_dim:
        raise ShapeError(
            f"tokenizer input must be [B, T, {cfg.feature_dim}] (feature width of the trained "
            f"tokenizer), got shape {tuple(x_btf.shape)}"
        )
    if x_btf.shape[1] < cfg.frames_per_token or x_btf.shape[1] % cfg.frames_per_token:
        raise ShapeError(
            f"sequence length {x_btf.shape[1]} must be a positive multiple of the "
            f"downsampling window {cfg.frames_per_token} frames"
        )


def init_params(cfg: TokenizerConfig, *, key: jax.Array) -> dict:
    """Fresh parameters for ``cfg``."""
    x = jnp.zeros((1, cfg.window, cfg.feature_dim), jnp.float32)
    return MotionTokenizer(cfg).init(key, x)["params"]


def reconstruct(params: dict, x_btf: jax.Array, cfg: TokenizerConfig) -> tuple[jax.Array, jax.Array]:
    """(x_hat [B, T, F], ids [B, N]) for a window-aligned batch."""
    return MotionTokenizer(cfg).apply({"params": params}, x_btf)


def encode(params: dict, x_btf: jax.Array, cfg: TokenizerConfig) -> jax.Array:
    """Token ids [B, N] of x [B, T, F]."""
    m = MotionTokenizer(cfg)
    z = m.apply({"params": params}, x_btf, method=MotionTokenizer.encode_latent)
    return cfg.fsq.codes_to_indices(cfg.fsq.quantize(z))


def decode(params: dict, ids_bn: jax.Array, cfg: TokenizerConfig) -> jax.Array:
    """Normalised features [B, N * frames_per_token, F] of token ids [B, N]."""
    zhat = cfg.fsq.indices_to_codes(ids_bn)
    return MotionTokenizer(cfg).apply({"params": params}, zhat, method=MotionTokenizer.decode_codes)


def context_frames(cfg: TokenizerConfig) -> int:
    """Frames past a clip's end that can change its reconstruction or codes (an upper bound).

    A conv of kernel k and dilation d reaches ``(k - 1) // 2 * d`` positions to
    the right (the stride-2 conv two), each position ``2**i`` frames at its
    resolution; the Haar blocks on the way in and out and the token grid add
    one block each. A clip edge-padded by at least this many frames gives the
    same codes and reconstruction however much further its batch is padded,
    so a clip's result does not depend on the other clips it is batched with.
    60 frames for the tiny preset (a plain Haar level; measured need 28) and
    191 for small, whose CPU design (CDF 5/3 lifting, the wavelet level's
    stacks, the output filter) adds 59 to the 132 of a plain Haar level at its
    sizes (measured need 100); ``tests/test_tokenizer*.py`` check the bound.
    """
    fine = 2**cfg.wavelet_levels
    stack = sum(cfg.dilation_growth**i for i in range(cfg.depth))  # one residual stack, in positions
    reach = fine + 2 * fine  # the encoder's first conv, the decoder's last two
    for i in range(cfg.down_t):
        scale = fine * 2**i
        reach += 2 * scale + stack * 2 * scale  # encoder: strided conv, then a stack at half the rate
        reach += stack * 2 * scale + scale  # decoder: a stack, then the conv after upsampling
    reach += 2 * fine * 2**cfg.down_t  # the encoder's last conv, the decoder's first
    reach += 2 * stack * fine * _wavelet_stacks(cfg)  # the wavelet levels' stacks, encoder and decoder
    if cfg.wavelet_family == "cdf53":  # lifting reaches 2 samples per level each way
        reach += 4 * sum(2**k for k in range(cfg.wavelet_levels))
    if cfg.refine_width:
        reach += 6  # conv k3, blocks of dilation 1 and 3, conv k3
    reach += len(smoothing_kernel(cfg.output_smoothing_frames)) // 2
    return reach + 2 * fine + cfg.frames_per_token
