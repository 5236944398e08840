"""KV-cached sampling of motion tokens in PyTorch, with the JAX sampler's semantics.

Stage: export (the torch runtime). Inputs: a :class:`MotionLlama`, text
features [B, S, C] with their mask (and the empty caption's features for
classifier-free guidance). Output: ``(tokens_bn [B, N] int64, lengths_b [B]
int64)`` laid out as ``mm_jax.sample.sample`` lays them out: row b holds
``lengths_b[b]`` codes, then EOS if one was drawn, then PAD.

Same rules as the JAX sampler: start from BOS; guidance mixes
``uncond + cfg_scale * (cond - uncond)`` with both halves fed the same token;
only codes and EOS may be drawn; EOS is masked while a row has fewer than
``min_new_tokens`` codes; temperature 0 is argmax, otherwise temperature,
top-k, then top-p (nucleus; the first entry always kept) and a categorical
draw. The random stream is torch's (``generator``), so sampled tokens differ
from JAX's for the same seed; greedy tokens are the same.

Decoding: the text prefix is run once into a ``DynamicCache`` (bidirectional
over real text), then one motion token per step attends to the real text keys
and to every motion slot so far, at position ``text_len + t``.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from mm_jax.torch_port.model import MotionLlama, additive_mask, token_positions


def filter_logits(logits_bv: torch.Tensor, *, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, top-k and top-p filtering (removed entries become -inf), as the JAX sampler."""
    logits_bv = logits_bv / temperature
    if top_k > 0:
        kth_b1 = torch.topk(logits_bv, min(top_k, logits_bv.shape[-1]), dim=-1).values[:, -1:]
        logits_bv = logits_bv.masked_fill(logits_bv < kth_b1, float("-inf"))
    if top_p < 1.0:
        sorted_bv = torch.sort(logits_bv, dim=-1, descending=True).values
        probs_bv = torch.softmax(sorted_bv, dim=-1)
        before_bv = probs_bv.cumsum(dim=-1) - probs_bv
        keep_bv = before_bv < top_p
        cutoff_b1 = torch.where(keep_bv, sorted_bv, torch.full_like(sorted_bv, float("inf"))).amin(-1, keepdim=True)
        logits_bv = logits_bv.masked_fill(logits_bv < cutoff_b1, float("-inf"))
    return logits_bv


def _pad_text(text_bsc: torch.Tensor, mask_bs: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    extra = s - text_bsc.shape[1]
    return (torch.nn.functional.pad(text_bsc, (0, 0, 0, extra)),
            torch.nn.functional.pad(mask_bs.bool(), (0, extra), value=False))


def _guided_batch(text_bsc, mask_bs, uncond_bsc, uncond_bs):
    """[2B, S, C] and [2B, S]: conditional rows then the (broadcast) empty caption's rows."""
    b = text_bsc.shape[0]
    u_bsc = uncond_bsc.expand(b, -1, -1)
    u_bs = uncond_bs.bool().expand(b, -1)
    s = max(text_bsc.shape[1], u_bsc.shape[1])
    c_bsc, c_bs = _pad_text(text_bsc, mask_bs, s)
    u_bsc, u_bs = _pad_text(u_bsc, u_bs, s)
    return torch.cat([c_bsc, u_bsc.to(c_bsc.dtype)]), torch.cat([c_bs, u_bs])


class _Decoder:
    """Prefill once, then one motion token per call (KV cache)."""

    def __init__(self, model: MotionLlama, text_bsc: torch.Tensor, text_mask_bs: torch.Tensor) -> None:
        self.model, self.text_mask_bs = model, text_mask_bs
        self.text_len_b = text_mask_bs.long().sum(dim=1)
        self.cache = DynamicCache(config=model.config)
        x_bsd = model.embed(text_bsc, None)
        no_motion = text_mask_bs[:, :0]
        allowed = text_mask_bs[:, None, :].expand(-1, text_bsc.shape[1], -1)
        model.model(inputs_embeds=x_bsd, attention_mask=additive_mask(allowed, x_bsd.dtype),
                    position_ids=token_positions(text_mask_bs, no_motion), cache=self.cache, use_cache=True)

    def step(self, token_b: torch.Tensor, t: int) -> torch.Tensor:
        """Logits [B, V] float32 of the token after ``token_b`` (motion index ``t``)."""
        x_b1d = self.model.embed(None, token_b[:, None])
        b = token_b.shape[0]
        motion = torch.ones((b, t + 1), dtype=torch.bool, device=token_b.device)
        allowed_b1t = torch.cat([self.text_mask_bs, motion], dim=1)[:, None, :]
        out = self.model.model(inputs_embeds=x_b1d, attention_mask=additive_mask(allowed_b1t, x_b1d.dtype),
                               position_ids=(self.text_len_b + t)[:, None], cache=self.cache, use_cache=True)
        return self.model.lm_head(out.last_hidden_state[:, 0]).float()


def _choose(logits_bv, *, codebook_size: int, eos_id: int, no_eos_b, guided: bool, cfg_scale: float,
            temperature: float, top_k: int, top_p: float, generator) -> torch.Tensor:
    if guided:
        cond_bv, uncond_bv = logits_bv.chunk(2, dim=0)
        logits_bv = uncond_bv + cfg_scale * (cond_bv - uncond_bv)
    ids_v = torch.arange(logits_bv.shape[-1], device=logits_bv.device)
    allowed_bv = ((ids_v < codebook_size) | (ids_v == eos_id))[None] & ~(no_eos_b[:, None] & (ids_v == eos_id))
    logits_bv = logits_bv.masked_fill(~allowed_bv, float("-inf"))
    if temperature == 0.0:
        return logits_bv.argmax(dim=-1)
    logits_bv = filter_logits(logits_bv, temperature=temperature, top_k=top_k, top_p=top_p)
    return torch.multinomial(torch.softmax(logits_bv, dim=-1), 1, generator=generator)[:, 0]


@torch.no_grad()
def sample(model: MotionLlama, text_bsc: torch.Tensor, text_mask_bs: torch.Tensor, *, max_new_tokens: int,
           codebook_size: int, bos_id: int, eos_id: int, pad_id: int, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, cfg_scale: float = 1.0, uncond_text_bsc: torch.Tensor | None = None,
           uncond_text_mask_bs: torch.Tensor | None = None, min_new_tokens: int = 0,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples up to ``max_new_tokens`` motion tokens per row; see the module docstring.

    Returns:
      ``(tokens_bn [B, N] int64, lengths_b [B] int64)``: codes, then EOS, then PAD.
    """
    if max_new_tokens < 1 or temperature < 0 or top_k < 0 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"bad sampling options: max_new_tokens={max_new_tokens}, temperature={temperature}, "
                         f"top_k={top_k}, top_p={top_p}")
    guided = uncond_text_bsc is not None
    if not guided and cfg_scale != 1.0:
        raise ValueError(f"cfg_scale={cfg_scale} needs uncond_text_bsc (the empty caption's features)")
    text_mask_bs = text_mask_bs.bool()
    b, dev = text_bsc.shape[0], text_bsc.device
    if guided:
        text_bsc, text_mask_bs = _guided_batch(text_bsc, text_mask_bs, uncond_text_bsc, uncond_text_mask_bs)
    dec = _Decoder(model, text_bsc, text_mask_bs)
    token_b = torch.full((b,), bos_id, dtype=torch.long, device=dev)
    tokens_bn = torch.full((b, max_new_tokens), pad_id, dtype=torch.long, device=dev)
    done_b = torch.zeros(b, dtype=torch.bool, device=dev)
    lengths_b = torch.zeros(b, dtype=torch.long, device=dev)
    for t in range(max_new_tokens):
        logits_bv = dec.step(torch.cat([token_b, token_b]) if guided else token_b, t)
        token_b = _choose(logits_bv, codebook_size=codebook_size, eos_id=eos_id,
                          no_eos_b=torch.full((b,), t < min_new_tokens, device=dev), guided=guided,
                          cfg_scale=cfg_scale, temperature=temperature, top_k=top_k, top_p=top_p,
                          generator=generator)
        is_eos_b = token_b == eos_id
        tokens_bn[:, t] = torch.where(done_b, torch.full_like(token_b, pad_id), token_b)
        lengths_b += (~done_b & ~is_eos_b).long()
        done_b |= is_eos_b
        if bool(done_b.all()):
            break
    return tokens_bn, lengths_b
