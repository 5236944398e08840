"""Tests of the real-data importers: import_272, import_smpl, import_bvh (and import_common).

Expected values are built here with plain NumPy (our own Rodrigues, forward
kinematics, z-up -> y-up matrix and reference floor/origin/heading step), not
with the importers' code; the features of the expected joints and rotations
come from ``features.features_from_joints``, the convention under test elsewhere.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from mm_jax.errors import DataError
from mm_jax.motion import bvh, features, import_common, retarget, skeleton
from mm_jax.motion.import_272 import import_272
from mm_jax.motion.import_bvh import import_bvh_dir
from mm_jax.motion.import_smpl import import_smpl
from mm_jax.motion.synth import load_dataset

FIX = pathlib.Path(__file__).parent / "fixtures" / "bvh"
W_ZUP = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # AMASS z up -> y up: x stays, z -> y, y -> -z
F = features.FEATURE_DIM


def _rodrigues(aa: np.ndarray) -> np.ndarray:
    """Axis-angle [..., 3] -> [..., 3, 3] via R = cos t I + sin t [k]x + (1 - cos t) k k^T."""
    t = np.linalg.norm(aa, axis=-1)[..., None, None]
    k = aa / np.maximum(t[..., 0], 1e-12)
    kx = np.zeros(aa.shape + (3,))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - np.swapaxes(kx, -1, -2)
    return np.cos(t) * np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * k[..., :, None] * k[..., None, :]


def _fk(rot: np.ndarray, root: np.ndarray) -> np.ndarray:
    """Joints [T, 22, 3] of local rotations [T, 22, 3, 3] with SMPL's offsets, pelvis at root [T, 3]."""
    glob, pos = [rot[:, 0]], [root]
    for j in range(1, 22):
        p = skeleton.PARENTS[j]
        pos.append(pos[p] + glob[p] @ skeleton.OFFSETS[j].astype(np.float64))
        glob.append(glob[p] @ rot[:, j])
    return np.stack(pos, 1)


def _canonical(joints: np.ndarray, root_rot0: np.ndarray) -> np.ndarray:
    """RECIPE.md's floor/origin step, then frame 0's heading removed (what joints_from_features returns)."""
    p = joints - [joints[0, 0, 0], joints[..., 1].min(), joints[0, 0, 2]]
    h = -np.arctan2(root_rot0[0, 2], root_rot0[2, 2])
    c, s = np.cos(h), np.sin(h)
    return p @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T


def _records(ds_dir: pathlib.Path) -> dict:
    return {r["id"]: r for r in map(json.loads, (ds_dir / "sequences.jsonl").read_text().splitlines())}


# ----------------------------------------------------------------------------- import-272


def _mm_folder(root: pathlib.Path, *, splits: bool) -> dict[str, np.ndarray]:
    """A MotionMillion-layout folder: a (# lines), b, sub/d captioned; c uncaptioned; bad 271 wide; nan."""
    rng = np.random.default_rng(0)
    arrays = {n: rng.normal(size=(t, F)).astype(np.float32) for n, t in (("a", 7), ("b", 5), ("c", 3), ("sub/d", 4))}
    arrays["bad"] = np.zeros((5, F - 1), np.float32)
    arrays["nan"] = np.full((2, F), np.nan)
    for name, arr in arrays.items():
        (root / "motion_data/vector_272" / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(root / "motion_data/vector_272" / f"{name}.npy", arr)
    (root / "texts/sub").mkdir(parents=True)
    (root / "texts/a.txt").write_text("a person walks forward.#a/DET person/NOUN walk/VERB#0.0#0.0\n\n"
                                      "someone strolls#someone/PRON#1.5#3.0\na person walks forward.\n")
    (root / "texts/b.txt").write_text("a man jumps\n")
    (root / "texts/sub/d.txt").write_text("  a woman   waves \n")
    for name in ("bad", "nan"):
        (root / "texts" / f"{name}.txt").write_text("caption\n")
    (root / "mean_std/vector_272").mkdir(parents=True)
    np.save(root / "mean_std/vector_272/mean.npy", np.arange(F, dtype=np.float32))
    np.save(root / "mean_std/vector_272/std.npy", np.full(F, 2.0, np.float32))
    if splits:
        for version, assign in (("v1", {"train": "a\nb\n", "test": "c\n"}),
                                ("v2", {"train": "b.npy\n", "val": "a\n", "test": "c\nmissing\n"})):
            (root / "split" / version).mkdir(parents=True)
            for split, text in assign.items():
                (root / "split" / version / f"{split}.txt").write_text(text)
    return arrays


def test_import_272_captions_skips_splits_and_stats(tmp_path):
    arrays = _mm_folder(tmp_path / "mm", splits=True)
    seen = []
    report = import_272(tmp_path / "mm", tmp_path / "ds", progress=lambda k, n, name: seen.append((k, n)))
    assert report["clips_in"] == 6 and report["imported"] == 3 and seen[-1] == (6, 6)
    skipped = {s["clip"]: s for s in report["skipped"]}
    assert sorted(skipped) == ["bad", "c", "nan"] and report["skipped_by_kind"] == {"invalid": 2, "no captions": 1}
    assert "bad.npy" in skipped["bad"]["reason"] and "271" in skipped["bad"]["reason"]
    assert "nan.npy" in skipped["nan"]["reason"] and "--allow-uncaptioned" in skipped["c"]["reason"]
    recs = _records(tmp_path / "ds")
    assert recs["a"]["captions"] == ["a person walks forward.", "someone strolls"]
    assert recs["sub/d"]["captions"] == ["a woman waves"]
    # split/v2 (the lexically last) wins; sub/d is in no split file: hashed and counted.
    assert {i: r["split"] for i, r in recs.items()} == {"a": "val", "b": "train",
                                                        "sub/d": import_common.split_of("sub/d")}
    assert report["split_source"] == "split/v2" and report["split_versions"] == ["v1", "v2"]
    assert report["unlisted_in_split_files"] == 1 and report["listed_but_missing"] == 1
    assert report["captions_with_hash_tail"] == 2 and report["fps_conversions"] == {"30->30": 3}
    assert report["floor_shift_m"] is None  # copied, no floor step
    ds = load_dataset(tmp_path / "ds")
    for name in ("a", "b", "sub/d"):
        assert np.array_equal(ds.sequence(name), arrays[name])  # copied as they are
    assert ds.split["val"] == ["a"] and ds.meta["import_report"] == json.loads(json.dumps(report))
    src = np.load(tmp_path / "ds" / "source_mean_std.npz")
    assert np.array_equal(src["mean"], np.arange(F)) and np.all(src["std"] == 2.0)
    assert ds.meta["source_mean_std"]["file"] == "source_mean_std.npz"
    train = np.concatenate([arrays[i] for i in ds.split["train"]])
    assert np.allclose(ds.normalizer.mean, train.mean(0), atol=1e-5)  # own stats: fitted on train


def test_import_272_split_version_uncaptioned_and_hashed_splits(tmp_path):
    _mm_folder(tmp_path / "mm", splits=True)
    report = import_272(tmp_path / "mm", tmp_path / "v1", split_version="v1", allow_uncaptioned=True)
    recs = _records(tmp_path / "v1")
    assert report["split_source"] == "split/v1" and report["imported"] == 4
    assert recs["c"]["captions"] == [] and recs["c"]["split"] == "test" and recs["a"]["split"] == "train"
    with pytest.raises(DataError, match=r"'v9'.*\['v1', 'v2'\]"):
        import_272(tmp_path / "mm", tmp_path / "v9", split_version="v9")
    _mm_folder(tmp_path / "plain", splits=False)
    report = import_272(tmp_path / "plain", tmp_path / "hashed")
    recs = _records(tmp_path / "hashed")
    assert report["split_source"] == "hash of the clip name"
    assert all(r["split"] == import_common.split_of(i) for i, r in recs.items())
    assert sum(report["splits"].values()) == 3
    with pytest.raises(DataError, match="motion_data/vector_272"):
        import_272(tmp_path / "hashed", tmp_path / "x")


def test_cli_import_272_prints_the_report(tmp_path, capsys):
    from mm_jax.cli import main

    _mm_folder(tmp_path / "mm", splits=True)
    assert main(["data", "import-272", str(tmp_path / "mm"), "--out", str(tmp_path / "ds"),
                 "--split-version", "v1", "--allow-uncaptioned"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["imported"] == 4 and report["split_source"] == "split/v1"
    assert main(["data", "import-272", str(tmp_path / "mm"), "--out", str(tmp_path / "ds")]) == 2  # not empty
    assert "--overwrite" in capsys.readouterr().err


def test_read_captions_and_split_of(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one#x#0#0\r\n\n  two  words \n#only tags\none\n")
    assert import_common.read_captions(path) == (["one", "two words"], 2)
    assert import_common.read_captions(tmp_path / "missing.txt") == ([], 0)
    assert import_common.split_of("abc") == import_common.split_of("abc")
    counts = {s: sum(import_common.split_of(f"clip{i}") == s for i in range(2000)) for s in ("train", "val", "test")}
    assert 1700 < counts["train"] < 1900 and 60 < counts["val"] < 140 and 60 < counts["test"] < 140


# ----------------------------------------------------------------------------- import-smpl


def _amass(t: int = 9, seed: int = 1) -> dict:
    """AMASS-style arrays: poses [t, 156] (SMPL-H), trans [t, 3] z up, 60 fps, joints [t, 52, 3]."""
    rng = np.random.default_rng(seed)
    poses = rng.normal(0, 0.4, (t, 156))
    poses[:, :3] = [np.pi / 2, 0, 0] + rng.normal(0, 0.1, (t, 3))  # standing in AMASS's z-up world
    trans = np.c_[np.linspace(0, 1, t), rng.normal(0, 0.1, t), 0.9 + 0.05 * rng.normal(size=t)]
    joints = rng.normal(0, 0.5, (t, 52, 3)) + trans[:, None]
    return {"poses": poses, "trans": trans, "mocap_framerate": np.array(60.0), "joints": joints,
            "betas": np.zeros(16), "gender": np.array("neutral")}


def _expected_smpl(d: dict, *, with_joints: bool, step: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(joints, local_rot) in the y-up world at 30 fps, computed here."""
    rot = _rodrigues(d["poses"][::step, :66].reshape(-1, 22, 3))
    rot[:, 0] = W_ZUP @ rot[:, 0]
    trans = d["trans"][::step] @ W_ZUP.T
    joints = d["joints"][::step, :22] @ W_ZUP.T if with_joints else _fk(rot, trans)
    return joints, rot


@pytest.mark.parametrize("with_joints", [True, False])
def test_import_smpl_amass_npz_matches_independent_features(tmp_path, with_joints):
    d = _amass()
    if not with_joints:
        del d["joints"]
    (tmp_path / "amass" / "subj").mkdir(parents=True)
    np.savez(tmp_path / "amass" / "subj" / "walk_poses.npz", **d)
    (tmp_path / "amass" / "subj" / "walk_poses.txt").write_text("a person walks#tags#0#0\n")
    np.savez(tmp_path / "amass" / "subj" / "shape.npz", betas=np.zeros(16))  # no poses: skipped
    np.savez(tmp_path / "amass" / "uncaptioned.npz", **d)
    report = import_smpl(tmp_path / "amass", tmp_path / "ds")
    assert report["clips_in"] == 3 and report["imported"] == 1
    assert report["skipped_by_kind"] == {"no poses": 1, "no captions": 1}
    assert report["fps_conversions"] == {"60->30": 1}
    assert f"yes in {int(with_joints)} clip(s)" in report["joints_mapped"]
    joints, rot = _expected_smpl(d, with_joints=with_joints)
    ds = load_dataset(tmp_path / "ds")
    got = np.asarray(ds.sequence("subj/walk_poses"))
    assert got.shape == (5, F)  # 9 frames at 60 fps -> source frames 0, 2, 4, 6, 8
    want = np.asarray(features.features_from_joints(joints.astype(np.float32), rot.astype(np.float32)))
    assert np.abs(got - want).max() < 1e-5
    floor = joints[..., 1].min()
    assert abs(report["floor_shift_m"]["min"] - floor) < 1e-5 and report["floor_shift_m"]["clips"] == 1
    rec = ds.record("subj/walk_poses")
    assert rec["captions"] == ["a person walks"] and rec["source_fps"] == 60.0 and rec["fps"] == 30.0


def test_import_smpl_z_up_standing_becomes_upright_and_folders(tmp_path):
    t = 4
    poses = np.zeros((t, 72))
    poses[:, 0] = np.pi / 2  # AMASS's standing root orientation (body y up turned into world z up)
    trans = np.c_[np.zeros(t), np.linspace(0, 0.3, t), np.full(t, 0.9)]  # walks along world +y
    clip = tmp_path / "clips" / "stand"
    clip.mkdir(parents=True)
    np.save(clip / "poses.npy", poses)
    np.save(clip / "trans.npy", trans)
    (clip / "fps.txt").write_text("30\n")
    (tmp_path / "clips" / "stand.txt").write_text("stands still\n")
    report = import_smpl(tmp_path / "clips", tmp_path / "ds")
    assert report["imported"] == 1 and report["fps_conversions"] == {"30->30": 1}
    j = np.asarray(features.joints_from_features(load_dataset(tmp_path / "ds").sequence("stand")))
    rest = skeleton.rest_positions()
    assert np.abs(j[0] - (rest - [0, rest[:, 1].min(), 0])).max() < 1e-5  # upright rest pose on the floor
    assert np.abs(j[:, 0, 2] - np.linspace(0, -0.3, t)).max() < 1e-5  # world +y became -z
    # The same folder declared y up: no conversion, so the body lies along z.
    import_smpl(clip, tmp_path / "yup", y_up=True, fps=60.0)  # fps.txt (stated) wins over --fps
    rec = load_dataset(tmp_path / "yup").record("stand")
    assert rec["source_fps"] == 30.0
    np.save(clip / "poses.npy", poses[:, :60])
    with pytest.raises(DataError, match=r"poses must be \[T, 3K\].*\(4, 60\)"):
        import_smpl(clip, tmp_path / "bad")


# ----------------------------------------------------------------------------- import-bvh


def _source_joints(path: pathlib.Path, up: np.ndarray, scale: float, step: int = 1) -> np.ndarray:
    """The BVH's own joints at the 22 SMPL joints (its FK, y up, metres)."""
    skel, motion = bvh.read_bvh(path)
    _, pos = retarget.source_forward_kinematics(skel, motion)
    mapping = retarget.import_bvh_source(path).mapping
    idx = [skel.names.index(mapping[n]) for n in skeleton.JOINT_NAMES]
    return pos[::step, idx] @ up.T * scale


@pytest.mark.parametrize("name,up,scale,step", [
    ("lafan_tpose_cm_zyx.bvh", np.eye(3), 0.01, 1),
    ("cmu_like_zup_m_120fps.bvh", W_ZUP, 1.0, 4),  # z up, 120 fps -> 30 fps: every 4th frame
])
def test_bvh_import_keeps_source_bone_lengths(tmp_path, name, up, scale, step):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / name).write_text((FIX / name).read_text())
    no_ground = retarget.RetargetConfig(ground="none")  # joints stay the source's, in metres
    report = import_bvh_dir(tmp_path / "src", tmp_path / "ds", config=no_ground, allow_uncaptioned=True)
    feats = np.asarray(load_dataset(tmp_path / "ds").sequence(name[:-4]))
    root_rot = retarget.import_bvh(FIX / name).local_rot[:, 0].astype(np.float64)
    src = _source_joints(FIX / name, up, scale, step)
    assert np.abs(np.asarray(features.joints_from_features(feats)) - _canonical(src, root_rot[0])).max() < 1e-4
    assert abs(report["floor_shift_m"]["min"] - src[..., 1].min()) < 1e-5  # said in the report
    assert report["joints_mapped"]["pelvis"] == "Hips" and report["imported"] == 1
    assert report["fps_conversions"] == ({"120->30": 1} if step == 4 else {"30->30": 1})


def _frozen_smpl_bvh(tmp_path: pathlib.Path, drop: tuple[str, ...]) -> tuple[pathlib.Path, np.ndarray]:
    """An SMPL-named BVH without the ``drop`` joints (their rotations frozen at identity), and the true joints."""
    rng = np.random.default_rng(5)
    rot = _rodrigues(rng.normal(0, 0.3, (6, 22, 3)))
    for n in drop:
        rot[:, skeleton.JOINT_INDEX[n]] = np.eye(3)
    root = np.c_[np.linspace(0, 1, 6), np.full(6, 1.0), np.zeros(6)]
    bvh.write_bvh(tmp_path / "full.bvh", rot.astype(np.float32), root.astype(np.float32), unit="m", fps=30)
    skel, motion = bvh.read_bvh(tmp_path / "full.bvh")
    keep = [j for j, n in enumerate(skel.names) if n not in drop]
    new_parent, offsets = [], skel.offsets.copy()
    for j in keep:
        p = skel.parents[j]
        while p >= 0 and skel.names[p] in drop:
            offsets[j] = offsets[j] + skel.offsets[p]  # identity rotation: the offsets add up
            p = skel.parents[p]
        new_parent.append(keep.index(p) if p >= 0 else -1)
    cut = bvh.BvhSkeleton(names=tuple(skel.names[j] for j in keep), parents=tuple(new_parent),
                          offsets=offsets[keep], channels=tuple(skel.channels[j] for j in keep),
                          end_sites={keep.index(j): v for j, v in skel.end_sites.items() if j in keep})
    trans = motion.translations[:, keep].copy()
    trans[:, 1:] = offsets[keep][1:]
    return (cut, bvh.BvhMotion(frame_time=motion.frame_time, local_rot=motion.local_rot[:, keep],
                               translations=trans)), _fk(rot, root)


def test_virtual_joints_land_on_the_source_body(tmp_path):
    (skel, motion), true = _frozen_smpl_bvh(tmp_path, ("spine2", "left_collar"))
    clip = retarget.retarget_source(skel, motion, config=retarget.RetargetConfig(ground="none"))
    assert clip.mapping["spine2"] is None and clip.mapping["left_collar"] is None
    matched = [j for j, n in enumerate(skeleton.JOINT_NAMES) if clip.mapping[n] is not None]
    assert np.abs(clip.joints[:, matched] - true[:, matched]).max() < 1e-5
    assert np.abs(clip.joints - true).max() < 1e-4  # virtual ones too: exact for an SMPL-shaped source


def test_load_joints_of_a_bvh_keeps_the_files_bones():
    """`mm-jax render clip.bvh` draws the file's own skeleton, not SMPL's offsets."""
    from mm_jax.motion.loading import load_joints

    name = "lafan_tpose_cm_zyx.bvh"
    joints, title = load_joints(str(FIX / name))
    src = _source_joints(FIX / name, np.eye(3), 0.01)
    parents = list(skeleton.PARENTS[1:])
    bones = np.linalg.norm(joints[:, 1:] - joints[:, parents], axis=-1)
    want = np.linalg.norm(src[:, 1:] - src[:, parents], axis=-1)
    assert title == name[:-4]
    np.testing.assert_allclose(bones, want, atol=1e-5)
    assert np.abs(bones - np.linalg.norm(skeleton.OFFSETS[1:], axis=-1)).max() > 0.01  # not SMPL's
