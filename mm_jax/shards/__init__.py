"""Pre-tokenized ArrayRecord shards (stage: shards).

Input: a dataset directory and a trained motion tokenizer; output: shards of
records holding a sample id, its motion codes, all caption paraphrases (raw
text and WordPiece ids), its frame count and split, plus ``manifest.json``.
See ``docs/shards.md`` for the schema and timings.

Modules:
  record:   the versioned, CRC-checked record schema (:func:`encode_record`, :func:`decode_record`).
  manifest: ``manifest.json``, identities and :func:`check_compatible`.
  writer:   :func:`write_shards` (atomic, resumable).
  bookkeeping: ``.parts`` entries (reuse on a re-run) and the manifest updates of a write.
  reader:   :class:`ShardSource`, the Grain data source naming shard/record on errors.
  verify:   :func:`verify_shards`, :func:`inspect_shards`.
"""

from mm_jax.shards.manifest import (MANIFEST, check_compatible, codebook_size, read_manifest, shard_name,
                                    split_entry, text_identity)
from mm_jax.shards.reader import ShardSource
from mm_jax.shards.record import VERSION, ShardRecord, decode_record, encode_record
from mm_jax.shards.verify import inspect_shards, verify_shards
from mm_jax.shards.writer import write_shards

__all__ = [
    "MANIFEST",
    "VERSION",
    "ShardRecord",
    "ShardSource",
    "check_compatible",
    "codebook_size",
    "decode_record",
    "encode_record",
    "inspect_shards",
    "read_manifest",
    "shard_name",
    "split_entry",
    "text_identity",
    "verify_shards",
    "write_shards",
]
