"""The 272-d per-frame motion representation, both ways (stage: motion).

Input: local joint rotations ``[T, 22, 3, 3]`` (each relative to its parent,
the root's global) and the root position ``[T, 3]`` of a 30 fps clip
(metres, y up). Output: features ``[T, 272]``. The inverse maps features back
to a canonical :class:`Motion` without inverse kinematics.

Layout of one frame (RECIPE.md), with ``F = 272``:

=========  =====  ==============================================================
slice      size   meaning
=========  =====  ==============================================================
0:2        2      root linear velocity ``(vx, vz)`` on the ground, heading frame
2:8        6      root angular velocity: the heading change as a 6D rotation
8:74       66     local joint positions (22 x 3)
74:140     66     local joint velocities (22 x 3)
140:272    132    local joint rotations (22 x 6D)
=========  =====  ==============================================================

Conventions (``t`` is a frame index, ``J`` a joint):

* Heading ``theta_t = heading_yaw(local_rot[t, 0])``: the yaw of the direction
  the root's +z axis faces on the ground; ``H_t = yaw_matrix(theta_t)``.
* Ground point ``g_t = (root_x, 0, root_z)``.
* Local positions ``p[t, J] = H_t^T (joints[t, J] - g_t)``: x/z relative to the
  root's ground projection with the heading removed, y is height above ground.
* Velocities at frame ``t >= 1`` are expressed in the heading frame of the
  *previous* frame ``t - 1``: root ``v_t = (H_{t-1}^T (g_t - g_{t-1}))_{x,z}``,
  joints ``H_{t-1}^T (joints[t] - joints[t-1])``; the heading change is
  ``H_{t-1}^T H_t = yaw_matrix(theta_t - theta_{t-1})``. Frame 0's
  velocities are zero and its heading change is the identity, so ``T``
  frames map to ``T`` feature frames and frame 0 is fully recoverable.
* Rotations: SMPL local rotations as 6D (:func:`rotations.matrix_to_6d`),
  the root's with the heading removed (``H_t^T local_rot[t, 0]``).

Recovery (:func:`motion_from_features`) integrates the heading as an angle
(``atan2`` of each 6D heading change, wrapped to (-pi, pi], then a cumsum),
integrates ``g_t = g_{t-1} + H_{t-1} v_t`` and adds the local positions
rotated by ``H_t``. Frame 0's velocity and heading change are ignored, so the
result is canonical: frame 0's root is at x = z = 0 facing +z. The local
velocities are not used by the recovery (they are a redundant training
signal). All functions are pure jnp, jit-ed, and vmap-able; ``*_batch``
variants take ``[B, T, ...]``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mm_jax.errors import ShapeError
from mm_jax.motion import rotations, skeleton

FPS = 30
NUM_JOINTS = skeleton.NUM_JOINTS
FEATURE_DIM = 2 + 6 + 3 * NUM_JOINTS + 3 * NUM_JOINTS + 6 * NUM_JOINTS  # 272

ROOT_LIN_VEL = slice(0, 2)
ROOT_ANG_VEL = slice(2, 8)
LOCAL_POS = slice(8, 74)
LOCAL_VEL = slice(74, 140)
LOCAL_ROT = slice(140, 272)
# Groups that share one std when normalising (see normalize.Normalizer.fit).
NORMALIZER_GROUPS = (LOCAL_POS, LOCAL_VEL, LOCAL_ROT)

# Name -> slice, in layout order (used by validation and diagnostics).
FEATURE_SLICES: dict[str, slice] = {
    "root_lin_vel": ROOT_LIN_VEL,
    "root_ang_vel": ROOT_ANG_VEL,
    "local_pos": LOCAL_POS,
    "local_vel": LOCAL_VEL,
    "local_rot": LOCAL_ROT,
}


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


def _wrap(angle: jax.Array) -> jax.Array:
    """Wraps radians to (-pi, pi]."""
    return jnp.arctan2(jnp.sin(angle), jnp.cos(angle))


def _rotate_y(yaw: jax.Array, v: jax.Array) -> jax.Array:
    """Applies ``yaw_matrix(yaw)`` ([...]) to vectors v [..., 3] (cheap, no matrices)."""
    c, s = jnp.cos(yaw)[..., None], jnp.sin(yaw)[..., None]
    x, y, z = v[..., 0:1], v[..., 1:2], v[..., 2:3]
    return jnp.concatenate([c * x + s * z, y, -s * x + c * z], axis=-1)


def _prev(x: jax.Array) -> jax.Array:
    """x shifted one frame later along axis 0, frame 0 repeated: prev[t] = x[t-1]."""
    return jnp.concatenate([x[:1], x[:-1]], axis=0)


@jax.jit
def features_from_motion(
    local_rot: jax.Array, root_pos: jax.Array, offsets: jax.Array | np.ndarray = skeleton.OFFSETS
) -> jax.Array:
    """Encodes a clip as 272-d features.

    Args:
      local_rot: [T, 22, 3, 3] local joint rotations (root's global).
      root_pos: [T, 3] root position, metres, y up.
      offsets: [22, 3] rest offsets used by forward kinematics.

    Returns:
      [T, 272] features (see the module docstring for the layout).
    """
    _check(local_rot, (NUM_JOINTS, 3, 3), "local_rot")
    _check(root_pos, (3,), "root_pos")
    if local_rot.shape[0] != root_pos.shape[0]:
        raise ShapeError(f"local_rot has {local_rot.shape[0]} frames but root_pos has {root_pos.shape[0]}")
    _, joints = skeleton.forward_kinematics(local_rot, root_pos, offsets)  # [T, J, 3]
    theta = rotations.heading_yaw(local_rot[:, 0])  # [T]
    theta_prev = _prev(theta)
    ground = root_pos * jnp.asarray([1.0, 0.0, 1.0], root_pos.dtype)  # [T, 3]

    local_pos = _rotate_y(-theta[:, None], joints - ground[:, None, :])  # [T, J, 3]
    root_vel = _rotate_y(-theta_prev, ground - _prev(ground))[:, [0, 2]]  # [T, 2]
    joint_vel = _rotate_y(-theta_prev[:, None], joints - _prev(joints))  # [T, J, 3]
    dtheta = _wrap(theta - theta_prev)  # frame 0 -> 0
    ang_vel = rotations.matrix_to_6d(rotations.yaw_matrix(dtheta))  # [T, 6]

    root_local = rotations.yaw_matrix(-theta) @ local_rot[:, 0]
    rots = local_rot.at[:, 0].set(root_local)
    rot6 = rotations.matrix_to_6d(rots)  # [T, J, 6]
    t = local_rot.shape[0]
    return jnp.concatenate(
        [root_vel, ang_vel, local_pos.reshape(t, -1), joint_vel.reshape(t, -1), rot6.reshape(t, -1)],
        axis=-1,
    )


def _integrate_root(f: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Heading angles [T] and ground points [T, 3] integrated from features [T, F]."""
    d6 = f[:, ROOT_ANG_VEL]
    # yaw_matrix(a) has first column (cos a, 0, -sin a).
    dtheta = jnp.arctan2(-d6[:, 2], d6[:, 0]).at[0].set(0.0)
    theta = jnp.cumsum(dtheta)  # [T]
    vel = f[:, ROOT_LIN_VEL]
    step = jnp.stack([vel[:, 0], jnp.zeros_like(vel[:, 0]), vel[:, 1]], axis=-1).at[0].set(0.0)
    ground = jnp.cumsum(_rotate_y(_prev(theta), step), axis=0)  # [T, 3]
    return theta, ground


@jax.jit
def joints_from_features(f: jax.Array) -> jax.Array:
    """Canonical joint positions [T, 22, 3] from features [T, 272] (no IK)."""
    _check(f, (FEATURE_DIM,), "features")
    theta, ground = _integrate_root(f)
    local_pos = f[:, LOCAL_POS].reshape(-1, NUM_JOINTS, 3)
    return _rotate_y(theta[:, None], local_pos) + ground[:, None, :]


@jax.jit
def motion_from_features(f: jax.Array) -> Motion:
    """Canonical :class:`Motion` from features [T, 272].

    Joint positions come from the root integration plus local positions; the
    rotations come from the 6D channels (Gram-Schmidt) with the integrated
    heading put back on the root, and ``root_pos`` is the recovered pelvis.
    """
    _check(f, (FEATURE_DIM,), "features")
    theta, ground = _integrate_root(f)
    local_pos = f[:, LOCAL_POS].reshape(-1, NUM_JOINTS, 3)
    joints = _rotate_y(theta[:, None], local_pos) + ground[:, None, :]
    rots = rotations.sixd_to_matrix(f[:, LOCAL_ROT].reshape(-1, NUM_JOINTS, 6))
    rots = rots.at[:, 0].set(rotations.yaw_matrix(theta) @ rots[:, 0])
    return Motion(local_rot=rots, root_pos=joints[:, 0], joints=joints)


@jax.jit
def canonicalize(joints: jax.Array, root_rot: jax.Array) -> jax.Array:
    """Moves a clip so frame 0's root is at x = z = 0 facing +z.

    Args:
      joints: [T, 22, 3] joint positions (joint 0 the root).
      root_rot: [T, 3, 3] global root rotations (only frame 0's heading is used).

    Returns:
      [T, 22, 3] joints in the canonical frame used by :func:`joints_from_features`.
    """
    _check(joints, (NUM_JOINTS, 3), "joints")
    theta0 = rotations.heading_yaw(root_rot[0])
    origin = joints[0, 0] * jnp.asarray([1.0, 0.0, 1.0], joints.dtype)
    return _rotate_y(-theta0, joints - origin)


@jax.jit
def canonicalize_motion(local_rot: jax.Array, root_pos: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The canonical (local_rot [T,22,3,3], root_pos [T,3]) of a clip (see :func:`canonicalize`)."""
    theta0 = rotations.heading_yaw(local_rot[0, 0])
    origin = root_pos[0] * jnp.asarray([1.0, 0.0, 1.0], root_pos.dtype)
    root_rot = rotations.yaw_matrix(-theta0) @ local_rot[:, 0]
    return local_rot.at[:, 0].set(root_rot), _rotate_y(-theta0, root_pos - origin)


# Batched variants over a leading B axis: [B, T, ...].
_features_batch = jax.jit(jax.vmap(features_from_motion, in_axes=(0, 0, None)))
joints_from_features_batch = jax.jit(jax.vmap(joints_from_features))
joints_from_features_batch.__doc__ = "[B, T, 272] -> [B, T, 22, 3] (vmap of joints_from_features)."
motion_from_features_batch = jax.jit(jax.vmap(motion_from_features))
motion_from_features_batch.__doc__ = "[B, T, 272] -> Motion with a leading B axis."


def features_from_motion_batch(
    local_rot: jax.Array, root_pos: jax.Array, offsets: jax.Array | np.ndarray = skeleton.OFFSETS
) -> jax.Array:
    """[B, T, 22, 3, 3], [B, T, 3] -> [B, T, 272] (vmap of features_from_motion)."""
    return _features_batch(local_rot, root_pos, offsets)
