"""The 272-d per-frame motion representation, both ways (stage: motion).

Input: joint positions ``[T, 22, 3]`` and local joint rotations ``[T, 22, 3, 3]``
(each relative to its parent, the root's global) of a 30 fps clip (metres,
y up). Output: features ``[T, 272]``. The inverse maps features back to a
canonical :class:`Motion` without inverse kinematics.

This is exactly the reference convention (``../shared/RECIPE.md``), the one the
public processing code of MotionStreamer / MotionMillion computes, so released
272-d data (``mm-jax data import-272``) and ours mean the same numbers.

=========  =====  ==============================================================
slice      size   meaning
=========  =====  ==============================================================
0:2        2      root linear velocity: x, z of ``Y(h[t-1]) @ (root[t] - root[t-1])``
2:8        6      root angular velocity: 6D of ``Y(h[t] - h[t-1])``
8:74       66     local joint positions ``Y(h[t]) @ (pos[t] - (root_x, 0, root_z))``
74:140     66     local joint velocities ``local_pos[t] - local_pos[t-1]``
140:272    132    local joint rotations (22 x 6D), the root's with the heading removed
=========  =====  ==============================================================

Conventions (``t`` is a frame index):

* Floor and origin: ``pos = joints - (root_x[0], min_y, root_z[0])`` where
  ``min_y`` is the lowest y over all joints and frames (:func:`floor_shift`).
* Heading ``h[t] = -atan2(R_root[0, 2], R_root[2, 2])`` and
  ``Y(h) = [[cos h, 0, sin h], [0, 1, 0], [-sin h, 0, cos h]]`` (so ``Y(h[t])``
  turns the body to face +z).
* 6D (:func:`rotations.matrix_to_6d`): the first two ROWS of the matrix,
  row-major ``(r00 r01 r02 r10 r11 r12)``; the root's matrix is ``Y(h) @ R_root``.
* Frame 0: zero velocities, identity heading change (channels 2 and 6 are 1).

Recovery (:func:`motion_from_features`) integrates the heading as an angle
(``dh = atan2(c[4], c[2])`` of each heading change, then a cumsum with
``h[0] = 0``), integrates ``root[t] = root[t-1] + Y(h[t-1])^T v[t]`` and adds
the local positions rotated by ``Y(h[t])^T``. The result is canonical: the
floor at y = 0, frame 0's root at x = z = 0 facing +z. The local velocities
are not used by the recovery (a redundant training signal). All functions
are pure jnp, jit-ed and vmap-able; ``*_batch`` variants take ``[B, T, ...]``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mm_jax.errors import ShapeError
from mm_jax.motion import rotations, skeleton
from mm_jax.motion.layout import (  # noqa: F401 (re-exported: the layout's one owner is layout.py)
    FEATURE_DIM, FEATURE_SLICES, FPS, LOCAL_POS, LOCAL_ROT, LOCAL_VEL, NUM_JOINTS, ROOT_ANG_VEL, ROOT_LIN_VEL)

# Groups that share one std when normalising (see normalize.Normalizer.fit).
NORMALIZER_GROUPS = (LOCAL_POS, LOCAL_VEL, LOCAL_ROT)


class Motion(NamedTuple):
    """A motion clip (a pytree, so it passes through jit and vmap).

    Attributes:
      local_rot: [T, 22, 3, 3] joint rotations relative to the parent (root global).
      root_pos: [T, 3] root joint position (metres, y up).
      joints: [T, 22, 3] joint positions.
    """

    local_rot: jax.Array
    root_pos: jax.Array
    joints: jax.Array


def slice_name(channel: int) -> str:
    """Name of the feature group holding ``channel`` (e.g. 140 -> 'local_rot')."""
    for name, sl in FEATURE_SLICES.items():
        if sl.start <= channel < sl.stop:
            return name
    raise ShapeError(f"channel {channel} is outside the {FEATURE_DIM}-d layout")


def _check(arr: jax.Array, tail: tuple[int, ...], what: str) -> None:
    if arr.ndim != len(tail) + 1 or tuple(arr.shape[1:]) != tail:
        want = "[T, " + ", ".join(map(str, tail)) + "]"
        raise ShapeError(f"{what} must have shape {want}, got {tuple(arr.shape)}")


def _rotate_y(yaw: jax.Array, v: jax.Array) -> jax.Array:
    """Applies ``Y(yaw)`` = ``rotations.yaw_matrix(yaw)`` ([...]) to vectors v [..., 3] (no matrices)."""
    c, s = jnp.cos(yaw)[..., None], jnp.sin(yaw)[..., None]
    x, y, z = v[..., 0:1], v[..., 1:2], v[..., 2:3]
    return jnp.concatenate([c * x + s * z, y, -s * x + c * z], axis=-1)


def _prev(x: jax.Array) -> jax.Array:
    """x shifted one frame later along axis 0, frame 0 repeated: prev[t] = x[t-1]."""
    return jnp.concatenate([x[:1], x[:-1]], axis=0)


def heading(root_rot: jax.Array) -> jax.Array:
    """The reference heading ``h = -atan2(R[0, 2], R[2, 2])`` of root rotations [..., 3, 3] -> [...]."""
    return -jnp.arctan2(root_rot[..., 0, 2], root_rot[..., 2, 2])


def floor_shift(joints: jax.Array | np.ndarray) -> float:
    """The height the floor step subtracts: the lowest y over all joints and frames of [T, J, 3]."""
    return float(np.min(np.asarray(joints)[..., 1]))


@jax.jit
def features_from_joints(joints: jax.Array, local_rot: jax.Array) -> jax.Array:
    """Encodes a clip as 272-d features, exactly the reference convention.

    Args:
      joints: [T, 22, 3] joint positions (metres, y up), the clip's own skeleton.
      local_rot: [T, 22, 3, 3] local joint rotations (the root's global).

    Returns:
      [T, 272] features (see the module docstring for the layout).
    """
    _check(joints, (NUM_JOINTS, 3), "joints")
    _check(local_rot, (NUM_JOINTS, 3, 3), "local_rot")
    if local_rot.shape[0] != joints.shape[0]:
        raise ShapeError(f"local_rot has {local_rot.shape[0]} frames but joints has {joints.shape[0]}")
    t = joints.shape[0]
    origin = jnp.stack([joints[0, 0, 0], jnp.min(joints[..., 1]), joints[0, 0, 2]])
    pos = joints - origin  # floor at y = 0, frame 0's root at x = z = 0
    h = heading(local_rot[:, 0])  # [T]
    h_prev = _prev(h)
    root = pos[:, 0]  # [T, 3]
    ground = root * jnp.asarray([1.0, 0.0, 1.0], root.dtype)
    local_pos = _rotate_y(h[:, None], pos - ground[:, None, :])  # [T, J, 3]
    root_vel = _rotate_y(h_prev, root - _prev(root))[:, [0, 2]]  # [T, 2], frame 0 zero
    ang_vel = rotations.matrix_to_6d(rotations.yaw_matrix(h - h_prev))  # [T, 6], frame 0 identity
    local_vel = local_pos - _prev(local_pos)  # [T, J, 3], frame 0 zero
    rots = local_rot.at[:, 0].set(rotations.yaw_matrix(h) @ local_rot[:, 0])
    rot6 = rotations.matrix_to_6d(rots)  # [T, J, 6]
    return jnp.concatenate(
        [root_vel, ang_vel, local_pos.reshape(t, -1), local_vel.reshape(t, -1), rot6.reshape(t, -1)],
        axis=-1,
    )


@jax.jit
def features_from_motion(
    local_rot: jax.Array, root_pos: jax.Array, offsets: jax.Array | np.ndarray = skeleton.OFFSETS
) -> jax.Array:
    """Forward kinematics with ``offsets`` [22, 3], then :func:`features_from_joints`.

    Args:
      local_rot: [T, 22, 3, 3] local joint rotations (root's global).
      root_pos: [T, 3] root position, metres, y up.
      offsets: [22, 3] rest offsets of the clip's skeleton.

    Returns:
      [T, 272] features.
    """
    _check(local_rot, (NUM_JOINTS, 3, 3), "local_rot")
    _check(root_pos, (3,), "root_pos")
    if local_rot.shape[0] != root_pos.shape[0]:
        raise ShapeError(f"local_rot has {local_rot.shape[0]} frames but root_pos has {root_pos.shape[0]}")
    _, joints = skeleton.forward_kinematics(local_rot, root_pos, offsets)  # [T, J, 3]
    return features_from_joints(joints, local_rot)


def _integrate_root(f: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Headings h [T] and ground points [T, 3] integrated from features [T, F]."""
    d6 = f[:, ROOT_ANG_VEL]
    # Y(dh) has first row (cos dh, 0, sin dh).
    dh = jnp.arctan2(d6[:, 2], d6[:, 0]).at[0].set(0.0)
    h = jnp.cumsum(dh)  # [T]
    vel = f[:, ROOT_LIN_VEL]
    step = jnp.stack([vel[:, 0], jnp.zeros_like(vel[:, 0]), vel[:, 1]], axis=-1).at[0].set(0.0)
    ground = jnp.cumsum(_rotate_y(-_prev(h), step), axis=0)  # [T, 3]
    return h, ground


@jax.jit
def joints_from_features(f: jax.Array) -> jax.Array:
    """Canonical joint positions [T, 22, 3] from features [T, 272] (no IK)."""
    _check(f, (FEATURE_DIM,), "features")
    h, ground = _integrate_root(f)
    local_pos = f[:, LOCAL_POS].reshape(-1, NUM_JOINTS, 3)
    return _rotate_y(-h[:, None], local_pos) + ground[:, None, :]


@jax.jit
def motion_from_features(f: jax.Array) -> Motion:
    """Canonical :class:`Motion` from features [T, 272].

    Joint positions come from the root integration plus local positions; the
    rotations come from the 6D channels (Gram-Schmidt over the rows) with the
    integrated heading put back on the root (``Y(h)^T @ R``), and ``root_pos``
    is the recovered pelvis.
    """
    _check(f, (FEATURE_DIM,), "features")
    h, ground = _integrate_root(f)
    local_pos = f[:, LOCAL_POS].reshape(-1, NUM_JOINTS, 3)
    joints = _rotate_y(-h[:, None], local_pos) + ground[:, None, :]
    rots = rotations.sixd_to_matrix(f[:, LOCAL_ROT].reshape(-1, NUM_JOINTS, 6))
    rots = rots.at[:, 0].set(rotations.yaw_matrix(-h) @ rots[:, 0])
    return Motion(local_rot=rots, root_pos=joints[:, 0], joints=joints)


@jax.jit
def canonicalize(joints: jax.Array, root_rot: jax.Array) -> jax.Array:
    """Moves a clip into the frame :func:`joints_from_features` returns.

    Args:
      joints: [T, 22, 3] joint positions (joint 0 the root).
      root_rot: [T, 3, 3] global root rotations (only frame 0's heading is used).

    Returns:
      [T, 22, 3] joints with the floor at y = 0 and frame 0's root at x = z = 0 facing +z.
    """
    _check(joints, (NUM_JOINTS, 3), "joints")
    origin = jnp.stack([joints[0, 0, 0], jnp.min(joints[..., 1]), joints[0, 0, 2]])
    return _rotate_y(heading(root_rot[0]), joints - origin)


@jax.jit
def canonicalize_motion(
    local_rot: jax.Array, root_pos: jax.Array, offsets: jax.Array | np.ndarray = skeleton.OFFSETS
) -> tuple[jax.Array, jax.Array]:
    """The canonical (local_rot [T,22,3,3], root_pos [T,3]) of a clip (see :func:`canonicalize`)."""
    _, joints = skeleton.forward_kinematics(local_rot, root_pos, offsets)
    h0 = heading(local_rot[0, 0])
    origin = jnp.stack([root_pos[0, 0], jnp.min(joints[..., 1]), root_pos[0, 2]])
    root_rot = rotations.yaw_matrix(h0) @ local_rot[:, 0]
    return local_rot.at[:, 0].set(root_rot), _rotate_y(h0, root_pos - origin)


# Batched variants over a leading B axis: [B, T, ...].
_features_batch = jax.jit(jax.vmap(features_from_motion, in_axes=(0, 0, None)))
features_from_joints_batch = jax.jit(jax.vmap(features_from_joints))
features_from_joints_batch.__doc__ = "[B, T, 22, 3], [B, T, 22, 3, 3] -> [B, T, 272] (vmap of features_from_joints)."
joints_from_features_batch = jax.jit(jax.vmap(joints_from_features))
joints_from_features_batch.__doc__ = "[B, T, 272] -> [B, T, 22, 3] (vmap of joints_from_features)."
motion_from_features_batch = jax.jit(jax.vmap(motion_from_features))
motion_from_features_batch.__doc__ = "[B, T, 272] -> Motion with a leading B axis."


def features_from_motion_batch(
    local_rot: jax.Array, root_pos: jax.Array, offsets: jax.Array | np.ndarray = skeleton.OFFSETS
) -> jax.Array:
    """[B, T, 22, 3, 3], [B, T, 3] -> [B, T, 272] (vmap of features_from_motion)."""
    return _features_batch(local_rot, root_pos, offsets)
