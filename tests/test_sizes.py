"""One owner per size (mm_jax/train/sizes.py): S, N and the codebook come from the shards, the text width
from the text encoder; a contradicting override is a ConfigError naming both values."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
import shards_fake as sf
import train_fixtures as tf_

from mm_jax import configs, train
from mm_jax.errors import ConfigError
from mm_jax.model.llama import init_params
from mm_jax.sample import sample
from mm_jax.shards.manifest import max_motion_tokens, read_manifest
from mm_jax.tokenizer import PRESETS as TOKENIZER_PRESETS
from mm_jax.train import loop
from mm_jax.train.sizes import bind_to_data, override_keys


def _manifest(s=12, levels=(8, 8, 8, 5, 5, 5), max_codes=40, records=5):
    split = {"num_records": records}
    if max_codes is not None:
        split["max_codes"] = max_codes
    return {"text": {"max_tokens": s}, "tokenizer": {"identity": {"fsq_levels": list(levels)}},
            "splits": {"train": split}}


def test_sizes_come_from_the_data_and_the_text_encoder():
    exp = train.preset("tiny")  # model N 269 / pipeline cap 64 / S 32 / codebook 1000
    bound = bind_to_data(exp, _manifest())
    for got in (bound.model.max_text_tokens, bound.pipeline.max_text_tokens, bound.text.max_tokens):
        assert got == 12
    assert bound.model.fsq_levels == (8, 8, 8, 5, 5, 5) and bound.model.codebook_size == 64_000
    assert bound.model.max_motion_tokens == bound.pipeline.max_motion_tokens == 42  # 40 codes + BOS + EOS
    assert bound.model.text_dim == bound.text.width == 384
    # Everything else is untouched.
    assert bound.model.width == exp.model.width and bound.train == exp.train


def test_n_is_capped_by_the_pipeline_window_and_falls_back_to_it_for_old_manifests():
    exp = train.preset("tiny")
    assert bind_to_data(exp, _manifest(max_codes=500)).model.max_motion_tokens == 64
    assert bind_to_data(exp, _manifest(max_codes=None)).model.max_motion_tokens == 64
    assert max_motion_tokens(_manifest(records=0)) is None


@pytest.mark.parametrize("override, values", [
    ("model.fsq_levels=[8,5,5,5]", ("(8, 5, 5, 5)", "[8, 8, 8, 5, 5, 5]")),
    ("model.max_motion_tokens=300", ("300", "42")),
    ("pipeline.max_text_tokens=40", ("40", "12")),
    ("text.max_tokens=16", ("16", "12")),
])
def test_an_override_that_contradicts_the_data_names_both_values(override, values):
    exp = train.apply_overrides(train.preset("tiny"), [override])
    with pytest.raises(ConfigError) as e:
        bind_to_data(exp, _manifest(), override_keys([override]))
    for v in values:
        assert v in str(e.value)


def test_an_override_that_agrees_with_the_data_is_accepted():
    sets = ["model.max_motion_tokens=42", "pipeline.max_text_tokens=12", "model.fsq_levels=[8,8,8,5,5,5]"]
    exp = train.apply_overrides(train.preset("tiny"), sets)
    assert bind_to_data(exp, _manifest(), override_keys(sets)).model.max_motion_tokens == 42


def test_model_text_width_must_match_the_text_encoder():
    with pytest.raises(ConfigError, match="text.width"):
        train.apply_overrides(train.preset("tiny"), ["model.text_dim=256"])


def test_default_tokenizer_codebook_trains_and_the_sampler_cap_comes_from_the_data(tmp_path):
    """The tokenizer CLI's default preset (64,000 codes) feeds a decoder preset made for 125 codes."""
    levels = list(TOKENIZER_PRESETS["small"][0].fsq_levels)
    ident = {**sf.FAKE_IDENTITY, "fsq_levels": levels}
    shards = tf_.make_train_shards(tmp_path / "shards", num=40, identity=ident)
    ds = sf.FakeDataset(40)
    longest = max(math.ceil(ds.record(i)["length"] / sf.FPT) for i in ds.ids("train"))  # independent of the writer
    assert read_manifest(shards)["splits"]["train"]["max_codes"] == longest
    exp = tf_.experiment(shards, steps=2, val_every=0, ckpt_every=2)
    assert exp.model.fsq_levels != tuple(levels)
    loop.run(exp, tmp_path / "run")
    saved = configs.load_json(train.ExperimentConfig, tmp_path / "run" / "config.json")
    assert list(saved.model.fsq_levels) == levels
    assert saved.model.max_motion_tokens == saved.pipeline.max_motion_tokens == longest + 2
    text = np.zeros((1, saved.model.max_text_tokens, saved.model.text_dim), np.float32)
    mask = np.ones((1, saved.model.max_text_tokens), bool)
    params = init_params(saved.model, key=jax.random.key(0))
    with pytest.raises(ConfigError, match=f"{longest + 1}"):
        sample(saved.model, params, text, mask, key=jax.random.key(1), max_new_tokens=longest + 2)
