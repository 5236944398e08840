"""The Grain input pipeline of the text-to-motion decoder (stage: pipeline).

Input: one split of a shard directory (:mod:`mm_jax.shards`). Output: an
iterator of per-process batches (numpy)::

    text_ids     int32 [B, S]  [CLS] pieces [SEP] then [PAD]=0
    text_mask    bool  [B, S]  True on real text tokens ([CLS], [SEP] included)
    motion_ids   int32 [B, N]  [BOS] codes [EOS] then PAD (BOS/EOS/PAD = codebook + 0/1/2)
    motion_mask  bool  [B, N]  True on BOS, codes and EOS
    sample_index int32 [B]     global record key (debugging; stable across process counts)
    num_skipped  int32 [B]     corrupt records dropped just before each sample (skip_corrupt)

B = ``global_batch_size // process_count``, S = ``max_text_tokens``,
N = ``max_motion_tokens``; :func:`global_batch` assembles the global arrays.

Chain: ``MapDataset.range(num_records)[process_index::process_count]`` ->
``shuffle(seed)`` (reseeded every epoch by ``repeat``) -> ``repeat(num_epochs)``
-> ``map_with_index`` (read + decode; pick one paraphrase; text dropout; random
crop; BOS/EOS/PAD) -> ``to_iter_dataset`` (read threads) -> drop corrupt ->
``batch(B, drop_remainder=True)`` -> ``mp_prefetch`` when ``worker_count > 0``.

Randomness: a sample's paraphrase, dropout and crop come from
``np.random.default_rng([seed, epoch, record_key])``, so they depend on the
sample and the epoch only, never on the process count, thread timing or
position in the stream. Each epoch is shuffled differently; processes see
disjoint slices covering every record exactly once per epoch (when
``num_records % process_count != 0`` the first processes hold one more; with
a finite ``num_epochs`` every process stops after the same number of batches,
``(num_records // process_count) * num_epochs // B``).

Padding, not packing: every sample is padded to [S] + [N] and the attention
masks come from ``text_mask``/``motion_mask``. The padded fraction of motion
positions is ``1 - mean(min(codes + 2, N)) / N`` (docs/shards.md).

Crop: a code sequence longer than N - 2 is cut to a random window of N - 2
codes; BOS always starts the row, and EOS is appended only when the window
reaches the motion's true end (otherwise that slot is PAD), so the model
never learns to stop at an arbitrary cut.

Resume: ``it = pipeline.iterator()``; ``it.get_state()``/``it.set_state()``
or ``Checkpointer.save(..., data_iter=it)`` restore the exact position. The
stream depends on ``worker_count`` (each worker batches its own slice):
resume with the same value.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Any, Mapping

import grain
import numpy as np

from mm_jax.configs import get_preset, require_ints
from mm_jax.errors import ConfigError, DataError
from mm_jax.shards.manifest import check_compatible, codebook_size, read_manifest, split_entry
from mm_jax.shards.reader import ShardSource
from mm_jax.shards.verify import verify_shards
from mm_jax.text.tokenize import PAD_ID, empty_prompt
from mm_jax.vocab import SpecialIds

log = logging.getLogger(__name__)

_CORRUPT = "__corrupt__"


@dataclasses.dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """How shards become batches.

    Attributes:
      global_batch_size: samples per step over all processes.
      max_text_tokens: S, at least the shards' caption budget.
      max_motion_tokens: N, BOS and EOS included (>= 3).
      text_dropout: probability a sample's caption becomes the empty prompt
        ``[CLS][SEP]`` (classifier-free guidance).
      seed: shuffle and per-sample randomness.
      num_epochs: passes over the data; None repeats forever.
      worker_count: 0 = decode in this process; k > 0 = ``mp_prefetch`` workers.
      read_threads: threads reading and decoding in each process/worker.
      prefetch_buffer: samples read ahead by those threads.
      skip_corrupt: drop (and count) corrupt records instead of raising.
    """

    global_batch_size: int = 32
    max_text_tokens: int = 32
    max_motion_tokens: int = 269
    text_dropout: float = 0.1
    seed: int = 0
    num_epochs: int | None = None
    worker_count: int = 0
    read_threads: int = 2
    prefetch_buffer: int = 256
    skip_corrupt: bool = False

    def __post_init__(self) -> None:
        require_ints(self, ("global_batch_size", "max_text_tokens", "read_threads", "prefetch_buffer"), 1)
        if not isinstance(self.max_motion_tokens, int) or self.max_motion_tokens < 3:
            raise ConfigError(f"PipelineConfig.max_motion_tokens={self.max_motion_tokens!r} must be an "
                              "int >= 3 (BOS, one code, EOS)")
        if not 0.0 <= self.text_dropout <= 1.0:
            raise ConfigError(f"PipelineConfig.text_dropout={self.text_dropout!r} must be in [0, 1]")
        if self.num_epochs is not None and (not isinstance(self.num_epochs, int) or self.num_epochs < 1):
            raise ConfigError(f"PipelineConfig.num_epochs={self.num_epochs!r} must be None or an int >= 1")
        require_ints(self, ("worker_count",), 0)
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"PipelineConfig.seed={self.seed!r} must be in [0, 2**32)")


PRESETS: dict[str, PipelineConfig] = {
    # CPU tests and the demo: short motion budget, small batches.
    "tiny": PipelineConfig(global_batch_size=8, max_motion_tokens=64),
    "small": PipelineConfig(global_batch_size=32, max_motion_tokens=128),
    # Reference: block 301 = 32 text + 269 motion; 16 per GPU on 40 GPUs.
    "reference": PipelineConfig(global_batch_size=640, max_motion_tokens=269, worker_count=2),
}


def preset(name: str) -> PipelineConfig:
    """``PRESETS[name]``, or ConfigError listing the valid names."""
    return get_preset(PRESETS, name, kind="pipeline preset")


def motion_row(codes: np.ndarray, n: int, special: SpecialIds, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """``[BOS] window [EOS?] PAD...`` -> ids int32 [N], mask bool [N] (see the module docstring)."""
    room = n - 2
    start = int(rng.integers(0, len(codes) - room + 1)) if len(codes) > room else 0
    window = codes[start:start + room]
    ends = start + len(window) == len(codes)
    ids = np.full((n,), special.pad, np.int32)
    ids[0] = special.bos
    ids[1:1 + len(window)] = window
    if ends:
        ids[1 + len(window)] = special.eos
    return ids, np.arange(n) < 1 + len(window) + int(ends)


class _MakeSample:
    """map_with_index transform: (position, record key) -> one padded sample (picklable)."""

    def __init__(self, source: ShardSource, cfg: PipelineConfig, epoch_len: int, special: SpecialIds):
        self.source, self.cfg, self.epoch_len, self.special = source, cfg, epoch_len, special
        self.empty = empty_prompt(cfg.max_text_tokens)

    def __call__(self, position: int, key: int) -> dict[str, Any]:
        key = int(key)
        try:
            rec = self.source.record(key)
        except DataError as e:
            if not self.cfg.skip_corrupt:
                raise
            log.warning("skipping corrupt record (key %d): %s", key, e)
            return {_CORRUPT: key}
        top = int(rec.motion_codes.max()) if rec.motion_codes.size else -1
        if top >= self.special.bos:
            file, index = self.source.locate(key)
            raise DataError(f"record {index} of shard {file} holds motion code {top}, "
                            f"outside the manifest's codebook of {self.special.bos}")
        epoch = position // self.epoch_len
        rng = np.random.default_rng([self.cfg.seed, epoch, key])
        choice = int(rng.integers(rec.num_captions))
        dropped = rng.random() < self.cfg.text_dropout
        if dropped:
            text_ids, text_mask = self.empty
        else:
            text_ids, text_mask = _pad_text(rec.caption_ids[choice], self.cfg.max_text_tokens, key)
        motion_ids, motion_mask = motion_row(rec.motion_codes, self.cfg.max_motion_tokens, self.special, rng)
        return {"text_ids": text_ids, "text_mask": text_mask, "motion_ids": motion_ids,
                "motion_mask": motion_mask, "sample_index": np.int32(key)}


def _pad_text(row: np.ndarray, s: int, key: int) -> tuple[np.ndarray, np.ndarray]:
    if row.size > s:
        raise DataError(f"record key {key}: caption has {row.size} tokens, more than max_text_tokens={s}")
    ids = np.full((s,), PAD_ID, np.int32)
    ids[: row.size] = row
    return ids, np.arange(s) < row.size


class _DropCorruptIterator(grain.DatasetIterator):
    """Drops corrupt markers; the next good sample carries how many were dropped.

    Stateless beyond its parent: the count is attached within one ``next``.
    """

    def __next__(self) -> dict[str, Any]:
        skipped = 0
        while True:
            element = next(self._parent)
            if _CORRUPT not in element:
                return {**element, "num_skipped": np.int32(skipped)}
            skipped += 1

    def get_state(self) -> dict[str, Any]:
        return self._parent.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state)


class _DropCorrupt(grain.IterDataset):
    def __iter__(self) -> grain.DatasetIterator:
        return _DropCorruptIterator(self._parent.__iter__())


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """A built pipeline: ``iterator()`` yields per-process batches (see the module docstring).

    Attributes:
      dataset: the Grain IterDataset of batches.
      samples: the MapDataset of single samples before batching (tests, debugging).
      special: BOS/EOS/PAD ids of the shards' motion vocabulary.
      manifest: the shard manifest (for :func:`mm_jax.shards.check_compatible`).
      local_batch_size: B, samples per batch on this process.
      records_per_process: records this process sees per epoch.
      num_records: records in the split (all processes).
    """

    dataset: Any
    samples: Any
    special: SpecialIds
    manifest: Mapping[str, Any]
    local_batch_size: int
    records_per_process: int
    num_records: int

    @property
    def batches_per_epoch(self) -> int:
        """Full batches per epoch on this process (without skipped records)."""
        return self.records_per_process // self.local_batch_size

    def iterator(self) -> Any:
        """A fresh ``grain.DatasetIterator`` (``get_state``/``set_state``)."""
        return iter(self.dataset)


def _process_slice(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ConfigError(f"process_index={process_index} is not in [0, process_count={process_count})")
    return process_index, process_count


def build_pipeline(
    shards_dir: str | pathlib.Path,
    cfg: PipelineConfig,
    *,
    split: str = "train",
    process_index: int | None = None,
    process_count: int | None = None,
    tokenizer_identity: Mapping[str, Any] | None = None,
    text_identity: Mapping[str, Any] | None = None,
    verify: bool = True,
) -> Pipeline:
    """Builds the pipeline of ``split`` for one process (default: this JAX process).

    ``tokenizer_identity``/``text_identity``, when given, are checked against
    the manifest first (:func:`mm_jax.shards.check_compatible`), so shards of
    another tokenizer or vocabulary fail here, before any training step.
    With ``verify`` the split's shards are hashed against the manifest's
    sha256 (:func:`mm_jax.shards.verify_shards`, ``decode=False``: ~0.3 s
    for the demo's shards, disk speed in general), so a flipped byte fails
    here, naming the shard, not at the step that first reads it; with
    ``cfg.skip_corrupt`` a bad shard is logged and its records skipped.

    Raises:
      ConfigError: ``global_batch_size`` not divisible by ``process_count``,
        a text budget below the shards', or a process slice smaller than a batch.
      DataError: no manifest/split (or an empty one, naming the splits with
        records), shards made with another tokenizer or text vocabulary, or
        (unless ``skip_corrupt``) a missing, truncated or corrupt shard, named.
    """
    pi, pc = _process_slice(process_index, process_count)
    if cfg.global_batch_size % pc:
        raise ConfigError(f"global_batch_size={cfg.global_batch_size} is not divisible by "
                          f"process_count={pc}")
    check_compatible(read_manifest(shards_dir), tokenizer_identity=tokenizer_identity,
                     text_identity=text_identity)
    if verify:
        _verify_split(shards_dir, split, skip_corrupt=cfg.skip_corrupt)
    source = ShardSource(shards_dir, split, allow_bad_files=cfg.skip_corrupt)
    shard_s = int(source.manifest["text"]["max_tokens"])
    if cfg.max_text_tokens < shard_s:
        raise ConfigError(f"max_text_tokens={cfg.max_text_tokens} is below the shards' caption budget "
                          f"{shard_s}")
    special = SpecialIds.for_codebook(codebook_size(source.manifest))
    local_b = cfg.global_batch_size // pc
    keys = grain.MapDataset.range(len(source))[pi::pc]
    if len(keys) < local_b:
        raise ConfigError(f"process {pi} of {pc} holds {len(keys)} records of split {split!r}, fewer than "
                          f"one batch of {local_b}")
    samples = keys.shuffle(seed=cfg.seed).repeat(cfg.num_epochs)
    samples = samples.map_with_index(_MakeSample(source, cfg, len(keys), special))
    ds = samples.to_iter_dataset(grain.ReadOptions(num_threads=cfg.read_threads,
                                                   prefetch_buffer_size=cfg.prefetch_buffer))
    ds = _DropCorrupt(ds).batch(local_b, drop_remainder=True)
    if cfg.worker_count > 0:
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=cfg.worker_count))
    if cfg.num_epochs is not None:
        # Equal batch counts on every process (slices differ by <= 1 record), so no host waits forever.
        ds = grain.experimental.LimitIterDataset(ds, (len(source) // pc) * cfg.num_epochs // local_b)
    return Pipeline(dataset=ds, samples=samples, special=special, manifest=source.manifest,
                    local_batch_size=local_b, records_per_process=len(keys), num_records=len(source))


def _verify_split(shards_dir: str | pathlib.Path, split: str, *, skip_corrupt: bool) -> None:
    """The split's shards match their manifest checksums (DataError naming each bad one)."""
    split_entry(read_manifest(shards_dir), split)  # an absent or empty split: its own named error
    try:
        report = verify_shards(shards_dir, decode=False, splits=[split])
    except DataError as e:
        if not skip_corrupt:
            raise DataError(f"split {split!r} fails verification at start-up: {e}. Re-run `mm-jax data "
                            "tokenize` into the same directory to rewrite the bad shards (good ones are kept)"
                            ) from None
        log.warning("split %r fails verification (skip_corrupt: its bad records are skipped): %s", split, e)
        return
    log.info("verified the %d shard(s) of split %r in %.2f s", report["splits"][split]["num_shards"], split,
             report["seconds"])


def global_batch(local_batch: Mapping[str, np.ndarray], mesh: Any, sharding: Any) -> dict[str, Any]:
    """Global ``jax.Array``s from every process's local batch.

    Args:
      local_batch: this process's batch (leading axis B = global / process_count).
      mesh: the ``jax.sharding.Mesh``.
      sharding: the batch axis placement: a ``PartitionSpec`` whose first entry
        shards the batch (e.g. from ``mm_jax.sharding.batch_sharding``), or a
        ``NamedSharding`` (its mesh is used). Later axes are replicated.

    Returns:
      The same keys, as global arrays with leading axis = global batch size.
    """
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    if isinstance(sharding, NamedSharding):
        mesh, spec = sharding.mesh, sharding.spec
    else:
        spec = sharding
    batch_axes = spec[0] if len(spec) else None
    out = {}
    for name, value in local_batch.items():
        value = np.asarray(value)
        leaf = NamedSharding(mesh, PartitionSpec(batch_axes, *([None] * (value.ndim - 1))))
        out[name] = jax.make_array_from_process_local_data(leaf, value)
    return out
