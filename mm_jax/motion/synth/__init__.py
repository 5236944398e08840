"""The embedded default data: a procedural motion-caption generator (stage: synthetic data).

Motions are built from 47 whole-body action primitives (walk, run, jump,
kick, wave, twist, stomp, ...) driven by joint rotations through forward
kinematics, with planted feet solved by analytic leg IK, composed into
sequences of 1-4 steps (mostly in place, ``SynthConfig.in_place_share``),
posed on a per-sequence body (bone lengths, :mod:`body`) and captioned with
several natural paraphrases each. See docs/data_format.md for the on-disk
format and the held-out lists.

Public API:
  SynthConfig, PRESETS                       the generator's config
  synthesize(cfg, out_dir, progress=, overwrite=) -> DatasetInfo
  load_dataset(dir) -> Dataset               (.ids(split), .record(key), .sequence(key), .normalizer)
  dataset_statistics(ds) -> dict
  DatasetWriter                              stream any motion-caption data into the same format
  PRIMITIVES, HELDOUT_COMBINATIONS, HELDOUT_PHRASES, ZERO_SHOT_WORDS, generator_vocabulary()
  draw(cfg, index), motion_of(cfg, index)    one sequence (plan, split, captions) / its posed motion
  body_offsets(record) -> [22, 3]            a record's skeleton (SMPL neutral without a "body" key)
"""

from mm_jax.motion.synth.body import Body, body_offsets
from mm_jax.motion.synth.captions import generator_vocabulary
from mm_jax.motion.synth.config import PRESETS, SynthConfig
from mm_jax.motion.synth.dataset import DatasetInfo, dataset_statistics, draw, synthesize
from mm_jax.motion.synth.heldout import HELDOUT_COMBINATIONS, HELDOUT_PHRASES, ZERO_SHOT_WORDS
from mm_jax.motion.synth.pose import pose_segment
from mm_jax.motion.synth.primitives import PRIMITIVES
from mm_jax.motion.synth.storage import Dataset, DatasetWriter, load_dataset


def motion_of(cfg: SynthConfig, index: int):
    """(local_rot [T,22,3,3], root_pos [T,3], joints [T,22,3]) of sequence ``index`` of ``cfg``'s data set.

    Posed on the sequence's own body (its offsets: ``draw(cfg, index)[0].body.offsets()``).
    """
    seq, _, _ = draw(cfg, index)
    return pose_segment(seq.segment, cfg.fps, seq.body)


__all__ = [
    "PRESETS",
    "SynthConfig",
    "synthesize",
    "DatasetInfo",
    "load_dataset",
    "Dataset",
    "DatasetWriter",
    "dataset_statistics",
    "draw",
    "motion_of",
    "PRIMITIVES",
    "HELDOUT_COMBINATIONS",
    "HELDOUT_PHRASES",
    "ZERO_SHOT_WORDS",
    "generator_vocabulary",
    "Body",
    "body_offsets",
]
