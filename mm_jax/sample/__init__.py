"""Sample stage: text features -> motion token ids [B, N] (jitted loop, KV cache, CFG).

Modules:
  cache:   :func:`prefill` / :func:`decode_step`, the KV-cached forward on the llama params.
  sampler: :func:`sample`, :func:`filter_logits`, :func:`max_tokens_for_seconds`,
           :func:`min_tokens_for_seconds`, :func:`empty_text`.
"""

from mm_jax.sample.cache import KVCache, decode_step, prefill
from mm_jax.sample.sampler import (empty_text, filter_logits, max_tokens_for_seconds, min_tokens_for_seconds,
                                   sample)

__all__ = ["KVCache", "decode_step", "empty_text", "filter_logits", "max_tokens_for_seconds",
           "min_tokens_for_seconds", "prefill", "sample"]
