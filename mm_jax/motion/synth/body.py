"""Per-sequence body size: bone lengths drawn per sequence (stage: synthetic data).

A :class:`Body` is five factors on the SMPL neutral offsets
(``skeleton.OFFSETS``): ``scale`` (every bone), ``legs`` (thigh and shank),
``arms`` (upper arm and forearm), ``torso`` (spine, neck, head) and ``width``
(the lateral offsets of the hips, collars and shoulders). Each sequence draws
one (:func:`sample_body`) and stores it in its record under ``"body"``;
:func:`body_offsets` rebuilds the sequence's offsets ``[22, 3]`` from the
record (the SMPL neutral ones for records without the key), so forward
kinematics can be run with a clip's own skeleton.

Plans are authored for the neutral body. :meth:`Body.apply` fits a plan to the
body: ground positions and ankle targets scale with ``scale`` (so the foot
geometry of planted feet, toe pivots included, stays exact, and speeds and
distances scale with body size, as the captions' facts do), and the desired
pelvis height scales with the body's standing pelvis height (so a squat bends
the knees as far on a long-legged body as on the neutral one).

The spread: ``scale`` ~ N(0.98, 0.055) (adult heights vary by ~5.5 %; the
pelvis of the neutral body stands 0.956 m high, a little above the measured
average, so the mean body is 2 % smaller), the proportions ~ N(1, 0.025-0.04); every factor is clipped to
+/- 2.5 standard deviations and rounded to 3 decimals (the record holds what
was used). ``variation`` scales the spread and the mean shift together;
0 gives the neutral body exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mm_jax.motion import skeleton
from mm_jax.motion.synth.plan import Segment

_I = skeleton.JOINT_INDEX
_LEGS = [_I[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
_ARMS = [_I[n] for n in ("left_elbow", "right_elbow", "left_wrist", "right_wrist")]
_TORSO = [_I[n] for n in ("spine1", "spine2", "spine3", "neck", "head")]
_WIDE = [_I[n] for n in ("left_hip", "right_hip", "left_collar", "right_collar", "left_shoulder", "right_shoulder")]
# (mean shift, standard deviation) of each factor at variation 1.
SPREAD = {"scale": (-0.02, 0.055), "legs": (0.0, 0.025), "arms": (0.0, 0.025), "torso": (0.0, 0.03),
          "width": (0.0, 0.04)}
NEUTRAL_STAND = skeleton.rest_root_height()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Body:
    """Bone-length factors on the SMPL neutral body (1.0 each: the neutral body)."""

    scale: float = 1.0
    legs: float = 1.0
    arms: float = 1.0
    torso: float = 1.0
    width: float = 1.0

    def offsets(self) -> np.ndarray:
        """Rest offsets [22, 3] (float32) of this body."""
        off = skeleton.OFFSETS.astype(np.float64) * self.scale
        off[_LEGS] *= self.legs
        off[_ARMS] *= self.arms
        off[_TORSO] *= self.torso
        off[_WIDE, 0] *= self.width
        return off.astype(np.float32)

    def to_record(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @property
    def neutral(self) -> bool:
        return self == Body()

    def apply(self, seg: Segment) -> Segment:
        """The plan ``seg`` (authored for the neutral body) fitted to this body (module docstring)."""
        if self.neutral:
            return seg
        k = skeleton.rest_root_height(self.offsets()) / NEUTRAL_STAND
        return seg.replace(root_xz=seg.root_xz * self.scale, ankle=seg.ankle * self.scale, height=seg.height * k)


def sample_body(rng: np.random.Generator, variation: float = 1.0) -> Body:
    """A body drawn from ``rng`` (five normal draws, always consumed, whatever ``variation``)."""
    z = np.clip(rng.standard_normal(len(SPREAD)), -2.5, 2.5)
    vals = {k: float(round(1.0 + variation * (m + s * zi), 3)) for (k, (m, s)), zi in zip(SPREAD.items(), z)}
    return Body(**vals)


def body_of(record: dict) -> Body:
    """The :class:`Body` of a sequence record (the neutral body when it has no ``"body"`` key)."""
    return Body(**record["body"]) if record.get("body") else Body()


def body_offsets(record: dict) -> np.ndarray:
    """Rest offsets [22, 3] of a sequence record's skeleton (SMPL neutral without a ``"body"`` key)."""
    return body_of(record).offsets()
