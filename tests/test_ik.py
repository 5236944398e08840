"""Tests of mm_jax.motion.ik: per-clip skeleton and rotations fitted to joint positions."""

from __future__ import annotations

import numpy as np
import pytest

from mm_jax.errors import DataError, ShapeError
from mm_jax.motion import ik, skeleton

T = 37  # prime
J = skeleton.NUM_JOINTS
LEAVES = [j for j in range(J) if not ik.CHILDREN[j]]
SINGLE = [j for j in range(J) if len(ik.CHILDREN[j]) == 1]
MULTI = [j for j in range(J) if len(ik.CHILDREN[j]) > 1]
REST_DIR = skeleton.OFFSETS / np.maximum(np.linalg.norm(skeleton.OFFSETS, axis=-1, keepdims=True), 1e-12)


def _rot(aa: np.ndarray) -> np.ndarray:
    """Axis-angle [..., 3] -> exact float64 rotations [..., 3, 3] (NumPy Rodrigues)."""
    theta = np.linalg.norm(aa, axis=-1)[..., None, None]
    x, y, z = np.moveaxis(aa / np.maximum(theta[..., 0], 1e-300), -1, 0)
    o = 0 * x
    k = np.stack([np.stack([o, -z, y], -1), np.stack([z, o, -x], -1), np.stack([-y, x, o], -1)], -2)
    return np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)


def _fk(local_rot, root_pos, offsets) -> tuple[np.ndarray, np.ndarray]:
    """NumPy float64 FK with offsets [22, 3] or per-frame offsets [T, 22, 3]."""
    offsets = np.broadcast_to(offsets, (len(local_rot), J, 3))
    glob, pos = [local_rot[:, 0]], [root_pos]
    for j, p in enumerate(skeleton.PARENTS[1:], start=1):
        pos.append(pos[p] + np.einsum("tij,tj->ti", glob[p], offsets[:, j]))
        glob.append(glob[p] @ local_rot[:, j])
    return np.stack(glob, 1), np.stack(pos, 1)


def _clip(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random local rotations [T, 22, 3, 3], root [T, 3] and non-SMPL bone lengths along SMPL directions."""
    rng = np.random.default_rng(seed)
    local = _rot(rng.normal(0.0, 0.7, (T, J, 3)))
    offsets = skeleton.OFFSETS.astype(np.float64) * rng.uniform(0.6, 1.5, (J, 1))
    return local, rng.normal(0.0, 1.0, (T, 3)), offsets


def test_fit_recovers_an_fk_clip_with_other_bone_lengths():
    local, root, offsets = _clip(0)
    glob, joints = _fk(local, root, offsets)
    fit, fit_root, fit_off = ik.fit_rotations(joints)  # no hint: twist and leaves unknown
    assert np.abs(fit_off - offsets).max() < 1e-9 and np.abs(fit_root - root).max() < 1e-12
    fit_glob, fit_joints = _fk(fit, fit_root, fit_off)
    assert np.abs(fit_joints - joints).max() < 1e-5
    # Positions fix the whole rotation of a joint with several children, and each bone's direction.
    assert np.abs(fit_glob[:, MULTI] - glob[:, MULTI]).max() < 1e-4
    for j in SINGLE:
        c = ik.CHILDREN[j][0]
        assert np.abs(fit_glob[:, j] @ REST_DIR[c] - glob[:, j] @ REST_DIR[c]).max() < 1e-4


def test_hint_supplies_twist_and_leaves_and_its_swing_is_corrected():
    local, root, offsets = _clip(1)
    _, joints = _fk(local, root, offsets)
    rng = np.random.default_rng(2)
    hint = local.copy()
    for j in SINGLE:  # swing the hint about an axis normal to its bone: positions must undo it
        axis = np.cross(REST_DIR[ik.CHILDREN[j][0]], rng.normal(size=(T, 3)))
        hint[:, j] = local[:, j] @ _rot(axis / np.linalg.norm(axis, axis=-1, keepdims=True) * 0.5)
    hint[:, LEAVES] = _rot(rng.normal(0.0, 0.7, (T, len(LEAVES), 3)))
    fit, fit_root, fit_off = ik.fit_rotations(joints, hint)
    non_leaves = MULTI + SINGLE
    assert np.abs(fit[:, non_leaves] - local[:, non_leaves]).max() < 1e-4
    assert np.abs(fit[:, LEAVES] - hint[:, LEAVES]).max() < 1e-6
    assert np.abs(_fk(fit, fit_root, fit_off)[1] - joints).max() < 1e-5
    # A twist about the bone moves no joint, so it is taken from the hint as it is (twisted above a
    # leaf only: a twist higher up would turn the bones below it, which positions then correct).
    twisted = local.copy()
    for j in [j for j in SINGLE if ik.CHILDREN[j][0] in LEAVES]:
        twisted[:, j] = local[:, j] @ _rot(REST_DIR[ik.CHILDREN[j][0]] * rng.normal(0.0, 1.0, (T, 1)))
    assert np.abs(ik.fit_rotations(joints, twisted)[0] - twisted).max() < 1e-4


def _greedy_bound(lengths: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """Bound [T, 22] on |FK - joints| of the rotation walk alone, aimed at the joints (ik docstring, step 3).

    A single child: |e_c| <= |len_c - L_c| + |e_j|. Children of a Kabsch joint: each residual is at most
    the root of the summed squares of (|len_k - L_k| + |e_j|), the residual of the true rotation.
    """
    dev = np.abs(lengths - fitted)  # [T, 22], root column 0
    bound = np.zeros_like(dev)
    for j in range(J):
        kids = list(ik.CHILDREN[j])
        if len(kids) == 1:
            bound[:, kids[0]] = dev[:, kids[0]] + bound[:, j]
        elif kids:
            bound[:, kids] = np.sqrt(np.sum((dev[:, kids] + bound[:, j, None]) ** 2, axis=1))[:, None]
    return bound


def test_bone_length_noise_gives_an_error_within_the_bound():
    local, root, offsets = _clip(3)
    rng = np.random.default_rng(4)
    noisy = offsets * (1.0 + rng.normal(0.0, 0.03, (T, J, 1)))  # per-frame lengths, like a decoded clip
    _, joints = _fk(local, root, noisy)
    fit, fit_root, fit_off = ik.fit_rotations(joints, local)
    assert np.abs(np.linalg.norm(fit_off, axis=-1) - np.linalg.norm(noisy, axis=-1).mean(0)).max() < 1e-9
    fk_joints = _fk(fit, fit_root, fit_off)[1]
    err = np.linalg.norm(fk_joints - joints, axis=-1)  # [T, 22]
    # FK reproduces (up to its convergence) the least-squares nearest pose, whose summed squared move is
    # at most that of any other pose of the skeleton, e.g. the walk straight through the noisy joints.
    lengths, fitted = np.linalg.norm(noisy, axis=-1), np.linalg.norm(fit_off, axis=-1)
    bound = _greedy_bound(lengths, fitted)
    assert np.all(np.sum(err**2, axis=1) <= np.sum(bound**2, axis=1))
    # On average a joint moves about as much as a bone's length deviates from the clip's (0.52 vs 0.52 cm).
    assert 0.0 < err.mean() <= 1.1 * np.abs(lengths - fitted)[:, 1:].mean()


def test_arc_rotation_and_kabsch():
    a = np.array([[1.0, 0, 0], [0, 1, 0], [0.3, -0.2, 0.9], [0, 0, 0]])
    b = np.array([[0.0, 1, 0], [0, -1, 0], [0.3, -0.2, 0.9], [1, 0, 0]])
    r = ik.arc_rotation(a, b)
    assert np.abs(r @ np.swapaxes(r, -1, -2) - np.eye(3)).max() < 1e-12 and np.allclose(np.linalg.det(r), 1)
    assert np.abs(np.einsum("kij,kj->ki", r[:3], a[:3]) - b[:3]).max() < 1e-12  # incl. opposite directions
    assert np.allclose(r[2], np.eye(3)) and np.allclose(r[3], np.eye(3))  # same direction; zero vector
    rot = _rot(np.array([0.4, -1.1, 2.0]))
    v = np.random.default_rng(5).normal(size=(5, 3))
    assert np.abs(ik.kabsch(v, v @ rot.T) - rot).max() < 1e-6


def test_bad_input_is_named():
    joints = np.zeros((T, J, 3))
    with pytest.raises(ShapeError, match=r"\[T, 22, 3\]"):
        ik.fit_rotations(joints[:, :21])
    with pytest.raises(ShapeError, match="hint_local_rot"):
        ik.fit_rotations(joints, np.zeros((T - 1, J, 3, 3)))
    joints[3, 4, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ik.fit_rotations(joints)


def test_a_consistent_clip_keeps_its_own_rest_pose_and_rotations():
    """Rotations that agree with the positions (real data) come back unchanged, on the clip's own rest pose."""
    local, root, _ = _clip(3)
    rng = np.random.default_rng(4)
    offsets = skeleton.OFFSETS.astype(np.float64) + rng.normal(0.0, 0.02, (J, 3))  # other rest directions
    offsets[0] = 0.0
    _, joints = _fk(local, root, offsets)
    fit, fit_root, fit_off = ik.fit_rotations(joints, local)
    assert np.abs(fit_off - offsets).max() < 1e-9
    assert np.abs(fit - local).max() < 1e-6
    assert np.abs(_fk(fit, fit_root, fit_off)[1] - joints).max() < 1e-6
