"""Tests of mm_jax.motion.features: the 272-d layout, exact round trips, no drift."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax.errors import ShapeError
from mm_jax.motion import features as F
from mm_jax.motion import rotations, skeleton

J = skeleton.NUM_JOINTS
IDX = skeleton.JOINT_INDEX
TOL = 1e-4  # metres


def _walk_clip(t: int = 300, seed: int = 0, radius: float = 1.5, turns: float = 1.25):
    """A procedural walk around a circle (float32): local_rot [T,J,3,3], root_pos [T,3].

    The root travels ``2 pi radius turns`` metres (11.8 m by default) and turns
    ``360 turns`` degrees, starts away from the origin with a yaw of 0.7 rad,
    sways in pitch/roll; hips and knees swing sinusoidally and every joint
    gets a small random rotation.
    """
    rng = np.random.default_rng(seed)
    time = np.arange(t) / F.FPS
    phi = 2 * np.pi * turns * np.arange(t) / (t - 1)
    yaw0, start = 0.7, np.array([2.0, 0.0, -3.0])
    circle = np.stack([radius * (1 - np.cos(phi)), np.zeros(t), radius * np.sin(phi)], -1)
    c0, s0 = np.cos(yaw0), np.sin(yaw0)
    rot0 = np.array([[c0, 0, s0], [0, 1, 0], [-s0, 0, c0]])
    root_pos = start + circle @ rot0.T
    root_pos[:, 1] = skeleton.rest_root_height() + 0.03 * np.sin(4 * np.pi * time)
    gait = np.sin(2 * np.pi * 1.0 * time)
    euler = 0.05 * rng.standard_normal((t, J, 3))
    euler[:, 0] = [0.0, 0.0, 0.0]
    euler[:, IDX["left_hip"], 0] += 0.5 * gait
    euler[:, IDX["right_hip"], 0] -= 0.5 * gait
    euler[:, IDX["left_knee"], 0] += 0.6 * np.maximum(gait, 0)
    euler[:, IDX["right_knee"], 0] += 0.6 * np.maximum(-gait, 0)
    local_rot = np.array(rotations.euler_to_matrix(jnp.asarray(euler), "XYZ"))
    heading = yaw0 + phi + 0.1 * np.sin(2 * np.pi * 0.5 * time)
    root = rotations.yaw_matrix(jnp.asarray(heading))
    root = root @ rotations.axis_rotation("X", jnp.asarray(0.08 * np.sin(2 * np.pi * time)))
    root = root @ rotations.axis_rotation("Z", jnp.asarray(0.05 * np.cos(2 * np.pi * time)))
    local_rot[:, 0] = np.asarray(root)
    return jnp.asarray(local_rot, jnp.float32), jnp.asarray(root_pos, jnp.float32)


@pytest.fixture(scope="module")
def clip():
    local_rot, root_pos = _walk_clip()
    glob, joints = skeleton.forward_kinematics(local_rot, root_pos)
    feats = F.features_from_motion(local_rot, root_pos)
    return local_rot, root_pos, glob, joints, feats


def test_layout_and_slices():
    assert F.FEATURE_DIM == 272
    sizes = [2, 6, 66, 66, 132]
    sls = [F.ROOT_LIN_VEL, F.ROOT_ANG_VEL, F.LOCAL_POS, F.LOCAL_VEL, F.LOCAL_ROT]
    assert [s.stop - s.start for s in sls] == sizes
    assert sls[0].start == 0 and sls[-1].stop == 272
    assert all(a.stop == b.start for a, b in zip(sls, sls[1:]))
    assert F.slice_name(140) == "local_rot" and F.slice_name(7) == "root_ang_vel"


def test_clip_is_a_real_walk(clip):
    """Guards the fixture: several metres travelled, more than a full turn."""
    local_rot, root_pos, *_ = clip
    travelled = np.linalg.norm(np.diff(np.asarray(root_pos)[:, [0, 2]], axis=0), axis=1).sum()
    yaw = np.unwrap(np.asarray(rotations.heading_yaw(local_rot[:, 0])))
    assert travelled > 5.0
    assert abs(yaw[-1] - yaw[0]) > 2 * np.pi


def test_shape_and_frame0(clip):
    *_, feats = clip
    assert feats.shape == (300, 272) and feats.dtype == jnp.float32
    np.testing.assert_allclose(feats[0, F.ROOT_LIN_VEL], 0.0, atol=1e-7)
    np.testing.assert_allclose(feats[0, F.LOCAL_VEL], 0.0, atol=1e-7)
    np.testing.assert_allclose(feats[0, F.ROOT_ANG_VEL], [1, 0, 0, 0, 1, 0], atol=1e-7)


def test_joint_roundtrip_no_drift(clip):
    local_rot, _, glob, joints, feats = clip
    want = F.canonicalize(joints, glob[:, 0])
    got = F.joints_from_features(feats)
    err = np.asarray(jnp.linalg.norm(got - want, axis=-1).max(axis=-1))  # [T]
    assert err.max() < TOL, err.max()
    assert err[-30:].max() <= err[:30].max() + TOL
    # Canonical frame 0: root at x=z=0, facing +z.
    np.testing.assert_allclose(got[0, 0, [0, 2]], 0.0, atol=1e-6)


def test_rotations_roundtrip_and_fk(clip):
    local_rot, root_pos, _, _, feats = clip
    motion = F.motion_from_features(feats)
    want_rot, want_root = F.canonicalize_motion(local_rot, root_pos)
    np.testing.assert_allclose(motion.local_rot, want_rot, atol=1e-5)
    np.testing.assert_allclose(motion.root_pos, want_root, atol=TOL)
    # features -> rotations -> FK agrees with features -> joints.
    _, fk_joints = skeleton.forward_kinematics(motion.local_rot, motion.root_pos)
    assert float(jnp.abs(fk_joints - motion.joints).max()) < TOL
    assert float(jnp.abs(fk_joints - F.joints_from_features(feats)).max()) < TOL


def test_reencode_is_stable(clip):
    """features -> motion -> features gives the same features."""
    *_, feats = clip
    motion = F.motion_from_features(feats)
    again = F.features_from_motion(motion.local_rot, motion.root_pos)
    np.testing.assert_allclose(again, feats, atol=1e-4)


def test_hand_computed_velocities():
    """Facing +x (yaw 90 deg) and moving +x at 5 cm/frame is 'forward' = +z in the heading frame."""
    t = 4
    rot = jnp.broadcast_to(jnp.eye(3), (t, J, 3, 3))
    rot = rot.at[:, 0].set(rotations.yaw_matrix(jnp.full((t,), np.pi / 2)))
    root = jnp.stack([0.05 * jnp.arange(t), jnp.full((t,), 0.9), jnp.zeros(t)], -1)
    f = F.features_from_motion(rot, root)
    np.testing.assert_allclose(f[1:, F.ROOT_LIN_VEL], [[0.0, 0.05]] * 3, atol=1e-6)
    # Floor: the rest pose's lowest joint stands on y = 0, so the pelvis is rest_root_height() up.
    h0 = skeleton.rest_root_height()
    np.testing.assert_allclose(f[:, F.LOCAL_POS][:, :3], [[0.0, h0, 0.0]] * t, atol=1e-6)
    np.testing.assert_allclose(f[:, F.LOCAL_POS].reshape(t, J, 3), np.broadcast_to(
        skeleton.rest_positions() + [0, h0, 0], (t, J, 3)), atol=1e-6)
    # Turning +0.1 rad per frame about +y: h = -yaw falls 0.1 per frame, so the heading change
    # is Y(-0.1), whose first two rows are (cos .1, 0, -sin .1) and (0, 1, 0).
    rot = rot.at[:, 0].set(rotations.yaw_matrix(0.1 * jnp.arange(t)))
    f = F.features_from_motion(rot, root)
    c, s = np.cos(0.1), np.sin(0.1)
    np.testing.assert_allclose(f[1:, F.ROOT_ANG_VEL], [[c, 0, -s, 0, 1, 0]] * 3, atol=1e-6)


def test_hand_computed_short_chain():
    """One frame by hand: root yawed 90 deg, left knee bent 90 deg about x, all else identity.

    The root's 6D with the heading removed is the identity; the knee's is the first two ROWS
    of R_x(90) = [[1, 0, 0], [0, 0, -1], [0, 1, 0]] (columns would give 1 0 0 0 0 1).
    The left ankle sits at knee + R_x(90) @ offset = knee + (x, -z, y) of its offset.
    """
    rot = np.broadcast_to(np.eye(3), (1, J, 3, 3)).copy()
    rot[0, 0] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # R_y(90 deg): +z turns to +x
    rot[0, IDX["left_knee"]] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
    root = np.array([[0.3, 1.0, -0.2]])
    f = np.asarray(F.features_from_motion(jnp.asarray(rot, jnp.float32), jnp.asarray(root, jnp.float32)))[0]
    rot6 = f[F.LOCAL_ROT].reshape(J, 6)
    np.testing.assert_allclose(rot6[0], [1, 0, 0, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(rot6[IDX["left_knee"]], [1, 0, 0, 0, 0, -1], atol=1e-6)
    np.testing.assert_allclose(rot6[IDX["pelvis"] + 1], [1, 0, 0, 0, 1, 0], atol=1e-6)
    off = skeleton.OFFSETS.astype(np.float64)
    rest = skeleton.rest_positions().astype(np.float64)
    knee = rest[IDX["left_knee"]]
    ax, ay, az = off[IDX["left_ankle"]]
    ankle = knee + [ax, -az, ay]
    foot = ankle + np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]) @ off[IDX["left_foot"]]
    body = rest.copy()
    body[IDX["left_ankle"]], body[IDX["left_foot"]] = ankle, foot
    floor = body[:, 1].min()  # heading removed: local positions are the body frame's
    local = f[F.LOCAL_POS].reshape(J, 3)
    np.testing.assert_allclose(local, body - [0, floor, 0], atol=1e-6)
    np.testing.assert_allclose(f[F.ROOT_LIN_VEL], 0.0)
    np.testing.assert_allclose(f[F.LOCAL_VEL], 0.0)


def test_hand_computed_turning_walk():
    """Root at (0.1 t, 0.9, 0), yaw 0.1 t: velocities in the previous frame's heading, by hand."""
    t = 3
    rot = np.broadcast_to(np.eye(3), (t, J, 3, 3)).copy()
    yaw = 0.1 * np.arange(t)
    rot[:, 0] = [[[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]] for a in yaw]
    root = np.stack([0.1 * np.arange(t), np.full(t, 0.9), np.zeros(t)], -1)
    f = np.asarray(F.features_from_motion(jnp.asarray(rot, jnp.float32), jnp.asarray(root, jnp.float32)))
    c, s = np.cos(0.1), np.sin(0.1)
    # Frame 1: Y(h0 = 0) @ (0.1, 0, 0). Frame 2: Y(h1 = -0.1) @ (0.1, 0, 0) = (0.1 c, 0, 0.1 s).
    np.testing.assert_allclose(f[:, F.ROOT_LIN_VEL], [[0, 0], [0.1, 0], [0.1 * c, 0.1 * s]], atol=1e-6)
    np.testing.assert_allclose(f[:, F.ROOT_ANG_VEL], [[1, 0, 0, 0, 1, 0]] + [[c, 0, -s, 0, 1, 0]] * 2,
                               atol=1e-6)
    # Every frame is the same rest body in its own heading frame: local velocities are zero.
    np.testing.assert_allclose(f[:, F.LOCAL_VEL], 0.0, atol=1e-6)
    np.testing.assert_allclose(f[:, F.LOCAL_ROT].reshape(t, J, 6)[:, 0], [[1, 0, 0, 0, 1, 0]] * t, atol=1e-6)


def test_matches_the_independent_reference(clip):
    """Every slice of the turning walk equals tests/reference_272.py (RECIPE.md, per-frame NumPy)."""
    from reference_272 import reference_features

    local_rot, _, _, joints, feats = clip
    want = reference_features(np.asarray(joints), np.asarray(local_rot))
    for name, sl in F.FEATURE_SLICES.items():
        np.testing.assert_allclose(np.asarray(feats)[:, sl], want[:, sl], atol=1e-4, err_msg=name)


def test_features_from_joints_keeps_the_given_joints():
    """Positions come from the joints given (any bone lengths), rotations from local_rot."""
    local_rot, root_pos = _walk_clip(t=40, seed=3)
    long_offsets = skeleton.OFFSETS * 1.2
    _, joints = skeleton.forward_kinematics(local_rot, root_pos, long_offsets)
    f = F.features_from_joints(joints, local_rot)
    np.testing.assert_allclose(f, F.features_from_motion(local_rot, root_pos, long_offsets), atol=1e-6)
    back = F.joints_from_features(f)
    _, glob_joints = skeleton.forward_kinematics(local_rot, root_pos, long_offsets)
    np.testing.assert_allclose(back, F.canonicalize(glob_joints, local_rot[:, 0]), atol=TOL)


def test_batched_matches_per_sequence():
    clips = [_walk_clip(t=4, seed=s, radius=0.2 + 0.1 * s, turns=0.02) for s in range(3)]
    rot = jnp.stack([c[0] for c in clips])
    root = jnp.stack([c[1] for c in clips])
    fb = F.features_from_motion_batch(rot, root)
    assert fb.shape == (3, 4, 272)
    jb = F.joints_from_features_batch(fb)
    mb = F.motion_from_features_batch(fb)
    for i, (r, p) in enumerate(clips):
        f = F.features_from_motion(r, p)
        np.testing.assert_allclose(fb[i], f, atol=1e-6)
        np.testing.assert_allclose(jb[i], F.joints_from_features(f), atol=1e-6)
        np.testing.assert_allclose(mb.local_rot[i], F.motion_from_features(f).local_rot, atol=1e-6)
    assert jax.vmap(F.joints_from_features)(fb).shape == (3, 4, J, 3)


def test_single_frame():
    rot = jnp.broadcast_to(jnp.eye(3), (1, J, 3, 3))
    root = jnp.asarray([[1.0, 0.9, 2.0]])
    joints = F.joints_from_features(F.features_from_motion(rot, root))
    np.testing.assert_allclose(joints[0], skeleton.rest_positions() + [0, skeleton.rest_root_height(), 0],
                               atol=1e-6)


@pytest.mark.parametrize(
    "rot_shape, root_shape, match",
    [((5, J, 3, 3), (4, 3), "5 frames"), ((5, 21, 3, 3), (5, 3), r"\(5, 21, 3, 3\)"),
     ((5, J, 3, 3), (5, 2), r"root_pos.*\(5, 2\)")],
)
def test_bad_shapes(rot_shape, root_shape, match):
    with pytest.raises(ShapeError, match=match):
        F.features_from_motion(jnp.zeros(rot_shape), jnp.zeros(root_shape))


def test_bad_feature_width():
    with pytest.raises(ShapeError, match=r"features.*\(10, 263\)"):
        F.joints_from_features(jnp.zeros((10, 263)))
    with pytest.raises(ShapeError, match="272"):
        F.motion_from_features(jnp.zeros((272,)))
