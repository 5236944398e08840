"""Sample stage: text features -> motion token ids [B, N] (jitted loop, KV cache, CFG).

Modules:
  cache:   :func:`prefill` / :func:`decode_step`, the KV-cached forward on the llama params.
  sampler: :func:`sample`, :func:`filter_logits`, :func:`max_tokens_for_seconds`,
           :func:`min_tokens_for_seconds`, :func:`empty_text`, :func:`seed_key` (a checked sampling seed).
"""

from mm_jax.sample.cache import KVCache, decode_step, prefill
from mm_jax.sample.sampler import (SEED_LIMIT, empty_text, filter_logits, max_tokens_for_seconds,
                                   min_tokens_for_seconds, sample, seed_key)

__all__ = ["SEED_LIMIT", "KVCache", "decode_step", "empty_text", "filter_logits", "max_tokens_for_seconds",
           "min_tokens_for_seconds", "prefill", "sample", "seed_key"]
