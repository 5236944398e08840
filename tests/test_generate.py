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
