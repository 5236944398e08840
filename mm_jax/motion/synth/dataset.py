"""Synthesising the embedded motion-caption data set (stage: data).

``synthesize(cfg, out_dir)`` draws ``cfg.num`` sequences, each from its own
``np.random.default_rng([cfg.seed, index])`` (so sequence i never depends on
how the work is chunked), captions them, poses them in fixed-shape jitted
batches (every plan is padded to the same length, so one compiled program
serves the whole run and results do not depend on batching) and streams the
272-d features into the format of :mod:`mm_jax.motion.synth.storage`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import pathlib
import re
import time
from typing import Callable

import numpy as np

from mm_jax.configs import to_dict
from mm_jax.errors import DataError, FormatError
from mm_jax.motion.synth import heldout
from mm_jax.motion.synth.captions import StepText, captions
from mm_jax.motion.synth.compose import Sequence, sample_sequence
from mm_jax.motion.synth.config import SynthConfig
from mm_jax.motion.synth.pose import features_batch, plan_arrays, stack_plans
from mm_jax.motion.synth.primitives import PRIMITIVES
from mm_jax.motion.synth.storage import Dataset, DatasetWriter, check_target, load_dataset

log = logging.getLogger(__name__)
GENERATOR_VERSION = "2"
Progress = Callable[[int, int], None]
_WORD = re.compile(r"[a-z0-9]+")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What :func:`synthesize` produced (or found already complete)."""

    path: str
    num: int
    total_frames: int
    counts: dict
    fps: int
    seconds: float
    reused: bool

    def summary(self) -> dict:
        """A JSON-ready summary for the CLI."""
        return {
            "path": self.path,
            "sequences": self.num,
            "frames": self.total_frames,
            "hours": round(self.total_frames / self.fps / 3600, 3),
            "splits": self.counts,
            "elapsed_s": round(self.seconds, 1),
            "reused_existing": self.reused,
            "sequences_per_s": (
                round(self.num / self.seconds, 1) if self.seconds > 0 and not self.reused else None
            ),
        }


def padded_frames(cfg: SynthConfig) -> int:
    """The fixed batch length: max_frames rounded up to a multiple of 16."""
    return int(-(-cfg.max_frames // 16) * 16)


def draw(cfg: SynthConfig, index: int) -> tuple[Sequence, str, list[str]]:
    """Sequence ``index`` of a data set: (sequence, split, captions); pure function of (cfg, index)."""
    rng = np.random.default_rng([cfg.seed, index])
    seq = sample_sequence(
        rng,
        fps=cfg.fps,
        min_frames=cfg.min_frames,
        max_frames=cfg.max_frames,
        max_primitives=cfg.max_primitives,
        overlay_rate=cfg.overlay_rate,
        heldout_rate=cfg.heldout_rate,
        in_place_share=cfg.in_place_share,
        body_variation=cfg.body_variation,
    )
    split = heldout.assign_split(rng, seq.heldout, cfg.val_fraction, cfg.test_fraction)
    texts = [StepText(s.name, s.params, f, s.gesture) for s, f in zip(seq.steps, seq.facts)]
    caps = captions(texts, rng, cfg.captions_per_sequence, allow_heldout=split != "train")
    return seq, split, caps


def _record(index: int, seq: Sequence, split: str, caps: list[str]) -> dict:
    steps = []
    for step, (start, end) in zip(seq.steps, seq.spans):
        steps.append(
            {
                "name": step.name,
                "params": step.params,
                "start": start,
                "end": end,
                "while": (
                    None if step.gesture is None else {"name": step.gesture[0], "params": step.gesture[1]}
                ),
            }
        )
    return {
        "id": f"synth-{index:06d}",
        "captions": caps,
        "split": split,
        "heldout": seq.heldout,
        "primitives": steps,
        "body": seq.body.to_record(),
    }


def _same_dataset(out: pathlib.Path, cfg: SynthConfig) -> bool:
    try:
        ds = load_dataset(out)
    except FormatError:
        return False
    return ds.meta.get("config") == to_dict(cfg) and ds.meta.get("generator_version") == GENERATOR_VERSION


def _meta(cfg: SynthConfig, records: list[dict]) -> dict:
    caps = [c for r in records for c in r["captions"]]
    words = {w for c in caps for w in _WORD.findall(c.lower())}
    return {
        "generator": "mm_jax.motion.synth",
        "generator_version": GENERATOR_VERSION,
        "config": to_dict(cfg),
        "seed": cfg.seed,
        "fps": cfg.fps,
        "primitives": sorted(PRIMITIVES),
        "heldout_combinations": [list(c) for c in heldout.HELDOUT_COMBINATIONS],
        "heldout_phrases": list(heldout.HELDOUT_PHRASES),
        "zero_shot_words": list(heldout.ZERO_SHOT_WORDS),
        "caption_stats": {
            "captions": len(caps),
            "distinct_captions": len(set(caps)),
            "distinct_words": len(words),
            "distinct_first_captions_per_sequence": round(
                len({r["captions"][0] for r in records}) / max(len(records), 1), 4
            ),
        },
    }


def synthesize(
    cfg: SynthConfig,
    out_dir: str | pathlib.Path,
    *,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> DatasetInfo:
    """Writes the synthetic data set of ``cfg`` to ``out_dir``.

    Args:
      cfg: what to generate.
      out_dir: target directory (created; written via a temporary sibling and renamed).
      progress: called as ``progress(done, total)`` after every batch.
      overwrite: replace a non-empty ``out_dir`` holding something else.

    Returns:
      A :class:`DatasetInfo`. An existing complete data set of the same config
      and generator version is returned as is (``reused=True``) unless ``overwrite``.

    Raises:
      DataError: ``out_dir`` is non-empty and not this data set, and ``overwrite`` is false.
    """
    out = pathlib.Path(out_dir)
    t0 = time.perf_counter()
    if not overwrite and out.is_dir() and _same_dataset(out, cfg):
        log.info("%s already holds this data set; reusing it", out)
        ds = load_dataset(out)
        return DatasetInfo(
            str(out), len(ds), int(ds.features.shape[0]), ds.meta["counts"], cfg.fps, 0.0, True
        )
    check_target(out, overwrite)
    writer = DatasetWriter(out)
    try:
        frames = padded_frames(cfg)
        for start in range(0, cfg.num, cfg.batch_size):
            idx = list(range(start, min(start + cfg.batch_size, cfg.num)))
            drawn = [draw(cfg, i) for i in idx]
            plans = [plan_arrays(seq.segment, cfg.fps, frames, seq.body) for seq, _, _ in drawn]
            plans += [plans[0]] * (cfg.batch_size - len(plans))  # keep one compiled shape
            feats = np.asarray(features_batch(stack_plans(plans)))
            for b, (i, (seq, split, caps)) in enumerate(zip(idx, drawn)):
                writer.add(_record(i, seq, split, caps), feats[b, : seq.segment.frames])
            if progress is not None:
                progress(idx[-1] + 1, cfg.num)
        writer.finish(_meta(cfg, writer.records), overwrite=overwrite)
    except BaseException:
        writer.abort()
        raise
    elapsed = time.perf_counter() - t0
    counts = {s: sum(r["split"] == s for r in writer.records) for s in ("train", "val", "test")}
    log.info("wrote %d sequences (%d frames) to %s in %.1f s", cfg.num, writer.rows, out, elapsed)
    return DatasetInfo(str(out), cfg.num, writer.rows, counts, cfg.fps, elapsed, False)


def dataset_statistics(ds: Dataset) -> dict:
    """Summary numbers of a loaded data set (works for any source in the common format)."""
    lengths = np.array([r["length"] for r in ds.records])
    fps = int(ds.meta.get("fps", 30))
    caps = [c for r in ds.records for c in r.get("captions", [])]
    words = {w for c in caps for w in _WORD.findall(c.lower())}
    prims = collections.Counter(p["name"] for r in ds.records for p in r.get("primitives", []))
    gest = collections.Counter(
        p["while"]["name"] for r in ds.records for p in r.get("primitives", []) if p.get("while")
    )
    if not len(lengths):
        raise DataError(f"{ds.path}: no sequences")
    return {
        "path": str(ds.path),
        "sequences": len(ds),
        "frames": int(lengths.sum()),
        "hours": round(float(lengths.sum()) / fps / 3600, 3),
        "splits": {s: len(ds.split.get(s, [])) for s in ("train", "val", "test")},
        "seconds": {
            "mean": round(float(lengths.mean()) / fps, 2),
            "min": round(float(lengths.min()) / fps, 2),
            "max": round(float(lengths.max()) / fps, 2),
        },
        "captions_per_sequence": round(len(caps) / len(ds), 2),
        "distinct_caption_ratio": round(len(set(caps)) / max(len(caps), 1), 4),
        "distinct_words": len(words),
        "heldout_sequences": sum(bool(r.get("heldout")) for r in ds.records),
        "primitive_counts": dict(sorted(prims.items())),
        "gesture_overlay_counts": dict(sorted(gest.items())),
    }
