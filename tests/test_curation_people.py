"""Several people per shot: each tracked person that passes the box and transition filters is its own clip."""

from __future__ import annotations

import dataclasses
import json

import pytest

pytest.importorskip("cv2")

from mm_jax.curation import report, results  # noqa: E402
from mm_jax.curation import synthvideo as sv  # noqa: E402
from mm_jax.curation.config import CurationConfig, DetectConfig, load_config  # noqa: E402
from mm_jax.errors import ConfigError  # noqa: E402
from mm_jax.curation.process import ShotTask, process_shot  # noqa: E402

TWO = (sv.PersonSpec(track_id=1, motion="walk", x=30, height=150, caption="a person walks forward"),
       sv.PersonSpec(track_id=2, motion="wave", x=200, height=110, drift=0.0, caption="a person waves both hands"))


def _config(**detect) -> CurationConfig:
    cfg = load_config("data/curation/synthetic.json")
    return dataclasses.replace(cfg, detect=dataclasses.replace(cfg.detect, detector="tracks", **detect))


def _task(truth: sv.VideoTruth, shot: int = 0) -> ShotTask:
    start, end = truth.shots[shot]
    return ShotTask(str(truth.path), shot, start, end, 30.0, 320, 240)


def test_two_tracked_people_become_two_clips_with_their_track_ids(tmp_path):
    short = sv.PersonSpec(track_id=7, x=120, height=120)  # its track is cut to 10 frames below
    truth = sv.write_people_video("two", tmp_path, TWO + (short,), shot_frames=(60,))
    data = json.loads((tmp_path / "two.tracks.json").read_text())
    t7 = next(t for t in data["tracks"] if t["id"] == 7)
    for key in ("frames", "boxes", "scores"):
        t7[key] = t7[key][:10]
    (tmp_path / "two.tracks.json").write_text(json.dumps(data))

    result, feats, _ = process_shot(_task(truth), _config())
    assert [c["id"] for c in result["clips"]] == ["two/shot000/t1_000000-000060", "two/shot000/t2_000000-000060"]
    assert [(c["track"], c["person_rank"]) for c in result["clips"]] == [(1, 0), (2, 1)]
    assert result["clips"][1]["captions"][0] == "a person waves both hands"  # the person's own caption
    assert [(p["track"], p["rank"], p["clips"]) for p in result["people"]] == [
        (1, 0, ["two/shot000/t1_000000-000060"]), (2, 1, ["two/shot000/t2_000000-000060"])]
    assert [(d["reason"], d["track"]) for d in result["dropped"]] == [("short track", 7)]
    assert set(feats) == {c["id"] for c in result["clips"]} and all(f.shape[1] == 272 for f in feats.values())

    one, _, _ = process_shot(_task(truth), _config(max_people_per_shot=1))
    assert [c["track"] for c in one["clips"]] == [1]
    assert ("over max_people_per_shot", 2) in [(d["reason"], d["track"]) for d in one["dropped"]]


def test_a_filtered_person_frees_its_place_and_others_need_their_own_gvhmr(tmp_path):
    low = sv.PersonSpec(track_id=3, x=100, height=170, score=0.3)  # the largest, but low confidence
    truth = sv.write_people_video("three", tmp_path, (low,) + TWO, shot_frames=(60,))
    (tmp_path / "three.track2.gvhmr.npz").unlink()  # person 2 has no GVHMR result of its own
    result, _, _ = process_shot(_task(truth), _config(max_people_per_shot=2))
    assert [p["track"] for p in result["people"]] == [3, 1, 2]  # ranked by frames x box height
    assert [c["track"] for c in result["clips"]] == [1]
    reasons = {(d["stage"], d["reason"], d["track"]) for d in result["dropped"]}
    # the video's own GVHMR file belongs to the top-ranked person only: person 2 gets no estimate
    assert reasons == {("boxes", "low score", 3), ("smpl", "no SMPL estimate", 2)}


def test_the_funnel_reports_people_and_their_clips(tmp_path):
    truth = sv.write_people_video("pair", tmp_path / "videos", TWO, shot_frames=(45, 45))
    out, cfg = tmp_path / "run", _config()
    for shot in (0, 1):
        task = _task(truth, shot)
        results.write_result(out, task, *process_shot(task, cfg))
    f = report.funnel(out)
    assert [(s["stage"], s["in"], s["out"]) for s in f["stages"][1:3]] == [("detect", 2, 4), ("boxes", 4, 4)]
    assert f["clips_out"] == 4 and f["people"]["shots_by_people"] == {"2": 2}
    assert [(r["shot"], r["track"], len(r["clips"])) for r in f["people"]["rows"]] == [
        ("pair/shot000", 1, 1), ("pair/shot000", 2, 1), ("pair/shot001", 1, 1), ("pair/shot001", 2, 1)]
    md = report.markdown(f, {}, runner="local", workers=1)
    assert "| pair/shot001 | 2 | 1 | 45 |" in md and "t2_000045-000090" in md


def test_max_people_per_shot_must_be_positive():
    with pytest.raises(ConfigError, match="max_people_per_shot must be >= 1, got 0"):
        DetectConfig(max_people_per_shot=0)
