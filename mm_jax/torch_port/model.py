"""The text-to-motion decoder in PyTorch: ``transformers.LlamaModel`` plus a text projection and a motion head.

Stage: export (the torch runtime). Inputs: text features ``text_bsc`` [B, S, C]
with ``text_mask_bs`` [B, S] (True = real token) and motion ids ``motion_bn``
[B, N] with ``motion_mask_bn`` [B, N]. Output: logits [B, N, V] float32 over
the real motion vocabulary (codes, BOS, EOS, PAD; the JAX model's padded
columns are not exported).

The layout follows ``LlamaForCausalLM``: ``model.*`` is a stock ``LlamaModel``
whose ``embed_tokens`` is the motion embedding, ``lm_head`` the motion head,
plus ``text_proj`` (C -> D, no bias). The model is driven with
``inputs_embeds = [text_proj(text) | embed_tokens(motion)]``, an additive
float 4-D mask (0 or the dtype's min: a boolean 4-D mask is silently wrong
under eager attention) and explicit position ids that count real tokens only,
exactly as ``mm_jax.model.attention`` builds them (see that module for the
rules: text is bidirectional, motion causal, padding never attended).

Imports torch, transformers and safetensors only: nothing else of mm_jax.
"""

from __future__ import annotations

import json
import pathlib

import torch
from torch import nn
from transformers import LlamaConfig, LlamaModel

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def token_positions(text_mask_bs: torch.Tensor, motion_mask_bn: torch.Tensor) -> torch.Tensor:
    """[B, S + N] int64 positions counting real tokens only (pads repeat the last real one)."""
    real_bt = torch.cat([text_mask_bs, motion_mask_bn], dim=1).long()
    return (real_bt.cumsum(dim=1) - 1).clamp(min=0)


def mixed_mask(text_mask_bs: torch.Tensor, motion_mask_bn: torch.Tensor) -> torch.Tensor:
    """[B, T, T] bool (query, key): every query sees real text; motion queries see earlier real motion."""
    s, n = text_mask_bs.shape[1], motion_mask_bn.shape[1]
    text_key_bt = torch.cat([text_mask_bs, torch.zeros_like(motion_mask_bn)], dim=1)
    motion_key_bt = torch.cat([torch.zeros_like(text_mask_bs), motion_mask_bn], dim=1)
    idx = torch.arange(s + n, device=text_mask_bs.device)
    motion_causal_tt = (idx >= s)[:, None] & (idx[None, :] <= idx[:, None])
    return text_key_bt[:, None, :] | (motion_causal_tt[None] & motion_key_bt[:, None, :])


def additive_mask(allowed_bqt: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """bool [B, Q, T] -> float [B, 1, Q, T]: 0 where allowed, the dtype's min elsewhere."""
    zero = torch.zeros((), dtype=dtype, device=allowed_bqt.device)
    low = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=allowed_bqt.device)
    return torch.where(allowed_bqt, zero, low)[:, None]


def read_config(export_dir: str | pathlib.Path) -> dict:
    """The export's config.json as a dict (its ``mm_jax`` section holds the motion-side facts)."""
    path = pathlib.Path(export_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{export_dir} is not an mm_jax export: {CONFIG_FILE} is missing")
    doc = json.loads(path.read_text())
    if "mm_jax" not in doc:
        raise ValueError(f"{path} has no 'mm_jax' section: not written by `mm-jax export`")
    return doc


def llama_config(doc: dict, attn_implementation: str = "sdpa") -> LlamaConfig:
    """The ``LlamaConfig`` of an export's config dict (the ``mm_jax`` section is dropped)."""
    fields = {k: v for k, v in doc.items() if k not in ("mm_jax", "architectures", "transformers_version")}
    cfg = LlamaConfig(**fields)
    cfg._attn_implementation = attn_implementation
    return cfg


def load_safetensors(export_dir: str | pathlib.Path, index_file: str = INDEX_FILE,
                     single_file: str = WEIGHTS_FILE) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) safetensors export, read shard by shard."""
    from safetensors.torch import load_file

    root = pathlib.Path(export_dir)
    if (root / index_file).is_file():
        weight_map = json.loads((root / index_file).read_text())["weight_map"]
        tensors: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(load_file(str(root / shard)))
        return tensors
    return load_file(str(root / single_file))


class MotionLlama(nn.Module):
    """Text prefix + motion tokens -> motion logits, over a stock ``LlamaModel``."""

    def __init__(self, config: LlamaConfig, text_dim: int) -> None:
        super().__init__()
        self.config = config
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.text_proj = nn.Linear(text_dim, config.hidden_size, bias=False)

    @classmethod
    def from_export(cls, export_dir: str | pathlib.Path, *, dtype: torch.dtype | None = None,
                    attn_implementation: str = "sdpa") -> "MotionLlama":
        """Loads ``config.json`` and the safetensors weights (strict: every tensor must match).

        ``dtype``: the parameters' dtype (default: the export's, ``config.json``'s ``dtype``).
        """
        doc = read_config(export_dir)
        model = cls(llama_config(doc, attn_implementation), int(doc["mm_jax"]["text_dim"]))
        model.to(dtype or getattr(torch, doc.get("dtype", "float32")))  # the export's dtype unless asked
        model.load_state_dict(load_safetensors(export_dir), strict=True)
        return model.eval()

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def embed(self, text_bsc: torch.Tensor | None, motion_bn: torch.Tensor | None) -> torch.Tensor:
        """[B, S + N, D] input embeddings: projected text, then motion embeddings (either may be None)."""
        parts = []
        if text_bsc is not None:
            parts.append(self.text_proj(text_bsc.to(self.dtype)))
        if motion_bn is not None:
            parts.append(self.model.embed_tokens(motion_bn.long()))
        return torch.cat(parts, dim=1)

    def forward(self, text_bsc: torch.Tensor, text_mask_bs: torch.Tensor, motion_bn: torch.Tensor,
                motion_mask_bn: torch.Tensor) -> torch.Tensor:
        """Logits [B, N, V] float32 of every motion position (position i predicts token i + 1)."""
        text_mask_bs, motion_mask_bn = text_mask_bs.bool(), motion_mask_bn.bool()
        x_btd = self.embed(text_bsc, motion_bn)
        mask = additive_mask(mixed_mask(text_mask_bs, motion_mask_bn), x_btd.dtype)
        out = self.model(inputs_embeds=x_btd, attention_mask=mask,
                         position_ids=token_positions(text_mask_bs, motion_mask_bn), use_cache=False)
        return self.lm_head(out.last_hidden_state[:, text_bsc.shape[1]:]).float()
