"""The decoder's text features in PyTorch: the frozen MiniLM as ``transformers.BertModel``.

Stage: export (the torch runtime). Input: captions (or ids [B, S] and a mask).
Output: per-token last hidden states [B, S, C] and the mask [B, S]: the text
prefix the decoder was trained on (the JAX encoder is ``mm_jax.text.encoder``).

Tokenization: ``BertTokenizerFast`` over the exported ``vocab.txt``
(uncased, accents stripped), laid out as the project's tensorflow-text
tokenizer lays it out: ``[CLS] pieces [SEP] [PAD]...`` with S =
``max_tokens`` and captions truncated to S - 2 pieces (see
``mm_jax.text.tokenize`` for the known rare differences). An export whose
run used another vocabulary (a test run's fake tokenizer) ships no
``vocab.txt``; then pass ids. Imports torch and transformers only.
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import torch
from transformers import BertConfig, BertModel

TEXT_DIR = "text_encoder"
CLS_ID, SEP_ID = 101, 102


class TextEncoder:
    """BertModel + (optionally) its WordPiece tokenizer, loaded from an export's ``text_encoder/``."""

    def __init__(self, text_dir: str | pathlib.Path, *, max_tokens: int) -> None:
        from safetensors.torch import load_file

        root = pathlib.Path(text_dir)
        config = BertConfig.from_json_file(str(root / "config.json"))
        config._attn_implementation = "eager"
        self.model = BertModel(config, add_pooling_layer=False).eval()
        self.model.load_state_dict(load_file(str(root / "model.safetensors")), strict=True)
        self.max_tokens = max_tokens
        self.tokenizer = None
        if (root / "vocab.txt").is_file():
            from transformers import BertTokenizerFast

            lines = (root / "vocab.txt").read_text(encoding="utf-8").splitlines()
            vocab = {token: i for i, token in enumerate(lines)}  # id = line number, as the project reads it
            self.tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True, strip_accents=None,
                                               tokenize_chinese_chars=True)

    def tokenize(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """ids int64 [B, S] and mask bool [B, S] of non-empty captions."""
        if self.tokenizer is None:
            raise ValueError("this export ships no vocab.txt (its run did not use the pretrained vocabulary): "
                             "pass token ids to features_from_ids")
        if isinstance(captions, str) or not captions or any(not c.strip() for c in captions):
            raise ValueError(f"captions={captions!r} must be a non-empty list of non-empty strings")
        enc = self.tokenizer(list(captions), padding="max_length", truncation=True, max_length=self.max_tokens,
                             return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"].bool()

    @torch.no_grad()
    def features_from_ids(self, ids_bs: torch.Tensor, mask_bs: torch.Tensor) -> torch.Tensor:
        """Per-token features [B, S, C] float32 (padding rows computed but meaningless)."""
        out = self.model(input_ids=ids_bs.long(), attention_mask=mask_bs.long(),
                         token_type_ids=torch.zeros_like(ids_bs, dtype=torch.long))
        return out.last_hidden_state.float()

    def features(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [B, S, C], mask [B, S]) of captions."""
        ids_bs, mask_bs = self.tokenize(captions)
        return self.features_from_ids(ids_bs, mask_bs), mask_bs

    def empty(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of the empty caption ``[CLS] [SEP]`` (the unconditional rows of guidance): [1, S, C], [1, S]."""
        ids = torch.zeros((1, self.max_tokens), dtype=torch.long)
        ids[0, :2] = torch.tensor([CLS_ID, SEP_ID])
        mask = torch.arange(self.max_tokens)[None] < 2
        return self.features_from_ids(ids, mask), mask
