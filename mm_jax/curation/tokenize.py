"""The training shards of a curation run: its motions tokenized (stage: curation -> shards).

Input: a run's output folder (:mod:`mm_jax.curation.results`) and a trained
motion tokenizer run. Output: ``RUN/shards/`` in exactly the format and
manifest ``mm-jax data tokenize`` writes (:mod:`mm_jax.shards`: one record
encoder, one writer; nothing here encodes a record).

- The local runner calls :func:`write_local` after the data set is built:
  :func:`mm_jax.shards.write_shards` per split of ``RUN/dataset``, as
  ``mm-jax data tokenize --data RUN/dataset`` does.
- The Beam runner writes the shards inside its pipeline
  (:mod:`mm_jax.curation.beam_shards`): the kept clips' ids are planned into
  the same shards (each split's sorted ids in ``num_shards`` contiguous
  blocks, :func:`mm_jax.shards.writer.plan_split`), each shard is written
  atomically by one worker from the per-shot results (:class:`RunClips`), and
  the manifest once at the end. Same inputs, same shard files.

:func:`open_tokenizer` checks the tokenizer before any stage runs, so a bad
``--tokenizer`` fails in seconds with a named error, not after the run.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time

import numpy as np

from mm_jax.curation import results
from mm_jax.errors import ConfigError, DataError
from mm_jax.motion.features import FEATURE_DIM
from mm_jax.motion.import_common import split_of
from mm_jax.motion.synth import load_dataset
from mm_jax.shards import read_manifest, writer
from mm_jax.tokenizer.artifact import stored_config

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShardOptions:
    """What ``mm-jax curate run --tokenizer RUN`` passes on (the flags of ``mm-jax data tokenize``).

    Attributes:
      tokenizer: the trained tokenizer run directory.
      num_shards: shards per split (at most its record count).
      text_max_tokens: caption budget S in tokens, [CLS]/[SEP] included.
      max_batch_frames: the motion encoder's frames per batch (None: the default budget).
    """

    tokenizer: str
    num_shards: int = 8
    text_max_tokens: int = 64
    max_batch_frames: int | None = None

    def __post_init__(self) -> None:
        if self.num_shards < 1 or self.text_max_tokens < 3:
            raise ConfigError(f"--num-shards must be >= 1 and --text-max-tokens >= 3, got {self.num_shards} "
                              f"and {self.text_max_tokens}")


def shards_dir(out: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(out) / "shards"


def open_tokenizer(opts: ShardOptions):
    """The encoders of ``opts.tokenizer`` (:func:`mm_jax.shards.writer.make_encoders`), checked first.

    Raises:
      ConfigError: no tokenizer run at that path, one that takes features
        of another width than the curated 272-d motions, or a
        ``max_batch_frames`` below one window of it (one clip is encoded to check).
      CheckpointError: its checkpoint does not load.
    """
    run = pathlib.Path(opts.tokenizer)
    if not (run / "tokenizer.json").is_file():
        what = "no such directory" if not run.exists() else "no tokenizer.json there"
        raise ConfigError(f"--tokenizer {run}: not a trained tokenizer run ({what}); train one with "
                          "`mm-jax tokenizer train` or give its run directory")
    width = stored_config(run).get("feature_dim", FEATURE_DIM)
    if width != FEATURE_DIM:
        raise ConfigError(f"--tokenizer {run} encodes {width}-d features; curated motions are "
                          f"{FEATURE_DIM}-d (the 272-d frame): use a tokenizer trained on 272-d features")
    enc = writer.make_encoders(run, text_max_tokens=opts.text_max_tokens, max_batch_frames=opts.max_batch_frames)
    enc.encode_fn([np.zeros((64, FEATURE_DIM), np.float32)])  # a budget below one window: ConfigError now
    return enc


def write_local(out: pathlib.Path, opts: ShardOptions, enc) -> dict:
    """``mm-jax data tokenize --data OUT/dataset --out OUT/shards`` with the run's flags; :func:`read_summary`."""
    t0 = time.perf_counter()
    data_dir = pathlib.Path(out) / "dataset"
    ds = load_dataset(data_dir)
    sizes = {s: len(ds.ids(s)) for s in SPLITS}
    for split in SPLITS:
        writer.write_shards(data_dir, opts.tokenizer, shards_dir(out), split=split,
                            num_shards=min(opts.num_shards, sizes[split]) or opts.num_shards,
                            text_max_tokens=opts.text_max_tokens, encode_fn=enc.encode_fn,
                            tokenizer_identity=enc.tokenizer_identity, text_tokenizer=enc.text)
    results.write_json(pathlib.Path(out) / "timing" / "shards.json",
                       {"records": sum(sizes.values()), "seconds": round(time.perf_counter() - t0, 6)})
    return read_summary(out)


def read_summary(out: pathlib.Path) -> dict:
    """The funnel report's ``shards`` entry: the directory, records and shards per split (from the manifest)."""
    manifest = read_manifest(shards_dir(out))
    return {"dir": str(shards_dir(out)), "tokenizer": manifest["tokenizer"]["run"],
            "splits": {s: {"records": e["num_records"], "shards": e["num_shards"]}
                       for s, e in sorted(manifest["splits"].items())}}


def kept_clips(out: pathlib.Path, label: str) -> list[tuple[str, str]]:
    """(split, clip id) of every clip a finished shot kept (``label`` is "<video>/shotNNN")."""
    result = results.read_json(results.label_paths(pathlib.Path(out), label)[0])
    return [(split_of(c["id"]), c["id"]) for c in result["clips"]]


class RunClips:
    """The kept clips of a run as the ``shards.writer.RecordSource`` a planned shard reads (``record``, ``sequence``).

    Reads ``results/<video>/shotNNN.{json,npz}`` directly, so a Beam worker
    needs no assembled data set. Features are float32 as the data set stores them.
    """

    def __init__(self, out: str | pathlib.Path) -> None:
        self.out = pathlib.Path(out)
        self._shot: tuple[str, dict, dict] | None = None

    def _clip(self, clip_id: str) -> tuple[dict, np.ndarray]:
        label = "/".join(clip_id.split("/")[:2])
        if self._shot is None or self._shot[0] != label:
            res, npz, _ = results.label_paths(self.out, label)
            result = results.read_json(res)
            with np.load(npz, allow_pickle=False) as z:
                feats = {c["id"]: z[f"c{i}"] for i, c in enumerate(result["clips"])}
            self._shot = (label, {c["id"]: c for c in result["clips"]}, feats)
        _, clips, feats = self._shot
        if clip_id not in clips:
            raise DataError(f"clip {clip_id!r} is not among the kept clips of {self.out / 'results' / label}")
        return clips[clip_id], feats[clip_id]

    def record(self, sample_id: str) -> dict:
        return {"id": sample_id, "captions": self._clip(sample_id)[0]["captions"]}

    def sequence(self, sample_id: str) -> np.ndarray:
        return np.ascontiguousarray(self._clip(sample_id)[1], dtype="<f4")
