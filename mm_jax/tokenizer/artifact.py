"""A trained tokenizer on disk: its files, loading, and encoding with it (stage: tokenizer).

Run directory layout::

    RUN/tokenizer.json     TokenizerConfig (the architecture) + trained step
    RUN/stats.npz          the Normalizer of the data it was trained on; every
                           use of the trained tokenizer normalises with it
    RUN/checkpoints/       orbax steps (params and optimizer state, separate items)
    RUN/metrics.jsonl      training and validation metrics

:func:`load_tokenizer` restores params alone for inference
(:func:`mm_jax.checkpoint.load_params`, no optimizer), checking that the
checkpoint matches ``tokenizer.json``; :func:`open_motion_data` reads a
dataset's features and spans (:class:`MotionData`);
:func:`encode_sequences` turns whole sequences into token ids in batched,
jitted calls of bounded size (bucketed by length, long clips in windows), and
:func:`encode_dataset` writes a whole dataset's ids to one .npz.
Reconstruction metrics are :mod:`mm_jax.tokenizer.reconstruction`'s.

A trained tokenizer only ever sees data normalised with its own statistics
(``RUN/stats.npz``): a dataset's ``stats.npz`` is for training, and an
imported dataset's would shift every input the tokenizer sees. Whole clips
are edge-padded by at least :func:`mm_jax.tokenizer.model.context_frames`,
so a clip's codes do not depend on the clips batched with it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Any, Callable, Iterable, Sequence

import jax
import numpy as np

from mm_jax import configs
from mm_jax.checkpoint import load_params
from mm_jax.errors import CheckpointError
from mm_jax.motion.normalize import Normalizer
from mm_jax.motion.synth import load_dataset
from mm_jax.motion.synth.storage import FORMAT_VERSION as FEATURE_FORMAT
from mm_jax.motion.synth.storage import resolve_split
from mm_jax.motion.validate import validate_features
from mm_jax.tokenizer import data as tdata
from mm_jax.tokenizer import model as tmodel
from mm_jax.tokenizer.config import TokenizerConfig

EVAL_CHUNK = 32  # clips per jitted call, encoding and reconstruction.evaluate alike
# Frames per jitted encode call (rows x padded length), the encoder's memory budget. A 100k-frame
# clip in a 32-clip split peaks at ~0.5 GB with the tiny preset (14.5 GB when every row was padded
# to the longest clip); see tests/test_long_clips.py.
MAX_BATCH_FRAMES = 1 << 15
ENCODE_GROUP = 1024  # sequences planned (and their indices held) at a time by encode_dataset


@dataclasses.dataclass(frozen=True)
class MotionData:
    """Features of a dataset with per-split spans and the normaliser to feed a tokenizer.

    ``normalizer`` is the dataset's own (``stats.npz``) when opened for
    training, and the tokenizer's when opened to evaluate one
    (:func:`open_motion_data`'s ``normalizer``, :meth:`with_normalizer`).
    """

    features: np.ndarray
    offsets: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    ids: dict[str, list[str]]
    normalizer: Normalizer
    source: str = "the data"  # names the dataset in errors

    def spans(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, lengths) of ``split``; DataError (listing the non-empty splits) when it is empty."""
        split = self.resolve_split(split)
        return self.offsets[split], self.lengths[split]

    def resolve_split(self, split: str | None, *, preferred: str = "test") -> str:
        """``split`` if given, else ``preferred`` or the first non-empty of test, val, train."""
        sizes = {name: len(v) for name, v in self.offsets.items()}
        return resolve_split(sizes, split, preferred=preferred, where=self.source)

    def with_normalizer(self, normalizer: Normalizer) -> "MotionData":
        """The same data, normalised with ``normalizer`` (a trained tokenizer's)."""
        return dataclasses.replace(self, normalizer=normalizer)


def open_motion_data(data_dir: str | pathlib.Path, *, normalizer: Normalizer | None = None) -> MotionData:
    """Reads a dataset directory written by ``mm-jax data synth`` / ``import-*``.

    Args:
      data_dir: the dataset directory.
      normalizer: the statistics to normalise with: a trained tokenizer's
        (``LoadedTokenizer.normalizer``) to evaluate it; None for the dataset's
        own ``stats.npz``, which is only right for training on it.
    """
    ds = load_dataset(data_dir)
    offsets, lengths, ids = {}, {}, {}
    for split in ("train", "val", "test"):
        recs = [ds.record(i) for i in ds.ids(split)]
        offsets[split] = np.asarray([r["offset"] for r in recs], np.int64)
        lengths[split] = np.asarray([r["length"] for r in recs], np.int64)
        ids[split] = [r["id"] for r in recs]
    return MotionData(ds.features, offsets, lengths, ids, ds.normalizer if normalizer is None else normalizer,
                      source=str(data_dir))


@dataclasses.dataclass(frozen=True)
class TokenizerArtifact:
    """The files of a tokenizer run directory."""

    run_dir: pathlib.Path

    @classmethod
    def create(cls, run_dir: pathlib.Path, cfg: TokenizerConfig, normalizer: Normalizer) -> "TokenizerArtifact":
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = run_dir / "tokenizer.json"
        if cfg_path.exists():
            saved = stored_config(run_dir)
            # Fields added since the run was made are absent from its file and take their defaults. The
            # decode-only fields (output filter, foot lock) may differ: training does not depend on them,
            # and the run's file keeps its own (a caller decodes with the config it passes).
            have = configs.from_dict(TokenizerConfig, saved).trained_fields()
            if have != cfg.trained_fields():
                diff = ", ".join(f"{k}: run has {have.get(k)!r}, asked {v!r}"
                                 for k, v in cfg.trained_fields().items() if have.get(k) != v)
                raise CheckpointError(f"{run_dir} holds a tokenizer with another config ({diff}); "
                                      f"use a new run directory")
        else:
            cfg_path.write_text(json.dumps({"config": configs.to_dict(cfg), "trained_steps": 0,
                                            "feature_format": FEATURE_FORMAT}, indent=2))
        normalizer.save(run_dir / "stats.npz")
        return cls(run_dir)

    def mark_trained(self, steps: int) -> None:
        path = self.run_dir / "tokenizer.json"
        meta = json.loads(path.read_text())
        meta["trained_steps"] = steps
        path.write_text(json.dumps(meta, indent=2))


def stored_config(run_dir: pathlib.Path) -> dict:
    """The TokenizerConfig dict exactly as ``RUN/tokenizer.json`` (and the checkpoints' meta) hold it.

    A field added to the config later is absent there and takes its default
    when loaded; checkpoints are checked against this dict, not a re-serialised one.
    """
    return json.loads((pathlib.Path(run_dir) / "tokenizer.json").read_text())["config"]


@dataclasses.dataclass(frozen=True)
class LoadedTokenizer:
    cfg: TokenizerConfig
    params: Any
    normalizer: Normalizer
    step: int

    def identity(self) -> dict:
        return {**self.cfg.identity(), "step": self.step}


def load_tokenizer(run_dir: str | pathlib.Path, step: int | None = None) -> LoadedTokenizer:
    """Restores a trained tokenizer for inference (CheckpointError: missing files, or a checkpoint
    that does not match ``tokenizer.json``)."""
    run_dir = pathlib.Path(run_dir)
    cfg_path = run_dir / "tokenizer.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{run_dir} is not a tokenizer run: {cfg_path.name} is missing")
    saved = json.loads(cfg_path.read_text())
    if saved.get("feature_format") != FEATURE_FORMAT:
        raise CheckpointError(
            f"{run_dir} was trained on 272-d features of format {saved.get('feature_format', 1)}, "
            f"this code reads format {FEATURE_FORMAT} (the reference convention, docs/data_format.md): "
            f"convert the data (mm-jax data convert) and retrain the tokenizer"
        )
    cfg = configs.from_dict(TokenizerConfig, saved["config"])
    abstract = jax.eval_shape(lambda: tmodel.init_params(cfg, key=jax.random.key(0)))
    restored_step, params, _ = load_params(run_dir, abstract, step=step,
                                           expected_meta={"tokenizer": saved["config"]})
    return LoadedTokenizer(cfg, params, Normalizer.load(run_dir / "stats.npz"), restored_step)


@functools.partial(jax.jit, static_argnums=2)
def encode_batch(params: Any, x_btf: jax.Array, cfg: TokenizerConfig) -> jax.Array:
    """Jitted :func:`mm_jax.tokenizer.model.encode`: token ids [B, N] of normalised x (the encoder only)."""
    return tmodel.encode(params, x_btf, cfg)


def encode_sequences(
    tok: LoadedTokenizer,
    sequences: Iterable[np.ndarray],
    *,
    max_batch_frames: int = MAX_BATCH_FRAMES,
    progress: Callable[[int], None] | None = None,
    pad_to: int | None = None,
    names: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """Token ids (int32 [N_i]) of each raw feature sequence [T_i, F], ``N_i = ceil(T_i / frames_per_token)``.

    Sequences are normalised with the tokenizer's statistics and encoded in
    batches of at most ``max_batch_frames`` frames (:func:`mm_jax.tokenizer.data.plan_encode`):
    bucketed by length, each edge-padded by the tokenizer's context, and one
    longer than the budget encoded in overlapping windows. A sequence's codes
    are the same as when it is encoded alone, whatever its batchmates or the
    budget, and peak memory does not grow with the longest sequence.

    Args:
      tok: the trained tokenizer.
      sequences: raw (unnormalised) features [T_i, F]; memory maps are read a batch at a time.
      max_batch_frames: frames (rows x padded length) per jitted call, the memory budget.
      progress: ``progress(n)`` after ``n`` more sequences are complete.
      pad_to: ignored (batches were once padded to the longest sequence); kept for old callers.
      names: the sequences' ids for error messages (default "sequence i").

    Raises:
      ShapeError: a sequence of another feature width or shorter than one token.
      DataError: a sequence holding NaN or inf or a non-float dtype, named by its id (or index).
      ConfigError: ``max_batch_frames`` below one window of the tokenizer.
    """
    del pad_to
    cfg = tok.cfg
    seqs = [_checked_sequence(np.asarray(seq), cfg, f"sequence {i}" if names is None else f"sequence {names[i]!r}")
            for i, seq in enumerate(sequences)]
    plan = tdata.plan_encode([len(s) for s in seqs], frames_per_token=cfg.frames_per_token,
                             context=tmodel.context_frames(cfg), max_batch_frames=max_batch_frames,
                             max_rows=EVAL_CHUNK)
    out = [np.empty(-(-len(s) // cfg.frames_per_token), np.int32) for s in seqs]
    rows_left = np.zeros(len(seqs), np.int64)
    for batch in plan:
        for row in batch.rows:
            rows_left[row.seq] += 1
    for batch in plan:
        rows = batch.rows + (batch.rows[0],) * (batch.size - len(batch.rows))
        x = np.stack([tdata.row_frames(seqs[r.seq], r, batch.frames) for r in rows])
        x = np.asarray(tok.normalizer.normalize(x), np.float32)
        ids = np.asarray(encode_batch(tok.params, x, cfg))
        done = 0
        for row, row_ids in zip(batch.rows, ids):
            out[row.seq][row.dest:row.dest + row.keep] = row_ids[row.skip:row.skip + row.keep]
            rows_left[row.seq] -= 1
            done += int(rows_left[row.seq] == 0)
        if progress is not None and done:
            progress(done)
    return out


def _checked_sequence(seq: np.ndarray, cfg: TokenizerConfig, name: str) -> np.ndarray:
    """The one feature check (:func:`validate_features`), at least one token's frames long."""
    return validate_features(seq, name=name, width=cfg.feature_dim, min_frames=cfg.frames_per_token)


def encode_dataset(
    run_dir: str | pathlib.Path,
    data_dir: str | pathlib.Path,
    out_path: str | pathlib.Path,
    *,
    max_batch_frames: int = MAX_BATCH_FRAMES,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Encodes every sequence of a dataset into token ids, written as one .npz.

    The file holds ``tokens`` (int32, all sequences concatenated),
    ``offsets``/``lengths`` (per sequence, in tokens), ``ids`` and ``splits``
    (per sequence) and ``tokenizer`` (JSON identity). It is written under a
    temporary name and renamed when complete (a full disk: DiskFullError, the
    temporary file deleted). Sequences are read from the
    dataset's memory map in groups of ``ENCODE_GROUP`` and encoded within
    ``max_batch_frames`` (:func:`encode_sequences`).
    """
    tok = load_tokenizer(run_dir)
    ds = load_dataset(data_dir)
    records = [ds.record(i) for split in ("train", "val", "test") for i in ds.ids(split)]
    done, seqs = 0, []

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, len(records))

    for k in range(0, len(records), ENCODE_GROUP):
        chunk = records[k:k + ENCODE_GROUP]
        seqs += encode_sequences(tok, (ds.sequence(r["id"]) for r in chunk), max_batch_frames=max_batch_frames,
                                 progress=tick, names=[r["id"] for r in chunk])
    lengths = np.asarray([len(s) for s in seqs], np.int64)
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tdata.write_npz_atomic(
        out_path, tokens=np.concatenate(seqs).astype(np.int32), lengths=lengths,
        offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]),
        ids=np.asarray([r["id"] for r in records]), splits=np.asarray([r["split"] for r in records]),
        tokenizer=np.asarray(json.dumps(tok.identity())),
    )
    return {"sequences": len(records), "tokens": int(lengths.sum()), "out": str(out_path),
            "tokens_per_second_of_motion": 30 / tok.cfg.frames_per_token}
