"""The wavelet FSQ tokenizer: architecture, training, resume, metrics, encoding, bad input."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax.errors import CheckpointError, ConfigError, DataError, ShapeError
from mm_jax.tokenizer import PRESETS, TokenizerConfig
from mm_jax.tokenizer import model as tmodel
from mm_jax.tokenizer import quality
from mm_jax.tokenizer.ablation import variants
from mm_jax.tokenizer.artifact import encode_dataset, encode_sequences, load_tokenizer, open_motion_data
from mm_jax.tokenizer.reconstruction import evaluate

TINY_M, TINY_T = PRESETS["tiny"]


@pytest.mark.parametrize("levels,down", [(0, 2), (1, 1), (2, 0)])
def test_every_wavelet_split_gives_the_same_token_rate(levels, down):
    cfg = dataclasses.replace(TINY_M, feature_dim=13, wavelet_levels=levels, down_t=down, window=32)
    params = tmodel.init_params(cfg, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 32, 13))
    x_hat, ids = tmodel.reconstruct(params, x, cfg)
    assert x_hat.shape == (3, 32, 13) and ids.shape == (3, 8)
    assert ids.dtype == jnp.int32 and int(ids.min()) >= 0 and int(ids.max()) < cfg.codebook_size
    # encode/decode are the two halves of reconstruct
    np.testing.assert_array_equal(tmodel.encode(params, x, cfg), ids)
    np.testing.assert_allclose(tmodel.decode(params, ids, cfg), x_hat, atol=1e-5)


def test_ablation_variants_hold_compression_and_reject_too_deep():
    base = dataclasses.replace(TINY_M, wavelet_levels=1, down_t=1)
    got = [(c.wavelet_levels, c.down_t, c.frames_per_token) for c in variants(base, (0, 1, 2))]
    assert got == [(0, 2, 4), (1, 1, 4), (2, 0, 4)]
    with pytest.raises(ConfigError, match="wavelet_levels=3"):
        variants(base, (3,))
    held = [(c.wavelet_levels, c.down_t, c.frames_per_token) for c in variants(base, (0, 1, 2), "encoder")]
    assert held == [(0, 1, 2), (1, 1, 4), (2, 1, 8)]
    with pytest.raises(ConfigError, match="hold='tokens'"):
        variants(base, (0,), "tokens")


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="window=30"):
        TokenizerConfig(window=30, wavelet_levels=1, down_t=1)
    with pytest.raises(ConfigError):
        TokenizerConfig(fsq_levels=(8, 1))


def test_check_input_names_the_problem():
    with pytest.raises(ShapeError, match="272"):
        tmodel.check_input(jnp.zeros((1, 32, 271)), TINY_M)
    with pytest.raises(ShapeError, match="downsampling window 4"):
        tmodel.check_input(jnp.zeros((1, 2, 272)), TINY_M)


def test_quality_metrics_known_answers():
    rng = np.random.default_rng(0)
    gt = jnp.asarray(rng.normal(size=(2, 20, 22, 3)), jnp.float32)
    mask = jnp.ones((2, 20), bool)
    assert float(quality.mpjpe_mm(gt, gt, mask)) == 0.0
    shifted = gt + jnp.asarray([0.01, 0.0, 0.0])
    np.testing.assert_allclose(float(quality.mpjpe_mm(shifted, gt, mask)), 10.0, rtol=1e-4)
    assert float(quality.accel_error_mm(shifted, gt, mask)) < 1e-3  # a constant offset has no accel.
    t = jnp.arange(20, dtype=jnp.float32)[None, :, None, None]
    uniform = jnp.broadcast_to(t * 0.05, (2, 20, 22, 3))  # constant velocity: zero jerk
    assert float(quality.jitter(uniform, mask)) < 1e-2
    cubic = jnp.broadcast_to((t / 30.0) ** 3, (2, 20, 22, 3))  # x = t^3 (s): jerk 6 m/s^3 per axis
    np.testing.assert_allclose(float(quality.jitter(cubic, mask)), 6.0 * np.sqrt(3), rtol=1e-2)
    # masked frames do not count
    half = mask.at[:, 10:].set(False)
    spoiled = shifted.at[:, 10:].add(5.0)
    np.testing.assert_allclose(float(quality.mpjpe_mm(spoiled, gt, half)), 10.0, rtol=1e-4)


def _cfgs(steps, **kw):
    return TINY_M, dataclasses.replace(TINY_T, steps=steps, log_every=2, val_every=steps, **kw)


def test_training_reduces_loss_and_resume_is_exact(tiny_dataset, tmp_path):
    from mm_jax.tracking import read_metrics
    from mm_jax.tokenizer.train import train

    mcfg, tcfg = _cfgs(12, ckpt_every=6)
    train(mcfg, tcfg, tiny_dataset, tmp_path / "full")
    losses = [r["train/loss"] for r in read_metrics(tmp_path / "full") if "train/loss" in r]
    assert losses[-1] < losses[0]

    def stop_at_6(done, total):
        if done == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(mcfg, tcfg, tiny_dataset, tmp_path / "split", progress=stop_at_6)
    with pytest.raises(CheckpointError, match="resume"):
        train(mcfg, tcfg, tiny_dataset, tmp_path / "split")  # never silently restarts
    train(mcfg, tcfg, tiny_dataset, tmp_path / "split", resume=True)
    a, b = load_tokenizer(tmp_path / "full"), load_tokenizer(tmp_path / "split")
    assert a.step == b.step == 12
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_mismatched_run_directory_is_a_named_error(tiny_tokenizer, tiny_dataset):
    from mm_jax.tokenizer.train import train

    other = dataclasses.replace(TINY_M, width=48)
    with pytest.raises(CheckpointError, match="another config"):
        train(other, TINY_T, tiny_dataset, tiny_tokenizer, resume=True)
    cfg_path = tiny_tokenizer / "tokenizer.json"
    saved = cfg_path.read_text()
    try:
        meta = json.loads(saved)
        meta["config"]["width"] = 48
        cfg_path.write_text(json.dumps(meta))
        with pytest.raises(CheckpointError):
            load_tokenizer(tiny_tokenizer)
    finally:
        cfg_path.write_text(saved)


def test_trained_fields_leave_out_decode_only_fields_and_the_wavelet_of_a_plain_tokenizer():
    plain = dataclasses.replace(TINY_M, wavelet_levels=0, down_t=2, wavelet_family="haar")
    assert dataclasses.replace(plain, wavelet_family="cdf53", wavelet_res_stacks=True, wavelet_gain=0.5,
                               foot_lock=True).trained_fields() == plain.trained_fields()
    one = dataclasses.replace(plain, wavelet_levels=1, down_t=1)
    assert dataclasses.replace(one, wavelet_family="cdf53").trained_fields() != one.trained_fields()
    assert dataclasses.replace(one, output_smoothing_frames=2.0).trained_fields() == one.trained_fields()
    assert dataclasses.replace(one, width=48).trained_fields() != one.trained_fields()


def test_a_run_resumes_under_other_decode_only_fields(tiny_tokenizer, tiny_dataset, tmp_path):
    import shutil

    from mm_jax.tokenizer.train import train

    run = tmp_path / "run"
    shutil.copytree(tiny_tokenizer, run)
    before = load_tokenizer(run)  # the conftest fixture: 8 steps of the tiny preset
    tcfg = dataclasses.replace(TINY_T, steps=10, val_every=10, ckpt_every=10, log_every=5)
    decode = dataclasses.replace(TINY_M, output_smoothing_frames=1.5, foot_lock=True)
    train(decode, tcfg, tiny_dataset, run, resume=True)  # 2 more steps, no refusal
    after = load_tokenizer(run)  # its new checkpoint matches the run's stored config
    assert (before.step, after.step) == (8, 10) and after.cfg == before.cfg  # the run keeps its own fields
    with pytest.raises(CheckpointError, match=f"width: run has {TINY_M.width}, asked 48"):
        train(dataclasses.replace(decode, width=48), tcfg, tiny_dataset, run, resume=True)


def test_evaluate_and_encode(tiny_tokenizer, tiny_dataset, tmp_path):
    tok = load_tokenizer(tiny_tokenizer)
    data = open_motion_data(tiny_dataset)
    m = evaluate(tok.params, tok.cfg, data, split="val")
    assert m["num_sequences"] == len(data.spans("val")[0])
    assert 0 < m["utilisation"] <= 1 and m["perplexity"] >= 1 and m["mpjpe_mm"] > 0
    assert m["jitter_gt"] > 0
    out = encode_dataset(tiny_tokenizer, tiny_dataset, tmp_path / "tokens.npz")
    z = np.load(tmp_path / "tokens.npz")
    from mm_jax.motion.synth import load_dataset

    ds = load_dataset(tiny_dataset)
    frames = np.asarray([ds.record(i)["length"] for i in z["ids"]])
    np.testing.assert_array_equal(z["lengths"], -(-frames // tok.cfg.frames_per_token))
    assert out["sequences"] == len(ds) and z["tokens"].max() < tok.cfg.codebook_size


def test_encode_rejects_bad_sequences(tiny_tokenizer):
    tok = load_tokenizer(tiny_tokenizer)
    good = np.zeros((40, 272), np.float32)
    with pytest.raises(ShapeError, match="feature width 271"):
        encode_sequences(tok, [good[:, :271]], pad_to=64)
    bad = good.copy()
    bad[3, 7] = np.nan
    with pytest.raises(DataError, match="sequence 1.*NaN"):
        encode_sequences(tok, [good, bad], pad_to=64)
    with pytest.raises(ShapeError, match="too short; need at least"):
        encode_sequences(tok, [good[:2]], pad_to=64)


def test_local_mpjpe_ignores_root_drift():
    rng = np.random.default_rng(1)
    gt = jnp.asarray(rng.normal(size=(1, 9, 22, 3)), jnp.float32)
    drift = gt + jnp.linspace(0, 1, 9)[None, :, None, None]  # the whole body drifts away
    mask = jnp.ones((1, 9), bool)
    assert float(quality.mpjpe_mm(drift, gt, mask)) > 100
    assert float(quality.mpjpe_local_mm(drift, gt, mask)) < 1e-3


# --- a trained tokenizer on other data: its own statistics, its own context --------------------------


# One design in the default suite (the slowest 2 of 3, ~50 s together, behind the slow marker).
@pytest.mark.parametrize("levels,down", [pytest.param(1, 1, marks=pytest.mark.slow),
                                         pytest.param(0, 2, marks=pytest.mark.slow), (2, 0)])
def test_context_frames_make_a_clip_independent_of_further_padding(levels, down):
    from mm_jax.tokenizer.reconstruction import padded_length

    cfg = dataclasses.replace(TINY_M, feature_dim=13, width=16, wavelet_levels=levels, down_t=down)
    params = tmodel.init_params(cfg, key=jax.random.key(0))
    n, fpt = 53, cfg.frames_per_token
    clip = np.random.default_rng(0).normal(size=(n, 13)).astype(np.float32)

    def run(frames):
        x = np.concatenate([clip, np.repeat(clip[-1:], frames - n, 0)])[None]  # edge padding
        x_hat, ids = tmodel.reconstruct(params, jnp.asarray(x), cfg)
        return np.asarray(x_hat[0, :n]), np.asarray(ids[0, : -(-n // fpt)])

    far = run(padded_length(n, cfg) + 16 * fpt)
    near = run(padded_length(n, cfg))
    np.testing.assert_array_equal(near[1], far[1])
    np.testing.assert_allclose(near[0], far[0], atol=1e-5)
    short = run(-(-n // fpt) * fpt)  # no context: the end of the array reaches the clip
    assert not np.allclose(short[0], far[0], atol=1e-5)


def _write(path, clips):
    """A dataset of ``clips``: (id, split, features [T, 272]) triples."""
    from mm_jax.motion.synth import DatasetWriter

    w = DatasetWriter(path)
    for sid, split, feats in clips:
        w.add({"id": sid, "captions": [f"clip {sid}"], "split": split}, feats)
    return w.finish({"generator": "test"})


@pytest.fixture(scope="module")
def clip_datasets(tiny_dataset, tmp_path_factory):
    """One clip imported alone (test), with two very different, longer clips (train), and alone in val."""
    from mm_jax.motion.synth import load_dataset

    ds = load_dataset(tiny_dataset)
    clip = np.asarray(ds.sequence(ds.ids("test")[0]))
    others = [np.concatenate([np.asarray(ds.sequence(i))] * 2) * 3.0 + 2.0 for i in ds.ids("train")[:2]]
    root = tmp_path_factory.mktemp("clips")
    mixed = [("clip", "test", clip)] + [(f"o{i}", "train", o) for i, o in enumerate(others)]
    return {"clip": clip,
            "alone": _write(root / "alone", [("clip", "test", clip)]),
            "mixed": _write(root / "mixed", mixed),
            "val_only": _write(root / "val_only", [("clip", "val", clip)])}


def test_tokenizer_eval_of_a_clip_does_not_depend_on_the_rest_of_its_dataset(tiny_tokenizer, clip_datasets):
    from mm_jax.tokenizer.reconstruction import evaluate_tokenizer

    tok = load_tokenizer(tiny_tokenizer)
    alone = open_motion_data(clip_datasets["alone"])
    mixed = open_motion_data(clip_datasets["mixed"])
    assert np.abs(alone.normalizer.mean - mixed.normalizer.mean).max() > 1.0  # the datasets' stats differ
    a = evaluate_tokenizer(tok, clip_datasets["alone"])
    b = evaluate_tokenizer(tok, clip_datasets["mixed"])
    assert a["split"] == b["split"] == "test" and a["num_sequences"] == b["num_sequences"] == 1
    for key in a:
        if key != "split":
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)
    # With a dataset's own stats (the old behaviour) the two disagree, so the check above has power.
    old_a = evaluate(tok.params, tok.cfg, alone, split="test")
    old_b = evaluate(tok.params, tok.cfg, mixed, split="test")
    assert abs(old_a["mpjpe_mm"] - old_b["mpjpe_mm"]) > 0.1 * a["mpjpe_mm"]


def test_encoding_a_clip_does_not_depend_on_the_rest_of_its_dataset(tiny_tokenizer, clip_datasets, tmp_path):
    tok = load_tokenizer(tiny_tokenizer)
    clip = clip_datasets["clip"]
    other = np.concatenate([clip[::-1]] * 3) * 2.0
    alone = encode_sequences(tok, [clip], pad_to=len(clip))[0]
    batched = encode_sequences(tok, [other, clip], pad_to=len(other))[1]
    np.testing.assert_array_equal(alone, batched)
    tokens = {}
    for name in ("alone", "mixed"):
        encode_dataset(tiny_tokenizer, clip_datasets[name], tmp_path / f"{name}.npz")
        with np.load(tmp_path / f"{name}.npz") as z:
            i = list(z["ids"]).index("clip")
            tokens[name] = z["tokens"][z["offsets"][i] : z["offsets"][i] + z["lengths"][i]]
    np.testing.assert_array_equal(tokens["alone"], tokens["mixed"])
    np.testing.assert_array_equal(tokens["alone"], alone)


def test_tokenizer_eval_without_a_test_split_uses_val_and_says_so(tiny_tokenizer, clip_datasets, capsys, caplog):
    from mm_jax.cli import main
    from mm_jax.tokenizer.reconstruction import evaluate_tokenizer

    tok = load_tokenizer(tiny_tokenizer)
    got = evaluate_tokenizer(tok, clip_datasets["val_only"])
    want = evaluate_tokenizer(tok, clip_datasets["alone"])
    assert got["split"] == "val"
    np.testing.assert_allclose(got["mpjpe_mm"], want["mpjpe_mm"], rtol=1e-5)
    with pytest.raises(DataError, match="splits with sequences: val$") as err:
        evaluate_tokenizer(tok, clip_datasets["val_only"], split="test")
    assert "'test' of" in str(err.value) and "train" not in str(err.value).split(":")[-1]
    capsys.readouterr()
    with caplog.at_level("INFO", logger="mm_jax.tokenizer.reconstruction"):
        assert main(["tokenizer", "eval", "--checkpoint", str(tiny_tokenizer),
                     "--data", str(clip_datasets["val_only"])]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "val"
    assert "no test split; evaluating its val split" in caplog.text


def test_a_tokenizer_trained_on_the_old_frame_is_refused(tiny_tokenizer, tmp_path):
    """A run without feature_format 2 (trained on format-1 features) is a named CheckpointError."""
    import json
    import shutil

    from mm_jax.errors import CheckpointError
    from mm_jax.tokenizer.artifact import load_tokenizer

    assert json.loads((tiny_tokenizer / "tokenizer.json").read_text())["feature_format"] == 2
    old = tmp_path / "old"
    shutil.copytree(tiny_tokenizer, old)
    meta = json.loads((old / "tokenizer.json").read_text())
    del meta["feature_format"]
    (old / "tokenizer.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"format 1.*mm-jax data convert"):
        load_tokenizer(old)
