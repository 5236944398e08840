"""Tests of mm_jax.motion.skeleton: FK against hand-computed poses, bone lengths, jit/vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mm_jax.motion import rotations, skeleton

J = skeleton.NUM_JOINTS
IDX = skeleton.JOINT_INDEX
ROOT = np.array([0.3, 0.956, -1.7], np.float32)


def _identity(*lead: int) -> jnp.ndarray:
    return jnp.broadcast_to(jnp.eye(3), (*lead, J, 3, 3))


def test_tables_are_consistent():
    assert len(skeleton.JOINT_NAMES) == len(skeleton.PARENTS) == len(skeleton.OFFSETS) == 22
    assert all(p < j for j, p in enumerate(skeleton.PARENTS))
    # Left joints sit at +x in the rest pose (the body faces +z).
    for side in ("hip", "shoulder", "wrist", "ankle"):
        assert skeleton.rest_positions()[IDX[f"left_{side}"], 0] > 0
        assert skeleton.rest_positions()[IDX[f"right_{side}"], 0] < 0
    assert abs(skeleton.rest_root_height() - 0.956) < 1e-3


def test_identity_rotations_give_rest_pose():
    glob, pos = skeleton.forward_kinematics(_identity(), jnp.asarray(ROOT))
    np.testing.assert_allclose(pos, skeleton.rest_positions() + ROOT, atol=1e-6)
    np.testing.assert_allclose(glob, _identity(), atol=1e-7)
    # Hand-summed chain pelvis -> spine1 -> spine2 -> spine3 -> left_collar -> left_shoulder.
    np.testing.assert_allclose(pos[IDX["left_shoulder"]], ROOT + [0.2012, 0.4776, -0.0466], atol=1e-6)


def test_left_shoulder_90_degrees_about_z():
    """Rz(90) maps a bone (x, y, z) to (-y, x, z): the straight arm points up."""
    rot = _identity().at[IDX["left_shoulder"]].set(rotations.axis_rotation("Z", jnp.asarray(np.pi / 2)))
    _, pos = skeleton.forward_kinematics(rot, jnp.zeros(3))
    pos = np.asarray(pos)
    # shoulder (0.2012, 0.4776, -0.0466) + (0.0156, 0.2553, -0.0229)
    np.testing.assert_allclose(pos[IDX["left_elbow"]], [0.2168, 0.7329, -0.0695], atol=1e-6)
    # elbow + (-0.0127, 0.2657, -0.0073)
    np.testing.assert_allclose(pos[IDX["left_wrist"]], [0.2041, 0.9986, -0.0768], atol=1e-6)
    # Nothing else moves.
    rest = skeleton.rest_positions()
    others = [j for j in range(J) if j not in (IDX["left_elbow"], IDX["left_wrist"])]
    np.testing.assert_allclose(pos[others], rest[others], atol=1e-6)


def test_root_yaw_90_rotates_whole_body():
    """Ry(90) maps (x, y, z) to (z, y, -x): the body turns to face +x."""
    rot = _identity().at[0].set(rotations.yaw_matrix(jnp.asarray(np.pi / 2)))
    _, pos = skeleton.forward_kinematics(rot, jnp.asarray(ROOT))
    # left_hip offset (0.0586, -0.0823, -0.0177) -> (-0.0177, -0.0823, -0.0586)
    np.testing.assert_allclose(pos[IDX["left_hip"]], ROOT + [-0.0177, -0.0823, -0.0586], atol=1e-6)
    rest = skeleton.rest_positions()
    want = np.stack([rest[:, 2], rest[:, 1], -rest[:, 0]], -1) + ROOT
    np.testing.assert_allclose(pos, want, atol=1e-6)
    assert abs(float(rotations.heading_yaw(rot[0])) - np.pi / 2) < 1e-6


def test_bone_lengths_invariant_under_random_rotations():
    rng = np.random.default_rng(3)
    aa = jnp.asarray(rng.uniform(-2, 2, (7, J, 3)), jnp.float32)
    root = jnp.asarray(rng.standard_normal((7, 3)), jnp.float32)
    _, pos = skeleton.forward_kinematics(rotations.axis_angle_to_matrix(aa), root)
    lengths = skeleton.joint_bone_lengths(pos)
    assert lengths.shape == (7, J - 1)
    np.testing.assert_allclose(lengths, np.broadcast_to(skeleton.bone_lengths(), (7, J - 1)), atol=1e-5)


def test_jit_and_vmap_agree():
    rng = np.random.default_rng(5)
    rot = rotations.axis_angle_to_matrix(jnp.asarray(rng.uniform(-1, 1, (3, 5, J, 3)), jnp.float32))
    root = jnp.asarray(rng.standard_normal((3, 5, 3)), jnp.float32)
    _, eager = skeleton.forward_kinematics(rot, root)
    _, jitted = jax.jit(skeleton.forward_kinematics)(rot, root)
    _, mapped = jax.vmap(skeleton.forward_kinematics, in_axes=(0, 0))(rot, root)
    assert eager.shape == (3, 5, J, 3)
    np.testing.assert_allclose(jitted, eager, atol=1e-6)
    np.testing.assert_allclose(mapped, eager, atol=1e-6)
