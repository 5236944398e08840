"""PyTorch CPU port of the decoder's train step, the peer of bench_train_step.py.

Usage (torch==2.13.0 CPU, installed in ``.venv`` by the [torch] extra)::

    .venv/bin/python benchmarks/bench_train_step_torch.py [--presets tiny,small] [--batch 8]
        [--text-tokens 32] [--motion-tokens 128] [--steps 10] [--compile] [--json]

A faithful eager fp32 port of ``mm_jax.model`` (no mm_jax/jax import; the
preset sizes are copied below and checked against the same formulas): text
projection C -> D, embedding, L pre-norm blocks (RMSNorm, rotate-half RoPE on
padding-neutral positions, grouped-query attention with the mixed
[text | causal motion] mask as an explicit masked softmax, SwiGLU with fused
gate/up, no biases, weights [out, in]), final RMSNorm, untied head with the
padded vocab columns at -1e30, next-token cross-entropy + accuracy on real
targets, ``torch.optim.AdamW(lr=3e-4, weight_decay=0.1, fused=True)`` (optax
defaults otherwise). Timed like the JAX side: median of ``--steps`` steps after
2 warm-ups on the same batch shapes. ``--compile`` adds a ``torch.compile``
row. Prints a table, or one JSON line with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time

import torch
from timing import time_fn  # beside this script
import torch.nn.functional as F

# Copied from mm_jax.model.config.PRESETS (tiny, small): L, H, K, D, fsq levels; C = 384.
PRESETS = {
    "tiny": dict(layers=2, heads=4, kv_heads=2, width=128, codebook=8 * 5 * 5 * 5),
    "small": dict(layers=4, heads=8, kv_heads=4, width=256, codebook=8 ** 3 * 5 ** 3),
}
TEXT_DIM, NEG_INF = 384, -1e30


class Cfg:
    def __init__(self, layers, heads, kv_heads, width, codebook):
        self.L, self.H, self.K, self.D = layers, heads, kv_heads, width
        self.G, self.E = heads // kv_heads, width // heads
        self.M = 256 * math.ceil(8 * width / 3 / 256)
        self.V = codebook + 3
        self.Vp = 128 * math.ceil(self.V / 128)
        self.bos, self.pad = codebook, codebook + 2

    def flops_per_token(self, t: int) -> float:  # same formula as ModelConfig.flops_per_token
        layer = (self.H + 2 * self.K) * self.E * self.D + self.D * self.H * self.E + 3 * self.M * self.D
        return float(6 * (self.L * layer + self.Vp * self.D) + 12 * self.L * self.H * self.E * t)


def init_params(c: Cfg) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = lambda *shape, std=0.02: (torch.randn(*shape, generator=g) * std).requires_grad_()
    out_std = 0.02 / (2 * c.L) ** 0.5
    p = {"text_proj": n(c.D, TEXT_DIM, std=TEXT_DIM ** -0.5), "embed": n(c.Vp, c.D),
         "final_norm": torch.ones(c.D, requires_grad=True), "head": n(c.Vp, c.D)}
    for i in range(c.L):
        p[f"{i}.attn_norm"] = torch.ones(c.D, requires_grad=True)
        p[f"{i}.qkv"] = n(c.K * (c.G + 2) * c.E, c.D)        # [K, G+2, E, D] flattened
        p[f"{i}.out"] = n(c.D, c.H * c.E, std=out_std)       # [D, H, E] flattened
        p[f"{i}.mlp_norm"] = torch.ones(c.D, requires_grad=True)
        p[f"{i}.gate_up"] = n(2 * c.M, c.D)                  # [2, M, D] flattened
        p[f"{i}.down"] = n(c.D, c.M, std=out_std)
    return p


def rms(x, scale, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * scale


def rope(x, sin, cos):  # x [B, T, ..., E]; sin/cos [B, T, 1.., E/2]
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def masks_and_angles(c: Cfg, text_mask, motion_mask):
    b, s = text_mask.shape
    n = motion_mask.shape[1]
    count = torch.cumsum(torch.cat([text_mask, motion_mask], 1).int(), 1)
    pos = (count - 1).clamp(min=0).float()
    text_key = torch.cat([text_mask, torch.zeros_like(motion_mask)], 1)
    motion_key = torch.cat([torch.zeros_like(text_mask), motion_mask], 1)
    idx = torch.arange(s + n)
    causal = (idx[None, :] <= idx[:, None]) & (idx >= s)[:, None]
    mask = text_key[:, None, :] | (causal[None] & motion_key[:, None, :])       # [B, T, T]
    inv = 10000.0 ** (-torch.arange(c.E // 2, dtype=torch.float32) * 2 / c.E)
    ang = pos[..., None] * inv                                                  # [B, T, E/2]
    return mask, ang.sin(), ang.cos()


def forward_loss(c: Cfg, p, text, text_mask, motion, motion_mask):
    b, s = text_mask.shape
    t = s + motion.shape[1]
    x = torch.cat([F.linear(text, p["text_proj"]), p["embed"][motion]], 1)      # [B, T, D]
    mask, sin, cos = masks_and_angles(c, text_mask, motion_mask)
    sin4, cos4 = sin[:, :, None, None], cos[:, :, None, None]                   # [B, T, 1, 1, E/2]
    mask5 = mask[:, None, None]                                                 # [B, 1, 1, T, T]
    for i in range(c.L):
        h = rms(x, p[f"{i}.attn_norm"])
        qkv = F.linear(h, p[f"{i}.qkv"]).view(b, t, c.K, c.G + 2, c.E)
        q = rope(qkv[:, :, :, :c.G], sin4, cos4)                                # [B, T, K, G, E]
        k = rope(qkv[:, :, :, c.G], sin4[:, :, 0], cos4[:, :, 0])               # [B, T, K, E]
        v = qkv[:, :, :, c.G + 1]
        scores = torch.einsum("bqkge,bske->bkgqs", q, k) * c.E ** -0.5
        probs = torch.softmax(scores.masked_fill(~mask5, NEG_INF), dim=-1)
        o = torch.einsum("bkgqs,bske->bqkge", probs, v).reshape(b, t, c.D)
        x = x + F.linear(o, p[f"{i}.out"])
        gu = F.linear(rms(x, p[f"{i}.mlp_norm"]), p[f"{i}.gate_up"]).view(b, t, 2, c.M)
        x = x + F.linear(F.silu(gu[:, :, 0]) * gu[:, :, 1], p[f"{i}.down"])
    logits = F.linear(rms(x[:, s:], p["final_norm"]), p["head"])              # [B, N, Vp]
    logits = logits.masked_fill(torch.arange(c.Vp) >= c.V, NEG_INF)[:, :-1]
    target, w = motion[:, 1:], motion_mask[:, 1:].float()
    nll = -torch.log_softmax(logits, -1).gather(-1, target[..., None])[..., 0]
    denom = w.sum().clamp(min=1.0)
    acc = ((logits.argmax(-1) == target).float() * w).sum() / denom
    return (nll * w).sum() / denom, acc


def batch(c: Cfg, b: int, s: int, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    text_len = torch.randint(min(8, s), s + 1, (b,), generator=g)
    motion_len = torch.randint(n // 2, n + 1, (b,), generator=g)
    text_mask = torch.arange(s)[None] < text_len[:, None]
    motion_mask = torch.arange(n)[None] < motion_len[:, None]
    text = torch.randn(b, s, TEXT_DIM, generator=g) * text_mask[..., None]
    motion = torch.where(motion_mask, torch.randint(0, c.bos, (b, n), generator=g), c.pad)
    motion[:, 0] = c.bos
    return text, text_mask, motion, motion_mask


def matmul_flops(n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / time_fn(lambda: a @ b, 10)


def make_step(name: str, b: int, s: int, n: int, impl: str) -> tuple[object, float]:
    """(a blocking ``step()`` of ``impl`` ("eager" or "compile") on a fixed batch, seconds of its first call)."""
    c = Cfg(**PRESETS[name])
    data = batch(c, b, s, n)
    p = init_params(c)
    opt = torch.optim.AdamW(list(p.values()), lr=3e-4, weight_decay=0.1, fused=True)
    fl = forward_loss if impl == "eager" else torch.compile(forward_loss)

    def step():
        opt.zero_grad(set_to_none=True)
        loss, _ = fl(c, p, *data)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    step()
    return step, time.perf_counter() - t0


def train_rows(name: str, b: int, s: int, n: int, steps: int, compile_: bool) -> list[dict]:
    c = Cfg(**PRESETS[name])
    rows = []
    for impl in ["eager"] + (["compile"] if compile_ else []):
        step, first_s = make_step(name, b, s, n, impl)
        sec = time_fn(step, steps)
        mm = matmul_flops()  # right after the steps: same machine load
        tok_s = b * (s + n) / sec
        rows.append({"preset": name, "impl": f"torch:{impl}", "step_ms": sec * 1e3,
                     "tokens_per_s": tok_s, "flop_s": c.flops_per_token(s + n) * tok_s,
                     "compile_s": first_s, "matmul_flop_s": mm, "load": os.getloadavg()[0]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--text-tokens", type=int, default=32)
    parser.add_argument("--motion-tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [r for name in args.presets.split(",") for r in
            train_rows(name, args.batch, args.text_tokens, args.motion_tokens, args.steps, args.compile)]
    mm = statistics.median(r["matmul_flop_s"] for r in rows)
    if args.json:
        print(json.dumps({"rows": rows, "matmul_flop_s": mm, "threads": torch.get_num_threads(),
                          "load": os.getloadavg()}))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, matmul {mm / 1e9:.0f} GFLOP/s")
    for r in rows:
        print(f"{r['preset']:6} {r['impl']:14} {r['step_ms']:8.1f} ms {r['tokens_per_s']:8.0f} tok/s "
              f"{r['flop_s'] / 1e9:7.1f} GFLOP/s "
              f"({100 * r['flop_s'] / r['matmul_flop_s']:.1f}% of matmul, load {r['load']:.2f})")


if __name__ == "__main__":
    main()
