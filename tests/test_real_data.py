"""End to end on data shaped like real captures, checked against the independent reference frame.

``tests/reference_272.py`` computes the 272-d frame from RECIPE.md with its own per-frame NumPy
loops; the importers must reproduce it on every slice.
"""

from __future__ import annotations

import numpy as np
from reference_272 import reference_features

from mm_jax.motion import skeleton
from mm_jax.motion.import_smpl import import_smpl
from mm_jax.motion.synth import load_dataset

Z_UP_TO_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # x stays, z becomes y, y becomes -z


def _rodrigues(aa: np.ndarray) -> np.ndarray:
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)[..., None]
    k = aa / np.maximum(np.linalg.norm(aa, axis=-1, keepdims=True), 1e-12)
    kx = np.zeros(aa.shape + (3,))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - np.swapaxes(kx, -1, -2)
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * (kx @ kx)


def _fk(rot: np.ndarray, root: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    glob, pos = [rot[:, 0]], [root]
    for j, p in enumerate(skeleton.PARENTS[1:], start=1):
        pos.append(pos[p] + glob[p] @ offsets[j])
        glob.append(glob[p] @ rot[:, j])
    return np.stack(pos, axis=1)


def test_amass_clip_with_its_joints_gives_the_reference_frame(tmp_path):
    """A 60 fps z-up AMASS-style clip of a body unlike SMPL's neutral one, with its joints given."""
    rng = np.random.default_rng(7)
    t = 120
    time = np.arange(t) / 60.0
    aa = 0.25 * np.sin(2 * np.pi * (0.5 + rng.random((1, 22, 3))) * time[:, None, None] + rng.random((1, 22, 3)) * 6)
    aa[:, 0] = 0.0
    aa[:, 0, 2] = 0.9 * time  # turning about the z-up axis while walking
    aa[:, 0, 0] = np.pi / 2  # AMASS's upright root: +90 deg about x stands a y-up body in a z-up world
    rot_z = _rodrigues(aa)
    body = skeleton.OFFSETS.astype(np.float64) * (1.0 + 0.15 * rng.standard_normal((22, 1)))  # other bones
    trans = np.c_[0.8 * time, 0.3 * np.sin(time), np.full(t, 0.95)]  # z up
    joints_z = _fk(rot_z, trans, body)
    clip = tmp_path / "src" / "walk.npz"
    clip.parent.mkdir()
    np.savez(clip, poses=np.concatenate([aa.reshape(t, 66), np.zeros((t, 90))], axis=1), trans=trans,
             mocap_framerate=np.array(60.0), joints=joints_z, betas=np.zeros(16))
    clip.with_suffix(".txt").write_text("a person walks in a curve\n")
    from mm_jax.cli import main

    report = import_smpl(tmp_path / "src", tmp_path / "ds")
    assert report["imported"] == 1 and report["fps_conversions"] == {"60->30": 1}
    feats = np.asarray(load_dataset(tmp_path / "ds").sequence("walk"))
    assert main(["data", "import-smpl", str(tmp_path / "src"), "--out", str(tmp_path / "ds_cli")]) == 0
    np.testing.assert_array_equal(np.asarray(load_dataset(tmp_path / "ds_cli").sequence("walk")), feats)
    # Expected: y-up world, every second frame (60 -> 30 fps), the reference frame.
    rot_y = rot_z[::2].copy()
    rot_y[:, 0] = Z_UP_TO_Y_UP @ rot_y[:, 0]
    want = reference_features(joints_z[::2] @ Z_UP_TO_Y_UP.T, rot_y)
    assert feats.shape == want.shape
    for name, sl in {"root_lin_vel": slice(0, 2), "root_ang_vel": slice(2, 8), "local_pos": slice(8, 74),
                     "local_vel": slice(74, 140), "local_rot": slice(140, 272)}.items():
        np.testing.assert_allclose(feats[:, sl], want[:, sl], atol=1e-3, err_msg=name)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle of the rotation taking b to a, [...] degrees."""
    cos = (np.trace(np.swapaxes(a, -1, -2) @ b, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_import_272_then_export_bvh_keeps_the_joint_rotations(tmp_path):
    """A released-style 272-d clip of another body -> import-272 -> export-bvh: rotations within 1 degree."""
    from mm_jax.cli import main
    from mm_jax.motion import bvh

    rng = np.random.default_rng(11)
    t = 90
    time = np.arange(t) / 30.0
    aa = 0.4 * np.sin(2 * np.pi * (0.3 + rng.random((1, 22, 3))) * time[:, None, None] + rng.random((1, 22, 3)) * 6)
    aa[:, 0] = [0.0, 1.0, 0.0] * (0.7 * time[:, None] + 0.4)  # turning about y, starting at 0.4 rad
    rot = _rodrigues(aa)
    body = skeleton.OFFSETS.astype(np.float64) + rng.normal(0.0, 0.015, (22, 3))  # not SMPL's neutral rest
    body[0] = 0.0
    pos = _fk(rot, np.c_[0.5 * time, np.full(t, 0.9), 0.2 * time], body)
    root = tmp_path / "mm"
    (root / "motion_data" / "vector_272").mkdir(parents=True)
    (root / "texts").mkdir()
    np.save(root / "motion_data" / "vector_272" / "clip.npy", reference_features(pos, rot).astype(np.float32))
    (root / "texts" / "clip.txt").write_text("a person turns while walking#a/DET#0.0#0.0\n")
    assert main(["data", "import-272", str(root), "--out", str(tmp_path / "ds")]) == 0
    assert main(["data", "export-bvh", f"{tmp_path / 'ds'}:clip", str(tmp_path / "clip.bvh")]) == 0
    skel, motion = bvh.read_bvh(tmp_path / "clip.bvh")
    got = motion.local_rot[:, [skel.names.index(n) for n in skeleton.JOINT_NAMES]]
    # The BVH is canonical: frame 0 faces +z, so the root carries Y(h0) on the left.
    h0 = -np.arctan2(rot[0, 0, 0, 2], rot[0, 0, 2, 2])
    c, s = np.cos(h0), np.sin(h0)
    want = rot.copy()
    want[:, 0] = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ rot[:, 0]
    err = _angle_deg(got, want)
    assert err.max() < 1.0, err.max()
