"""Tests of mm_jax.generate: a 2-step decoder run on the session's tiny tokenizer -> motion files."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import shards_fake as sf

from mm_jax.errors import CheckpointError, ConfigError, DataError
from mm_jax.generate import generate, slug

PROMPTS = ["a person walks forward", "jumps"]


def _gen(run, out, **kw):
    kw.setdefault("render", False)
    return generate(run, PROMPTS, out, text_tokenizer=sf.FakeTextTokenizer(8), seconds=1.0, **kw)


@pytest.fixture(scope="module")
def rendered(decoder_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen_out")
    return out, _gen(decoder_run, out, num_samples=2, seed=3, render=True, cfg_scale=2.5)


def test_files_and_records(rendered):
    out, res = rendered
    assert [(r["prompt_index"], r["sample"]) for r in res] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(r["prompt"] == PROMPTS[r["prompt_index"]] for r in res)
    doc = json.loads((out / "generations.json").read_text())
    assert doc["samples"] == json.loads(json.dumps(res)) and doc["num_samples"] == 2
    assert all(r["num_tokens"] <= doc["max_new_tokens"] - 1 for r in res)  # the seconds budget
    written = [r for r in res if not r["empty"]]
    assert written, "every sample was empty"
    for r in written:
        paths = {k: pathlib.Path(v) for k, v in r["paths"].items()}
        assert set(paths) == {"features", "joints", "bvh", "gif"}
        assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
        assert paths["features"].name.startswith(f"{r['prompt_index']:03d}_{slug(r['prompt'])}_{r['sample']}")
        feats, joints = np.load(paths["features"]), np.load(paths["joints"])
        assert feats.shape == (r["frames"], 272) and np.isfinite(feats).all()
        assert joints.shape == (r["frames"], 22, 3) and np.isfinite(joints).all()
        assert 0 < r["num_tokens"] == len(r["codes"]) and r["frames"] > 0
        assert paths["bvh"].read_text().startswith("HIERARCHY")
    for r in res:
        if r["empty"]:
            assert r["paths"] == {} and r["frames"] == 0


def test_deterministic_per_seed_and_seeds_differ(decoder_run, rendered, tmp_path):
    _, res = rendered
    again = _gen(decoder_run, tmp_path / "a", num_samples=2, seed=3, cfg_scale=2.5)
    assert [r["codes"] for r in again] == [r["codes"] for r in res]
    other = _gen(decoder_run, tmp_path / "b", num_samples=2, seed=4, cfg_scale=2.5)
    assert [r["codes"] for r in other] != [r["codes"] for r in res]
    assert not list((tmp_path / "a").glob("*.gif")), "render=False wrote a gif"
    for r, s in zip(again, res):
        if not r["empty"]:
            np.testing.assert_array_equal(np.load(r["paths"]["features"]), np.load(s["paths"]["features"]))


def test_empty_prompt_and_bad_tokenizer(decoder_run, tmp_path):
    with pytest.raises(DataError, match="prompt 1"):
        generate(decoder_run, ["walks", "  "], tmp_path, text_tokenizer=sf.FakeTextTokenizer(8))
    with pytest.raises(DataError):
        generate(decoder_run, [], tmp_path, text_tokenizer=sf.FakeTextTokenizer(8))
    with pytest.raises(CheckpointError, match="vocabulary"):
        generate(decoder_run, ["walks"], tmp_path, text_tokenizer=sf.FakeTextTokenizer(8, vocab_tag="other"))
    with pytest.raises(CheckpointError, match="not a decoder run"):
        generate(tmp_path, ["walks"], tmp_path, text_tokenizer=sf.FakeTextTokenizer(8))
    assert not list(tmp_path.iterdir())


def test_min_seconds_floor_and_validation(decoder_run, tmp_path):
    res = _gen(decoder_run, tmp_path / "full", num_samples=2, seed=5, min_seconds=1.0)
    doc = json.loads((tmp_path / "full" / "generations.json").read_text())
    assert doc["min_seconds"] == 1.0 and doc["min_new_tokens"] == doc["max_new_tokens"] - 1  # the whole budget
    assert [r["num_tokens"] for r in res] == [doc["min_new_tokens"]] * 4 and not any(r["empty"] for r in res)
    res = _gen(decoder_run, tmp_path / "half", seed=5, min_seconds=0.5)
    doc = json.loads((tmp_path / "half" / "generations.json").read_text())
    assert 0 < doc["min_new_tokens"] < doc["max_new_tokens"] - 1
    assert all(r["num_tokens"] >= doc["min_new_tokens"] for r in res)
    for bad in (1.5, -0.1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=r"min_seconds=.*seconds=1\.0"):
            _gen(decoder_run, tmp_path / "bad", min_seconds=bad)
    assert not (tmp_path / "bad").exists()


def test_cli_min_seconds_defaults_to_seconds(monkeypatch, capsys):
    import mm_jax.generate as gen
    from mm_jax.cli import main

    calls = []
    monkeypatch.setattr(gen, "generate", lambda *a, **kw: calls.append(kw) or [])
    base = ["generate", "walks", "--checkpoint", "RUN", "--out", "OUT", "--seconds", "3"]
    assert main(base) == 0 and main(base + ["--min-seconds", "0"]) == 0
    assert [(c["seconds"], c["min_seconds"]) for c in calls] == [(3.0, 3.0), (3.0, 0.0)]
    assert "Default: --seconds" in " ".join(_generate_help().split())


def _generate_help() -> str:
    from mm_jax.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["generate"].format_help()


def test_slug():
    assert slug("A person walks, then WAVES!") == "a_person_walks_then_waves"
    assert slug("!!!") == "prompt"


# Issue 13 items 13/14: a named error for every bad option, nothing overwritten or capped silently.


def test_seconds_must_be_finite_and_positive(tmp_path):
    for bad in (float("inf"), float("nan"), 0.0, -1.0):
        with pytest.raises(ConfigError, match=r"seconds=.* must be a finite number > 0"):
            generate("RUN", ["walks"], tmp_path / "out", seconds=bad)  # before any model is loaded
    assert not (tmp_path / "out").exists()


def test_seed_outside_32_bits_is_refused_not_aliased(tmp_path):
    """jax.random.key keeps seed mod 2**32: key(2**32) == key(0), key(-1) == key(2**32 - 1)."""
    import jax

    from mm_jax.sample import seed_key

    for bad in (-1, 2**32, 2**70, 1.5, True):
        with pytest.raises(ConfigError, match=r"seed=.* must be an int in \[0, 4294967295\]"):
            generate("RUN", ["walks"], tmp_path / "out", seed=bad)
        with pytest.raises(ConfigError):
            seed_key(bad)
    edge = jax.random.key_data(seed_key(2**32 - 1))
    assert not (edge == jax.random.key_data(seed_key(0))).all()


def test_out_naming_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match="is an existing file"):
        generate("RUN", ["walks"], tmp_path / "taken")


def test_all_unknown_prompt_is_refused(decoder_run, tmp_path):
    with pytest.raises(DataError, match=r"prompt 1 \('zzz qqq'\) is all \[UNK\]"):
        _gen_prompts(decoder_run, ["walks", "zzz qqq"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _gen_prompts(run, prompts, out, **kw):
    return generate(run, prompts, out, text_tokenizer=sf.FakeTextTokenizer(8), render=False, **kw)


def test_no_silent_overwrite_and_the_cap_is_said(decoder_run, tmp_path, caplog):
    out = tmp_path / "out"
    first = _gen_prompts(decoder_run, ["walks", "jumps"], out, seconds=1.0, min_seconds=1.0, seed=1)
    before = {p: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ConfigError, match=r"already holds generated files \(generations.json, 000_walks_0.npy"):
        _gen_prompts(decoder_run, ["walks"], out, seconds=1.0, seed=2)
    assert {p: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    with caplog.at_level("WARNING", logger="mm_jax.generate"):
        again = _gen_prompts(decoder_run, ["runs"], out, seconds=1000.0, min_seconds=0.5, seed=2, overwrite=True)
    capped = [r for r in caplog.records if "capped at" in r.getMessage()]
    assert len(capped) == 1 and "seconds=1000" in capped[0].getMessage()
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["generations.json"] + [pathlib.Path(v).name for r in again for v in r["paths"].values()])
    assert not any(pathlib.Path(v).exists() for r in first for v in r["paths"].values())  # the old run's files


def test_non_ascii_prompts_get_distinct_names():
    walk, run = slug("人が歩く"), slug("人が走る")
    assert walk != run and walk.isascii() and run.isascii() and walk.startswith("prompt_")
    assert slug("café au lait").startswith("cafe_au_lait_")
    long_a, long_b = "a person walks forward " * 3 + "and waves", "a person walks forward " * 3 + "and sits"
    assert slug(long_a) != slug(long_b) and len(slug(long_a)) <= 40 + 9
