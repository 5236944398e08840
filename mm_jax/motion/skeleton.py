"""The 22-joint SMPL body skeleton and forward kinematics (stage: motion).

Constants are the public SMPL / HumanML3D ones: joint names and order, the
parent of each joint, and the rest-pose offsets of each joint from its
parent (SMPL neutral body, metres, T-pose, y up, the body facing +z, its
left side towards +x).

Forward kinematics maps local joint rotations ``[..., J, 3, 3]`` and a root
position ``[..., 3]`` to global rotations and joint positions ``[..., J, 3]``.
It is pure jnp (a static Python loop over the 22 joints), jit- and vmap-able.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mm_jax.motion.layout import FOOT_JOINTS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS  # noqa: F401 (re-exported)

# Rest-pose offset of each joint from its parent (metres), SMPL neutral shape.
OFFSETS = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0586, -0.0823, -0.0177],
        [-0.0603, -0.0905, -0.0135],
        [0.0044, 0.1244, -0.0384],
        [0.0435, -0.3865, 0.0080],
        [-0.0433, -0.3831, -0.0048],
        [0.0045, 0.1380, 0.0268],
        [-0.0148, -0.4269, -0.0374],
        [0.0191, -0.4200, -0.0346],
        [-0.0023, 0.0560, 0.0029],
        [0.0411, -0.0603, 0.1220],
        [-0.0348, -0.0621, 0.1303],
        [-0.0134, 0.2116, -0.0335],
        [0.0717, 0.1140, -0.0189],
        [-0.0830, 0.1125, -0.0237],
        [0.0101, 0.0889, 0.0504],
        [0.1229, 0.0452, -0.0190],
        [-0.1132, 0.0469, -0.0085],
        [0.2553, -0.0156, -0.0229],
        [-0.2601, -0.0144, -0.0313],
        [0.2657, 0.0127, -0.0073],
        [-0.2691, 0.0068, -0.0060],
    ],
    dtype=np.float32,
)

# Chains for drawing: right leg, left leg, spine+head, right arm, left arm.
KINEMATIC_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11),
    (0, 1, 4, 7, 10),
    (0, 3, 6, 9, 12, 15),
    (9, 14, 17, 19, 21),
    (9, 13, 16, 18, 20),
)


def rest_positions(offsets: np.ndarray = OFFSETS) -> np.ndarray:
    """Joint positions [J, 3] of the rest pose with the pelvis at the origin."""
    pos = np.zeros_like(offsets)
    for j in range(1, len(PARENTS)):
        pos[j] = pos[PARENTS[j]] + offsets[j]
    return pos


def rest_root_height(offsets: np.ndarray = OFFSETS) -> float:
    """Pelvis height that puts the rest pose's lowest joint on the ground (y=0)."""
    return float(-rest_positions(offsets)[:, 1].min())


def bone_lengths(offsets: np.ndarray = OFFSETS) -> np.ndarray:
    """Length of the bone from each non-root joint to its parent, [J-1]."""
    return np.linalg.norm(offsets[1:], axis=-1)


def forward_kinematics(
    local_rot: jax.Array, root_pos: jax.Array, offsets: jax.Array | np.ndarray = OFFSETS
) -> tuple[jax.Array, jax.Array]:
    """Forward kinematics over the SMPL tree.

    Args:
      local_rot: [..., J, 3, 3] rotation of each joint relative to its parent
        (the root's is global).
      root_pos: [..., 3] position of the root joint.
      offsets: [J, 3] rest-pose offsets from each joint's parent.

    Returns:
      (global_rot [..., J, 3, 3], positions [..., J, 3]).
    """
    offsets = jnp.asarray(offsets, dtype=local_rot.dtype)
    glob = [local_rot[..., 0, :, :]]
    pos = [root_pos]
    for j in range(1, len(PARENTS)):
        p = PARENTS[j]
        pos.append(pos[p] + jnp.einsum("...ij,j->...i", glob[p], offsets[j]))
        glob.append(glob[p] @ local_rot[..., j, :, :])
    return jnp.stack(glob, axis=-3), jnp.stack(pos, axis=-2)


def joint_bone_lengths(positions: jax.Array) -> jax.Array:
    """Bone lengths measured from joint positions [..., J, 3] -> [..., J-1]."""
    parents = jnp.asarray(PARENTS[1:])
    return jnp.linalg.norm(positions[..., 1:, :] - positions[..., parents, :], axis=-1)
