"""Prompt -> motion entirely in PyTorch, from an ``mm-jax export`` directory.

Stage: export (the torch runtime). Input: an export directory (``config.json``,
``model.safetensors``, ``text_encoder/``, ``motion_tokenizer.*``) and prompts.
Output: one dict per prompt with the motion codes, denormalised 272-d
features [T, 272] and joint positions [T, 22, 3] (torch tensors).

The flow is ``mm_jax.generate``'s: encode the prompts with the frozen text
encoder, sample codes with classifier-free guidance against the empty
caption, decode each row's codes with the motion tokenizer, denormalise, and
(when the tokenizer's config has ``foot_lock``) hold planted feet still with
:func:`mm_jax.motion.foot_lock.foot_lock`, as ``mm_jax.generate.decode_codes``
does. Imports torch, transformers, safetensors and numpy only.
"""

from __future__ import annotations

import math
import pathlib
from typing import Sequence

import torch

from mm_jax.motion.foot_lock import foot_lock
from mm_jax.torch_port.model import MotionLlama, read_config
from mm_jax.torch_port.sampler import sample
from mm_jax.torch_port.text import TEXT_DIR, TextEncoder
from mm_jax.torch_port.tokenizer import MotionTokenizer, joints_from_features

FPS = 30.0


class TextToMotion:
    """The three exported models: text encoder, decoder, motion tokenizer."""

    def __init__(self, export_dir: str | pathlib.Path, *, dtype: torch.dtype | None = None) -> None:
        root = pathlib.Path(export_dir)
        self.info = read_config(root)["mm_jax"]
        self.decoder = MotionLlama.from_export(root, dtype=dtype)
        self.text = TextEncoder(root / TEXT_DIR, max_tokens=int(self.info["max_text_tokens"]))
        self.tokenizer = MotionTokenizer.from_export(root)

    @torch.no_grad()
    def sample_codes(self, text_bsc: torch.Tensor, mask_bs: torch.Tensor, *, max_new_tokens: int,
                     cfg_scale: float = 2.5, min_new_tokens: int = 0, **options) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes [B, N] and lengths [B] for text features, guided against the empty caption."""
        info = self.info
        u_bsc, u_bs = self.text.empty()
        return sample(self.decoder, text_bsc, mask_bs, max_new_tokens=max_new_tokens,
                      codebook_size=int(info["codebook_size"]), bos_id=int(info["bos_id"]),
                      eos_id=int(info["eos_id"]), pad_id=int(info["pad_id"]), cfg_scale=cfg_scale,
                      uncond_text_bsc=u_bsc, uncond_text_mask_bs=u_bs, min_new_tokens=min_new_tokens, **options)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], *, seconds: float = 4.0, min_seconds: float | None = None,
                 cfg_scale: float = 2.5, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.95,
                 seed: int = 0) -> list[dict]:
        """One motion per prompt: ``{"prompt", "codes", "features" [T, 272], "joints" [T, 22, 3]}``.

        ``min_seconds`` (default ``seconds``) holds EOS back until that much motion exists, as
        ``mm-jax generate`` does.
        """
        fpt = self.tokenizer.frames_per_token
        budget = math.ceil(seconds * FPS / fpt - 1e-9)
        max_new = min(budget + 1, int(self.info["max_motion_tokens"]) - 1)
        min_s = seconds if min_seconds is None else min_seconds
        min_new = min(math.ceil(min_s * FPS / fpt - 1e-9) if min_s > 0 else 0, max_new)
        text_bsc, mask_bs = self.text.features(prompts)
        gen = torch.Generator().manual_seed(seed)
        tokens_bn, lengths_b = self.sample_codes(text_bsc, mask_bs, max_new_tokens=max_new, cfg_scale=cfg_scale,
                                                 min_new_tokens=min_new, temperature=temperature, top_k=top_k,
                                                 top_p=top_p, generator=gen)
        out = []
        for prompt, codes_n, n in zip(prompts, tokens_bn, lengths_b.clamp(max=budget).tolist()):
            rec = {"prompt": prompt, "codes": codes_n[:n], "features": None, "joints": None}
            if n > 0:
                feats = self.tokenizer.denormalize(self.tokenizer.decode(codes_n[None, :n]))[0]
                if self.tokenizer.cfg["foot_lock"]:
                    feats = torch.from_numpy(foot_lock(feats.numpy()))
                rec.update(features=feats, joints=joints_from_features(feats))
            out.append(rec)
        return out
