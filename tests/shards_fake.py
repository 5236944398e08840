"""Test helpers: a tiny in-memory motion dataset, a fake motion encoder and a
fake text tokenizer, so shard and pipeline tests run without a trained
tokenizer or tensorflow. Not a test module (no ``test_`` prefix)."""

from __future__ import annotations

import hashlib
import pathlib

import numpy as np

from mm_jax.shards import write_shards
from mm_jax.text.tokenize import CLS_ID, SEP_ID, TokenizedText

FPT = 4  # frames per token of the fake encoder
FAKE_IDENTITY = {"feature_dim": 272, "fsq_levels": [5, 5, 5], "frames_per_token": FPT,
                 "wavelet_levels": 1, "step": 7}
CODEBOOK = 125
WORDS = ["a", "person", "walks", "forward", "then", "waves", "jumps", "runs", "slowly", "left", "hand"]


class FakeDataset:
    """``num`` sequences of 13..120 frames; ids ``s00000``...; splits 80/10/10."""

    def __init__(self, num: int = 41, seed: int = 0, feature_dim: int = 272):
        rng = np.random.default_rng(seed)
        self._recs, self._seqs = {}, {}
        for i in range(num):
            sid = f"s{i:05d}"
            split = "train" if i % 10 < 8 else ("val" if i % 10 == 8 else "test")
            length = int(rng.integers(13, 121))
            n_caps = int(rng.integers(3, 6))
            caps = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 9)))) for _ in range(n_caps)]
            self._recs[sid] = {"id": sid, "offset": 0, "length": length, "captions": caps, "split": split}
            self._seqs[sid] = rng.standard_normal((length, feature_dim)).astype(np.float32)

    def ids(self, split: str) -> list[str]:
        return [k for k, r in self._recs.items() if r["split"] == split]

    def record(self, sample_id: str) -> dict:
        return dict(self._recs[sample_id])

    def sequence(self, sample_id: str) -> np.ndarray:
        return self._seqs[sample_id]


def fake_encode(seqs):
    """Deterministic codes: ceil(T / FPT) ids in [0, CODEBOOK) from the sequence bytes."""
    out = []
    for s in seqs:
        seed = int.from_bytes(hashlib.sha256(np.asarray(s).tobytes()).digest()[:8], "little")
        n = -(-len(s) // FPT)
        out.append(np.random.default_rng(seed).integers(0, CODEBOOK, n).astype(np.int32))
    return out


class FakeTextTokenizer:
    """Word -> id 1000 + index in WORDS (unknown words -> [UNK]=100), [CLS]..[SEP]."""

    def __init__(self, max_tokens: int = 8, vocab_tag: str = "fake-v1"):
        self.max_tokens = max_tokens
        self._tag = vocab_tag

    def vocab_identity(self) -> str:
        return f"fake:{self._tag}"

    def encode(self, captions):
        s, n = self.max_tokens, len(captions)
        ids, mask, unk, trunc = np.zeros((n, s), np.int32), np.zeros((n, s), bool), 0, 0
        for b, cap in enumerate(captions):
            pieces = [1000 + WORDS.index(w) if w in WORDS else 100 for w in cap.split()]
            unk += pieces.count(100)
            trunc += len(pieces) > s - 2
            row = [CLS_ID] + pieces[: s - 2] + [SEP_ID]
            ids[b, : len(row)] = row
            mask[b, : len(row)] = True
        return TokenizedText(ids=ids, mask=mask, num_unk=unk, num_truncated=trunc)


def make_shards(out_dir: pathlib.Path, *, num: int = 41, num_shards: int = 3, split: str = "train",
                text_max_tokens: int = 8, dataset: FakeDataset | None = None, **kw) -> dict:
    """Writes fake shards of ``split`` into ``out_dir``; returns the manifest."""
    return write_shards(dataset or FakeDataset(num), None, out_dir, split=split, num_shards=num_shards,
                        text_max_tokens=text_max_tokens, encode_fn=kw.pop("encode_fn", fake_encode),
                        tokenizer_identity=kw.pop("tokenizer_identity", FAKE_IDENTITY),
                        text_tokenizer=kw.pop("text_tokenizer", FakeTextTokenizer(text_max_tokens)), **kw)
