"""Parity of an export against the JAX model it came from (stage: export; needs torch).

Inputs: an export directory, the JAX ``ModelConfig`` and params. Output: a
:class:`Parity` with the largest |logit difference| over the real positions
and real vocabulary columns of a padded batch of full motion length, and
whether greedy decoding (JAX ``mm_jax.sample.sample`` with its KV cache vs the
torch KV-cache loop) gives the same tokens for ``greedy_steps`` steps with EOS
held back. Both attention kernels of transformers are checked (eager, sdpa).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import numpy as np

from mm_jax.model.config import ModelConfig
from mm_jax.model.llama import forward
from mm_jax.sample import sample, seed_key
from mm_jax.tokenizer import model as tmodel


@dataclasses.dataclass(frozen=True)
class Parity:
    """Largest |logit diff| (over ``positions`` real motion positions), and greedy agreement over ``steps``."""

    max_logit_diff: float
    positions: int
    greedy_equal: bool
    greedy_steps: int

    def line(self) -> str:
        return (f"max |logit diff| {self.max_logit_diff:.3g} over {self.positions} positions; "
                f"greedy tokens equal: {'yes' if self.greedy_equal else 'no'}")


def jax_inputs(cfg: ModelConfig, *, seed: int = 0, batch: int = 2, motion_len: int | None = None
               ) -> dict[str, np.ndarray]:
    """Random text features with padded text (row 1), motion of ``motion_len`` (default full) padded in row 1."""
    rng = np.random.default_rng(seed)
    s, n = cfg.max_text_tokens, motion_len or cfg.max_motion_tokens
    text = rng.standard_normal((batch, s, cfg.text_dim)).astype(np.float32)
    text_mask = np.ones((batch, s), bool)
    motion = rng.integers(0, cfg.codebook_size, (batch, n)).astype(np.int32)
    motion[:, 0] = cfg.bos_id
    motion_mask = np.ones((batch, n), bool)
    if batch > 1:
        text_mask[1, max(s // 2, 1):] = False
        motion_mask[1, (2 * n) // 3:] = False
        motion[1, (2 * n) // 3:] = cfg.pad_id
    return {"text": text, "text_mask": text_mask, "motion": motion, "motion_mask": motion_mask}


def logit_diff(cfg: ModelConfig, params: Any, torch_model: Any, inputs: dict[str, np.ndarray]) -> tuple[float, int]:
    """(max |JAX - torch| over real motion positions and the real vocabulary, number of such positions)."""
    import jax
    import torch

    names = ("text", "text_mask", "motion", "motion_mask")
    want = np.asarray(jax.jit(forward, static_argnums=0)(cfg, params, *(inputs[k] for k in names)))
    with torch.no_grad():
        got = torch_model(*(torch.from_numpy(np.asarray(inputs[k])) for k in names)).numpy()
    real = inputs["motion_mask"]
    diff = np.abs(want[..., :cfg.vocab_size] - got)[real]
    return float(diff.max()), int(real.sum())


def greedy_tokens(cfg: ModelConfig, params: Any, torch_model: Any, inputs: dict[str, np.ndarray], steps: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy tokens [B, steps] from JAX and from torch, EOS held back (``min_new_tokens = steps``)."""
    import jax.numpy as jnp
    import torch

    from mm_jax.torch_port.sampler import sample as torch_sample

    text, mask = inputs["text"], inputs["text_mask"]
    want, _ = sample(cfg, params, jnp.asarray(text), jnp.asarray(mask), key=seed_key(0), max_new_tokens=steps,
                     temperature=0.0, min_new_tokens=steps)
    got, _ = torch_sample(torch_model, torch.from_numpy(text), torch.from_numpy(mask), max_new_tokens=steps,
                          codebook_size=cfg.codebook_size, bos_id=cfg.bos_id, eos_id=cfg.eos_id, pad_id=cfg.pad_id,
                          temperature=0.0, min_new_tokens=steps)
    return np.asarray(want), got.numpy()


def check(export_dir: str | pathlib.Path, cfg: ModelConfig, params: Any, *, greedy_steps: int | None = None,
          seed: int = 0) -> Parity:
    """Logit parity (eager and sdpa attention) and greedy agreement of an export against ``params``."""
    from mm_jax.torch_port.model import MotionLlama

    inputs = jax_inputs(cfg, seed=seed)
    worst, positions = 0.0, 0
    for impl in ("eager", "sdpa"):
        model = MotionLlama.from_export(export_dir, attn_implementation=impl).float()
        diff, positions = logit_diff(cfg, params, model, inputs)
        worst = max(worst, diff)
    steps = greedy_steps or min(cfg.max_motion_tokens - 1, 64)
    want, got = greedy_tokens(cfg, params, model, inputs, steps)
    return Parity(worst, positions, bool(np.array_equal(want, got)), steps)


def tokenizer_decode_diff(export_dir: str | pathlib.Path, tok: Any, *, tokens: int = 12, seed: int = 0) -> float:
    """Max |JAX - torch| of the exported motion tokenizer's decode (normalised features) of random codes."""
    import jax
    import torch

    from mm_jax.torch_port.tokenizer import MotionTokenizer

    ids = np.random.default_rng(seed).integers(0, tok.cfg.codebook_size, (2, tokens)).astype(np.int32)
    want = np.asarray(jax.jit(tmodel.decode, static_argnums=2)(tok.params, ids, tok.cfg))
    got = MotionTokenizer.from_export(export_dir).decode(torch.from_numpy(ids)).numpy()
    return float(np.abs(want - got).max())
