"""``mm-jax data tokenize`` / ``tokenizer encode`` end to end (issue 13, items 5 and 11)."""

from __future__ import annotations


import numpy as np
import pytest

from mm_jax.cli import main


@pytest.fixture(scope="module")
def notest_dataset(tiny_dataset, tmp_path_factory):
    """Six clips of the tiny dataset: one val, five train, no test."""
    from mm_jax.motion.synth import DatasetWriter, load_dataset

    src = load_dataset(tiny_dataset)
    w = DatasetWriter(tmp_path_factory.mktemp("notest") / "data")
    for i, rec in enumerate(src.records[:6]):
        w.add({"id": rec["id"], "captions": rec["captions"], "split": "val" if i == 0 else "train"},
              np.asarray(src.sequence(rec["id"])))
    return w.finish({"generator": "test"})


def test_an_empty_split_is_in_the_manifest_and_reading_it_names_the_others(notest_dataset, tiny_tokenizer,
                                                                           tmp_path, capsys):
    from mm_jax.errors import DataError
    from mm_jax.pipeline import PipelineConfig, build_pipeline
    from mm_jax.shards import read_manifest

    out = tmp_path / "shards"
    rc = main(["data", "tokenize", "--data", str(notest_dataset), "--tokenizer", str(tiny_tokenizer),
               "--out", str(out), "--num-shards", "1", "--text-max-tokens", "32"])
    assert rc == 0 and "split 'test'" in capsys.readouterr().err
    test = read_manifest(out)["splits"]["test"]
    assert test["skipped"] == "empty" and test["num_records"] == 0 and test["shards"] == []
    with pytest.raises(DataError, match=r"split 'test' of the shards holds no records \(it was empty when "
                                        r"tokenized\); splits with records: \['train', 'val'\]"):
        build_pipeline(out, PipelineConfig(global_batch_size=1), split="test", process_index=0, process_count=1)
    assert main(["data", "inspect", str(out), "--split", "test"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "splits with records: ['train', 'val']" in err[0]
    assert main(["data", "inspect", str(out), "--num", "1"]) == 0  # defaults to a split with records


def test_encode_budget_flag_windows_long_clips_with_the_same_tokens(notest_dataset, tiny_tokenizer, tmp_path,
                                                                    capsys):
    base = ["tokenizer", "encode", "--checkpoint", str(tiny_tokenizer), "--data", str(notest_dataset)]
    assert main(base + ["--out", str(tmp_path / "a.npz")]) == 0
    assert main(base + ["--out", str(tmp_path / "b.npz"), "--max-batch-frames", "132"]) == 0  # 3 tokens a window
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert a["lengths"].max() * 4 > 132  # some clips were cut into windows
        np.testing.assert_array_equal(a["tokens"], b["tokens"])
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "c.npz"), "--max-batch-frames", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ConfigError: max_batch_frames=0 is below one window" in err[0]
