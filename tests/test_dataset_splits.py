"""Which split a command reads: test, else val, else train; errors list only the splits that hold sequences."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mm_jax.errors import DataError
from mm_jax.motion.synth import DatasetWriter, load_dataset
from mm_jax.motion.synth.storage import resolve_split


def _dataset(path, splits, *, source=None):
    """A dataset with one 40-frame clip per entry of ``splits`` (its split name)."""
    rng = np.random.default_rng(0)
    w = DatasetWriter(path)
    for i, split in enumerate(splits):
        feats = source[i] if source is not None else rng.normal(size=(40, 272)).astype(np.float32)
        w.add({"id": f"s{i}", "captions": [f"a person does thing number {i}"], "split": split}, feats)
    return load_dataset(w.finish({"generator": "test"}))


def test_resolve_split_prefers_test_then_val_then_train():
    assert resolve_split({"train": 3, "val": 2, "test": 1}, None) == "test"
    assert resolve_split({"train": 3, "val": 2, "test": 0}, None) == "val"
    assert resolve_split({"train": 3, "val": 0, "test": 0}, None) == "train"
    assert resolve_split({"train": 3, "val": 0, "test": 4}, None, preferred="val") == "test"
    assert resolve_split({"train": 3, "val": 0, "test": 4}, "train") == "train"
    with pytest.raises(DataError, match=r"'test' of D is empty; splits with sequences: train, val$"):
        resolve_split({"train": 3, "val": 2, "test": 0}, "test", where="D")
    with pytest.raises(DataError, match=r"'tset' of D does not exist; splits with sequences: train$"):
        resolve_split({"train": 3, "val": 0, "test": 0}, "tset", where="D")
    with pytest.raises(DataError, match="no split with sequences"):
        resolve_split({"train": 0, "val": 0, "test": 0}, None)


def test_dataset_default_split_and_errors_list_non_empty_splits(tmp_path):
    ds = _dataset(tmp_path / "d", ["train", "train", "val"])
    assert ds.split_sizes() == {"train": 2, "val": 1, "test": 0}
    assert ds.default_split() == "val" and ds.default_split("train") == "train"
    assert ds.resolve_split(None) == "val" and ds.resolve_split("train") == "train"
    assert ds.ids("test") == []  # an empty split still iterates
    with pytest.raises(DataError, match=r"splits with sequences: train, val$") as err:
        ds.resolve_split("test")
    with pytest.raises(DataError, match=r"unknown|does not exist") as err:
        ds.ids("tests")
    assert str(err.value).endswith("splits with sequences: train, val")
    only_train = _dataset(tmp_path / "t", ["train"])
    assert only_train.default_split() == only_train.default_split("val") == "train"


def test_evaluator_trains_without_a_val_split(tiny_dataset, tmp_path, caplog):
    from mm_jax.eval import PRESETS
    from mm_jax.eval.train import train_evaluator

    src = load_dataset(tiny_dataset)
    clips = [np.asarray(src.sequence(i)) for i in src.ids("train")[:6]]
    _dataset(tmp_path / "d", ["train"] * 4 + ["test"] * 2, source=clips)
    cfg = dataclasses.replace(PRESETS["tiny"], batch_size=4)
    with caplog.at_level("WARNING", logger="mm_jax.eval.train"):
        metrics = train_evaluator(cfg, tmp_path / "d", tmp_path / "ev", steps=2)
    assert "no val split" in caplog.text and np.isfinite(metrics["val/mm_dist"])
    assert json.loads((tmp_path / "ev" / "evaluator.json").read_text())["val_split"] == "test"
