"""Writes pre-tokenized ArrayRecord shards of one dataset split (stage: shards).

Input: a dataset directory (``mm_jax.motion.synth.load_dataset``: ids,
records with captions, feature sequences [T, F]) and a trained tokenizer run.
Output: ``OUT/{split}-{i:05d}-of-{n:05d}.array_record`` (records in the
:mod:`mm_jax.shards.record` schema, ``group_size:1``) and ``OUT/manifest.json``
(:mod:`mm_jax.shards.manifest`).

Atomic and resumable: a shard is written under a temporary name, hashed and
renamed when complete; its manifest entry goes to ``OUT/.parts/NAME.json``
together with a fingerprint of its inputs (sample ids, tokenizer and text
identities, schema version). A re-run keeps a shard whose file hash and
fingerprint both match and rewrites any other; the manifest is written last.
The ``.parts`` entries, fingerprints and manifest updates: :mod:`mm_jax.shards.bookkeeping`.
The split's ids are sorted and cut into ``num_shards`` contiguous blocks.

Nothing lost, nothing mixed: a run first deletes the temporary files of
writers that are gone (:func:`mm_jax.shards.cleanup.remove_stale_tmp`); a
split re-tokenized into other shard names keeps its old set listed until the
new manifest replaces it, then deletes it; a run that must rewrite a file the
manifest lists takes the split out of the manifest first, so a reader sees
the old set, a named "no such split" error, or the new set, never a mix. A
full disk deletes the temporary file and raises
:class:`~mm_jax.errors.DiskFullError` naming it, the free space and the
space needed; the files already in place are kept. An empty split is
recorded as ``{"num_records": 0, "skipped": "empty", "shards": []}``.

A writer that spreads one split's shards over workers (the curation Beam
pipeline, :mod:`mm_jax.curation.tokenize`) uses the same pieces:
:func:`make_encoders`, :func:`plan_split`, :func:`write_planned_shard` per
shard, then :func:`~mm_jax.shards.bookkeeping.finish_splits` once, after
:func:`~mm_jax.shards.bookkeeping.prepare_dir`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Any, Callable, NamedTuple, Protocol, Sequence

import numpy as np

from mm_jax import runlock
from mm_jax.errors import ConfigError, DataError, DiskFullError, ShapeError
from mm_jax.motion.synth import load_dataset
from mm_jax.shards import bookkeeping as bk
from mm_jax.shards import cleanup
from mm_jax.shards import manifest as mf
from mm_jax.shards.record import caption_rows, encode_record, ShardRecord
from mm_jax.text.config import TextConfig
from mm_jax.text.tokenize import TextTokenizer
from mm_jax.tokenizer.artifact import MAX_BATCH_FRAMES, encode_sequences, load_tokenizer

log = logging.getLogger(__name__)

EncodeFn = Callable[[Sequence[np.ndarray]], Sequence[np.ndarray]]
Progress = Callable[[int, int], None]
CHUNK = 256  # sequences held in memory (and encoded) at a time
WRITER_OPTIONS = "group_size:1"


class RecordSource(Protocol):
    """What writing a planned shard reads: each id's record and motion (``curation.tokenize.RunClips``)."""

    def record(self, sample_id: str) -> dict[str, Any]: ...
    def sequence(self, sample_id: str) -> np.ndarray: ...


class MotionDataset(RecordSource, Protocol):
    """What the writer reads to plan a split as well (``mm_jax.motion.synth.Dataset`` provides it)."""

    def ids(self, split: str) -> Sequence[str]: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Encoders:
    """The motion and text encoders of one run, with their identities."""

    encode_fn: EncodeFn
    text: Any  # mm_jax.text.TextTokenizer (or anything with .encode -> TokenizedText)
    tokenizer_run: str | None
    tokenizer_identity: dict[str, Any]
    text_identity: dict[str, Any]

    def identities_only(self) -> "_Encoders":
        """A picklable copy without the models (enough to plan shards and write the manifest)."""
        return dataclasses.replace(self, encode_fn=None, text=None)


class ShardPlan(NamedTuple):
    """One shard of a split: file ``name`` holding the sorted ``ids``, with its inputs' ``fingerprint``."""

    split: str
    index: int
    name: str
    ids: tuple[str, ...]
    fingerprint: str


def write_shards(
    data_dir: str | pathlib.Path | MotionDataset,
    tokenizer_run: str | pathlib.Path | None,
    out_dir: str | pathlib.Path,
    *,
    split: str,
    num_shards: int,
    text_max_tokens: int = 32,
    progress: Progress | None = None,
    encode_fn: EncodeFn | None = None,
    tokenizer_identity: dict[str, Any] | None = None,
    text_tokenizer: Any = None,
    max_batch_frames: int | None = None,
) -> dict[str, Any]:
    """Tokenizes ``split`` of ``data_dir`` into ``num_shards`` shards in ``out_dir``.

    Args:
      data_dir: a dataset directory (``mm-jax data synth`` / ``import-bvh``), or
        an opened dataset with ``ids``, ``record`` and ``sequence`` (tests).
      tokenizer_run: a trained tokenizer run; its ``encode_sequences`` makes the
        motion codes and its ``identity()`` goes to the manifest.
      out_dir: the shard directory (created); other splits in it are kept.
      split: "train", "val" or "test".
      num_shards: files to write (>= 1).
      text_max_tokens: caption budget S, [CLS]/[SEP] included.
      progress: ``progress(records_done, records_total)``.
      encode_fn: replaces the tokenizer (sequence list -> int code arrays);
        needs ``tokenizer_identity`` when ``tokenizer_run`` is None.
      tokenizer_identity: overrides the identity recorded for ``encode_fn``.
      text_tokenizer: replaces ``TextTokenizer.from_pretrained(max_tokens=S)``.
      max_batch_frames: the motion encoder's memory budget in frames per batch
        (default ``mm_jax.tokenizer.artifact.MAX_BATCH_FRAMES``); long clips
        are encoded in windows, with the same codes.

    Returns:
      The manifest dict (also written to ``out_dir/manifest.json``).

    Raises:
      ConfigError: bad ``num_shards`` / budgets, or no way to encode motion.
      DataError: bad captions, or ``out_dir`` holding shards of another
        tokenizer or vocabulary. An empty split is not an error: it is
        recorded in the manifest as skipped (and logged).
      DiskFullError: the disk filled up; the temporary file is deleted and
        the shards and manifest already in place are kept.
    """
    if isinstance(data_dir, (str, pathlib.Path)):

        dataset, source = load_dataset(data_dir), str(pathlib.Path(data_dir).absolute())
    else:
        dataset, source = data_dir, None
    enc = _make_encoders(tokenizer_run, encode_fn, tokenizer_identity, text_tokenizer, text_max_tokens,
                         max_batch_frames)
    with runlock.lock_dir(out_dir):  # one writer per shards directory (LockError names the other)
        return _write_split(dataset, enc, out_dir, split=split, num_shards=num_shards,
                            data_dir=source, progress=progress)


def make_encoders(tokenizer_run: str | pathlib.Path, *, text_max_tokens: int,
                  max_batch_frames: int | None = None) -> _Encoders:
    """The motion and text encoders of a trained tokenizer run (CheckpointError: not a tokenizer run)."""
    return _make_encoders(tokenizer_run, None, None, None, text_max_tokens, max_batch_frames)


def _make_encoders(tokenizer_run: Any, encode_fn: EncodeFn | None, tokenizer_identity: dict | None,
                   text_tokenizer: Any, text_max_tokens: int, max_batch_frames: int | None) -> _Encoders:

    text_cfg = TextConfig(max_tokens=text_max_tokens)
    if text_tokenizer is None:

        text_tokenizer = TextTokenizer.from_config(text_cfg)
    if text_tokenizer.max_tokens != text_max_tokens:
        raise ConfigError(f"text tokenizer budget {text_tokenizer.max_tokens} != "
                          f"text_max_tokens={text_max_tokens}")
    run = None if tokenizer_run is None else str(pathlib.Path(tokenizer_run).absolute())
    if encode_fn is None and tokenizer_run is None:
        raise ConfigError("write_shards needs tokenizer_run (a trained tokenizer) or an encode_fn")
    if tokenizer_run is not None and (encode_fn is None or tokenizer_identity is None):

        tok = load_tokenizer(tokenizer_run)
        tokenizer_identity = tokenizer_identity or tok.identity()
        if encode_fn is None:
            budget = MAX_BATCH_FRAMES if max_batch_frames is None else max_batch_frames
            encode_fn = lambda seqs: encode_sequences(tok, seqs, max_batch_frames=budget)  # noqa: E731
    if tokenizer_identity is None:
        raise ConfigError("an injected encode_fn needs tokenizer_identity "
                          "(fsq_levels, frames_per_token, ...)")
    if "fsq_levels" not in tokenizer_identity:
        raise ConfigError(f"tokenizer_identity {tokenizer_identity} lacks 'fsq_levels'")
    text_id = mf.text_identity(vocab_identity=text_tokenizer.vocab_identity(),
                               config_identity=text_cfg.identity(), max_tokens=text_max_tokens)
    return _Encoders(encode_fn=encode_fn, text=text_tokenizer, tokenizer_run=run,
                     tokenizer_identity=dict(tokenizer_identity), text_identity=text_id)


def _write_split(
    dataset: MotionDataset,
    enc: _Encoders,
    out_dir: str | pathlib.Path,
    *,
    split: str,
    num_shards: int,
    data_dir: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Writes (or reuses) every shard of ``split``, then the manifest, then drops the replaced set."""
    if not isinstance(num_shards, int) or num_shards < 1:
        raise ConfigError(f"num_shards={num_shards!r} must be an int >= 1")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ".parts").mkdir(exist_ok=True)
    cleanup.remove_stale_tmp(out)
    base = bk.base_manifest(out, enc)
    ids = sorted(dataset.ids(split))
    if not ids:
        log.warning("split %r is empty: no shards written; the manifest records it as skipped", split)
        return bk.finish(out, base, split, bk.empty_summary(data_dir))
    plan = [(p, bk.reusable_entry(out, p.name, p.fingerprint)) for p in plan_split(ids, enc, split, num_shards)]
    bk.withdraw_if_overwriting(out, base, split, [p.name for p, entry in plan if entry is None])
    entries, done = [], 0
    for p, entry in plan:
        if entry is None:
            entry = write_planned_shard(dataset, enc, out, p, remaining=len(ids) - done, reuse=False,
                                        progress=lambda n, d=done: progress and progress(d + n, len(ids)))
        else:
            log.info("shard %s is complete (sha256 verified); skipped", p.name)
        entries.append(entry)
        done += len(p.ids)
        if progress is not None:
            progress(done, len(ids))
    return bk.finish(out, base, split, bk.split_summary(entries, ids, data_dir))


def plan_split(ids: Sequence[str], enc: _Encoders, split: str, num_shards: int) -> list[ShardPlan]:
    """The split's sorted ids cut into ``num_shards`` contiguous blocks, one :class:`ShardPlan` each."""
    ids = sorted(ids)
    if num_shards > len(ids):
        raise ConfigError(f"num_shards={num_shards} exceeds the {len(ids)} records of split {split!r}")
    bounds = np.linspace(0, len(ids), num_shards + 1).round().astype(int)
    return [ShardPlan(split, i, mf.shard_name(split, i, num_shards), tuple(ids[bounds[i]:bounds[i + 1]]),
                      bk.fingerprint(ids[bounds[i]:bounds[i + 1]], enc, split, i, num_shards))
            for i in range(num_shards)]


def write_planned_shard(dataset: RecordSource, enc: _Encoders, out: pathlib.Path, plan: ShardPlan, *,
                        remaining: int | None = None, reuse: bool = True,
                        progress: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Writes one planned shard atomically and its ``.parts`` entry (or reuses a complete one); its entry."""
    entry = bk.reusable_entry(out, plan.name, plan.fingerprint) if reuse else None
    if entry is not None:
        log.info("shard %s is complete (sha256 verified); skipped", plan.name)
        return entry
    entry = _write_shard(dataset, enc, plan.ids, out / plan.name, plan.split, progress or (lambda n: None),
                         remaining=len(plan.ids) if remaining is None else remaining)
    bk.save_entry(out, plan.name, entry, plan.fingerprint)
    return entry


def _encode_chunk(dataset: RecordSource, enc: _Encoders, ids: Sequence[str], split: str
                  ) -> tuple[list[ShardRecord], int, int]:
    """Records of ``ids`` (motion + caption tokens), and their UNK/truncated counts."""
    metas = [dataset.record(i) for i in ids]
    seqs = [np.asarray(dataset.sequence(i)) for i in ids]
    codes = list(enc.encode_fn(seqs))
    if len(codes) != len(ids):
        raise ShapeError(f"encode_fn returned {len(codes)} code arrays for {len(ids)} sequences")
    captions = [list(m["captions"]) for m in metas]
    for sid, caps in zip(ids, captions):
        if not caps:
            raise DataError(f"sample {sid!r} has no caption")
    text = enc.text.encode([c for caps in captions for c in caps])
    rows = caption_rows(text.ids, text.mask)
    records, start = [], 0
    for sid, caps, seq, code in zip(ids, captions, seqs, codes):
        records.append(ShardRecord(id=sid, split=split, num_frames=len(seq), motion_codes=np.asarray(code),
                                   caption_ids=rows[start:start + len(caps)], captions=tuple(caps)))
        start += len(caps)
    return records, int(text.num_unk), int(text.num_truncated)


def _write_shard(dataset: RecordSource, enc: _Encoders, ids: Sequence[str], path: pathlib.Path,
                 split: str, progress: Callable[[int], Any], *, remaining: int) -> dict[str, Any]:
    """Writes one shard under a temporary name, hashes it, renames it; its entry.

    ``remaining``: records of the split from this shard on (to say how much
    space a full disk lacks).
    """
    from array_record.python.array_record_module import ArrayRecordWriter

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    writer = None
    stats = {"num_unk": 0, "num_truncated": 0, "num_captions": 0, "num_frames": 0, "num_motion_tokens": 0,
             "max_codes": 0}
    sizes = [0, 0]  # records encoded, their bytes
    try:
        writer = ArrayRecordWriter(str(tmp), WRITER_OPTIONS)
        for start in range(0, len(ids), CHUNK):
            records, unk, trunc = _encode_chunk(dataset, enc, ids[start:start + CHUNK], split)
            for rec in records:
                data = encode_record(rec)
                sizes[0], sizes[1] = sizes[0] + 1, sizes[1] + len(data)
                writer.write(data)
                stats["num_captions"] += rec.num_captions
                stats["num_frames"] += rec.num_frames
                stats["num_motion_tokens"] += int(rec.motion_codes.size)
                stats["max_codes"] = max(stats["max_codes"], int(rec.motion_codes.size))
            stats["num_unk"] += unk
            stats["num_truncated"] += trunc
            progress(start + len(records))
        writer.close()
        entry = {"file": path.name, "num_records": len(ids), "bytes": tmp.stat().st_size,
                 "sha256": bk.file_sha256(tmp), **stats}
        os.replace(tmp, path)
    except BaseException as e:
        cleanup.discard(tmp, writer)
        if cleanup.disk_full(e):
            needed = remaining * sizes[1] // max(sizes[0], 1) if sizes[0] else None
            raise DiskFullError.of(tmp, e, needed=needed, note=(
                f"deleted the partial shard; the shards and manifest already in {path.parent} are kept. "
                "Free space and re-run: finished shards are reused")) from None
        raise
    return entry
