"""The evaluation report: its file format and the split it scores (the end-to-end run is `mm-jax eval` on the demo)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mm_jax.errors import DataError
from mm_jax.eval.report import COLUMNS, ROWS, _scored_split, write_report


def test_write_report_has_every_row_and_column(tmp_path):
    row = {c: 0.5 for c in COLUMNS} | {"num": 3}
    rows = {name: dict(row, fid=float(i)) for i, name in enumerate(ROWS)}
    rows["real"]["multimodality"] = None  # one motion per caption: undefined
    report = {"rows": rows, "split": "test", "multimodality": {"texts": 32, "repeats": 10, "pairs": 10},
              "num_sequences": 3, "decoder_run": "RUN", "decoder_step": 7, "tokenizer_run": "TOK", "seed": 0,
              "cfg_scale": 2.5, "evaluator": {"dir": "EV", "identity": "ev/1:abc", "version": "ev/1", "step": 9}}
    write_report(report, tmp_path / "rep")
    assert json.loads((tmp_path / "rep.json").read_text())["rows"]["untrained"]["fid"] == 3.0
    md = (tmp_path / "rep.md").read_text()
    assert "ev/1:abc" in md and "step 7" in md and "10 motions for each of 32 captions" in md
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| row")]
    assert [ln.split("|")[1].strip() for ln in table] == list(ROWS)
    assert all(len(ln.split("|")) == len(COLUMNS) + 3 for ln in table)
    assert table[0].split("|")[1 + 1 + COLUMNS.index("multimodality")].strip() == "–"


def test_eval_report_scores_the_first_split_that_exists(tmp_path, caplog):
    from mm_jax.motion.synth import DatasetWriter, load_dataset

    w = DatasetWriter(tmp_path / "d")  # an imported dataset without a test split
    for i, split in enumerate(("train", "val")):
        w.add({"id": f"s{i}", "captions": ["a person waves"], "split": split}, np.zeros((40, 272), np.float32))
    ds = load_dataset(w.finish({"generator": "test"}))
    with caplog.at_level("INFO", logger="mm_jax.eval.report"):
        assert _scored_split(ds, None) == "val"
    assert "no test split" in caplog.text
    with pytest.raises(DataError, match="'test' .* is empty; splits with sequences: train, val$"):
        _scored_split(ds, "test")


def test_seed_outside_32_bits_is_refused_before_loading():
    """Issue 13 item 14: seeds were reduced mod 2**32 (seed 2**32 scored as seed 0)."""
    from mm_jax.errors import ConfigError
    from mm_jax.eval.report import evaluate_decoder

    for bad in (-1, 2**32):
        with pytest.raises(ConfigError, match=r"seed=.* must be an int in \[0, 4294967295\]"):
            evaluate_decoder("RUN", "EV", "DATA", seed=bad)
