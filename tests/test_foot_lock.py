"""Tests of the foot lock (mm_jax.motion.foot_lock): hand-made clips with known answers, its
plumbing (the decode-only config field, decode_codes, the reconstruction report) and the torch runtime's use of it."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax.errors import ConfigError, DataError, ShapeError
from mm_jax.eval.quality import foot_skating_ratio, jerk
from mm_jax.motion import skeleton
from mm_jax.motion import foot_lock as lock
from mm_jax.motion.features import features_from_joints, joints_from_features
from mm_jax.tokenizer import PRESETS, TokenizerConfig

L_HIP, L_KNEE, L_ANKLE, L_TOE = lock.LEGS[0]
R_TOE = lock.LEGS[1][3]
LOWER_LEFT = [L_KNEE, L_ANKLE, L_TOE]


def _features(joints_tj3: np.ndarray) -> np.ndarray:
    """Features [T, 272] of joints with identity rotations (heading 0: the local frame is the world's)."""
    rots = np.broadcast_to(np.eye(3, dtype=np.float32), (len(joints_tj3), 22, 3, 3))
    return np.asarray(features_from_joints(jnp.asarray(joints_tj3, jnp.float32), jnp.asarray(rots)))


def _standing(t: int) -> np.ndarray:
    """[T, 22, 3]: the SMPL rest pose, toes on the ground (ankles 6 cm up, above the 5 cm contact height)."""
    rest = skeleton.rest_positions()
    rest = rest - [0.0, rest[:, 1].min(), 0.0]
    return np.repeat(rest[None], t, axis=0).astype(np.float64)


def _joints(f_tf: np.ndarray) -> np.ndarray:
    return np.asarray(joints_from_features(jnp.asarray(f_tf)), np.float64)


def _sliding(t: int = 8, step: float = 0.003) -> np.ndarray:
    """The left knee, ankle and toe slide ``step`` m/frame along +x; the rest stands still."""
    j = _standing(t)
    j[:, LOWER_LEFT, 0] += step * np.arange(t)[:, None]
    return j


def test_a_planted_sliding_toe_stays_where_it_was_planted():
    before = _sliding()  # 3 mm/frame: planted (step^2 = 9e-6 < 0.002, 0 cm < 5 cm); 21 mm in all, < 4 cm
    after = _joints(lock.foot_lock(_features(before)))
    for toe in (L_TOE, R_TOE):  # both toes (the root correction moved the body; the right toe is pinned back)
        np.testing.assert_allclose(after[:, toe, [0, 2]], np.repeat(before[:1, toe, [0, 2]], len(before), 0),
                                   atol=2e-6)  # the hand answer: the toe's frame-0 position, float32 rounding
    not_knees = [j for j in range(22) if j not in (L_KNEE, lock.LEGS[1][1])]
    np.testing.assert_allclose(after[:, not_knees, 1], before[:, not_knees, 1], atol=2e-6)  # only knees rise/drop

    def length(j, a, b):
        return np.linalg.norm(j[:, a] - j[:, b], axis=-1)

    bone = {(a, b): length(after, a, b) - length(before, a, b)
            for a, b in ((L_HIP, L_KNEE), (L_KNEE, L_ANKLE), (L_ANKLE, L_TOE))}
    assert np.abs(bone[L_HIP, L_KNEE]).max() < 2e-5 and np.abs(bone[L_KNEE, L_ANKLE]).max() < 2e-5  # knee by IK
    assert np.abs(bone[L_ANKLE, L_TOE]).max() <= lock.LOCK_FOOT_TOLERANCE  # the ankle joins its toe over 6 frames
    assert foot_skating_ratio(before) == 1.0 and foot_skating_ratio(after) == 0.0


def test_frames_far_from_contact_are_unchanged_bit_for_bit():
    j = _sliding(40)
    j[8:] += [0.0, 0.3, 0.0]  # from frame 8 the body is 30 cm up: no contact after frame 7
    f = _features(j)
    got = lock.foot_lock(f)
    assert not np.array_equal(got[:8], f[:8])
    far = 7 + int(np.ceil(3 * lock.LOCK_ROOT_SIGMA)) + lock.LOCK_BLEND_FRAMES + 1
    np.testing.assert_array_equal(got[far:], f[far:])
    np.testing.assert_array_equal(got[:, 2:8], f[:, 2:8])  # heading and rotations are never touched
    np.testing.assert_array_equal(got[:, 140:], f[:, 140:])


def test_still_feet_come_back_unchanged_and_real_like_jitter_barely_moves():
    rng = np.random.default_rng(5)
    j = _standing(30)
    wave = np.sin(np.arange(30) / 4.0)[:, None]
    j[:, [18, 20], 1] += 0.2 * wave  # the left arm waves; the feet do not move
    f = _features(j)
    np.testing.assert_array_equal(lock.foot_lock(f), f)  # tolerance 0: nothing planted moves
    j[:, [L_TOE, R_TOE], 0] += rng.normal(scale=2e-4, size=(30, 2))  # 0.2 mm jitter (real planted feet: < 0.4 mm)
    f = _features(j)
    moved = np.abs(_joints(lock.foot_lock(f)) - _joints(f)).max()
    assert moved < 2e-3, f"a real-like clip moved {moved * 1000:.2f} mm"


def _shuffling(seed: int = 0, t: int = 90) -> np.ndarray:
    """A generated-like clip: the body sways smoothly and both feet slide at a few mm/frame, at random."""
    rng = np.random.default_rng(seed)
    j = _standing(t)
    j[:, :, 0] += 0.05 * np.sin(np.arange(t) / 9.0)[:, None]
    for toe, leg in ((L_TOE, LOWER_LEFT), (R_TOE, [lock.LEGS[1][1], lock.LEGS[1][2], R_TOE])):
        slide = np.cumsum(rng.normal(scale=0.004, size=(t, 2)), axis=0)
        j[:, leg, 0] += slide[:, :1]
        j[:, leg, 2] += slide[:, 1:]
    return j


def test_generated_like_shuffling_stops_skating_within_bounds():
    before = _shuffling()
    after = _joints(lock.foot_lock(_features(before)))
    assert foot_skating_ratio(before) > 0.8 and foot_skating_ratio(after) < 0.1
    assert jerk(after) < 1.2 * jerk(before)  # the root correction is smoothed, pins start at the last position
    rel = (after - after[:, :1]) - (before - before[:, :1])  # foot displacement relative to the pelvis
    foot = np.linalg.norm(rel[:, [L_ANKLE, L_TOE, R_TOE]], axis=-1).max()
    assert foot <= lock.LOCK_MAX_OFFSET + lock.LOCK_FOOT_TOLERANCE + 0.03


def test_bad_input_is_a_named_error():
    f = _features(_standing(4))
    with pytest.raises(ShapeError, match="272"):
        lock.foot_lock(f[:, :271])
    with pytest.raises(ShapeError, match="too short"):
        lock.foot_lock(f[:1])
    bad = f.copy()
    bad[2, 40] = np.nan
    with pytest.raises(DataError, match="NaN at frame 2, channel 40"):
        lock.foot_lock(bad)
    with pytest.raises(ConfigError, match="soft_offset <= max_offset"):
        lock.foot_lock(f, soft_offset=0.2, max_offset=0.1)
    with pytest.raises(ConfigError, match="blend_frames=0"):
        lock.foot_lock(f, blend_frames=0)
    with pytest.raises(ShapeError, match=r"\[B, T, 272\]"):
        lock.foot_lock_batch(f, [4])
    with pytest.raises(ShapeError, match="do not fit"):
        lock.foot_lock_batch(f[None], [5])


def test_batch_locks_each_row_to_its_length():
    a, b = _features(_sliding(8)), _features(_shuffling(1, 8))
    got = lock.foot_lock_batch(np.stack([a, b]), [8, 5])
    np.testing.assert_array_equal(got[0], lock.foot_lock(a))
    np.testing.assert_array_equal(got[1, :5], lock.foot_lock(b[:5]))
    np.testing.assert_array_equal(got[1, 5:], b[5:])


def test_config_field_is_decode_only_and_on_in_small_only():
    assert PRESETS["small"][0].foot_lock and not PRESETS["reference"][0].foot_lock
    assert not PRESETS["tiny"][0].foot_lock
    cfg = PRESETS["small"][0]
    assert dataclasses.replace(cfg, foot_lock=False).identity() == cfg.identity()  # shards' identity
    with pytest.raises(ConfigError, match="foot_lock=1"):
        TokenizerConfig(foot_lock=1)


def _random_tiny(lock: bool):
    from mm_jax.motion.normalize import Normalizer
    from mm_jax.tokenizer import model as tmodel
    from mm_jax.tokenizer.artifact import LoadedTokenizer

    cfg = dataclasses.replace(PRESETS["tiny"][0], foot_lock=lock)
    rng = np.random.default_rng(3)  # random weights in init_params' shapes (traced, not compiled: fast)
    shapes = jax.eval_shape(lambda key: tmodel.init_params(cfg, key=key), jax.random.key(0))
    params = jax.tree.map(lambda s: (rng.standard_normal(s.shape) / np.sqrt(np.prod(s.shape[:-1]))).astype(np.float32),
                          shapes)
    clip = _features(_shuffling(2, 8))
    norm = Normalizer(mean=clip.mean(0), std=np.maximum(clip.std(0), 1e-3))
    return LoadedTokenizer(cfg=cfg, params=params, normalizer=norm, step=0), clip


def test_decode_codes_applies_the_lock_after_denormalising():
    from mm_jax.generate import decode_codes

    tok, _ = _random_tiny(False)
    codes = [np.arange(5, dtype=np.int32) * 7, np.arange(3, dtype=np.int32)]
    plain = decode_codes(tok, codes)
    locked = decode_codes(dataclasses.replace(tok, cfg=dataclasses.replace(tok.cfg, foot_lock=True)), codes)
    for p, q in zip(plain, locked):
        np.testing.assert_array_equal(q, lock.foot_lock(p))


def test_the_reconstruction_report_scores_the_locked_motion_and_says_what_it_was_before():
    from mm_jax.tokenizer.artifact import MotionData
    from mm_jax.tokenizer.reconstruction import evaluate

    tok, _ = _random_tiny(False)
    clips = [_features(_shuffling(4, 40)), _features(_sliding(24))]
    data = MotionData(np.concatenate(clips), {"train": np.zeros(0, np.int64), "val": np.zeros(0, np.int64),
                                              "test": np.asarray([0, 40])},
                      {"train": np.zeros(0, np.int64), "val": np.zeros(0, np.int64), "test": np.asarray([40, 24])},
                      {"train": [], "val": [], "test": ["a", "b"]}, tok.normalizer)
    plain = evaluate(tok.params, tok.cfg, data, split="test")
    locked = evaluate(tok.params, dataclasses.replace(tok.cfg, foot_lock=True), data, split="test")
    assert plain["foot_skating_before_lock"] == plain["foot_skating"] and plain["jitter_before_lock"] == plain["jitter"]
    assert locked["foot_skating_before_lock"] == pytest.approx(plain["foot_skating"])
    assert locked["jitter_before_lock"] == pytest.approx(plain["jitter"])
    assert locked["foot_skating"] < plain["foot_skating"] or plain["foot_skating"] == 0
    assert locked["utilisation"] == plain["utilisation"]  # the codes do not depend on the lock


def test_the_torch_runtime_applies_the_one_foot_lock_and_loads_no_jax():
    pytest.importorskip("torch")
    import subprocess
    import sys

    from mm_jax.export import aux_maps
    from mm_jax.torch_port import pipeline
    from mm_jax.torch_port.tokenizer import MotionTokenizer

    assert pipeline.foot_lock is lock.foot_lock  # one implementation for both runtimes
    code = ("import sys, mm_jax.torch_port, mm_jax.motion.foot_lock\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    aux_maps.check_tokenizer_config(dataclasses.asdict(PRESETS["small"][0]))  # foot_lock is exported
    base = {"feature_dim": 272, "width": 8, "depth": 1, "dilation_growth": 3, "down_t": 1, "wavelet_levels": 1,
            "fsq_levels": [5, 5]}
    assert MotionTokenizer(base).cfg["foot_lock"] is False  # an export made before the field existed
    assert MotionTokenizer({**base, "foot_lock": True}).cfg["foot_lock"] is True
