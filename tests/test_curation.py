"""Curation stage functions on hand-made inputs (no video): configs, tracks, filters, GVHMR, captions."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mm_jax.curation import boxes, captions, motion_filter, smpl, synthmotion, tracks, transitions
from mm_jax.curation.config import (BoxFilterConfig, MotionFilterConfig, TransitionConfig, load_config)
from mm_jax.errors import ConfigError

W, H = 320, 240


def _track(n: int = 100, *, x: float = 100.0, h: float = 120.0) -> tracks.Track:
    frames = np.arange(n)
    b = np.tile([x, 60.0, x + 0.4 * h, 60.0 + h], (n, 1))
    return tracks.Track(0, frames, b, np.full(n, 0.9))


def test_committed_configs_load_and_unknown_keys_are_named(tmp_path):
    for name in ("default", "synthetic", "synthetic_tracks"):
        load_config(f"data/curation/{name}.json")
    (tmp_path / "a.json").write_text(json.dumps({"detect": {"stride": 2}}))
    with pytest.raises(ConfigError, match="stride"):
        load_config(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"shots": {}, "colour": 1}))
    with pytest.raises(ConfigError, match="colour"):
        load_config(tmp_path / "b.json")


def test_box_filter_cuts_the_planted_low_confidence_edge_and_small_frames():
    t = _track(130)
    t.scores[40:50] = 0.2  # low-confidence stretch
    t.boxes[90:95, 2] = W - 1  # cut by the right edge
    t.boxes[120:, 3] = t.boxes[120:, 1] + 30  # too small (30 px of 240)
    kept, bad = boxes.box_filter(t, width=W, height=H, cfg=BoxFilterConfig(min_frames=20))
    assert [(int(k.frames[0]), int(k.frames[-1]) + 1) for k in kept] == [(0, 40), (50, 90), (95, 120)]
    assert bad == {"low score": 10, "cut by the frame edge": 5, "small box": 10}


def test_transition_filter_splits_at_the_planted_identity_switch_and_scale_jump():
    t = _track(120)
    t.boxes[60:, [0, 2]] += 150.0  # another person, 150 px to the right, from frame 60
    t.boxes[100:, 3] += 60.0  # the box height jumps by half at frame 100
    pieces, events = transitions.split_transitions(t, TransitionConfig(min_frames=15))
    assert [(int(p.frames[0]), int(p.frames[-1]) + 1) for p in pieces] == [(0, 60), (60, 100), (100, 120)]
    assert [e["frame"] for e in events] == [60, 100]
    dropped, _ = transitions.split_transitions(t, TransitionConfig(mode="drop"))
    assert dropped == []
    smooth = _track(120)
    smooth.boxes[:, [0, 2]] += np.arange(120)[:, None] * 2.0  # walking 2 px/frame: no jump
    assert len(transitions.split_transitions(smooth, TransitionConfig())[0]) == 1


def test_tracker_links_a_moving_box_over_a_gap_and_separates_a_far_one():
    dets = []
    for f in range(0, 40, 2):
        bxs = [[10.0 + f, 50, 60 + f, 170]] if f not in (20, 22) else []  # missed twice
        if f >= 30:
            bxs.append([250.0, 50, 300, 170])
        dets.append((f, np.asarray(bxs).reshape(-1, 4), np.full(len(bxs), 0.8)))
    found = [tracks.interpolate(t) for t in tracks.link(dets, link_iou=0.3, max_gap=3)]
    assert [(int(t.frames[0]), int(t.frames[-1])) for t in found] == [(0, 38), (30, 38)]
    np.testing.assert_allclose(found[0].boxes[21], [31.0, 50, 81, 170])  # interpolated in the gap


def _clean_walk(frames: int = 90) -> np.ndarray:
    from mm_jax.motion.retarget import smpl_forward_kinematics

    return smpl_forward_kinematics(*synthmotion.procedural_motion("walk", frames, yaw=0.4))


def test_motion_filters_remove_planted_defects_and_keep_clean_motions():
    cfg = MotionFilterConfig()
    from mm_jax.motion.retarget import smpl_forward_kinematics

    for kind in ("walk", "wave", "squat"):
        j = smpl_forward_kinematics(*synthmotion.procedural_motion(kind, 90))
        assert motion_filter.motion_filter(j, cfg)[1] is None, kind
    t = np.arange(90) / 30.0
    walk = _clean_walk()
    spikes = walk.copy()
    spikes[[20, 50, 70]] += [0.0, 0.1, 0.0]  # three 10 cm jitter spikes
    teleport = walk.copy()
    teleport[45:, :, 0] += 1.5
    slide = smpl_forward_kinematics(*synthmotion.procedural_motion("wave", 90))
    slide[..., 0] += 0.8 * t[:, None]  # glides with still legs
    shake = walk.copy()
    shake[..., 2] += 0.15 * np.sin(2 * np.pi * 3 * t)[:, None]
    still = smpl_forward_kinematics(*synthmotion.procedural_motion("stand", 90))
    expect = {"peak jerk": spikes, "root speed": teleport, "foot sliding": slide, "direction changes": shake,
              "too static": still, "too short": walk[:20]}
    for reason, j in expect.items():
        assert motion_filter.motion_filter(j, cfg)[1][0] == reason


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_gvhmr_file_of_a_known_pose_sequence_gives_the_same_joints(tmp_path):
    """Single-axis poses written as GVHMR axis-angles; expected joints by jnp FK of hand-built matrices.

    Tolerance: 2e-5 m on the joints (float32 in the file and in the jnp FK), 2e-4 m on the joints
    recovered from the float32 272-d features.
    """
    from mm_jax.motion import features, skeleton

    n = 45
    t = np.arange(n) / 30.0
    yaw, hip, knee, arm = 0.3 + 0.8 * t, 0.5 * np.sin(3 * t), 0.4 + 0.3 * t, -1.1 + 0.2 * t
    aa = np.zeros((n, 22, 3))
    aa[:, 0, 1], aa[:, 1, 0], aa[:, 5, 0], aa[:, 16, 2] = yaw, -hip, knee, arm
    trans = np.stack([0.9 * t, 0.95 + 0.02 * np.sin(t), -0.3 * t], 1)
    params = smpl.GvhmrParams(global_orient=aa[:, 0], body_pose=aa[:, 1:].reshape(n, 63), transl=trans,
                              betas=np.zeros((n, 10)))
    smpl.write_gvhmr_npz(tmp_path / "v.gvhmr.npz", params)
    rot, joints = smpl.clip_motion(smpl.read_gvhmr(tmp_path / "v.gvhmr.npz"), 5, 40, fps=30.0)

    r = np.tile(np.eye(3), (n, 22, 1, 1))
    r[:, 0] = [_ry(a) for a in yaw]
    r[:, 1] = [_rx(-a) for a in hip]
    r[:, 5] = [_rx(a) for a in knee]
    r[:, 16] = [_rz(a) for a in arm]
    _, want = skeleton.forward_kinematics(r.astype(np.float32), trans.astype(np.float32))
    want = np.asarray(want)[5:40]
    np.testing.assert_allclose(joints, want, atol=2e-5)

    feats = smpl.clip_features(rot, joints)
    back = np.asarray(features.joints_from_features(feats))
    h0 = -np.arctan2(r[5, 0, 0, 2], r[5, 0, 2, 2])  # RECIPE.md heading of frame 0
    canon = want - np.array([want[0, 0, 0], want[..., 1].min(), want[0, 0, 2]])
    canon = canon @ _ry(h0).T
    np.testing.assert_allclose(back, canon, atol=2e-4)


def test_grounded_sam2_converter_reads_a_hand_written_output(tmp_path):
    jd, md = tmp_path / "json_data", tmp_path / "mask_data"
    jd.mkdir(), md.mkdir()
    for f, x in ((0, 10), (1, 14), (3, 22)):
        labels = {"1": {"instance_id": 1, "class_name": "person", "x1": x, "y1": 20, "x2": x + 40, "y2": 120,
                        "logit": 0.0 if f == 1 else 0.8},
                  "2": {"instance_id": 2, "class_name": "dog", "x1": 200, "y1": 90, "x2": 260, "y2": 130,
                        "logit": 0.7}}
        (jd / f"mask_{f:05d}.json").write_text(json.dumps(
            {"mask_name": f"mask_{f:05d}.npy", "mask_height": 240, "mask_width": 320, "promote_type": "mask",
             "labels": labels}))
        mask = np.zeros((240, 320), np.uint16)
        mask[20:120, x:x + 40 - f] = 1
        np.save(md / f"mask_{f:05d}.npy", mask)
    found, w, h = tracks.convert_grounded_sam2(jd, mask_dir=md, score_if_missing=0.5)
    assert (w, h) == (320, 240) and len(found) == 1
    t = found[0]
    assert t.track_id == 1 and t.frames.tolist() == [0, 1, 3]
    np.testing.assert_allclose(t.boxes[:, 0], [10, 14, 22])
    np.testing.assert_allclose(t.scores, [0.8, 0.5, 0.8])
    np.testing.assert_allclose(t.mask_areas, [100 * 40, 100 * 39, 100 * 37])
    data = tracks.to_json(found, width=w, height=h)
    again, _, _ = tracks.from_json(json.loads(json.dumps(data)), "roundtrip")
    np.testing.assert_allclose(again[0].boxes, t.boxes)


def test_paraphrasers_and_sidecar_captions(tmp_path):
    cap = "a person walks forward and then waves both hands"
    rule = captions.RuleParaphraser(seed=3)
    out = rule(cap, 5)
    assert len(out) == 5 and len(set(out)) == 5 and cap not in out and out == rule(cap, 5)
    llm = captions.LlmParaphraser(lambda prompt: "1. someone strolls ahead\n2) someone strolls ahead\n- a man walks")
    assert llm(cap, 20) == ["someone strolls ahead", "a man walks"]
    (tmp_path / "v.captions.json").write_text(json.dumps({"1": ["shot one"], "*": ["any shot"]}))
    side = captions.SidecarCaptioner()
    assert side(tmp_path / "v.mp4", 1, 0, 9) == ["shot one"] and side(tmp_path / "v.mp4", 4, 0, 9) == ["any shot"]
    assert captions.with_paraphrases(["a", "a"], lambda c, n: [c + "!"] * n, 2) == ["a", "a!"]


def test_the_package_never_imports_beam_scenedetect_or_opencv():
    code = ("import sys, mm_jax.cli, mm_jax.motion.import_smpl, mm_jax.motion.features, mm_jax.curation.process, "
            "mm_jax.curation.runner_local, mm_jax.curation.report\n"
            "print([m for m in ('apache_beam', 'scenedetect', 'cv2') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
