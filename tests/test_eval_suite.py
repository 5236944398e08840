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
from mm_jax.eval.evaluator import PRESETS, TEXT_WIDTH, Evaluator, embed_motion, embed_text, init_params
from mm_jax.eval.references import find_references, reference_spans
from mm_jax.eval.suite import SHORT_SHARE, TABLE, evaluate_suite, length_scores, match_hits, score_clips, summarize
from mm_jax.eval.suite_report import write_suite_report
from mm_jax.eval.prompts import load_suite
from mm_jax.motion.features import LOCAL_VEL, ROOT_LIN_VEL
from mm_jax.motion.synth import load_dataset
from mm_jax.tokenizer.artifact import load_tokenizer

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


def test_length_scores_known_answers():
    rows = length_scores([60, 8, 36, 35], [2.0, 2.0, 2.0, 2.0], fps=30)
    assert [r["seconds"] for r in rows] == pytest.approx([2.0, 8 / 30, 1.2, 35 / 30])
    assert [r["length_ratio"] for r in rows] == pytest.approx([1.0, 8 / 60, 0.6, 35 / 60])
    assert [r["short"] for r in rows] == [0.0, 1.0, 0.0, 1.0]  # exactly 60% is not short
    assert SHORT_SHARE == 0.6


def test_static_short_clip_cannot_beat_a_full_length_one(evaluator, tiny_dataset):
    """A 0.27 s static clip, even for the prompt the evaluator puts it closest to, scores below a 2 s clip."""
    ds = load_dataset(tiny_dataset)
    seq = next(s for s in (np.asarray(ds.sequence(i), np.float32) for i in ds.ids("train")) if len(s) >= 60)
    full = seq[:60]  # 2.0 s at 30 fps
    static = np.repeat(seq[:1], 8, axis=0)  # 8 frames: 0.27 s, one pose
    static[:, ROOT_LIN_VEL] = 0.0
    static[:, LOCAL_VEL] = 0.0
    texts = [f"a person does motion number {i}" for i in range(16)]
    text_pe = embed_text(evaluator, texts)
    raw = embed_motion(evaluator, [static, full]) @ text_pe.T  # [2, P]
    p = int(np.argmax(raw[0] - raw[1]))  # the prompt where the static clip is favoured most
    assert raw[0, p] > raw[1, p], "the case the rule is for: the short clip has the higher raw similarity"
    feats = [static, full]
    joints = [np.zeros((len(f), 22, 3), np.float32) for f in feats]
    owner, keys, asked = np.array([p, p]), [("walk",)] * len(texts), [2.0] * len(texts)
    unruled = score_clips(evaluator, text_pe, feats, joints, owner, keys, asked, length_rule=False)
    assert unruled[0]["similarity"] > unruled[1]["similarity"] and unruled[0]["match_top1"] == 1.0
    short, whole = score_clips(evaluator, text_pe, feats, joints, owner, keys, asked)
    assert short["short"] == 1.0 and short["seconds"] == pytest.approx(8 / 30) and whole["short"] == 0.0
    assert short["similarity"] == -1.0 and short["match_top1"] == short["match_top3"] == 0.0
    for k in ("similarity", "match_top1", "match_top3"):
        assert whole[k] >= short[k], k
    assert whole["similarity"] == pytest.approx(raw[1, p], abs=1e-5)  # a full-length clip is untouched
    # a prompt without primitives has no match to fail: it stays undefined
    nan_keys = [()] * len(texts)
    short = score_clips(evaluator, text_pe, feats, joints, owner, nan_keys, asked)[0]
    assert short["similarity"] == -1.0 and np.isnan(short["match_top1"])


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


def test_suite_lengths_asked_and_generated(scored):
    report, joints = scored
    assert report["min_share"] == 0.6 and report["short_share"] == SHORT_SHARE
    fpt = load_tokenizer(report["tokenizer_run"]).cfg.frames_per_token
    for r in report["prompts"]:
        assert r["min_codes"] == int(np.ceil(0.6 * r["seconds"] * 30 / fpt - 1e-9))
        assert 0 < r["min_codes"] <= r["budget_codes"] and all(n >= r["min_codes"] for n in r["codes"])
        assert len(r["generated_seconds"]) == 2
        assert r["model/seconds"] == pytest.approx(np.mean(r["generated_seconds"]))
        assert r["model/length_ratio"] == pytest.approx(r["model/seconds"] / r["seconds"])
        assert r["model/length_ratio"] >= 0.6 and r["model/short"] == 0.0  # the floor keeps every clip long enough
        assert r["random/seconds"] == r["model/seconds"]  # the random yardstick has the model's lengths
    assert joints[0].shape[0] == round(report["prompts"][0]["generated_seconds"][0] * 30)
    o = report["overall"]
    assert o["model/short"] == 0.0 and o["seconds"] == pytest.approx(np.mean([r["seconds"] for r in SUITE]))


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
    assert "| asked s | gen s | gen/asked | gen < 60% |" in md and "scores sim -1 and match 0" in md
    assert "## Clips under 60% of the asked length\n\nnone" in md
    bent = json.loads(json.dumps(report))  # a report where one clip came out short
    bent["prompts"][1].update({"model/short": 0.5, "generated_seconds": [0.27, 3.0]})
    write_suite_report(bent, None, tmp_path / "short")
    assert "- d-2: asked 3.0 s, generated 0.27, 3.00 s" in (tmp_path / "short.md").read_text()
    with pytest.raises(DataError, match="3 motions for 4 prompts"):
        write_suite_report(report, joints[:3], tmp_path / "bad")


def test_bad_options_and_inputs(decoder_run, evaluator, suite_file, tmp_path):
    with pytest.raises(ConfigError, match="num_samples"):
        evaluate_suite(decoder_run, "EV", suite_file, num_samples=0, evaluator=evaluator)
    with pytest.raises(ConfigError, match="per_cell"):
        evaluate_suite(decoder_run, "EV", suite_file, per_cell=0, evaluator=evaluator)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="min_share"):
            evaluate_suite(decoder_run, "EV", suite_file, min_share=bad, evaluator=evaluator)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(dict(SUITE[0], category="cooking")) + "\n")
    with pytest.raises(DataError, match="bad.jsonl:1: unknown category"):
        evaluate_suite(decoder_run, "EV", bad, evaluator=evaluator, text_tokenizer=sf.FakeTextTokenizer(8))


def test_a_missing_or_unreadable_suite_is_a_data_error(tmp_path):
    """Issue 13 item 13: `eval --suite` of a missing file was a raw FileNotFoundError."""
    with pytest.raises(DataError, match=r"cannot read prompt suite .*nope.jsonl: No such file"):
        load_suite(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="cannot read prompt suite"):
        load_suite(tmp_path)  # a directory
    (tmp_path / "latin1.jsonl").write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(DataError, match="cannot read prompt suite .*latin1.jsonl"):
        load_suite(tmp_path / "latin1.jsonl")
    with pytest.raises(DataError, match="nope.jsonl"):
        evaluate_suite("RUN", "EV", tmp_path / "nope.jsonl")  # before any model is loaded
    with pytest.raises(ConfigError, match="seed="):
        evaluate_suite("RUN", "EV", tmp_path / "nope.jsonl", seed=-1)
