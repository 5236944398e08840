"""The wavelet FSQ motion tokenizer in PyTorch: codes [B, N] <-> 272-d features [B, T, F], and joints.

Stage: export (the torch runtime). A plain ``torch.nn.Module`` with the
architecture of ``mm_jax.tokenizer.model`` (Haar or CDF 5/3 DWT along time,
times ``wavelet_gain`` per level -> conv encoder (the wavelet levels' residual
stacks, then ``down_t`` stride-2 blocks) -> FSQ -> conv decoder with nearest
upsampling -> inverse DWT -> optional full-rate refinement head -> optional
fixed Gaussian low-pass), its submodules named as the Flax modules are
(``decoder.ResStack_0.ResBlock_1.Conv_0``, ``encoder.wavelet_stack_0``,
``refine``) so the exported weights load with ``strict=True``. Activations are
kept [B, T, C] (Flax's layout) and transposed around each ``Conv1d``; 'SAME'
padding is Flax's (the extra pad of an even kernel on the right); LayerNorm
eps is Flax's 1e-6. The config is the exported ``TokenizerConfig`` dict;
fields missing from it take :data:`CONFIG_DEFAULTS` (exports made before they
existed) and a field or value this port does not know is a ``ValueError``.

Also: the normaliser (``normalizer.mean``/``normalizer.std``, [F]) and
:func:`joints_from_features`, the root integration of ``mm_jax.motion.features``
(features [T, 272] -> joints [T, 22, 3], no IK). Imports torch, numpy and safetensors only.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import torch
from torch import nn

CONFIG_FILE = "motion_tokenizer.json"
WEIGHTS_FILE = "motion_tokenizer.safetensors"
LN_EPS = 1e-6  # flax.linen.LayerNorm's default
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT2 = math.sqrt(2.0)
WAVELET_FAMILIES = ("haar", "cdf53")
# The TokenizerConfig fields this port implements; the later ones with the value that leaves them off.
CONFIG_REQUIRED = ("feature_dim", "width", "depth", "dilation_growth", "down_t", "wavelet_levels", "fsq_levels")
CONFIG_DEFAULTS = {"window": 96, "wavelet_family": "haar", "wavelet_gain": 1.0, "wavelet_res_stacks": False,
                   "refine_width": 0, "latent_kernel": 3, "encoder_dilations_descending": False,
                   "output_smoothing_frames": 0.0, "foot_lock": False}  # foot_lock: applied by pipeline.py


class _Conv(nn.Conv1d):
    """Conv1d on [B, T, C] activations with Flax's padding ('SAME' or explicit)."""

    extra_right = 0  # Flax 'SAME' with an even kernel pads one more on the right than on the left

    def forward(self, x_btc: torch.Tensor) -> torch.Tensor:
        x_bct = x_btc.transpose(1, 2)
        if self.extra_right:
            x_bct = nn.functional.pad(x_bct, (0, self.extra_right))
        return super().forward(x_bct).transpose(1, 2)


def _same(cin: int, cout: int, k: int, dilation: int = 1) -> _Conv:
    total = dilation * (k - 1)
    conv = _Conv(cin, cout, k, dilation=dilation, padding=total // 2)
    conv.extra_right = total - 2 * (total // 2)
    return conv


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


def _wavelet_stacks(cfg: dict) -> int:
    return cfg["wavelet_levels"] if cfg["wavelet_res_stacks"] else 0


class Encoder(nn.Module):
    def __init__(self, cfg: dict, in_channels: int) -> None:
        super().__init__()
        w, n, rev = cfg["width"], cfg["down_t"], cfg["encoder_dilations_descending"]
        self.n, self.stacks = n, _wavelet_stacks(cfg)
        self.Conv_0 = _same(in_channels, w, 3)
        for i in range(self.stacks):
            self.add_module(f"wavelet_stack_{i}", ResStack(w, cfg["depth"], cfg["dilation_growth"], reverse=rev))
        for i in range(n):
            self.add_module(f"Conv_{1 + i}", _Conv(w, w, 4, stride=2, padding=1))
            self.add_module(f"ResStack_{i}", ResStack(w, cfg["depth"], cfg["dilation_growth"], reverse=rev))
        self.LayerNorm_0 = nn.LayerNorm(w, eps=LN_EPS)
        self.add_module(f"Conv_{n + 1}", _same(w, len(cfg["fsq_levels"]), cfg["latent_kernel"]))

    def forward(self, x_btc: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.Conv_0(x_btc))
        for i in range(self.stacks):
            h = getattr(self, f"wavelet_stack_{i}")(h)
        for i in range(self.n):
            h = getattr(self, f"ResStack_{i}")(getattr(self, f"Conv_{1 + i}")(h))
        return getattr(self, f"Conv_{self.n + 1}")(torch.relu(self.LayerNorm_0(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: dict, out_channels: int) -> None:
        super().__init__()
        w, n = cfg["width"], cfg["down_t"]
        self.n, self.stacks = n, _wavelet_stacks(cfg)
        self.Conv_0 = _same(len(cfg["fsq_levels"]), w, cfg["latent_kernel"])
        for i in range(n):
            self.add_module(f"ResStack_{i}", ResStack(w, cfg["depth"], cfg["dilation_growth"], reverse=True))
            self.add_module(f"Conv_{1 + i}", _same(w, w, 3))
        for i in range(self.stacks):
            self.add_module(f"wavelet_stack_{i}", ResStack(w, cfg["depth"], cfg["dilation_growth"], reverse=True))
        self.add_module(f"Conv_{n + 1}", _same(w, w, 3))
        self.add_module(f"Conv_{n + 2}", _same(w, out_channels, 3))

    def forward(self, z_bnd: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.Conv_0(z_bnd))
        for i in range(self.n):
            h = getattr(self, f"ResStack_{i}")(h).repeat_interleave(2, dim=1)
            h = getattr(self, f"Conv_{1 + i}")(h)
        for i in range(self.stacks):
            h = getattr(self, f"wavelet_stack_{i}")(h)
        h = torch.relu(getattr(self, f"Conv_{self.n + 1}")(h))
        return getattr(self, f"Conv_{self.n + 2}")(h)


def _pad_frames(x_btc: torch.Tensor, levels: int) -> tuple[torch.Tensor, int]:
    """x edge-padded to a multiple of 2^L frames, and the packed length N."""
    b, t, c = x_btc.shape
    n = -(-t // (1 << levels))
    return torch.cat([x_btc, x_btc[:, -1:].expand(b, n * (1 << levels) - t, c)], dim=1), n


def _unpack(packed: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[B, N, C*2^L] -> [cA_L, cD_L, ..., cD_1] (``mm_jax.wavelet.unpack``)."""
    b, n, width = packed.shape
    c = width >> levels
    bands, start = [packed[:, :, :c]], c
    for k in range(levels, 0, -1):
        group = 1 << (levels - k)
        bands.append(packed[:, :, start:start + group * c].reshape(b, n * group, c))
        start += group * c
    return bands


def _interleave(even: torch.Tensor, odd: torch.Tensor) -> torch.Tensor:
    b, n, c = even.shape
    return torch.stack([even, odd], dim=2).reshape(b, 2 * n, c)


def cdf53_analysis(x_btc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One CDF 5/3 lifting level (``mm_jax.wavelet_cdf53.analysis``): [B, 2N, C] -> (cA, cD)."""
    even, odd = x_btc[:, 0::2], x_btc[:, 1::2]
    even_next = torch.cat([even[:, 1:], even[:, -1:]], dim=1)
    d = odd - 0.5 * (even + even_next)
    d_prev = torch.cat([d[:, :1], d[:, :-1]], dim=1)
    s = even + 0.25 * (d_prev + d)
    return s * _SQRT2, -d / _SQRT2


def cdf53_synthesis(ca_btc: torch.Tensor, cd_btc: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`cdf53_analysis` (``mm_jax.wavelet_cdf53.synthesis``)."""
    s, d = ca_btc / _SQRT2, -cd_btc * _SQRT2
    d_prev = torch.cat([d[:, :1], d[:, :-1]], dim=1)
    even = s - 0.25 * (d_prev + d)
    even_next = torch.cat([even[:, 1:], even[:, -1:]], dim=1)
    return _interleave(even, d + 0.5 * (even + even_next))


def haar_analysis(x_btc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    even, odd = x_btc[:, 0::2], x_btc[:, 1::2]
    return (even + odd) * _INV_SQRT2, (even - odd) * _INV_SQRT2


def haar_synthesis(ca_btc: torch.Tensor, cd_btc: torch.Tensor) -> torch.Tensor:
    return _interleave((ca_btc + cd_btc) * _INV_SQRT2, (ca_btc - cd_btc) * _INV_SQRT2)


_LEVELS = {"haar": (haar_analysis, haar_synthesis), "cdf53": (cdf53_analysis, cdf53_synthesis)}


def dwt(x_btc: torch.Tensor, levels: int, family: str = "haar") -> torch.Tensor:
    """Packed DWT [B, T, C] -> [B, ceil(T/2^L), C*2^L] (``mm_jax.wavelet.dwt``'s layout; Haar or CDF 5/3)."""
    if levels == 0:
        return x_btc
    analysis = _LEVELS[family][0]
    x_btc, n = _pad_frames(x_btc, levels)
    details, ca = [], x_btc
    for _ in range(levels):
        ca, cd = analysis(ca)
        details.append(cd)
    b = x_btc.shape[0]
    return torch.cat([band.reshape(b, n, -1) for band in [ca] + details[::-1]], dim=2)


def idwt(packed: torch.Tensor, levels: int, length: int, family: str = "haar") -> torch.Tensor:
    """Inverse of :func:`dwt`: [B, N, C*2^L] -> [B, length, C]."""
    if levels == 0:
        return packed
    synthesis = _LEVELS[family][1]
    bands = _unpack(packed, levels)
    x = bands[0]
    for cd in bands[1:]:
        x = synthesis(x, cd)
    return x[:, :length]


def haar_dwt(x_btc: torch.Tensor, levels: int) -> torch.Tensor:
    """Packed Haar DWT (:func:`dwt` with ``family='haar'``)."""
    return dwt(x_btc, levels, "haar")


def haar_idwt(packed: torch.Tensor, levels: int, length: int) -> torch.Tensor:
    """Inverse of :func:`haar_dwt`."""
    return idwt(packed, levels, length, "haar")


class RefineHead(nn.Module):
    """x + conv(k3) . ResBlock(d1) . ResBlock(d3) . LayerNorm . ReLU . conv(k3) (``RefineHead`` of the JAX model)."""

    def __init__(self, width: int, out_channels: int) -> None:
        super().__init__()
        self.Conv_0 = _same(out_channels, width, 3)
        self.ResBlock_0, self.ResBlock_1 = ResBlock(width, 1), ResBlock(width, 3)
        self.LayerNorm_0 = nn.LayerNorm(width, eps=LN_EPS)
        self.Conv_1 = _same(width, out_channels, 3)

    def forward(self, x_btf: torch.Tensor) -> torch.Tensor:
        h = self.ResBlock_1(self.ResBlock_0(self.Conv_0(x_btf)))
        return x_btf + self.Conv_1(torch.relu(self.LayerNorm_0(h)))


def smoothing_kernel(sigma: float) -> np.ndarray:
    """Normalised Gaussian taps [2r + 1], r = ceil(3 sigma) (``[1.]`` for sigma 0); the JAX model's."""
    if sigma <= 0:
        return np.ones(1, np.float32)
    r = math.ceil(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def smooth_time(x_btf: torch.Tensor, sigma: float) -> torch.Tensor:
    """x [B, T, F] convolved along T with :func:`smoothing_kernel`, edge-padded (same length)."""
    k = smoothing_kernel(sigma)
    r = len(k) // 2
    if r == 0:
        return x_btf
    t = x_btf.shape[1]
    xp = torch.cat([x_btf[:, :1].expand(-1, r, -1), x_btf, x_btf[:, -1:].expand(-1, r, -1)], dim=1)
    out = float(k[0]) * xp[:, 0:t]
    for i in range(1, len(k)):
        out = out + float(k[i]) * xp[:, i:i + t]
    return out


def check_config(cfg: dict) -> dict:
    """The config with :data:`CONFIG_DEFAULTS` filled in; ValueError for a field or value this port lacks."""
    missing = [k for k in CONFIG_REQUIRED if k not in cfg]
    unknown = sorted(set(cfg) - set(CONFIG_REQUIRED) - set(CONFIG_DEFAULTS))
    if missing or unknown:
        raise ValueError(f"motion tokenizer config: missing fields {missing}, fields this torch port does not "
                         f"implement {unknown}")
    out = {**CONFIG_DEFAULTS, **cfg}
    if out["wavelet_family"] not in WAVELET_FAMILIES:
        raise ValueError(f"motion tokenizer config: wavelet_family={out['wavelet_family']!r} is not one of "
                         f"{WAVELET_FAMILIES}")
    return out


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
    """Encoder + FSQ + decoder around the wavelet transform (+ refinement head, output low-pass),
    with the normaliser of its training data."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.cfg = cfg = check_config(cfg)
        packed = cfg["feature_dim"] << cfg["wavelet_levels"]
        self.encoder = Encoder(cfg, packed)
        self.decoder = Decoder(cfg, packed)
        if cfg["refine_width"]:
            self.refine = RefineHead(cfg["refine_width"], cfg["feature_dim"])
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
        z = self.encoder(self.analyse(x_btf.float()))
        return self.fsq.codes_to_indices(self.fsq.quantize(z))

    @torch.no_grad()
    def decode(self, ids_bn: torch.Tensor) -> torch.Tensor:
        """Ids [B, N] -> normalised features [B, N * frames_per_token, F]."""
        x_hat = self.synthesise(self.decoder(self.fsq.indices_to_codes(ids_bn)),
                                ids_bn.shape[1] * self.frames_per_token)
        if self.cfg["refine_width"]:
            x_hat = self.refine(x_hat)
        return smooth_time(x_hat, self.cfg["output_smoothing_frames"])

    def analyse(self, x_btf: torch.Tensor) -> torch.Tensor:
        """The encoder's input: ``wavelet_gain**L`` x the packed DWT [B, T/2^L, F*2^L]."""
        c = self.cfg
        packed = dwt(x_btf, c["wavelet_levels"], c["wavelet_family"])
        return packed * c["wavelet_gain"]**c["wavelet_levels"] if c["wavelet_levels"] else packed

    def synthesise(self, packed: torch.Tensor, length: int) -> torch.Tensor:
        """Inverse of :meth:`analyse`: [B, N, F*2^L] -> [B, length, F]."""
        c = self.cfg
        if c["wavelet_levels"]:
            packed = packed / c["wavelet_gain"]**c["wavelet_levels"]
        return idwt(packed, c["wavelet_levels"], length, c["wavelet_family"])

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
