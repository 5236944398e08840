"""The wavelet FSQ motion tokenizer in PyTorch: codes [B, N] <-> 272-d features [B, T, F], and joints.

Stage: export (the torch runtime). A plain ``torch.nn.Module`` with the
architecture of ``mm_jax.tokenizer.model`` (Haar DWT along time -> conv
encoder with ``down_t`` stride-2 blocks -> FSQ -> conv decoder with nearest
upsampling -> inverse DWT), its submodules named as the Flax modules are
(``decoder.ResStack_0.ResBlock_1.Conv_0``) so the exported weights load with
``strict=True``. Activations are kept [B, T, C] (Flax's layout) and
transposed around each ``Conv1d``; LayerNorm eps is Flax's 1e-6.

Also: the normaliser (``normalizer.mean``/``normalizer.std``, [F]) and
:func:`joints_from_features`, the root integration of ``mm_jax.motion.features``
(features [T, 272] -> joints [T, 22, 3], no IK). Imports torch and safetensors only.
"""

from __future__ import annotations

import json
import math
import pathlib

import torch
from torch import nn

CONFIG_FILE = "motion_tokenizer.json"
WEIGHTS_FILE = "motion_tokenizer.safetensors"
LN_EPS = 1e-6  # flax.linen.LayerNorm's default
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


class _Conv(nn.Conv1d):
    """Conv1d on [B, T, C] activations with Flax's padding ('SAME' or explicit)."""

    def forward(self, x_btc: torch.Tensor) -> torch.Tensor:
        return super().forward(x_btc.transpose(1, 2)).transpose(1, 2)


def _same(cin: int, cout: int, k: int, dilation: int = 1) -> _Conv:
    return _Conv(cin, cout, k, dilation=dilation, padding=dilation * (k - 1) // 2)


class ResBlock(nn.Module):
    """LayerNorm -> ReLU -> dilated conv(k3) -> LayerNorm -> ReLU -> conv(k1), residual."""

    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.LayerNorm_0, self.LayerNorm_1 = nn.LayerNorm(width, eps=LN_EPS), nn.LayerNorm(width, eps=LN_EPS)
        self.Conv_0, self.Conv_1 = _same(width, width, 3, dilation), _same(width, width, 1)

    def forward(self, x_btc: torch.Tensor) -> torch.Tensor:
        h = self.Conv_0(torch.relu(self.LayerNorm_0(x_btc)))
        return x_btc + self.Conv_1(torch.relu(self.LayerNorm_1(h)))


class ResStack(nn.Module):
    def __init__(self, width: int, depth: int, growth: int, reverse: bool = False) -> None:
        super().__init__()
        dilations = [growth**i for i in range(depth)]
        for j, d in enumerate(reversed(dilations) if reverse else dilations):
            self.add_module(f"ResBlock_{j}", ResBlock(width, d))

    def forward(self, x_btc: torch.Tensor) -> torch.Tensor:
        for block in self.children():
            x_btc = block(x_btc)
        return x_btc


class Encoder(nn.Module):
    def __init__(self, cfg: dict, in_channels: int) -> None:
        super().__init__()
        w, n = cfg["width"], cfg["down_t"]
        self.n = n
        self.Conv_0 = _same(in_channels, w, 3)
        for i in range(n):
            self.add_module(f"Conv_{1 + i}", _Conv(w, w, 4, stride=2, padding=1))
            self.add_module(f"ResStack_{i}", ResStack(w, cfg["depth"], cfg["dilation_growth"]))
        self.LayerNorm_0 = nn.LayerNorm(w, eps=LN_EPS)
        self.add_module(f"Conv_{n + 1}", _same(w, len(cfg["fsq_levels"]), 3))

    def forward(self, x_btc: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.Conv_0(x_btc))
        for i in range(self.n):
            h = getattr(self, f"ResStack_{i}")(getattr(self, f"Conv_{1 + i}")(h))
        return getattr(self, f"Conv_{self.n + 1}")(torch.relu(self.LayerNorm_0(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: dict, out_channels: int) -> None:
        super().__init__()
        w, n = cfg["width"], cfg["down_t"]
        self.n = n
        self.Conv_0 = _same(len(cfg["fsq_levels"]), w, 3)
        for i in range(n):
            self.add_module(f"ResStack_{i}", ResStack(w, cfg["depth"], cfg["dilation_growth"], reverse=True))
            self.add_module(f"Conv_{1 + i}", _same(w, w, 3))
        self.add_module(f"Conv_{n + 1}", _same(w, w, 3))
        self.add_module(f"Conv_{n + 2}", _same(w, out_channels, 3))

    def forward(self, z_bnd: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.Conv_0(z_bnd))
        for i in range(self.n):
            h = getattr(self, f"ResStack_{i}")(h).repeat_interleave(2, dim=1)
            h = getattr(self, f"Conv_{1 + i}")(h)
        h = torch.relu(getattr(self, f"Conv_{self.n + 1}")(h))
        return getattr(self, f"Conv_{self.n + 2}")(h)


def haar_dwt(x_btc: torch.Tensor, levels: int) -> torch.Tensor:
    """Packed Haar DWT [B, T, C] -> [B, ceil(T/2^L), C*2^L] (``mm_jax.wavelet.dwt``'s layout)."""
    if levels == 0:
        return x_btc
    b, t, c = x_btc.shape
    n = -(-t // (1 << levels))
    x_btc = torch.cat([x_btc, x_btc[:, -1:].expand(b, n * (1 << levels) - t, c)], dim=1)
    details, ca = [], x_btc
    for _ in range(levels):
        even, odd = ca[:, 0::2], ca[:, 1::2]
        ca, cd = (even + odd) * _INV_SQRT2, (even - odd) * _INV_SQRT2
        details.append(cd)
    return torch.cat([band.reshape(b, n, -1) for band in [ca] + details[::-1]], dim=2)


def haar_idwt(packed: torch.Tensor, levels: int, length: int) -> torch.Tensor:
    """Inverse of :func:`haar_dwt`: [B, N, C*2^L] -> [B, length, C]."""
    if levels == 0:
        return packed
    b, n, width = packed.shape
    c = width >> levels
    x, start = packed[:, :, :c], c
    for k in range(levels, 0, -1):
        group = 1 << (levels - k)
        cd = packed[:, :, start:start + group * c].reshape(b, n * group, c)
        start += group * c
        even, odd = (x + cd) * _INV_SQRT2, (x - cd) * _INV_SQRT2
        x = torch.stack([even, odd], dim=2).reshape(b, 2 * n * group, c)
    return x[:, :length]


class FSQ(nn.Module):
    """Finite scalar quantisation (``mm_jax.fsq.FSQ``, eps 1e-3): latents <-> grid codes <-> ids."""

    def __init__(self, levels: list[int], eps: float = 1e-3) -> None:
        super().__init__()
        self.levels, self.eps = list(levels), eps
        self.register_buffer("levels_t", torch.tensor(levels, dtype=torch.int64), persistent=False)
        self.register_buffer("basis", torch.tensor([math.prod(levels[:i]) for i in range(len(levels))]),
                             persistent=False)
        half = torch.tensor([lv // 2 for lv in levels], dtype=torch.float32)
        self.register_buffer("half_width", half, persistent=False)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        lv = self.levels_t.float()
        half_l = (lv - 1.0) * (1.0 + self.eps) / 2.0
        offset = (self.levels_t % 2 == 0).float() * 0.5
        bounded = torch.tanh(z + torch.atanh(offset / half_l)) * half_l - offset
        return torch.round(bounded) / self.half_width

    def codes_to_indices(self, zhat: torch.Tensor) -> torch.Tensor:
        digits = torch.round(zhat.float() * self.half_width + self.half_width).long()
        return (digits * self.basis).sum(dim=-1)

    def indices_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        digits = (ids.long()[..., None] // self.basis) % self.levels_t
        return (digits.float() - self.half_width) / self.half_width


class MotionTokenizer(nn.Module):
    """Encoder + FSQ + decoder around the Haar transform, with the normaliser of its training data."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.cfg = dict(cfg)
        packed = cfg["feature_dim"] << cfg["wavelet_levels"]
        self.encoder = Encoder(cfg, packed)
        self.decoder = Decoder(cfg, packed)
        self.fsq = FSQ(cfg["fsq_levels"])
        self.normalizer = nn.Module()
        self.normalizer.register_buffer("mean", torch.zeros(cfg["feature_dim"]))
        self.normalizer.register_buffer("std", torch.ones(cfg["feature_dim"]))

    @property
    def frames_per_token(self) -> int:
        return 2 ** (self.cfg["wavelet_levels"] + self.cfg["down_t"])

    @classmethod
    def from_export(cls, export_dir: str | pathlib.Path) -> "MotionTokenizer":
        from safetensors.torch import load_file

        root = pathlib.Path(export_dir)
        model = cls(json.loads((root / CONFIG_FILE).read_text())["config"])
        model.load_state_dict(load_file(str(root / WEIGHTS_FILE)), strict=True)
        return model.eval()

    @torch.no_grad()
    def encode(self, x_btf: torch.Tensor) -> torch.Tensor:
        """Normalised features [B, T, F] (T a multiple of ``frames_per_token``) -> ids [B, N]."""
        z = self.encoder(haar_dwt(x_btf.float(), self.cfg["wavelet_levels"]))
        return self.fsq.codes_to_indices(self.fsq.quantize(z))

    @torch.no_grad()
    def decode(self, ids_bn: torch.Tensor) -> torch.Tensor:
        """Ids [B, N] -> normalised features [B, N * frames_per_token, F]."""
        packed = self.decoder(self.fsq.indices_to_codes(ids_bn))
        return haar_idwt(packed, self.cfg["wavelet_levels"], ids_bn.shape[1] * self.frames_per_token)

    def denormalize(self, x_btf: torch.Tensor) -> torch.Tensor:
        return x_btf * self.normalizer.std + self.normalizer.mean


def _rotate_y(yaw: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(yaw)[..., None], torch.sin(yaw)[..., None]
    x, y, z = v[..., 0:1], v[..., 1:2], v[..., 2:3]
    return torch.cat([c * x + s * z, y, -s * x + c * z], dim=-1)


def joints_from_features(f_tf: torch.Tensor) -> torch.Tensor:
    """Joint positions [T, 22, 3] from denormalised features [T, 272] (root integration, no IK)."""
    if f_tf.ndim != 2 or f_tf.shape[1] != 272:
        raise ValueError(f"features must be [T, 272], got {tuple(f_tf.shape)}")
    d6 = f_tf[:, 2:8]
    dh = torch.atan2(d6[:, 2], d6[:, 0])
    dh = torch.cat([dh.new_zeros(1), dh[1:]])
    h = dh.cumsum(0)
    vel = f_tf[:, 0:2]
    step = torch.stack([vel[:, 0], torch.zeros_like(vel[:, 0]), vel[:, 1]], dim=-1)
    step = torch.cat([step.new_zeros(1, 3), step[1:]])
    prev_h = torch.cat([h[:1], h[:-1]])
    ground = _rotate_y(-prev_h, step).cumsum(0)
    local = f_tf[:, 8:74].reshape(-1, 22, 3)
    return _rotate_y(-h[:, None], local) + ground[:, None, :]
