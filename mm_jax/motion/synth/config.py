"""Configuration of the synthetic motion-caption generator (stage: synthetic data)."""

from __future__ import annotations

import dataclasses

from mm_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """What :func:`mm_jax.motion.synth.synthesize` writes.

    Attributes:
      num: number of sequences.
      seed: the data set's seed; sequence i draws from ``default_rng([seed, i])``.
      min_seconds, max_seconds: length bounds of one sequence.
      fps: frame rate (the 272-d features assume 30).
      max_primitives: at most this many steps per sequence (1-4).
      captions_per_sequence: distinct paraphrases per sequence (>= 3).
      val_fraction, test_fraction: share of the non-held-out sequences in val and test.
      heldout_rate: share of sequences built around a held-out combination (all go to test).
      overlay_rate: chance that a locomotion step carries a simultaneous gesture ("while").
      in_place_share: chance that a step is drawn from the primitives that stay in place
        (``primitives.IN_PLACE``) rather than from those that travel (``primitives.TRAVEL``).
        A uniform draw over all primitives (generator version 1) was about 0.76 by count.
      body_variation: spread of the per-sequence bone lengths (``body.SPREAD`` times this;
        0: every sequence on the SMPL neutral body).
      batch_size: sequences per batched feature computation (does not change the output).
    """

    num: int = 1000
    seed: int = 0
    min_seconds: float = 2.0
    max_seconds: float = 10.0
    fps: int = 30
    max_primitives: int = 4
    captions_per_sequence: int = 5
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    heldout_rate: float = 0.03
    overlay_rate: float = 0.25
    in_place_share: float = 0.9
    body_variation: float = 1.0
    batch_size: int = 32

    def __post_init__(self) -> None:
        checks = [
            (self.num >= 1, f"num must be >= 1, got {self.num}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (10 <= self.fps <= 120, f"fps must be in [10, 120], got {self.fps}"),
            (self.min_seconds > 0, f"min_seconds must be > 0, got {self.min_seconds}"),
            (
                self.max_seconds >= 6.0,
                f"max_seconds must be >= 6 (the longest held-out pair), got {self.max_seconds}",
            ),
            (
                self.max_seconds >= self.min_seconds + 2.0,
                f"max_seconds ({self.max_seconds}) must exceed min_seconds ({self.min_seconds}) by >= 2",
            ),
            (1 <= self.max_primitives <= 4, f"max_primitives must be in 1..4, got {self.max_primitives}"),
            (
                self.captions_per_sequence >= 3,
                f"captions_per_sequence must be >= 3, got {self.captions_per_sequence}",
            ),
            (
                0 <= self.val_fraction < 1
                and 0 <= self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1,
                f"val_fraction ({self.val_fraction}) and test_fraction ({self.test_fraction}) "
                "must be in [0, 1) "
                "and sum to < 1",
            ),
            (0 <= self.heldout_rate <= 0.5, f"heldout_rate must be in [0, 0.5], got {self.heldout_rate}"),
            (0 <= self.overlay_rate <= 1, f"overlay_rate must be in [0, 1], got {self.overlay_rate}"),
            (0 <= self.in_place_share <= 1, f"in_place_share must be in [0, 1], got {self.in_place_share}"),
            (0 <= self.body_variation <= 2, f"body_variation must be in [0, 2], got {self.body_variation}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    @property
    def min_frames(self) -> int:
        return int(round(self.min_seconds * self.fps))

    @property
    def max_frames(self) -> int:
        return int(round(self.max_seconds * self.fps))


PRESETS: dict[str, SynthConfig] = {
    "tiny": SynthConfig(num=64, max_seconds=8.0, batch_size=16),
    "demo": SynthConfig(num=1000),
    "10k": SynthConfig(num=10_000),
    "100k": SynthConfig(num=100_000),
    # A mix weighted towards travelling (as generator version 1 drew it), one body size.
    "locomotion": SynthConfig(num=1000, in_place_share=0.6, body_variation=0.0),
}
