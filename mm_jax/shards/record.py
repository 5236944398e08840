"""The ArrayRecord record schema of pre-tokenized shards (stage: shards), version 1.

One record = one motion sequence with all its caption paraphrases. Bytes::

    offset  size  field
    0       4     magic b"MMSR"
    4       2     version (uint16, little endian) = 1
    6       2     flags (uint16) = 0, reserved
    8       4     crc32 (uint32) of every byte after this 16-byte header
    12      4     meta_len (uint32): length of the JSON meta that follows
    16      M     meta: UTF-8 JSON (below)
    16+M    ...   blob: motion codes, then the caption token ids, flat

    meta = {"id": str, "split": str, "num_frames": int,
            "motion_dtype": "<u2" | "<i4", "num_motion_tokens": N,
            "text_dtype": "<u2" | "<i4", "caption_lengths": [L_1, ..., L_P],
            "captions": [text_1, ..., text_P]}

``blob[:N * itemsize]`` holds the N motion codes (FSQ code ids, no BOS/EOS)
and the rest the P caption token rows concatenated, row p having ``L_p`` ids
laid out ``[CLS] pieces [SEP]`` (no padding). Ids are stored as uint16 when
they fit (FSQ codebooks up to 65,536 codes, the 30,522-piece WordPiece
vocabulary) and as int32 otherwise; readers always get int32.

A reader checks magic, version, crc32 and the blob length; any mismatch is a
:class:`~mm_jax.errors.DataError` saying what is wrong, which the shard
reader extends with the shard file and record index.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from typing import Sequence

import numpy as np

from mm_jax.errors import DataError, FormatError, ShapeError

MAGIC = b"MMSR"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
_HEADER = struct.Struct("<4sHHII")  # magic, version, flags, crc32, meta_len
HEADER_SIZE = _HEADER.size
_U16_MAX = np.iinfo(np.uint16).max


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShardRecord:
    """One decoded record.

    Attributes:
      id: stable sample id of the dataset.
      split: "train", "val" or "test".
      num_frames: T, the motion's length in frames.
      motion_codes: int32 [N] FSQ code ids (no BOS/EOS).
      caption_ids: P int32 arrays [L_p]: ``[CLS] pieces [SEP]``, unpadded.
      captions: the P raw caption texts (paraphrases), same order.
    """

    id: str
    split: str
    num_frames: int
    motion_codes: np.ndarray
    caption_ids: tuple[np.ndarray, ...]
    captions: tuple[str, ...]

    @property
    def num_captions(self) -> int:
        return len(self.captions)


def _storage_dtype(values: np.ndarray) -> np.dtype:
    if values.size and (values.min() < 0 or values.max() > _U16_MAX):
        return np.dtype("<i4")
    return np.dtype("<u2")


def encode_record(rec: ShardRecord) -> bytes:
    """Serialises ``rec`` to the version-1 bytes (see the module docstring).

    Raises:
      ShapeError: codes or caption ids are not 1-D integer arrays.
      DataError: no captions, captions and caption ids disagree in number,
        or a code/id is negative.
    """
    codes = np.asarray(rec.motion_codes)
    if codes.ndim != 1 or not np.issubdtype(codes.dtype, np.integer):
        raise ShapeError(f"record {rec.id!r}: motion_codes has shape {codes.shape} dtype {codes.dtype}; "
                         "expected int [N]")
    if not rec.captions or len(rec.captions) != len(rec.caption_ids):
        raise DataError(f"record {rec.id!r}: {len(rec.captions)} captions but "
                        f"{len(rec.caption_ids)} caption id rows (need >= 1, equal)")
    rows = [np.asarray(r) for r in rec.caption_ids]
    for p, row in enumerate(rows):
        if row.ndim != 1 or not np.issubdtype(row.dtype, np.integer) or row.size == 0:
            raise ShapeError(f"record {rec.id!r}: caption_ids[{p}] has shape {row.shape} dtype {row.dtype}; "
                             "expected non-empty int [L]")
    flat = np.concatenate(rows).astype(np.int64)
    codes = codes.astype(np.int64)
    if (codes.size and codes.min() < 0) or flat.min() < 0:
        raise DataError(f"record {rec.id!r}: negative motion code or caption id")
    mdt, tdt = _storage_dtype(codes), _storage_dtype(flat)
    meta = {
        "id": str(rec.id), "split": str(rec.split), "num_frames": int(rec.num_frames),
        "motion_dtype": mdt.str, "num_motion_tokens": int(codes.size),
        "text_dtype": tdt.str, "caption_lengths": [int(r.size) for r in rows],
        "captions": [str(c) for c in rec.captions],
    }
    body = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    payload = body + codes.astype(mdt).tobytes() + flat.astype(tdt).tobytes()
    return _HEADER.pack(MAGIC, VERSION, 0, zlib.crc32(payload), len(body)) + payload


def decode_record(data: bytes) -> ShardRecord:
    """Parses and checks one record's bytes.

    Raises:
      FormatError: bad magic, unsupported version, CRC mismatch, or a meta or
        blob that does not match its declared sizes.
    """
    if len(data) < HEADER_SIZE:
        raise FormatError(f"record has {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, _, crc, meta_len = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(f"bad record magic {magic!r}, expected {MAGIC!r}")
    if version not in SUPPORTED_VERSIONS:
        raise FormatError(f"record version {version} is not supported; supported: {list(SUPPORTED_VERSIONS)}")
    payload = memoryview(data)[HEADER_SIZE:]
    if zlib.crc32(payload) != crc:
        raise FormatError(f"record crc32 mismatch (stored {crc:#010x}, computed {zlib.crc32(payload):#010x})")
    try:
        meta = json.loads(bytes(payload[:meta_len]).decode("utf-8"))
        mdt, tdt = np.dtype(meta["motion_dtype"]), np.dtype(meta["text_dtype"])
        n, lengths = int(meta["num_motion_tokens"]), [int(v) for v in meta["caption_lengths"]]
        captions = tuple(meta["captions"])
    except (ValueError, KeyError, TypeError) as e:
        raise FormatError(f"record meta is not valid: {e}") from None
    blob = payload[meta_len:]
    expected = n * mdt.itemsize + sum(lengths) * tdt.itemsize
    if len(blob) != expected or len(lengths) != len(captions):
        raise FormatError(f"record {meta.get('id')!r}: blob has {len(blob)} bytes, meta implies {expected}, "
                          f"{len(lengths)} caption lengths for {len(captions)} captions")
    codes = np.frombuffer(blob, mdt, count=n).astype(np.int32)
    flat = np.frombuffer(blob, tdt, offset=n * mdt.itemsize).astype(np.int32)
    rows = tuple(np.split(flat, np.cumsum(lengths)[:-1])) if lengths else ()
    return ShardRecord(id=str(meta["id"]), split=str(meta["split"]), num_frames=int(meta["num_frames"]),
                       motion_codes=codes, caption_ids=rows, captions=captions)


def caption_rows(ids_ps: np.ndarray, mask_ps: np.ndarray) -> tuple[np.ndarray, ...]:
    """Unpadded caption rows from a TokenizedText's ids/mask [P, S]."""
    lengths = np.asarray(mask_ps).sum(axis=1)
    return tuple(np.asarray(ids_ps)[p, : int(k)].astype(np.int32) for p, k in enumerate(lengths))


def records_equal(a: ShardRecord, b: ShardRecord) -> bool:
    """Field-by-field equality (arrays compared by value)."""
    same_rows: Sequence[bool] = [np.array_equal(x, y) for x, y in zip(a.caption_ids, b.caption_ids)]
    return (a.id == b.id and a.split == b.split and a.num_frames == b.num_frames
            and np.array_equal(a.motion_codes, b.motion_codes) and a.captions == b.captions
            and len(a.caption_ids) == len(b.caption_ids) and all(same_rows))
