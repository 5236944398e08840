"""Scoring a decoder on a prompt suite (mm_jax.eval.suite): references, matches, tables, contact sheets."""

from __future__ import annotations

import hashlib
import json

import jax
import numpy as np
import pytest
import shards_fake as sf
from PIL import Image

from mm_jax.errors import ConfigError, DataError
from mm_jax.eval.evaluator import PRESETS, TEXT_WIDTH, Evaluator, init_params
from mm_jax.eval.suite import (TABLE, evaluate_suite, find_references, match_hits, reference_spans, summarize,
                               write_suite_report)
from mm_jax.eval_suite import load_suite
from mm_jax.motion.synth import load_dataset

SUITE = [
    {"id": "d-1", "category": "daily_life", "tag": "seen", "prompt": "a person walks forward",
     "primitives": ["walk"], "seconds": 2},
    {"id": "d-2", "category": "daily_life", "tag": "paraphrase", "prompt": "a person strolls ahead",
     "primitives": ["walk"], "seconds": 3},
    {"id": "s-1", "category": "sports", "tag": "composition", "prompt": "a person jumps forward then waves",
     "primitives": ["jump_forward", "wave"], "seconds": 2.5},
    {"id": "o-1", "category": "other", "tag": "paraphrase", "prompt": "a person does a cartwheel",
     "primitives": [], "seconds": 2, "note": "no cartwheel primitive"},
]


class _HashText:
    """A stand-in for the evaluator's MiniLM: unit vectors seeded by each caption's hash."""

    def sentences(self, captions):
        out = []
        for c in captions:
            seed = int.from_bytes(hashlib.sha256(c.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).normal(size=TEXT_WIDTH)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, np.float32)


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "suite.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in SUITE) + "\n")
    return path


@pytest.fixture(scope="module")
def evaluator(tiny_dataset):
    cfg = PRESETS["tiny"]
    return Evaluator(cfg, init_params(cfg, key=jax.random.key(0)), load_dataset(tiny_dataset).normalizer,
                     "test-evaluator", _HashText())


@pytest.fixture(scope="module")
def scored(decoder_run, evaluator, suite_file, tiny_dataset):
    return evaluate_suite(decoder_run, "EV", suite_file, data_dir=tiny_dataset, num_samples=2, seed=1,
                          max_references=2, text_tokenizer=sf.FakeTextTokenizer(8), evaluator=evaluator)


def _record(*steps):
    """A dataset record whose steps are (name, start, end[, gesture])."""
    return {"primitives": [{"name": s[0], "start": s[1], "end": s[2],
                            "while": {"name": s[3]} if len(s) > 3 else None} for s in steps]}


def test_reference_spans_single_then_and_while():
    rec = _record(("walk", 0, 40), ("jump_forward", 35, 70), ("wave", 65, 100), ("run", 95, 150, "raise_arms"))
    assert reference_spans(rec, ["walk"]) == [(0, 40)]
    assert reference_spans(rec, ["run"]) == []  # only with a gesture on top
    assert reference_spans(rec, ["jump_forward", "wave"]) == [(35, 100)]
    assert reference_spans(rec, ["wave", "jump_forward"]) == []  # order matters
    assert reference_spans(rec, ["run", "raise_arms"]) == [(95, 150)]
    assert reference_spans(rec, ["walk", "jump_forward", "wave"]) == [(0, 100)]
    assert reference_spans(rec, []) == []


def test_find_references_crops_real_clips(tiny_dataset, suite_file):
    ds = load_dataset(tiny_dataset)
    prompts = load_suite(suite_file)
    refs = find_references(ds, prompts, limit=3)
    assert len(refs) == len(prompts) and refs[3] == []
    assert 1 <= len(refs[0]) <= 3 and len(refs[0]) == len(refs[1])
    for clip in refs[0]:
        assert clip.ndim == 2 and clip.shape[1] == 272 and len(clip) >= 8
    # every walk clip is a walk step of some sequence, cut at its frame span
    spans = [(i, s) for i in ds.ids("test") + ds.ids("val") + ds.ids("train")
             for s in reference_spans(ds.record(i), ["walk"])]
    i, (a, b) = spans[0]
    np.testing.assert_array_equal(refs[0][0], np.asarray(ds.sequence(i)[a:b], np.float32))


def test_match_hits_known_answers():
    keys = [("walk",), ("walk",), ("run",), ()]
    sim = np.array([[0.1, 0.9, 0.5, 0.0],   # motion of prompt 0: best is prompt 1, also a walk -> hit
                    [0.1, 0.2, 0.9, 0.3],   # motion of prompt 2 (run): best is run -> hit
                    [0.9, 0.1, 0.2, 0.8],   # motion of prompt 2: best is walk -> miss at 1; run is 3rd
                    [0.5, 0.1, 0.2, 0.9]])  # motion of prompt 3: no primitives -> NaN
    owner = np.array([0, 2, 2, 3])
    top1 = match_hits(sim, owner, keys, 1)
    np.testing.assert_array_equal(top1[:3], [1.0, 1.0, 0.0])
    assert np.isnan(top1[3])
    np.testing.assert_array_equal(match_hits(sim, owner, keys, 3)[:3], [1.0, 1.0, 1.0])
    with pytest.raises(DataError, match="do not match"):
        match_hits(sim[:, :3], owner, keys, 1)


def test_summarize_means_skip_nan_and_keep_tag_order():
    recs = [{"tag": "paraphrase", "category": "sports", "x": 1.0, "y": float("nan")},
            {"tag": "seen", "category": "sports", "x": 3.0, "y": 2.0},
            {"tag": "paraphrase", "category": "combat", "x": 5.0, "y": 4.0}]
    by_tag = summarize(recs, "tag")
    assert list(by_tag) == ["seen", "paraphrase"]
    assert by_tag["paraphrase"] == {"prompts": 2, "x": 3.0, "n/x": 2, "y": 4.0, "n/y": 1}
    assert summarize(recs, None)["all"]["x"] == 3.0
    assert list(summarize(recs, "category")) == ["sports", "combat"]


def test_evaluate_suite_end_to_end(scored):
    report, joints = scored
    recs = report["prompts"]
    assert [r["id"] for r in recs] == [r["id"] for r in SUITE]
    assert report["num_samples"] == 2 and report["evaluator"]["identity"] == "test-evaluator"
    for r, row in zip(recs, SUITE):
        assert len(r["codes"]) == 2 and all(0 <= n <= r["budget_codes"] for n in r["codes"])
        for source in ("model", "random", "reference"):
            sim = r[f"{source}/similarity"]
            assert (np.isnan(sim) if source == "reference" and not r["references"] else -1.0 <= sim <= 1.0), (r, source)
        assert r["model/jerk"] >= 0 and 0 <= r["model/foot_skating"] <= 1
    assert recs[0]["references"] >= 1 and recs[3]["references"] == 0
    assert np.isnan(recs[3]["model/match_top1"]) and np.isnan(recs[3]["match_chance"])
    assert recs[0]["match_chance"] == 0.5  # two of the four prompts are walks
    assert set(report["by_tag"]) == {"seen", "paraphrase", "composition"}
    assert report["by_tag"]["paraphrase"]["prompts"] == 2 and report["overall"]["prompts"] == 4
    assert len(joints) == 4 and all(j.ndim == 3 and j.shape[1:] == (22, 3) for j in joints)


def test_evaluate_suite_is_deterministic_per_seed(scored, decoder_run, evaluator, suite_file, tiny_dataset):
    again, _ = evaluate_suite(decoder_run, "EV", suite_file, data_dir=tiny_dataset, num_samples=2, seed=1,
                              max_references=2, text_tokenizer=sf.FakeTextTokenizer(8), evaluator=evaluator)
    assert json.dumps(again, sort_keys=True) == json.dumps(scored[0], sort_keys=True)


def test_write_suite_report_files_and_sheets(scored, tmp_path):
    report, joints = scored
    sheets = write_suite_report(report, joints, tmp_path / "rep", sheet_frames=3)
    assert set(sheets) == {"daily_life", "sports", "other"}
    heights = {cat: Image.open(p).size[1] for cat, p in sheets.items()}
    assert heights["daily_life"] > 1.5 * heights["sports"]  # two strips against one
    doc = json.loads((tmp_path / "rep.json").read_text())  # strict JSON: NaN became null
    assert doc["prompts"][3]["model/match_top1"] is None and doc["contact_sheets"] == sheets
    md = (tmp_path / "rep.md").read_text()
    for header in ("## By tag", "## By category", "## Overall"):
        assert header in md
    tag_rows = [ln.split("|")[1].strip() for ln in md.split("## By category")[0].splitlines()
                if ln.startswith("| ") and not ln.startswith("| tag")]
    assert tag_rows == ["seen", "paraphrase", "composition"]
    assert all(len(ln.split("|")) == len(TABLE) + 4 for ln in md.splitlines() if ln.startswith("| "))
    with pytest.raises(DataError, match="3 motions for 4 prompts"):
        write_suite_report(report, joints[:3], tmp_path / "bad")


def test_bad_options_and_inputs(decoder_run, evaluator, suite_file, tmp_path):
    with pytest.raises(ConfigError, match="num_samples"):
        evaluate_suite(decoder_run, "EV", suite_file, num_samples=0, evaluator=evaluator)
    with pytest.raises(ConfigError, match="per_cell"):
        evaluate_suite(decoder_run, "EV", suite_file, per_cell=0, evaluator=evaluator)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(dict(SUITE[0], category="cooking")) + "\n")
    with pytest.raises(DataError, match="bad.jsonl:1: unknown category"):
        evaluate_suite(decoder_run, "EV", bad, evaluator=evaluator, text_tokenizer=sf.FakeTextTokenizer(8))
