"""Tests of mm_jax.motion.convert: format-1 data sets -> the reference 272-d convention."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
from reference_272 import reference_features, y_matrix

from mm_jax.cli import main
from mm_jax.errors import FormatError
from mm_jax.motion import convert, skeleton
from mm_jax.motion.synth.storage import DatasetWriter, load_dataset


def _clip(t: int, seed: int):
    """Random smooth rotations and a wandering root -> (joints [T,22,3], local_rot [T,22,3,3]) float64."""
    rng = np.random.default_rng(seed)
    ang = np.cumsum(0.05 * rng.standard_normal((t, 22, 3)), axis=0)
    from mm_jax.motion import rotations

    rot = np.asarray(rotations.axis_angle_to_matrix(jnp.asarray(ang)), np.float64)
    root = np.cumsum(0.02 * rng.standard_normal((t, 3)), axis=0) + [1.0, 0.95, -2.0]
    _, joints = skeleton.forward_kinematics(jnp.asarray(rot, jnp.float32), jnp.asarray(root, jnp.float32))
    return np.asarray(joints, np.float64), rot


def _old_features(pos, rot):
    """Format 1, written here from its old definition: 6D columns, world-joint velocities, no floor."""
    t = len(pos)
    h = -np.arctan2(rot[:, 0, 0, 2], rot[:, 0, 2, 2])
    out = reference_features(pos, rot)
    floor = pos[:, :, 1].min()
    local = out[:, 8:74].reshape(t, 22, 3)
    local[:, :, 1] += floor
    out[:, 8:74] = local.reshape(t, -1)
    for k in range(t):
        vel = np.zeros((22, 3)) if k == 0 else (y_matrix(h[k - 1]) @ (pos[k] - pos[k - 1]).T).T
        out[k, 74:140] = vel.reshape(-1)
        mats = [y_matrix(h[k]) @ rot[k, 0]] + [rot[k, j] for j in range(1, 22)]
        out[k, 140:272] = np.concatenate([np.concatenate([m[:, 0], m[:, 1]]) for m in mats])
    return out


def test_one_clip_converts_to_the_reference():
    pos, rot = _clip(40, 0)
    got = convert.convert_features_v1(_old_features(pos, rot))
    np.testing.assert_allclose(got, reference_features(pos, rot), atol=2e-4)


def test_dataset_round_trip_and_old_version_error(tmp_path):
    old_dir = tmp_path / "old"
    w = DatasetWriter(old_dir)
    clips = [_clip(30 + 7 * i, i) for i in range(3)]
    for i, (pos, rot) in enumerate(clips):
        w.add({"id": f"c{i}", "captions": [f"clip {i}"], "split": ("train", "val", "test")[i]},
              _old_features(pos, rot).astype(np.float32))
    w.finish({"generator": "test"})
    meta = json.loads((old_dir / "meta.json").read_text())
    meta["format_version"] = 1
    (old_dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError, match=r"format_version 1.*mm-jax data convert"):
        load_dataset(old_dir)
    assert main(["data", "convert", str(old_dir), "--out", str(tmp_path / "new")]) == 0
    assert main(["data", "convert", str(old_dir), "--out", str(tmp_path / "new")]) == 2  # no silent overwrite
    ds = load_dataset(tmp_path / "new")
    assert ds.meta["converted_from"]["format_version"] == 1
    assert ds.split == {"train": ["c0"], "val": ["c1"], "test": ["c2"]}
    for i, (pos, rot) in enumerate(clips):
        assert ds.record(f"c{i}")["captions"] == [f"clip {i}"]
        np.testing.assert_allclose(ds.sequence(f"c{i}"), reference_features(pos, rot), atol=2e-4)
