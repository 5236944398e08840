"""Tests of mm_jax.motion.synth: primitives, physical sanity, captions, held-out rules, on-disk format."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re

import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax.errors import ConfigError, DataError, FormatError
from mm_jax.motion import features as mfeat
from mm_jax.motion import rotations, skeleton
from mm_jax.motion.synth import (
    HELDOUT_COMBINATIONS,
    HELDOUT_PHRASES,
    PRESETS,
    PRIMITIVES,
    ZERO_SHOT_WORDS,
    Body,
    SynthConfig,
    body_offsets,
    dataset_statistics,
    draw,
    generator_vocabulary,
    load_dataset,
    synthesize,
)
from mm_jax.motion.synth.captions import StepText, captions
from mm_jax.motion.synth.compose import sample_sequence
from mm_jax.motion.synth.heldout import HELDOUT_RE, combinations_in
from mm_jax.motion.synth.pose import pose_segments
from mm_jax.motion.synth.primitives import IN_PLACE, TRAVEL

FPS = 30
IDX = skeleton.JOINT_INDEX
FEET = list(skeleton.FOOT_JOINTS)
CFG = dataclasses.replace(PRESETS["tiny"], num=20, batch_size=8)
_WORD = re.compile(r"[a-z0-9]+")


def _build(name: str, **params):
    rng = np.random.default_rng(0)
    p = dict(PRIMITIVES[name].sample(rng), **params)
    return p, PRIMITIVES[name].build(p, FPS)


@pytest.fixture(scope="module")
def posed():
    """Every primitive (sampled params) plus hand-picked variants, posed in one batch."""
    cases = {name: _build(name) for name in PRIMITIVES}
    cases.update(
        {
            "walk_normal": _build("walk", pace="normal", speed=1.35, steps=10, curve="none", turn_deg=0),
            "run_normal": _build("run", pace="normal", speed=3.0, steps=12, curve="none", turn_deg=0),
            "turn_left_90": _build("turn", side="left", angle_deg=90),
            "turn_right_135": _build("turn", side="right", angle_deg=135),
            "jump_high": _build("jump_in_place", reps=1, height="high", flight=0.45),
            "wave_left": _build("wave", side="left", reps=3, tempo=2.0),
            "wave_right": _build("wave", side="right", reps=3, tempo=2.0),
            "stretch_left": _build("stretch", direction="left", hold=1.0),
            "calf_raise_3": _build("calf_raise", reps=3),
            "stomp_left": _build("stomp", side="left", reps=2),
            "twist_fast": _build("twist", reps=3, tempo="fast"),
            "kneel_right": _build("kneel", side="right", hold=1.0),
            "drink_right": _build("drink", side="right", hold=1.0),
        }
    )
    bodies = [Body()] * len(cases)
    for i in range(8):  # composed sequences of the test data set, posed in the same batch (one compile)
        seq = draw(CFG, i)[0]
        cases[f"seq{i}"] = (seq, seq.segment)
        bodies.append(seq.body)
    cases["walk_tall"] = cases["walk_normal"]  # the same plan on a tall, long-legged body
    bodies.append(Body(scale=1.1, legs=1.05, arms=0.97, torso=1.02, width=1.05))
    segs = [seg for _, seg in cases.values()]
    out = pose_segments(segs, FPS, frames=448, bodies=bodies)
    return {k: (p, seg, *res, b) for (k, (p, seg)), res, b in zip(cases.items(), out, bodies)}


def test_at_least_24_primitives_each_finite_and_standing_at_both_ends(posed):
    assert len(PRIMITIVES) >= 24
    for name in PRIMITIVES:
        _, seg, local, root, joints, _ = posed[name]
        assert np.isfinite(local).all() and np.isfinite(joints).all(), name
        ortho = np.abs(np.einsum("tjab,tjac->tjbc", local, local) - np.eye(3)).max()
        assert ortho < 1e-4, (name, ortho)
        assert seg.contact[0].all() and seg.contact[-1].all(), name
        assert seg.frames >= FPS, name


def _speed(root):
    return np.linalg.norm(np.diff(root[:, [0, 2]], axis=0), axis=-1) * FPS


def test_walk_and_run_speeds(posed):
    for key, lo, hi in (("walk_normal", 1.2, 1.5), ("run_normal", 2.7, 3.3)):
        _, _, _, root, _, _ = posed[key]
        v = _speed(root)
        cruise = v[len(v) // 3 : 2 * len(v) // 3].mean()
        assert lo <= cruise <= hi, (key, cruise)
        # walking forward: the root travels along +z (the initial heading).
        assert root[-1, 2] - root[0, 2] > 3.0 and abs(root[-1, 0] - root[0, 0]) < 0.05


def test_turn_changes_heading_by_the_stated_angle(posed):
    for key, deg in (("turn_left_90", 90.0), ("turn_right_135", -135.0)):
        _, _, local, root, _, _ = posed[key]
        yaw = np.degrees(np.asarray(rotations.heading_yaw(local[:, 0])))
        assert abs((yaw[-1] - yaw[0]) - deg) < 5.0, (key, yaw[-1] - yaw[0])
        assert np.linalg.norm(root[-1, [0, 2]] - root[0, [0, 2]]) < 0.05  # in place


def test_jump_leaves_the_ground(posed):
    _, seg, _, root, joints, _ = posed["jump_high"]
    lowest = joints[:, FEET, 1].min(axis=1)
    assert lowest.max() > 0.15  # flight of 0.45 s: apex g T^2 / 8 = 0.25 m
    assert (~seg.contact.any(axis=1)).sum() >= 10
    assert root[:, 1].max() > root[0, 1] + 0.15


def test_wave_raises_the_named_hand_above_its_shoulder(posed):
    for side, other in (("left", "right"), ("right", "left")):
        _, _, _, _, j, _ = posed[f"wave_{side}"]
        up = j[:, IDX[f"{side}_wrist"], 1] - j[:, IDX[f"{side}_shoulder"], 1]
        still = j[:, IDX[f"{other}_wrist"], 1] - j[:, IDX[f"{other}_shoulder"], 1]
        assert up.max() > 0.2 and still.max() < 0.0, side
        # SMPL's left is +x: the waving left hand is on the +x side.
        sign = 1.0 if side == "left" else -1.0
        assert sign * j[np.argmax(up), IDX[f"{side}_wrist"], 0] > 0.2


def test_stretch_left_leans_towards_plus_x(posed):
    _, _, _, _, j, _ = posed["stretch_left"]
    lean = j[:, IDX["head"], 0] - j[:, IDX["pelvis"], 0]
    assert lean.max() > 0.1


def _angle(u, v):
    cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _rot_deg(r):
    return np.degrees(np.arccos(np.clip((np.trace(r, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)))


def test_walking_bends_the_elbows_and_counter_rotates_the_chest(posed):
    _, _, _, _, j, _ = posed["walk_normal"]
    mid = slice(len(j) // 3, 2 * len(j) // 3)
    for s in ("left", "right"):
        sh, el, wr = (j[mid, IDX[f"{s}_{n}"]] for n in ("shoulder", "elbow", "wrist"))
        flex = _angle(el - sh, wr - el)
        assert flex.min() > 20 and flex.max() > 40, (s, flex.min(), flex.max())
    shoulders = j[mid, IDX["left_shoulder"]] - j[mid, IDX["right_shoulder"]]
    hips = j[mid, IDX["left_hip"]] - j[mid, IDX["right_hip"]]
    twist = np.degrees(np.arctan2(shoulders[:, 2], shoulders[:, 0]) - np.arctan2(hips[:, 2], hips[:, 0]))
    assert twist.max() - twist.min() > 8, twist  # the chest turns against the pelvis with each stride


def test_toes_bend_flat_while_on_the_balls_of_the_feet(posed):
    _, seg, local, _, j, _ = posed["calf_raise_3"]
    up = seg.foot_pitch[:, 0] > 0.5
    assert up.sum() > 10 and seg.contact[up].all()
    toe = _rot_deg(local[:, IDX["left_foot"]])
    assert np.abs(toe[up] - np.degrees(seg.foot_pitch[up, 0])).max() < 6, toe[up]  # toes flat on the floor
    assert toe[0] < 1 and j[up][:, [IDX["left_ankle"], IDX["right_ankle"]], 1].min() > 0.11  # heels up


def test_new_in_place_primitives_do_what_the_captions_say(posed):
    _, _, _, _, j, _ = posed["stomp_left"]
    assert j[:, IDX["left_ankle"], 1].max() > 0.3 and j[:, IDX["right_ankle"], 1].max() < 0.1
    _, _, local, _, j, _ = posed["twist_fast"]
    chest = np.degrees(np.asarray(rotations.heading_yaw(np.einsum(
        "tab,tbc,tcd,tde->tae", local[:, 0], local[:, IDX["spine1"]], local[:, IDX["spine2"]],
        local[:, IDX["spine3"]]))))
    assert chest.max() > 20 and chest.min() < -20, (chest.min(), chest.max())
    _, _, _, _, j, _ = posed["kneel_right"]
    knee = j[:, IDX["right_knee"], 1]
    assert 0.02 < knee.min() < 0.1 and j[:, :, 1].min() > -0.005  # close to the floor, nothing below the feet
    _, _, _, _, j, _ = posed["drink_right"]
    d = np.linalg.norm(j[:, IDX["right_wrist"]] - j[:, IDX["head"]], axis=-1)
    assert d.min() < 0.2 and j[np.argmin(d), IDX["right_wrist"], 0] < 0  # the right hand at the mouth
    _, _, _, _, j, _ = posed["toe_touch"]
    assert j[:, [IDX["left_wrist"], IDX["right_wrist"]], 1].min() < 0.35


def test_bodies_vary_and_fk_on_a_records_offsets_matches_its_joints(posed):
    bodies = [draw(CFG, i)[0].body for i in range(20)]
    scales = np.array([b.scale for b in bodies])
    assert scales.std() > 0.02 and 0.94 < scales.mean() < 1.01  # mean pelvis a little below the SMPL one
    assert len({b.legs for b in bodies}) > 10
    assert np.array_equal(body_offsets({"id": "x"}), skeleton.OFFSETS)
    assert np.array_equal(body_offsets({"body": bodies[0].to_record()}), bodies[0].offsets())
    quiet = dataclasses.replace(CFG, body_variation=0.0)
    assert all(draw(quiet, i)[0].body == Body() for i in range(5))
    _, _, local, root, joints, body = posed["walk_tall"]
    _, fk = skeleton.forward_kinematics(local, root, body.offsets())
    np.testing.assert_allclose(np.asarray(fk), joints, atol=1e-5)
    _, fk0 = skeleton.forward_kinematics(local, root)
    assert np.abs(np.asarray(fk0) - joints).max() > 0.05  # the neutral skeleton would not fit
    assert root[0, 1] > posed["walk_normal"][3][0, 1] + 0.05  # a taller pelvis on longer legs


def test_in_place_share_sets_the_mix():
    assert set(IN_PLACE) | set(TRAVEL) == set(PRIMITIVES) and not set(IN_PLACE) & set(TRAVEL)
    for share, allowed in ((1.0, set(IN_PLACE)), (0.0, set(TRAVEL))):
        cfg = dataclasses.replace(CFG, in_place_share=share, heldout_rate=0.0)
        names = {s.name for i in range(30) for s in draw(cfg, i)[0].steps}
        assert names <= allowed | {"stand"}, names - allowed


def test_physics_bones_feet_root_and_skating(posed):
    for key, (_, seg, _, root, joints, body) in posed.items():
        bones = np.linalg.norm(joints[:, 1:] - joints[:, list(skeleton.PARENTS[1:])], axis=-1)
        assert np.abs(bones - skeleton.bone_lengths(body.offsets())).max() < 1e-5, key  # the clip's own skeleton
        lowest = joints[:, FEET, 1].min(axis=1)
        standing = seg.contact.any(axis=1)
        assert np.abs(lowest[standing]).max() < 0.01, key  # a planted foot touches the ground
        assert lowest.min() > -0.005, key  # nothing sinks into it
        assert np.linalg.norm(np.diff(root, axis=0), axis=-1).max() < 0.2, key  # no teleporting (< 6 m/s)
        for f, toe in ((0, IDX["left_foot"]), (1, IDX["right_foot"])):
            planted = seg.contact[1:, f] & seg.contact[:-1, f]
            slide = np.linalg.norm(np.diff(joints[:, toe, [0, 2]], axis=0), axis=-1)[planted]
            assert slide.size == 0 or slide.max() < 0.005, (key, slide.max())


def test_composed_sequences_are_continuous_and_grounded(posed):
    for i in range(8):
        seq, _, local, root, joints, _ = posed[f"seq{i}"]
        assert CFG.min_frames <= seq.segment.frames <= CFG.max_frames
        assert np.linalg.norm(np.diff(root, axis=0), axis=-1).max() < 0.2
        assert np.linalg.norm(np.diff(joints, axis=0), axis=-1).max() < 0.4
        assert np.abs(joints[:, FEET, 1].min(axis=1)[seq.segment.contact.any(axis=1)]).max() < 0.01
        assert [s[0] for s in seq.spans] == sorted(s[0] for s in seq.spans)


def test_captions_paraphrases_side_words_and_vocabulary():
    vocab = generator_vocabulary()
    assert not set(ZERO_SHOT_WORDS) & vocab
    rng = np.random.default_rng(3)
    for name in ("wave", "kick", "punch", "point", "throw", "lunge", "sidestep", "hop", "turn", "look"):
        for side, other in (("left", "right"), ("right", "left")):
            p = dict(PRIMITIVES[name].sample(rng), side=side)
            caps = captions([StepText(name, p, {"distance": 1.0})], rng, 5, allow_heldout=True)
            assert len(set(caps)) >= 3
            for c in caps:
                words = set(_WORD.findall(c.lower()))
                assert other not in words, (name, side, c)
                assert words <= vocab, words - vocab
    p = {"side": "left", "hold": 2.0}  # balance on the left leg: the raised knee is the right one
    for c in captions([StepText("balance", p, {})], rng, 5, allow_heldout=True):
        assert "right leg" not in c and "right foot" not in c and "left knee" not in c, c


def test_counts_and_speed_words_are_true():
    rng = np.random.default_rng(4)
    fast = {"pace": "fast", "speed": 1.9, "steps": 8, "curve": "none", "turn_deg": 0}
    slow = dict(fast, pace="slow", speed=0.9)
    for _ in range(20):
        (cf,) = captions([StepText("walk", fast, {"distance": 5.0})], rng, 1, allow_heldout=True)
        (cs,) = captions([StepText("walk", slow, {"distance": 3.0})], rng, 1, allow_heldout=True)
        assert not re.search(r"\b(slowly|slow|leisurely)\b", cf.lower()), cf
        assert not re.search(r"\b(quickly|fast|rapidly)\b", cs.lower()), cs
        (cc,) = captions([StepText("clap", {"reps": 2, "tempo": 2.0}, {})], rng, 1, allow_heldout=True)
        assert not re.search(r"\b(three|four|five|several|once)\b", cc.lower()), cc


def test_heldout_combinations_and_phrasings_never_in_train():
    cfg = dataclasses.replace(CFG, heldout_rate=0.3)
    held = set(HELDOUT_COMBINATIONS)
    seen_test_phrase = seen_combo = False
    for i in range(150):
        seq, split, caps = draw(cfg, i)
        combos = set(combinations_in((s.name, s.gesture[0] if s.gesture else None) for s in seq.steps))
        if split == "train":
            assert not combos & held, combos & held
            assert not any(HELDOUT_RE.search(c.lower()) for c in caps), caps
        else:
            seen_test_phrase |= any(HELDOUT_RE.search(c.lower()) for c in caps)
            seen_combo |= bool(combos & held)
        assert len(set(caps)) == cfg.captions_per_sequence
    assert seen_combo and seen_test_phrase
    assert all(p in generator_vocabulary() for p in HELDOUT_PHRASES)


def test_sequences_do_not_depend_on_each_other():
    a, b = draw(CFG, 7), draw(CFG, 7)
    assert a[2] == b[2] and np.array_equal(a[0].segment.euler, b[0].segment.euler)
    rng = np.random.default_rng([CFG.seed, 7])
    direct = sample_sequence(
        rng,
        fps=FPS,
        min_frames=CFG.min_frames,
        max_frames=CFG.max_frames,
        overlay_rate=CFG.overlay_rate,
        heldout_rate=CFG.heldout_rate,
    )
    assert [s.name for s in direct.steps] == [s.name for s in a[0].steps]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    first = synthesize(CFG, root / "a")
    again = synthesize(CFG, root / "b")
    other = synthesize(dataclasses.replace(CFG, seed=1), root / "c")
    synthesize(dataclasses.replace(CFG, num=CFG.num // 2), root / "half")
    return root, first, again, other


def test_same_seed_same_bytes_different_seed_differs(written):
    root, first, _, _ = written
    assert first.num == CFG.num and sum(first.counts.values()) == CFG.num
    for name in ("features.npy", "sequences.jsonl", "split.json", "stats.npz", "meta.json"):
        assert (root / "a" / name).read_bytes() == (root / "b" / name).read_bytes(), name
    assert (root / "a" / "features.npy").read_bytes() != (root / "c" / "features.npy").read_bytes()
    # Sequence i does not depend on how many are drawn after it.
    full, half = load_dataset(root / "a"), load_dataset(root / "half")
    assert [r["captions"] for r in half.records] == [r["captions"] for r in full.records[: len(half)]]
    assert np.array_equal(np.asarray(half.features), np.asarray(full.features[: half.features.shape[0]]))


def test_format_loads_back_and_matches_the_motion(written, posed):
    root, first, _, _ = written
    ds = load_dataset(root / "a")
    assert len(ds) == CFG.num and ds.features.shape == (first.total_frames, mfeat.FEATURE_DIM)
    assert sorted(ds.ids("train") + ds.ids("val") + ds.ids("test")) == sorted(ds.ids())
    rec = ds.record(3)
    assert rec["id"] == "synth-000003" and len(rec["captions"]) >= 3 and rec["primitives"]
    feats = np.asarray(ds.sequence("synth-000003"))
    assert feats.shape == (rec["length"], 272) and np.isfinite(feats).all()
    _, _, local, root_pos, _, body = posed["seq3"]
    assert rec["body"] == body.to_record()
    expect = np.asarray(mfeat.features_from_motion(local, root_pos, body_offsets(rec)))
    np.testing.assert_allclose(feats, expect, atol=1e-4)
    train = np.concatenate([ds.sequence(i) for i in ds.ids("train")])
    np.testing.assert_allclose(ds.normalizer.mean, train.mean(0), atol=1e-4)
    stats = dataset_statistics(ds)
    assert stats["sequences"] == CFG.num and stats["distinct_caption_ratio"] > 0.95
    meta = json.loads((root / "a" / "meta.json").read_text())
    assert meta["heldout_combinations"] and meta["config"]["num"] == CFG.num


def test_existing_dataset_rules(written, tmp_path):
    root, _, _, _ = written
    assert synthesize(CFG, root / "a").reused
    with pytest.raises(DataError, match=str(root / "a")):
        synthesize(dataclasses.replace(CFG, seed=5), root / "a")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="junk"):
        synthesize(CFG, junk)
    assert (junk / "notes.txt").exists() and not list(tmp_path.glob(".junk*"))


@pytest.mark.parametrize(
    "victim, damage",
    [
        ("split.json", "delete"),
        ("meta.json", "garbage"),
        ("sequences.jsonl", "garbage"),
        ("features.npy", "truncate"),
        ("stats.npz", "garbage"),
    ],
)
def test_corrupt_files_raise_format_error_naming_them(written, tmp_path, victim, damage):
    import shutil

    root, _, _, _ = written
    copy = tmp_path / "copy"
    shutil.copytree(root / "a", copy)
    path = copy / victim
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        path.write_text("{not json")
    with pytest.raises(FormatError, match=victim):
        load_dataset(copy)


@pytest.mark.parametrize(
    "bad",
    [
        {"num": 0},
        {"max_seconds": 3.0},
        {"captions_per_sequence": 2},
        {"val_fraction": 0.6, "test_fraction": 0.5},
        {"max_primitives": 5},
    ],
)
def test_config_validation(bad):
    with pytest.raises(ConfigError):
        SynthConfig(**bad)


def test_missing_dataset_directory():
    with pytest.raises(FormatError, match="no such"):
        load_dataset(pathlib.Path("/nonexistent/synth"))


def test_every_test_clip_fk_of_decoded_rotations_matches_decoded_joints(written):
    """features -> rotations -> FK (the clip's own skeleton) agrees with features -> joints, every test clip."""
    root, *_ = written
    ds = load_dataset(root / "a")
    assert ds.ids("test")
    for seq_id in ds.ids("test"):
        f = jnp.asarray(ds.sequence(seq_id))
        motion = mfeat.motion_from_features(f)
        _, fk = skeleton.forward_kinematics(motion.local_rot, motion.root_pos, body_offsets(ds.record(seq_id)))
        err = float(jnp.abs(fk - mfeat.joints_from_features(f)).max())
        assert err < 1e-4, (seq_id, err)
