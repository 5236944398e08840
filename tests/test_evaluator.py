"""The text/motion evaluator: training lowers the InfoNCE loss, save/load round trip, named errors."""

from __future__ import annotations

import dataclasses
import logging
import shutil

import numpy as np
import pytest

from mm_jax.errors import CheckpointError, ConfigError, DataError, ShapeError
from mm_jax.eval import PRESETS, EvaluatorConfig, embed_motion, embed_sentences, embed_text, load_evaluator
from mm_jax.eval.train import train_evaluator
from mm_jax.tracking import read_metrics
from mm_jax.motion.synth import load_dataset


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    cfg = dataclasses.replace(PRESETS["tiny"], val_every=5)
    out = tmp_path_factory.mktemp("ev") / "run"
    calls = []
    metrics = train_evaluator(cfg, tiny_dataset, out, steps=40, progress=lambda d, n: calls.append((d, n)))
    assert calls[-1] == (40, 40) and len(calls) == 40
    return out, metrics


def test_training_lowers_the_infonce_loss(trained):
    out, metrics = trained
    losses = [r["train/loss"] for r in read_metrics(out)]
    assert len(losses) == 8
    assert np.mean(losses[-3:]) < np.mean(losses[:2])
    assert 0.0 <= metrics["val/top1_all"] <= 1.0 and np.isfinite(metrics["val/mm_dist"])


def test_rerun_reuses_the_caption_embeddings(trained, tiny_dataset, tmp_path, caplog):
    out, _ = trained
    shutil.copy(out / "caption_embeddings.npz", tmp_path / "caption_embeddings.npz")
    cfg = dataclasses.replace(PRESETS["tiny"], val_every=2)
    with caplog.at_level(logging.INFO, logger="mm_jax.eval.train"):
        again = train_evaluator(cfg, tiny_dataset, tmp_path, steps=2)
    assert "reusing caption embeddings" in caplog.text
    assert np.isfinite(again["train/loss"])


def test_save_load_round_trip_gives_identical_embeddings(trained, tiny_dataset):
    out, _ = trained
    ds = load_dataset(tiny_dataset)
    clips = [ds.sequence(i) for i in ds.ids("train")[:5]]
    ev = load_evaluator(out)
    ev2 = load_evaluator(out, text=False)
    m1, m2 = embed_motion(ev, clips), embed_motion(ev2, clips)
    assert m1.shape == (5, ev.cfg.embed_dim)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_allclose(np.linalg.norm(m1, axis=1), 1.0, rtol=1e-5)
    caps = [ds.record(i)["captions"][0] for i in ds.ids("train")[:5]]
    t = embed_text(ev, caps)
    assert t.shape == (5, ev.cfg.embed_dim)
    np.testing.assert_allclose(embed_sentences(ev2, ev.text.sentences(caps)), t, rtol=1e-5, atol=1e-6)
    # A clip's embedding does not depend on its batch mates.
    np.testing.assert_allclose(embed_motion(ev2, clips[:1]), m1[:1], rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise_named_errors(trained, tmp_path):
    out, _ = trained
    ev = load_evaluator(out, text=False)
    with pytest.raises(ShapeError):
        embed_motion(ev, [np.zeros((30, 271), np.float32)])
    with pytest.raises(DataError):
        embed_motion(ev, [])
    with pytest.raises(DataError):
        embed_motion(ev, [np.full((30, 272), np.nan, np.float32)])
    with pytest.raises(ShapeError):
        embed_sentences(ev, np.zeros((2, 383)))
    with pytest.raises(ConfigError):
        embed_text(ev, ["a person walks"])
    with pytest.raises(CheckpointError):
        load_evaluator(tmp_path)
    with pytest.raises(ConfigError):
        EvaluatorConfig(max_frames=100, patch=8)
    with pytest.raises(ConfigError):
        EvaluatorConfig(width=30, num_heads=4)
