"""The tokenizer of a decoder run (mm_jax.decoder_tokenizer): recorded at train time, identity-checked on every load.

Issue 13, items 2 and 10: a tokenizer retrained at the recorded path decoded
the same codes to other motion with rc 0; a decoder trained without
``--tokenizer`` could not be used by ``generate`` (and ``eval`` raised a raw
TypeError); a relative recorded path broke ``generate`` from another directory.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil

import pytest
import shards_fake as sf

from mm_jax import decoder_tokenizer
from mm_jax.errors import CheckpointError
from mm_jax.generate import generate
from mm_jax.train.config import ExperimentConfig


def _gen(run, out, **kw):
    return generate(run, ["a person walks forward"], out, text_tokenizer=sf.FakeTextTokenizer(8), seconds=1.0,
                    render=False, **kw)


def _copy_run(decoder_run, dst: pathlib.Path, tokenizer_run) -> pathlib.Path:
    """A copy of the decoder run whose config.json records ``tokenizer_run`` (None: records none)."""
    shutil.copytree(decoder_run, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["tokenizer_run"] = None if tokenizer_run is None else str(tokenizer_run)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def _train_tokenizer(data, run, steps, resume=False):
    from mm_jax.tokenizer import PRESETS
    from mm_jax.tokenizer.train import train

    mcfg, tcfg = PRESETS["tiny"]
    tcfg = dataclasses.replace(tcfg, steps=steps, val_every=steps, ckpt_every=steps, log_every=steps)
    train(mcfg, tcfg, data, run, resume=resume)


@pytest.fixture(scope="module")
def retrained(decoder_run, tiny_tokenizer, tiny_dataset, tmp_path_factory):
    """(decoder run recording TOK, TOK): TOK was the decoder's tokenizer, then was retrained in place (4 steps)."""
    root = tmp_path_factory.mktemp("retrained")
    tok = root / "tok"
    shutil.copytree(tiny_tokenizer, tok)
    run = _copy_run(decoder_run, root / "decoder", tok)
    shutil.rmtree(tok)
    _train_tokenizer(tiny_dataset, tok, steps=4)
    return run, tok


def test_record_names_the_tokenizer_by_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manifest = {"tokenizer": {"run": "/abs/tok", "identity": {"fsq_levels": [5, 5, 5]}}}
    exp = ExperimentConfig()
    assert decoder_tokenizer.record(exp, manifest).tokenizer_run == "/abs/tok"  # the README's flow
    given = dataclasses.replace(exp, tokenizer_run="runs/tok")
    assert decoder_tokenizer.record(given, manifest).tokenizer_run == str(tmp_path / "runs/tok")
    assert decoder_tokenizer.record(exp, {"tokenizer": {"run": None}}).tokenizer_run is None


def test_a_retrained_tokenizer_at_the_recorded_path_is_refused(retrained, tmp_path):
    run, tok = retrained
    with pytest.raises(CheckpointError, match=r"is not the one decoder run .*'step': 4.*'step': 8.*differs in step"):
        _gen(run, tmp_path / "after")
    with pytest.raises(CheckpointError, match="'step': 4"):  # an override is checked the same way
        _gen(run, tmp_path / "after", tokenizer_run=tok)
    assert not (tmp_path / "after").exists()


def test_a_tokenizer_trained_further_decodes_at_the_decoder_step(decoder_run, tiny_tokenizer, tiny_dataset,
                                                                 tmp_path):
    tok = tmp_path / "tok"
    shutil.copytree(tiny_tokenizer, tok)
    run = _copy_run(decoder_run, tmp_path / "decoder", tok)
    _train_tokenizer(tiny_dataset, tok, steps=12, resume=True)  # step 8 is still on disk
    _gen(run, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "generations.json").read_text())
    assert doc["tokenizer_step"] == 8 and doc["tokenizer_run"] == str(tok)


def test_a_run_without_a_recorded_tokenizer_takes_an_override(decoder_run, tiny_tokenizer, tmp_path):
    run = _copy_run(decoder_run, tmp_path / "decoder", None)
    with pytest.raises(CheckpointError, match="records no tokenizer run.*--tokenizer"):
        _gen(run, tmp_path / "a")
    assert _gen(run, tmp_path / "b", tokenizer_run=tiny_tokenizer)
    with pytest.raises(CheckpointError, match="cannot load the tokenizer.*not a tokenizer run"):
        _gen(run, tmp_path / "c", tokenizer_run=tmp_path)


def test_eval_suite_and_report_check_the_tokenizer(retrained, decoder_run, tmp_path, monkeypatch):
    """``eval`` and ``eval --suite`` load through the same check (old: a raw TypeError or no check)."""
    import numpy as np

    from mm_jax.eval import report, suite

    class Stop(Exception):
        pass

    def stop(*a, **k):
        raise Stop  # past the tokenizer: the check did not fire
    monkeypatch.setattr(report, "embed_text", stop)
    monkeypatch.setattr(report, "load_evaluator", lambda d: object())
    monkeypatch.setattr(suite, "_sample_suite", stop)
    line = {"id": "d-1", "category": "daily_life", "tag": "seen", "prompt": "a person walks forward",
            "primitives": ["walk"], "seconds": 2}
    (tmp_path / "s.jsonl").write_text(json.dumps(line) + "\n")
    data = _one_clip_dataset(tmp_path / "d", np)
    run, _ = retrained
    none = _copy_run(decoder_run, tmp_path / "none", None)
    for bad, msg in ((run, "is not the one decoder run"), (none, "records no tokenizer run")):
        with pytest.raises(CheckpointError, match=msg):
            report.evaluate_decoder(bad, "EV", data)
        with pytest.raises(CheckpointError, match=msg):
            suite.evaluate_suite(bad, "EV", tmp_path / "s.jsonl", evaluator=object())
    with pytest.raises(Stop):
        suite.evaluate_suite(none, "EV", tmp_path / "s.jsonl", evaluator=object(),
                             tokenizer_run=json.loads((decoder_run / "config.json").read_text())["tokenizer_run"])


def _one_clip_dataset(path, np):
    from mm_jax.motion.synth import DatasetWriter

    w = DatasetWriter(path)
    w.add({"id": "s0", "captions": ["a person waves"], "split": "test"}, np.zeros((40, 272), np.float32))
    return w.finish({"generator": "test"})


def test_train_records_the_manifest_tokenizer_and_generate_runs_elsewhere(tiny_tokenizer, tmp_path, monkeypatch):
    """A decoder trained without tokenizer_run (the README's flow) records the shards' tokenizer, absolute."""
    import train_fixtures as tfx

    from mm_jax.train import loop
    from mm_jax.shards import write_shards
    from mm_jax.tokenizer.artifact import load_tokenizer

    monkeypatch.chdir(tmp_path)
    ident = load_tokenizer(tiny_tokenizer).identity()
    ds = sf.FakeDataset(24)
    for split, n in (("train", 2), ("val", 1)):
        write_shards(ds, tiny_tokenizer, "shards", split=split, num_shards=n, text_max_tokens=8,
                     encode_fn=tfx.learnable_encode, tokenizer_identity=ident, text_tokenizer=sf.FakeTextTokenizer(8))
    exp = tfx.experiment("shards", steps=1, warmup_steps=1, val_every=0, ckpt_every=1, log_every=1)
    exp = dataclasses.replace(exp, model=dataclasses.replace(exp.model, fsq_levels=tuple(ident["fsq_levels"])))
    assert exp.tokenizer_run is None
    loop.run(exp, "decoder")
    recorded = json.loads(pathlib.Path("decoder/config.json").read_text())["tokenizer_run"]
    assert recorded == str(pathlib.Path(tiny_tokenizer).absolute())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _gen(tmp_path / "decoder", "out")
