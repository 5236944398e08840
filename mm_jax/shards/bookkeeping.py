"""What a shard writer records about its files: ``.parts`` entries and manifest updates (stage: shards).

Input: a shard directory ``OUT``, the identities of the encoders that write
into it (tokenizer run and identity, text identity: :class:`Identities`) and
the entries of finished shards. Output: ``OUT/.parts/NAME.json`` (a shard's
manifest entry plus the :func:`fingerprint` of its inputs) and
``OUT/manifest.json`` (:mod:`mm_jax.shards.manifest`), written atomically.

A shard whose file hash and fingerprint both match its ``.parts`` entry is
reused (:func:`reusable_entry`). The manifest changes in three steps that a
reader never sees half-done: :func:`base_manifest` (the existing one, same
identities required, or a fresh one), :func:`withdraw_if_overwriting` (a
split leaves it before a file it lists is rewritten in place), then
:func:`finish` / :func:`finish_splits` (the new entry written, the shards it
no longer lists deleted: :func:`mm_jax.shards.cleanup.remove_other_shards`).
:func:`prepare_dir` readies a directory for shards written elsewhere (the
curation pipelines). The writing itself is :mod:`mm_jax.shards.writer`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
from typing import Any, Protocol, Sequence

from mm_jax.errors import DataError
from mm_jax.shards import cleanup
from mm_jax.shards import manifest as mf
from mm_jax.shards.record import VERSION

log = logging.getLogger(__name__)
# The per-shard counts a split's manifest entry sums (all 0 for an empty split).
SUMMED_COUNTS = ("num_records", "num_captions", "num_unk", "num_truncated", "num_frames", "num_motion_tokens")


class Identities(Protocol):
    """Who makes the shards (``writer.make_encoders`` provides it, models or not)."""

    @property
    def tokenizer_run(self) -> str | None: ...
    @property
    def tokenizer_identity(self) -> dict[str, Any]: ...
    @property
    def text_identity(self) -> dict[str, Any]: ...


def prepare_dir(out_dir: str | pathlib.Path, enc: Identities, splits: Sequence[str]) -> dict[str, Any]:
    """Readies ``out_dir`` for shards of ``splits`` written elsewhere; returns the manifest to finish.

    Stale temporary files go; an existing manifest must have the same
    identities (DataError) and leaves ``splits`` out until :func:`finish_splits`.
    """
    out = pathlib.Path(out_dir)
    (out / ".parts").mkdir(parents=True, exist_ok=True)
    cleanup.remove_stale_tmp(out)
    base = base_manifest(out, enc)
    if (out / mf.MANIFEST).exists() and set(splits) & set(base["splits"]):
        base["splits"] = {k: v for k, v in base["splits"].items() if k not in splits}
        mf.write_json_atomic(out / mf.MANIFEST, base)
    return base


def finish_splits(out_dir: str | pathlib.Path, base: dict[str, Any],
                  written: dict[str, tuple[list[dict[str, Any]], Sequence[str]]], data_dir: str | None) -> dict:
    """Writes the manifest once with every split of ``written`` ({split: (shard entries, ids)}; no ids:
    an empty split), then deletes the shards it no longer lists; returns the manifest."""
    out = pathlib.Path(out_dir)
    for split, (entries, ids) in sorted(written.items()):
        base["splits"][split] = split_summary(entries, sorted(ids), data_dir) if ids else empty_summary(data_dir)
    mf.write_json_atomic(out / mf.MANIFEST, base)
    for split, (entries, _) in written.items():
        cleanup.remove_other_shards(out, split, [e["file"] for e in entries])
    return base


def finish(out: pathlib.Path, base: dict[str, Any], split: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Writes the manifest with ``split``'s new entry, then deletes the shards it no longer lists."""
    base["splits"][split] = summary
    mf.write_json_atomic(out / mf.MANIFEST, base)
    cleanup.remove_other_shards(out, split, [s["file"] for s in summary["shards"]])
    return base


def withdraw_if_overwriting(out: pathlib.Path, base: dict[str, Any], split: str, rewrites: list[str]) -> None:
    """Takes ``split`` out of the manifest before a file it lists is rewritten in place.

    A split re-tokenized into other file names keeps its old, complete set
    listed (and readable) until the new manifest replaces it; only an
    in-place rewrite would make the listed set a mix of old and new files.
    """
    listed = {s["file"] for s in base["splits"].get(split, {}).get("shards", [])}
    clash = sorted(listed.intersection(rewrites))
    if clash and (out / mf.MANIFEST).exists():
        log.info("split %r is rewritten in place (%s); it leaves the manifest until its new set is complete",
                 split, ", ".join(clash))
        base["splits"].pop(split)
        mf.write_json_atomic(out / mf.MANIFEST, base)


def base_manifest(out: pathlib.Path, enc: Identities) -> dict[str, Any]:
    """The existing manifest (same identities required) or a fresh one."""
    fresh = {"format": mf.FORMAT, "version": mf.MANIFEST_VERSION, "record_version": VERSION,
             "tokenizer": {"run": enc.tokenizer_run, "identity": enc.tokenizer_identity},
             "text": enc.text_identity, "splits": {}}
    if not (out / mf.MANIFEST).exists():
        return fresh
    old = mf.read_manifest(out)
    try:
        mf.check_compatible(old, tokenizer_identity=enc.tokenizer_identity, text_identity=enc.text_identity)
    except DataError as e:
        raise DataError(f"{out} already holds shards made otherwise; use another directory. {e}") from None
    return {**fresh, "splits": dict(old["splits"])}


def fingerprint(ids: Sequence[str], enc: Identities, split: str, index: int, count: int) -> str:
    """The sha256 of one shard's inputs: its ids, the encoders' identities, the schema and its place."""
    blob = json.dumps({"ids": list(ids), "tok": enc.tokenizer_identity, "text": enc.text_identity,
                       "record_version": VERSION, "split": split, "shard": [index, count]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def file_sha256(path: pathlib.Path) -> str:
    """The sha256 hex digest of the file at ``path`` (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_entry(out: pathlib.Path, name: str, entry: dict[str, Any], fingerprint: str) -> None:
    """Writes a finished shard's ``.parts`` entry (what :func:`reusable_entry` reads back)."""
    mf.write_json_atomic(out / ".parts" / f"{name}.json", {**entry, "fingerprint": fingerprint})


def reusable_entry(out: pathlib.Path, name: str, fingerprint: str) -> dict[str, Any] | None:
    """The saved entry of a finished shard whose inputs and bytes are unchanged."""
    part, path = out / ".parts" / f"{name}.json", out / name
    if not part.is_file() or not path.is_file():
        return None
    entry = json.loads(part.read_text())
    if entry.pop("fingerprint", None) != fingerprint:
        log.info("shard %s was made from other inputs; rewriting it", name)
        return None
    if path.stat().st_size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
        log.warning("shard %s fails its checksum; rewriting it", name)
        return None
    return entry


def split_summary(entries: list[dict[str, Any]], ids: Sequence[str], data_dir: str | None) -> dict[str, Any]:
    out = {k: int(sum(e[k] for e in entries)) for k in SUMMED_COUNTS}
    if all("max_codes" in e for e in entries):  # shards reused from older writes lack it
        out["max_codes"] = max((int(e["max_codes"]) for e in entries), default=0)
    ids_sha = hashlib.sha256("\n".join(ids).encode()).hexdigest()
    out.update(num_shards=len(entries), shards=entries, source={"data_dir": data_dir, "ids_sha256": ids_sha})
    return out


def empty_summary(data_dir: str | None) -> dict[str, Any]:
    """The manifest entry of a split with no records: nothing to read, and it says why."""
    empty = hashlib.sha256(b"").hexdigest()
    return {**dict.fromkeys(SUMMED_COUNTS, 0), "num_shards": 0, "shards": [], "skipped": "empty",
            "source": {"data_dir": data_dir, "ids_sha256": empty}}
