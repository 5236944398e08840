"""The skeleton's joint order and the 272-d frame's channel layout, as plain Python (stage: motion).

One owner for the sizes and indices that code without JAX also needs (the
numpy foot lock the torch runtime applies, :mod:`mm_jax.motion.foot_lock`):
``skeleton`` and ``features`` re-export them with the rest of their API. The
layout is documented in :mod:`mm_jax.motion.features`. Imports nothing.
"""

from __future__ import annotations

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
FOOT_JOINTS = tuple(JOINT_INDEX[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot"))

FPS = 30
FEATURE_DIM = 2 + 6 + 3 * NUM_JOINTS + 3 * NUM_JOINTS + 6 * NUM_JOINTS  # 272
ROOT_LIN_VEL = slice(0, 2)
ROOT_ANG_VEL = slice(2, 8)
LOCAL_POS = slice(8, 74)
LOCAL_VEL = slice(74, 140)
LOCAL_ROT = slice(140, 272)
# Name -> slice, in layout order (used by validation and diagnostics).
FEATURE_SLICES: dict[str, slice] = {
    "root_lin_vel": ROOT_LIN_VEL,
    "root_ang_vel": ROOT_ANG_VEL,
    "local_pos": LOCAL_POS,
    "local_vel": LOCAL_VEL,
    "local_rot": LOCAL_ROT,
}

# The foot-contact rule of the reference's representation code (HumanML3D's ``foot_detect``, kept by the
# 272-d processing): a foot joint is planted over a frame when it is below CONTACT_HEIGHT in both frames
# and its squared step is below SQ_DISPLACEMENT; a planted-height joint moving more than SLIDE_PER_FRAME
# horizontally skates (the foot-skating metric, ``mm_jax.eval.quality.foot_skating_ratio``).
CONTACT_HEIGHT = 0.05  # m
SQ_DISPLACEMENT = 0.002  # m^2 per frame
SLIDE_PER_FRAME = 0.0025  # m per frame
