"""The shard manifest (``manifest.json``) and the compatibility check (stage: shards).

``OUT/manifest.json`` describes every split written into ``OUT``::

    {"format": "mm_jax.shards", "version": 1,
     "record_version": 1,
     "tokenizer": {"run": "/abs/run/dir" | null,
                   "identity": {"feature_dim", "fsq_levels", "frames_per_token",
                                "wavelet_levels", "step"}},
     "text": {"vocab_identity": "all-MiniLM-L6-v2:bert-uncased:vocab30522:sha256=...",
              "config_identity": "all-MiniLM-L6-v2/S32/D384", "max_tokens": 32},
     "splits": {"train": {"num_records", "num_shards", "num_captions", "num_unk",
                          "num_truncated", "num_frames", "num_motion_tokens",
                          "max_codes" (the longest record's motion codes),
                          "source": {"data_dir", "ids_sha256"},
                          "shards": [{"file", "num_records", "bytes", "sha256",
                                      "num_unk", "num_truncated", ...}]},
                "test": {"num_records": 0, "num_shards": 0, "shards": [],
                         "skipped": "empty", ...}}}

A split that was empty when tokenized is listed with ``"skipped": "empty"``;
reading it is a DataError naming the splits that hold records. All splits
of one directory share the tokenizer and text identities. The
manifest is written last and atomically (temporary file + ``os.replace``).
:func:`check_compatible` compares the identities with what a model expects
and is meant to run at training start-up, before any step.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Mapping

from mm_jax.atomic import write_atomic
from mm_jax.errors import DataError, FormatError

MANIFEST = "manifest.json"
FORMAT = "mm_jax.shards"
MANIFEST_VERSION = 1


def shard_name(split: str, index: int, count: int) -> str:
    """``{split}-{index:05d}-of-{count:05d}.array_record``."""
    return f"{split}-{index:05d}-of-{count:05d}.array_record"


def write_json_atomic(path: pathlib.Path, obj: Any) -> None:
    """Writes JSON to ``path`` atomically (:func:`mm_jax.atomic.write_atomic`; DiskFullError on a full disk)."""
    data = json.dumps(obj, indent=2, sort_keys=True).encode()
    write_atomic(path, lambda f: f.write(data), needed=len(data))


def read_manifest(shards_dir: str | pathlib.Path) -> dict[str, Any]:
    """Reads and checks ``shards_dir/manifest.json``.

    Raises:
      DataError: the directory has no manifest (shards unfinished or wrong path).
      FormatError: the manifest is not valid JSON or not of this format/version.
    """
    path = pathlib.Path(shards_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path} does not exist: {shards_dir} holds no finished shards "
                        "(write them with write_shards / `mm-jax data tokenize`)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FormatError(f"{path} is not readable JSON: {e}") from None
    if not isinstance(manifest, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(manifest), "a number")
        raise FormatError(f"{path} holds {kind} ({str(manifest)[:40]}), not a JSON object; "
                          f"expected the {FORMAT!r} manifest (rewrite the shards)")
    if manifest.get("format") != FORMAT or manifest.get("version") != MANIFEST_VERSION:
        raise FormatError(f"{path} has format {manifest.get('format')!r} "
                          f"version {manifest.get('version')!r}; "
                          f"expected {FORMAT!r} version {MANIFEST_VERSION}")
    for key in ("tokenizer", "text", "splits"):
        if key not in manifest:
            raise FormatError(f"{path} lacks the {key!r} section")
    return manifest


def nonempty_splits(manifest: Mapping[str, Any]) -> list[str]:
    """The splits that hold records (an empty split is recorded as ``"skipped": "empty"``)."""
    return sorted(s for s, e in manifest["splits"].items() if int(e.get("num_records", 0)) > 0)


def split_entry(manifest: Mapping[str, Any], split: str) -> dict[str, Any]:
    """The manifest entry of ``split``, or DataError (naming the non-empty splits) when it is absent or empty."""
    splits = manifest["splits"]
    if split not in splits:
        raise DataError(f"shards hold no split {split!r}; splits with records: {nonempty_splits(manifest)}")
    entry = splits[split]
    if int(entry.get("num_records", 0)) == 0:
        why = " (it was empty when tokenized)" if entry.get("skipped") == "empty" else ""
        raise DataError(f"split {split!r} of the shards holds no records{why}; "
                        f"splits with records: {nonempty_splits(manifest)}")
    return entry


def codebook_size(manifest: Mapping[str, Any]) -> int:
    """prod(fsq_levels) of the tokenizer that made the shards."""
    return math.prod(manifest["tokenizer"]["identity"]["fsq_levels"])


def max_motion_tokens(manifest: Mapping[str, Any], split: str = "train") -> int | None:
    """The longest record of ``split`` in decoder tokens (codes + BOS + EOS); None if unrecorded or empty."""
    entry = manifest.get("splits", {}).get(split, {})
    codes = entry.get("max_codes")
    return None if codes is None or int(entry.get("num_records", 0)) == 0 else int(codes) + 2


def text_identity(*, vocab_identity: str, config_identity: str, max_tokens: int) -> dict[str, Any]:
    """The text section of a manifest (and what a model expects of it)."""
    return {"vocab_identity": vocab_identity, "config_identity": config_identity,
            "max_tokens": int(max_tokens)}


def _diffs(what: str, saved: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    out = []
    for key, want in expected.items():
        have = saved.get(key, "<missing>")
        if isinstance(have, tuple):
            have = list(have)
        if isinstance(want, tuple):
            want = list(want)
        if have != want:
            out.append(f"{what}.{key}: shards have {have!r}, expected {want!r}")
    return out


def check_compatible(
    manifest: Mapping[str, Any],
    *,
    tokenizer_identity: Mapping[str, Any] | None = None,
    text_identity: Mapping[str, Any] | None = None,
) -> None:
    """Raises when the shards were made with another tokenizer or text vocabulary.

    Only the keys present in the expected identities are compared, so a
    caller that does not know the tokenizer's training step can leave it out.

    Args:
      manifest: from :func:`read_manifest`.
      tokenizer_identity: e.g. ``LoadedTokenizer.identity()`` or
        ``{"fsq_levels": list(model_cfg.fsq_levels)}``.
      text_identity: e.g. :func:`text_identity` of the model's text stage.

    Raises:
      DataError: naming every field that differs, with both values.
    """
    diffs = []
    if tokenizer_identity is not None:
        diffs += _diffs("tokenizer", manifest["tokenizer"]["identity"], tokenizer_identity)
    if text_identity is not None:
        diffs += _diffs("text", manifest["text"], text_identity)
    if diffs:
        run = manifest["tokenizer"].get("run")
        raise DataError(f"shards (tokenizer run {run}) do not match the model: " + "; ".join(diffs))
