"""The motion-token vocabulary the decoder reads and writes (stage: model / pipeline).

Input: the tokenizer's codebook size V (``prod(fsq_levels)``, owned by the shard
manifest). Output: the special ids that follow the codes, ``BOS = V``,
``EOS = V + 1``, ``PAD = V + 2``, so the decoder's real vocabulary is ``V + 3``.
The one place these ids are computed: the data pipeline builds its rows and the
model config its embedding tables from :class:`SpecialIds`.
"""

from __future__ import annotations

import dataclasses

NUM_SPECIAL = 3  # BOS, EOS, PAD


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    """The motion vocabulary's special ids: codebook + 0 / 1 / 2."""

    bos: int
    eos: int
    pad: int

    @classmethod
    def for_codebook(cls, size: int) -> "SpecialIds":
        return cls(bos=size, eos=size + 1, pad=size + 2)
