"""Sample stage: text features -> motion token ids [B, N] (jitted loop, KV cache, CFG).

The KV-cached forward it runs is the decoder's own (``mm_jax.model.prefill`` /
``mm_jax.model.decode_step``).

Modules:
  sampler: :func:`sample`, :func:`filter_logits`, :func:`max_tokens_for_seconds`,
           :func:`min_tokens_for_seconds`, :func:`empty_text`, :func:`seed_key` (a checked sampling seed).
"""

from mm_jax.sample.sampler import (SEED_LIMIT, empty_text, filter_logits, max_tokens_for_seconds,
                                   min_tokens_for_seconds, sample, seed_key)

__all__ = ["SEED_LIMIT", "empty_text", "filter_logits", "max_tokens_for_seconds", "min_tokens_for_seconds",
           "sample", "seed_key"]
