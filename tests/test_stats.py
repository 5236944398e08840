"""Tests of mm_jax.motion.stats: slice moments, motion figures, comparisons and `mm-jax data stats --compare`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mm_jax.cli import main
from mm_jax.motion import stats
from mm_jax.motion.features import FEATURE_DIM, FEATURE_SLICES, LOCAL_POS, LOCAL_ROT, ROOT_LIN_VEL
from mm_jax.motion.skeleton import JOINT_INDEX
from mm_jax.motion.synth import DatasetWriter, load_dataset

LENGTHS = (37, 41, 29)  # prime-ish clip lengths


def _write(path, scale_pos: float = 1.0, speed: float = 0.0, seed: int = 0):
    """A 3-clip dataset of random features: local_pos std ``scale_pos``, root moving at ``speed`` m/s."""
    rng = np.random.default_rng(seed)
    w = DatasetWriter(path)
    for i, n in enumerate(LENGTHS):
        x = rng.normal(size=(n, FEATURE_DIM)).astype(np.float32) * 0.1
        x[:, LOCAL_POS] *= scale_pos / 0.1
        x[:, ROOT_LIN_VEL] = [0.0, speed / 30.0]
        x[0, ROOT_LIN_VEL] = 0.0
        w.add({"id": f"c{i}", "captions": ["a clip"], "split": "train"}, x)
    w.finish({"fps": 30})
    return load_dataset(path)


def test_rotation_angle_reads_rows_and_columns_alike():
    mats = Rotation.from_rotvec([[0.3, -0.2, 0.5], [0.0, 1.1, 0.0], [-0.7, 0.1, 0.2]]).as_matrix()
    want = np.degrees(np.linalg.norm([[0.3, -0.2, 0.5], [0.0, 1.1, 0.0], [-0.7, 0.1, 0.2]], axis=-1))
    k = LOCAL_ROT.start + 6 * JOINT_INDEX["left_foot"]
    for six in (mats[:, :2, :].reshape(3, 6), np.swapaxes(mats, 1, 2)[:, :2, :].reshape(3, 6)):
        x = np.zeros((3, FEATURE_DIM))
        x[:, k : k + 6] = six
        np.testing.assert_allclose(stats._rot_angle(x, "left_foot"), want, atol=1e-6)


def test_slice_moments_and_compare_ratios(tmp_path):
    a = stats.dataset_summary(_write(tmp_path / "a", scale_pos=2.0, speed=1.5))
    b = stats.dataset_summary(_write(tmp_path / "b", scale_pos=1.0, speed=0.0, seed=1))
    assert a["frames_read"] == sum(LENGTHS) and set(a["slices"]) == set(FEATURE_SLICES)
    assert abs(a["slices"]["local_pos"]["std"] - 2.0) < 0.1
    assert a["motion"]["root_speed_mps/mean"] == pytest.approx(1.5, abs=1e-3)
    assert a["motion"]["in_place_clip_share"] == 0.0 and b["motion"]["in_place_clip_share"] == 1.0
    result = stats.compare(a, b)
    assert result["slices"]["local_pos"]["std_ratio"] == pytest.approx(2.0, rel=0.1)
    assert result["slices"]["local_rot"]["std_ratio"] == pytest.approx(1.0, rel=0.1)
    assert result["motion"]["root_speed_mps/mean"]["ratio"] is None  # B stands still
    same = stats.compare(a, a)
    assert all(s["std_ratio"] == 1.0 and s["mean_shift"] == 0.0 for s in same["slices"].values())
    table = stats.format_comparison(result)
    assert "local_pos" in table and "root_speed_mps/mean" in table


def test_subsampling_reads_every_kth_sequence(tmp_path):
    ds = _write(tmp_path / "a")
    s = stats.dataset_summary(ds, max_frames=60)  # 107 frames: every 2nd clip
    assert s["frames_read"] == LENGTHS[0] + LENGTHS[2] and s["motion"]["sequences_read"] == 2


def test_cli_stats_compare(tmp_path, capsys):
    _write(tmp_path / "a", scale_pos=3.0)
    _write(tmp_path / "b", seed=2)
    assert main(["data", "stats", str(tmp_path / "a"), "--compare", str(tmp_path / "b"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["slices"]["local_pos"]["std_ratio"] == pytest.approx(3.0, rel=0.1)
    assert main(["data", "stats", str(tmp_path / "a"), "--compare", str(tmp_path / "b")]) == 0
    assert "per slice (A / B)" in capsys.readouterr().out
    assert main(["data", "stats", str(tmp_path / "a"), "--motion"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert single["sequences"] == 3 and "root_speed_mps/mean" in single["motion"]
