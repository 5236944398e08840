"""Tests of mm_jax.motion.bvh (read/write) and mm_jax.motion.retarget.

The fixtures in tests/fixtures/bvh/ were written as text by a throwaway
script with hand-picked numbers, not by mm_jax's writer:
  * lafan_tpose_cm_zyx.bvh: LAFAN1/Ubisoft names, cm, T-pose, 6 channels
    (ZYX) on every joint, CRLF, extra LeftHandIndex1 joints. Frames: 0 rest;
    1 LeftArm Z -90 (arm straight down), root z 50 cm; 2 RightLeg X +90 (shin
    back), root z 100 cm; 3 Hips Y +90 and Spine (Z 10, Y 20, X 30); 4
    LeftForeArm X +90 (a pure twist about the forearm).
  * mixamo_apose_cm_zxy.bvh: "mixamorig:" names, cm, A-pose (arms 45 deg
    down), ZXY, finger/HeadTop_End/Toe_End extras. Frames: 0 rest; 1 LeftArm
    Z +45 (horizontal); 2 RightArm Z -45 and LeftForeArm (Z 30, X 20, Y -40).
  * cmu_like_zup_m_120fps.bvh: CMU names (LHipJoint, LowerBack, Neck1...),
    z up facing -y, metres, Frame Time 0.0083333, 13 frames: the root walks
    1 m along -y, LeftForeArm Z = -7.5 k deg, Neck1 X = -2.5 k deg.
  * lafan1_style_xbones_cm_zyx.bvh: LAFAN1's real layout (every bone along
    local +x, so the zero-rotation pose is not a standing one), 6 channels ZYX
    on every joint, cm, with random twists about each bone. Frames: 0 standing
    T-pose; 1 left arm down, root z 50 cm; 2 the body turned to face +x, root
    z 100 cm; 3 right shin pointing back.
  * blender45_export_smpl_zup_yxz.bvh: written by Blender 4.5's own BVH
    exporter (z up, 6 channels YXZ on every joint, cm) after importing the
    motion of :func:`_blender_motion` written by write_bvh(unit="cm").
"""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax.errors import ConfigError, DataError, FormatError, ShapeError
from mm_jax.motion import bvh, euler, joint_map, retarget, rotations, skeleton

FIX = pathlib.Path(__file__).parent / "fixtures" / "bvh"
LAFAN = FIX / "lafan_tpose_cm_zyx.bvh"
MIXAMO = FIX / "mixamo_apose_cm_zxy.bvh"
CMU = FIX / "cmu_like_zup_m_120fps.bvh"
BLENDER = FIX / "blender45_export_smpl_zup_yxz.bvh"
LAFAN_X = FIX / "lafan1_style_xbones_cm_zyx.bvh"
JI = skeleton.JOINT_INDEX
NO_GROUND = retarget.RetargetConfig(ground="none")


def _ref_axis(axis: str, deg: float) -> np.ndarray:
    """An independent numpy rotation about a named axis (degrees)."""
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return {
        "X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def _joints(m: retarget.ImportedMotion) -> np.ndarray:
    return retarget.smpl_forward_kinematics(m.local_rot.astype(np.float64), m.root_pos.astype(np.float64))


def _dir(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _random_motion(t: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random local rotations [t, 22, 3, 3] (NumPy Rodrigues) and root positions [t, 3], float32."""
    rng = np.random.default_rng(seed)
    aa = rng.normal(0.0, 0.9, (t, skeleton.NUM_JOINTS, 3))
    theta = np.linalg.norm(aa, axis=-1)[..., None, None]
    x, y, z = np.moveaxis(aa / np.maximum(theta[..., 0], 1e-12), -1, 0)
    o = 0 * x
    k = np.stack([np.stack([o, -z, y], -1), np.stack([z, o, -x], -1), np.stack([-y, x, o], -1)], -2)
    rot = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)
    return rot.astype(np.float32), rng.normal(0, 1, (t, 3)).astype(np.float32)


def _blender_motion() -> tuple[np.ndarray, np.ndarray]:
    """The 5-frame motion behind the Blender fixture (do not change: the fixture depends on it)."""
    ang = np.random.default_rng(0).normal(0, 0.5, (5, 22, 3))
    theta = np.linalg.norm(ang, axis=-1)[..., None, None]
    x, y, z = np.moveaxis(ang / theta[..., 0], -1, 0)
    o = 0 * x
    k = np.stack([np.stack([o, -z, y], -1), np.stack([z, o, -x], -1), np.stack([-y, x, o], -1)], -2)
    rot = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)
    return rot, np.c_[np.linspace(0, 1, 5), np.full(5, 0.95), np.linspace(0, 2, 5)]


# ----------------------------------------------------------------------------- Euler and the writer


@pytest.mark.parametrize("order", euler.EULER_ORDERS)
def test_matrix_to_euler_round_trip_including_gimbal_lock(order):
    rng = np.random.default_rng(3)
    ang = rng.uniform(-np.pi, np.pi, (997, 3))
    ang[:300, 1] = np.pi / 2 * rng.choice([-1.0, 1.0], 300) + rng.normal(0, 1e-6, 300)  # at/near lock
    r = np.asarray(rotations.euler_to_matrix(jnp.asarray(ang, jnp.float32), order), np.float64)
    angles = jnp.asarray(euler.matrix_to_euler(r, order), jnp.float32)
    back = np.asarray(rotations.euler_to_matrix(angles, order))
    assert np.abs(back - r).max() < 1e-5
    with pytest.raises(ConfigError, match="XYW"):
        euler.matrix_to_euler(r, "XYW")


@pytest.mark.parametrize("unit,order", [("m", "ZXY"), ("cm", "XYZ"), ("m", "ZYX")])
def test_write_read_round_trip_by_forward_kinematics(tmp_path, unit, order):
    local_rot, root_pos = _random_motion(11, seed=1)
    path = tmp_path / "rt.bvh"
    bvh.write_bvh(path, local_rot, root_pos, order=order, unit=unit, fps=20)
    skel, motion = bvh.read_bvh(path)
    assert skel.num_joints == 22 and motion.num_frames == 11 and abs(motion.fps - 20) < 1e-4
    assert set(skel.names) == set(skeleton.JOINT_NAMES)
    assert all(skel.rotation_order(j) == order for j in range(22))
    _, pos = retarget.source_forward_kinematics(skel, motion)
    want = np.asarray(skeleton.forward_kinematics(jnp.asarray(local_rot), jnp.asarray(root_pos))[1])
    got = pos[:, [skel.names.index(n) for n in skeleton.JOINT_NAMES]] / bvh.UNIT_SCALE[unit]
    assert np.abs(got - want).max() < 1e-4
    # Our own file through the retargeter (SMPL names): the same joints again.
    m = retarget.import_bvh(path, config=retarget.RetargetConfig(ground="none", fps=0.0))
    assert m.fps == 20.0 and np.abs(_joints(m) - want).max() < 1e-4


def test_written_file_follows_the_standard_layout(tmp_path):
    local_rot, root_pos = _random_motion(3, seed=2)
    path = tmp_path / "layout.bvh"
    bvh.write_bvh(path, local_rot, root_pos)
    lines = path.read_text().splitlines()
    assert lines[0] == "HIERARCHY" and lines[1] == "ROOT pelvis"
    assert sum(ln.strip().startswith("JOINT ") for ln in lines) == 21
    assert sum(ln.strip() == "End Site" for ln in lines) == 5
    assert lines[4].strip() == "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
    k = lines.index("MOTION")
    assert lines[k + 1] == "Frames: 3" and lines[k + 2] == "Frame Time: 0.03333333"
    assert [len(ln.split()) for ln in lines[k + 3:]] == [6 + 21 * 3] * 3
    skel, _ = bvh.read_bvh(path)
    leaves = {skel.names[j] for j in skel.end_sites}
    assert leaves == {"head", "left_wrist", "right_wrist", "left_foot", "right_foot"}


def test_writer_rejects_bad_input(tmp_path):
    local_rot, root_pos = _random_motion(2, seed=0)
    with pytest.raises(ShapeError, match=r"\[T, 22, 3, 3\]"):
        bvh.write_bvh(tmp_path / "x.bvh", local_rot[:, :21], root_pos)
    with pytest.raises(ConfigError, match="furlong"):
        bvh.write_bvh(tmp_path / "x.bvh", local_rot, root_pos, unit="furlong")
    with pytest.raises(DataError, match="NaN"):
        bvh.write_bvh(tmp_path / "x.bvh", local_rot, root_pos * np.nan)


def test_write_motion_bvh_from_features(tmp_path):
    from mm_jax.motion import features as mfeat

    local_rot, root_pos = _random_motion(11, seed=4)
    root_pos[:, 1] = 0.9
    feats = mfeat.features_from_motion(jnp.asarray(local_rot), jnp.asarray(root_pos))
    bvh.write_motion_bvh(tmp_path / "f.bvh", np.asarray(feats), unit="cm")
    m = retarget.import_bvh(tmp_path / "f.bvh", config=NO_GROUND)
    assert np.abs(_joints(m) - np.asarray(mfeat.motion_from_features(feats).joints)).max() < 1e-3


def _bvh_joints(path) -> np.ndarray:
    """Joints [T, 22, 3] of a written SMPL BVH by the source FK (file units), in SMPL joint order."""
    skel, motion = bvh.read_bvh(path)
    _, pos = retarget.source_forward_kinematics(skel, motion)
    return pos[:, [skel.names.index(n) for n in skeleton.JOINT_NAMES]]


def test_write_bvh_writes_the_given_offsets(tmp_path):
    local_rot, root_pos = _random_motion(7, seed=8)
    offsets = skeleton.OFFSETS * np.random.default_rng(8).uniform(0.7, 1.3, (22, 1))
    bvh.write_bvh(tmp_path / "o.bvh", local_rot, root_pos, offsets=offsets, unit="cm")
    skel, _ = bvh.read_bvh(tmp_path / "o.bvh")
    order = [skel.names.index(n) for n in skeleton.JOINT_NAMES]
    assert np.abs(skel.offsets[order] / 100.0 - offsets).max() < 1e-7
    want = skeleton.forward_kinematics(jnp.asarray(local_rot), jnp.asarray(root_pos), jnp.asarray(offsets))[1]
    assert np.abs(_bvh_joints(tmp_path / "o.bvh") / 100.0 - np.asarray(want)).max() < 1e-4
    with pytest.raises(ShapeError, match="offsets"):
        bvh.write_bvh(tmp_path / "x.bvh", local_rot, root_pos, offsets=offsets[:21])


def test_write_motion_bvh_shows_the_joints_of_inconsistent_features(tmp_path):
    """A decoded clip's rotations and positions disagree; the BVH must follow the positions (< 1 cm)."""
    from mm_jax.motion import features as mfeat
    from mm_jax.motion.synth import SynthConfig, motion_of

    local_rot, root_pos, _ = motion_of(SynthConfig(num=8, seed=0), 3)
    feats = np.array(mfeat.features_from_motion(jnp.asarray(local_rot), jnp.asarray(root_pos)))
    rng = np.random.default_rng(0)
    feats[:, mfeat.LOCAL_ROT] += rng.normal(0.0, 0.1, feats[:, mfeat.LOCAL_ROT].shape)  # ~5 deg per joint
    feats[:, mfeat.LOCAL_POS] += rng.normal(0.0, 0.003, feats[:, mfeat.LOCAL_POS].shape)  # bone lengths vary
    joints = np.asarray(mfeat.joints_from_features(jnp.asarray(feats)))
    motion = mfeat.motion_from_features(jnp.asarray(feats))
    bvh.write_bvh(tmp_path / "old.bvh", np.asarray(motion.local_rot), np.asarray(motion.root_pos))
    old = np.linalg.norm(_bvh_joints(tmp_path / "old.bvh") - joints, axis=-1)
    assert old.mean() > 0.05  # the 6D channels posed on SMPL's skeleton: several cm off
    bvh.write_motion_bvh(tmp_path / "new.bvh", feats)
    new = np.linalg.norm(_bvh_joints(tmp_path / "new.bvh") - joints, axis=-1)
    assert new.mean() < 0.01 and new.max() < 0.05


def test_numpy_helpers_match_the_shared_modules():
    local_rot, root_pos = _random_motion(11, seed=6)
    want = np.asarray(skeleton.forward_kinematics(jnp.asarray(local_rot), jnp.asarray(root_pos))[1])
    assert np.abs(retarget.smpl_forward_kinematics(local_rot, root_pos) - want).max() < 1e-5
    u, _, vt = np.linalg.svd(local_rot[:2].astype(np.float64))
    r0, r1 = u @ vt  # exactly orthonormal; slerp ends and midpoint, angles up to ~pi
    assert np.abs(retarget._slerp(r0, r1, np.zeros(22)) - r0).max() < 1e-5
    assert np.abs(retarget._slerp(r0, r1, np.ones(22)) - r1).max() < 1e-5
    mid = retarget._slerp(r0, r1, np.full(22, 0.5))
    rel_a, rel_b = np.swapaxes(r0, -1, -2) @ mid, np.swapaxes(mid, -1, -2) @ r1
    assert np.abs(rel_a - rel_b).max() < 1e-5  # equal halves


# ----------------------------------------------------------------------------- the parser


def test_parser_decodes_channels_orders_and_end_sites():
    skel, motion = bvh.read_bvh(LAFAN)  # CRLF, 6 channels per joint, ZYX
    assert skel.names[0] == "Hips" and skel.num_joints == 24 and len(skel.end_sites) == 5
    assert motion.num_frames == 5 and motion.translations.shape == (5, 24, 3)
    assert np.allclose(motion.translations[2, 0], [0, 100, 100])
    spine = skel.names.index("Spine")
    assert skel.rotation_order(spine) == "ZYX" and np.allclose(motion.translations[:, spine], [0, 10, 0])
    want = _ref_axis("Z", 10) @ _ref_axis("Y", 20) @ _ref_axis("X", 30)
    assert np.abs(motion.local_rot[3, spine] - want).max() < 1e-6
    skel, motion = bvh.read_bvh(MIXAMO)  # ZXY, 3 channels on joints
    fore = skel.names.index("mixamorig:LeftForeArm")
    want = _ref_axis("Z", 30) @ _ref_axis("X", 20) @ _ref_axis("Y", -40)
    assert skel.rotation_order(fore) == "ZXY" and np.abs(motion.local_rot[2, fore] - want).max() < 1e-6


def test_parser_tolerates_whitespace_and_names_with_spaces():
    text = ("\n\nHIERARCHY\r\nROOT Bip01 Pelvis {\n\t OFFSET\t0 1 0\n"
            " CHANNELS 4 Xposition Yposition Zposition Yrotation\n"
            "\tJOINT Bip01 L Thigh\n{\nOFFSET 0.1 -0.1 0\nCHANNELS 2 Xrotation Zrotation\n"
            "End Site\n{\nOFFSET 0 -0.4 0\n}\n}\n}\n\n"
            "MOTION\nFrames:\t2\nFrame Time:  0.05\n0 1 0 90 0 0\n\n1 1 0 0 90 90\n")
    skel, motion = bvh.parse_bvh(text)
    assert skel.names == ("Bip01 Pelvis", "Bip01 L Thigh") and skel.parents == (-1, 0)
    assert np.abs(motion.local_rot[0, 0] - _ref_axis("Y", 90)).max() < 1e-6
    assert np.abs(motion.local_rot[1, 1] - _ref_axis("X", 90) @ _ref_axis("Z", 90)).max() < 1e-6
    assert np.allclose(motion.translations[1, 0], [1, 1, 0]) and abs(motion.fps - 20) < 1e-9


GOOD = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 90 0 0 0 0 1 2 3
0 91 0 0 0 0 1 2 3
"""


@pytest.mark.parametrize(
    "old,new,pattern",
    [
        ("MOTION\n", "", r"bad\.bvh:16: expected 'MOTION' here, got 'Frames:'"),
        ("0 91 0 0 0 0 1 2 3", "0 91 0 0 0 0 1 2", r"bad\.bvh:20: frame 1 has 8 values, expected 9"),
        ("Yrotation\n  JOINT", "Wrotation\n  JOINT", r"bad\.bvh:5: unknown channel 'Wrotation'"),
        ("    }\n  }\n}", "    }\n  }", r"bad\.bvh:\d+: unbalanced braces: '\{' of joint 'Hips'"),
        ("}\nMOTION", "}\n}\nMOTION", r"bad\.bvh:16: unbalanced braces: an extra '\}'"),
        ("0 91 0", "0 9x1 0", r"bad\.bvh:20: frame 1: '9x1' is not a number"),
        ("Frames: 2", "Frames: 3", r"'Frames: 3' but the file has 2 frame lines"),
        ("OFFSET 0 10 0", "OFFSET 0 ten 0", r"bad\.bvh:8: OFFSET of 'Chest': 'ten' is not a number"),
    ],
)
def test_malformed_files_raise_format_error_naming_the_line(tmp_path, old, new, pattern):
    assert old in GOOD
    bvh.parse_bvh(GOOD, "good.bvh")
    path = tmp_path / "bad.bvh"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(FormatError, match=pattern):
        bvh.read_bvh(path)


@pytest.mark.parametrize("frame_time,fps", [("33.3333", "0.03"), ("0.001", "1000"), ("0.2", "5")])
def test_a_frame_time_outside_10_to_240_fps_is_named(tmp_path, frame_time, fps):
    """Issue 13, item 5: a file written in milliseconds made 275,000 frames; now it is a FormatError."""
    path = tmp_path / "ms.bvh"
    path.write_text(GOOD.replace("Frame Time: 0.0333333", f"Frame Time: {frame_time}"))
    with pytest.raises(FormatError, match=rf"ms\.bvh:18: Frame Time {frame_time} s implies {fps} fps, "
                                          r"outside the 10-240 fps"):
        bvh.read_bvh(path)
    for ok in ("0.004166", "0.1", "0.00833333"):  # 240, 10 and 120 fps, written with few digits
        bvh.parse_bvh(GOOD.replace("Frame Time: 0.0333333", f"Frame Time: {ok}"))


def test_import_bvh_skips_a_millisecond_file_naming_it(tmp_path):
    from mm_jax.motion.import_bvh import import_bvh_dir

    src = tmp_path / "mocap"
    src.mkdir()
    (src / "ms.bvh").write_text(GOOD.replace("Frame Time: 0.0333333", "Frame Time: 33.3333"))
    (src / "ok.bvh").write_text(LAFAN.read_text())
    report = import_bvh_dir(src, tmp_path / "ds", allow_uncaptioned=True)
    assert report["imported"] == 1 and report["frames"] == 5
    assert [s["clip"] for s in report["skipped"]] == ["ms"]
    assert "Frame Time 33.3333 s implies 0.03 fps" in report["skipped"][0]["reason"]
    assert "milliseconds" in report["skipped"][0]["reason"]


def test_missing_motion_section_is_named(tmp_path):
    path = tmp_path / "bad.bvh"
    path.write_text(GOOD.split("MOTION")[0])
    with pytest.raises(FormatError, match=r"bad\.bvh:15: missing MOTION"):
        bvh.read_bvh(path)


# ----------------------------------------------------------------------------- retargeting


def test_blender_exported_file_imports_to_the_same_motion():
    local_rot, root_pos = _blender_motion()
    m = retarget.import_bvh(BLENDER, config=NO_GROUND)  # z up, YXZ, 6 channels per joint, cm
    assert m.fps == 30.0 and len(m.local_rot) == 5
    want = retarget.smpl_forward_kinematics(local_rot, root_pos)
    assert np.abs(_joints(m) - want).max() < 1e-4
    assert np.abs(m.local_rot - local_rot).max() < 1e-4


def test_lafan_tpose_cm_zyx_retargets_analytically():
    m = retarget.import_bvh(LAFAN)
    j = _joints(m)
    assert m.local_rot.shape == (5, 22, 3, 3) and m.fps == 30.0
    assert np.abs(m.root_pos[2] - m.root_pos[0] - [0, 0, 1.0]).max() < 1e-5  # 100 cm forward -> 1 m
    assert abs(j[:, list(skeleton.FOOT_JOINTS), 1].min()) < 1e-5  # the clip's lowest foot is on the ground
    arm = sum(np.linalg.norm(skeleton.OFFSETS[JI[n]]) for n in ("left_elbow", "left_wrist"))
    shoulder, wrist = j[1, JI["left_shoulder"]], j[1, JI["left_wrist"]]  # frame 1: left arm straight down
    assert np.abs(wrist - (shoulder - [0, arm, 0])).max() < 1e-4
    assert np.abs(_dir(j[0, JI["left_shoulder"]], j[0, JI["left_wrist"]]) - [1, 0, 0]).max() < 1e-4  # T-pose
    shin = _dir(j[2, JI["right_knee"]], j[2, JI["right_ankle"]])
    assert np.abs(shin - [0, 0, -1]).max() < 1e-4  # frame 2: shin back
    yaw = np.rad2deg(np.asarray(rotations.heading_yaw(jnp.asarray(m.local_rot[:, 0]))))
    assert abs(yaw[3] - yaw[0] - 90) < 0.5 and abs(yaw[0]) < 5  # Hips Y +90: the body faces +x
    spine = _ref_axis("Y", 90) @ _ref_axis("Z", 10) @ _ref_axis("Y", 20) @ _ref_axis("X", 30) @ [0, 1, 0]
    assert np.abs(_dir(j[3, JI["spine1"]], j[3, JI["spine2"]]) - spine).max() < 1e-4
    # Frame 4: a forearm twist moves no joint relative to the root, but turns the SMPL elbow 90 deg about x.
    assert np.abs((j[4] - j[4, :1]) - (j[0] - j[0, :1])).max() < 1e-5
    twist = np.asarray(rotations.matrix_to_axis_angle(jnp.asarray(m.local_rot[4, JI["left_elbow"]])))
    assert abs(np.rad2deg(np.linalg.norm(twist)) - 90) < 1 and twist[0] / np.linalg.norm(twist) > 0.99


def test_lafan1_style_bones_along_x_retarget_analytically():
    m = retarget.import_bvh(LAFAN_X)  # up axis and cm found although the rest pose is not standing
    j = _joints(m)
    assert np.abs(m.root_pos[2] - m.root_pos[0] - [0, 0, 1.0]).max() < 1e-5
    for side, sx in (("left", 1), ("right", -1)):  # frame 0: T-pose
        arm = _dir(j[0, JI[f"{side}_shoulder"]], j[0, JI[f"{side}_wrist"]])
        leg = _dir(j[0, JI[f"{side}_hip"]], j[0, JI[f"{side}_ankle"]])
        assert np.abs(arm - [sx, 0, 0]).max() < 1e-4 and np.abs(leg - [0, -1, 0]).max() < 1e-4
    for a, b in (("spine1", "spine2"), ("spine2", "spine3"), ("neck", "head")):  # the source's are vertical
        assert np.abs(_dir(j[0, JI[a]], j[0, JI[b]]) - [0, 1, 0]).max() < 1e-4
    assert np.abs(_dir(j[1, JI["left_shoulder"]], j[1, JI["left_wrist"]]) - [0, -1, 0]).max() < 1e-4
    yaw = np.rad2deg(np.asarray(rotations.heading_yaw(jnp.asarray(m.local_rot[:, 0]))))
    assert abs(yaw[2] - yaw[0] - 90) < 0.5 and abs(yaw[0]) < 5  # frame 2 faces +x
    assert np.abs(_dir(j[2, JI["left_shoulder"]], j[2, JI["left_wrist"]]) - [0, 0, -1]).max() < 1e-4
    assert np.abs(_dir(j[3, JI["right_knee"]], j[3, JI["right_ankle"]]) - [0, 0, -1]).max() < 1e-4


def test_mixamo_apose_rest_gives_arms_45_degrees_down():
    m = retarget.import_bvh(MIXAMO)
    j = _joints(m)
    c = 1 / np.sqrt(2)
    for side, sx in (("left", 1), ("right", -1)):
        for a, b in (("shoulder", "elbow"), ("elbow", "wrist")):
            bone = _dir(j[0, JI[f"{side}_{a}"]], j[0, JI[f"{side}_{b}"]])
            assert np.abs(bone - [sx * c, -c, 0]).max() < 1e-3
    shoulder, wrist = j[1, JI["left_shoulder"]], j[1, JI["left_wrist"]]  # frame 1: raised to horizontal
    assert abs(wrist[1] - shoulder[1]) < 0.01 and wrist[0] - shoulder[0] > 0.45
    assert np.abs(_dir(j[2, JI["right_shoulder"]], j[2, JI["right_elbow"]]) - [-1, 0, 0]).max() < 1e-4
    fore = _ref_axis("Z", 30) @ _ref_axis("X", 20) @ _ref_axis("Y", -40) @ [c, -c, 0]
    assert np.abs(_dir(j[2, JI["left_elbow"]], j[2, JI["left_wrist"]]) - fore).max() < 1e-4
    # Zero source rotations: SMPL leaves continue their parent bone (their rest alignment is inherited).
    leaves = [JI[n] for n in ("head", "left_wrist", "right_wrist", "left_foot", "right_foot")]
    assert np.abs(m.local_rot[0, leaves] - np.eye(3)).max() < 1e-4


def test_cmu_zup_120fps_is_resampled_to_30fps():
    m = retarget.import_bvh(CMU)
    j = _joints(m)
    assert m.fps == 30.0 and len(j) == 4  # 13 frames at 120 fps -> frames 0, 4, 8, 12
    assert np.abs(m.root_pos[:, [0, 2]] - np.stack([np.zeros(4), np.arange(4) / 3], 1)).max() < 1e-4
    assert abs(j[:, list(skeleton.FOOT_JOINTS), 1].min()) < 1e-5
    assert np.all(j[0, JI["left_foot"], 2] > j[0, JI["left_ankle"], 2])  # z up, facing -y -> SMPL faces +z
    for k, deg in enumerate((0.0, 30.0, 60.0, 90.0)):  # elbow swung forward by 7.5 deg per source frame
        want = [np.cos(np.deg2rad(deg)), 0, np.sin(np.deg2rad(deg))]
        assert np.abs(_dir(j[k, JI["left_elbow"]], j[k, JI["left_wrist"]]) - want).max() < 1e-3
    skel, motion = bvh.read_bvh(CMU)  # head bone spans Neck -> Neck1 -> Head: direction still exact
    _, pos = retarget.source_forward_kinematics(skel, motion)
    src = _dir(pos[::4, skel.names.index("Neck")], pos[::4, skel.names.index("Head")]) @ retarget._UP["z"].T
    assert np.abs(_dir(j[:, JI["neck"]], j[:, JI["head"]]) - src).max() < 1e-3


def test_resampling_interpolates_between_source_frames():
    m = retarget.import_bvh(CMU, config=retarget.RetargetConfig(fps=45.0))
    j = _joints(m)
    assert m.fps == 45.0 and len(j) == 5
    deg = 7.5 * 120 / 45  # output frame 1 sits between source frames 2 and 3
    want = [np.cos(np.deg2rad(deg)), 0, np.sin(np.deg2rad(deg))]
    assert np.abs(_dir(j[1, JI["left_elbow"]], j[1, JI["left_wrist"]]) - want).max() < 1e-3
    assert abs(m.root_pos[1, 2] - 120 / 45 / 12) < 1e-4


def test_source_facing_is_kept_in_the_world():
    skel, motion = bvh.read_bvh(LAFAN)
    yaw = _ref_axis("Y", 90)
    turned_skel = bvh.BvhSkeleton(names=skel.names, parents=skel.parents, offsets=skel.offsets @ yaw.T,
                                  channels=skel.channels, end_sites=skel.end_sites)
    turned = bvh.BvhMotion(frame_time=motion.frame_time, translations=motion.translations @ yaw.T,
                           local_rot=(yaw @ motion.local_rot @ yaw.T).astype(np.float32))
    a = _joints(retarget.retarget(skel, motion, config=NO_GROUND))
    b = _joints(retarget.retarget(turned_skel, turned, config=NO_GROUND))
    assert np.abs(b - a @ yaw.T).max() < 1e-4


def test_explicit_naming_and_unit_override():
    text = LAFAN.read_text()
    renamed = text.replace("LeftUpLeg", "thighA").replace("RightUpLeg", "thighB")
    skel, motion = bvh.parse_bvh(renamed)
    with pytest.raises(DataError, match=r"left_hip.*right_hip.*'thighA'"):
        retarget.retarget(skel, motion)
    m = retarget.retarget(skel, motion, naming={"left_hip": "thighA", "right_hip": "thighB"})
    assert np.abs(_joints(m) - _joints(retarget.import_bvh(LAFAN))).max() < 1e-5
    big = retarget.import_bvh(LAFAN, config=retarget.RetargetConfig(unit="m"))
    assert abs(big.root_pos[2, 2] - big.root_pos[0, 2] - 100.0) < 1e-3
    with pytest.raises(ConfigError, match="furlong"):
        retarget.RetargetConfig(unit="furlong")
    with pytest.raises(ConfigError, match="elbowz"):
        retarget.retarget(skel, motion, naming={"elbowz": "thighA"})


def test_unmatched_skeleton_lists_missing_joints_and_source_names(tmp_path):
    path = tmp_path / "robot.bvh"
    path.write_text(GOOD.replace("Hips", "Base").replace("Chest", "Link1"))
    pattern = r"robot\.bvh: .*no source joint for \['pelvis', 'left_hip'.*'left_wrist'.*\['Base', 'Link1'\]"
    with pytest.raises(DataError, match=pattern):
        retarget.import_bvh(path)


def test_name_normalisation():
    n = joint_map.normalize_name
    assert n("mixamorig:LeftUpLeg") == n("mixamorig1:LeftUpLeg") == "leftupleg"
    assert n("Bip01 L Thigh") == "lthigh" and n("Character1_Hips") == "hips" and n("L_Hip") == "lhip"


def test_import_bvh_dir_writes_features_and_sequences(tmp_path):
    import json

    from mm_jax.motion import features as mfeat
    from mm_jax.motion.import_bvh import import_bvh_dir

    src = tmp_path / "mocap"
    (src / "sub").mkdir(parents=True)
    (src / "a.bvh").write_text(LAFAN.read_text())
    (src / "a.txt").write_text("a person lowers the left arm\n\nthen bends the right knee\n")
    (src / "sub" / "b.bvh").write_text(CMU.read_text())
    (src / "sub" / "broken.bvh").write_text(GOOD.replace("MOTION\n", ""))
    seen = []
    report = import_bvh_dir(src, tmp_path / "ds", allow_uncaptioned=True,
                            progress=lambda k, n, p: seen.append((k, n)))
    assert report["imported"] == 2 and report["frames"] == 5 + 4 and len(report["skipped"]) == 1
    assert report["skipped"][0]["clip"] == "sub/broken" and "broken.bvh" in report["skipped"][0]["reason"]
    assert seen[-1] == (3, 3) and report["fps_conversions"] == {"120->30": 1, "30->30": 1}
    feats = np.load(tmp_path / "ds" / "features.npy")
    recs = [json.loads(ln) for ln in (tmp_path / "ds" / "sequences.jsonl").read_text().splitlines()]
    assert feats.shape == (9, mfeat.FEATURE_DIM) and feats.dtype == np.float32
    assert [(r["id"], r["offset"], r["length"]) for r in recs] == [("a", 0, 5), ("sub/b", 5, 4)]
    assert recs[0]["captions"] == ["a person lowers the left arm", "then bends the right knee"]
    assert recs[1]["captions"] == [] and recs[1]["fps"] == 30.0 and recs[1]["source_fps"] == 120.0
    # Positions from the source's own joints, rotations from the retarget (see tests/test_import.py).
    clip = retarget.import_bvh_source(CMU)
    want = mfeat.features_from_joints(jnp.asarray(clip.joints), jnp.asarray(clip.motion.local_rot))
    assert np.abs(feats[5:] - np.asarray(want)).max() < 1e-6
    from mm_jax.motion.synth import load_dataset

    ds = load_dataset(tmp_path / "ds")  # a full dataset: split, stats, meta
    assert len(ds) == 2 and ds.sequence("sub/b").shape == (4, mfeat.FEATURE_DIM)
    assert sorted(ds.ids()) == ["a", "sub/b"] and ds.meta["import_report"]["imported"] == 2
    assert import_bvh_dir(src, tmp_path / "captioned")["skipped_by_kind"] == {"invalid": 1, "no captions": 1}
    with pytest.raises(DataError, match="no .bvh files"):
        import_bvh_dir(tmp_path / "ds", tmp_path / "ds2")


def test_root_scale_ground_and_config_overrides():
    from mm_jax.configs import apply_overrides

    base = retarget.import_bvh(LAFAN, config=NO_GROUND)
    assert np.allclose(base.root_pos[:, 1], 1.0, atol=1e-6)  # 100 cm, ground not moved
    cfg = apply_overrides(retarget.PRESETS["default"], ["ground=none", "root_scale=body"])
    body = retarget.import_bvh(LAFAN, config=cfg)
    smpl_leg = sum(np.linalg.norm(skeleton.OFFSETS[JI[n]]) for n in ("left_knee", "left_ankle"))
    assert np.allclose(body.root_pos, base.root_pos * smpl_leg / 0.90, atol=1e-5)  # source leg 45 + 45 cm
    with pytest.raises(ConfigError, match="up_axis"):
        apply_overrides(retarget.RetargetConfig(), ["up_axis=w"])
