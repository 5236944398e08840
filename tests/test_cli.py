"""The mm-jax command line: help, named errors with exit code 2, and the demo end to end."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from mm_jax.cli import main
from mm_jax.eval.prompts import load_suite

ROOT = pathlib.Path(__file__).resolve().parents[1]

COMMANDS = ("data", "render", "compare", "tokenizer", "train", "plot", "plan", "generate", "eval", "evaluator", "demo")


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in COMMANDS:
        assert cmd in out
    for group, subs in (("data", ("synth", "import-bvh", "export-bvh", "tokenize", "inspect")),
                        ("tokenizer", ("train", "eval", "encode", "ablate"))):
        with pytest.raises(SystemExit):
            main([group, "--help"])
        out = capsys.readouterr().out
        assert all(s in out for s in subs)


def test_bad_input_is_a_named_error_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((10, 271), np.float32))
    assert main(["render", str(bad), "--out", str(tmp_path / "x.gif")]) == 2
    assert "ShapeError" in capsys.readouterr().err
    nan = tmp_path / "nan.npy"
    arr = np.zeros((10, 272), np.float32)
    arr[4, 9] = np.nan
    np.save(nan, arr)
    assert main(["data", "export-bvh", str(nan), str(tmp_path / "x.bvh")]) == 2
    assert "NaN" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--set", "nmu=3"]) == 2
    assert "unknown SynthConfig key 'nmu'" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path), "--evaluator", str(tmp_path)]) == 2
    assert "needs --data" in capsys.readouterr().err


def test_render_and_export_from_a_dataset(tiny_dataset, tmp_path, capsys):
    assert main(["render", f"{tiny_dataset}:0", "--out", str(tmp_path / "s.png"), "--strip", "3"]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert main(["data", "export-bvh", f"{tiny_dataset}:0", str(tmp_path / "m.bvh")]) == 0
    assert (tmp_path / "m.bvh").read_text().startswith("HIERARCHY")
    capsys.readouterr()
    assert main(["data", "stats", str(tiny_dataset)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["sequences"] == 64


def test_parser_imports_no_heavy_libraries():
    import subprocess
    import sys

    code = "import sys; from mm_jax.cli import build_parser; build_parser(); " \
           "print(sorted(m for m in ('jax', 'tensorflow', 'grain') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_smoke_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--preset", "smoke", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] and summary["tokenizer_test_metrics"]["num_sequences"] > 0
    assert all((out / "renders" / name).exists() for name in ("sample_0.gif", "reconstruction_0.gif"))
    assert set(summary["suite_by_tag"]) == {"seen", "paraphrase", "composition"}
    suite = json.loads((out / "suite_report.json").read_text())
    cells = {(p.category, p.tag) for p in load_suite(ROOT / "data/prompts/motionmillion_eval_v1.jsonl")}
    assert suite["num_prompts"] == len(cells) and len(list((out / "suite_report_sheets").glob("contact_*.png"))) == 7
    assert main(["demo", "--preset", "smoke", "--out", str(out)]) == 0  # resumes, skips done stages


def test_plan_mesh_parsing():
    from mm_jax.cli.train_cmd import parse_mesh
    from mm_jax.errors import ConfigError

    assert parse_mesh("data=2,fsdp=4,tensor=1") == {"data": 2, "fsdp": 4, "tensor": 1}
    assert parse_mesh("1,8,1") == {"data": 1, "fsdp": 8, "tensor": 1}
    assert parse_mesh("fsdp=8") == {"data": 1, "fsdp": 8, "tensor": 1}
    with pytest.raises(ConfigError, match="expected axes"):
        parse_mesh("pipeline=2")
    with pytest.raises(ConfigError, match="integers"):
        parse_mesh("data=two")


def test_tokenize_skips_an_empty_split(tiny_dataset, tiny_tokenizer, tmp_path, capsys):
    """A dataset with no test split: `data tokenize` writes train and val and says test was empty."""
    from mm_jax.motion.synth import DatasetWriter, load_dataset

    src = load_dataset(tiny_dataset)
    w = DatasetWriter(tmp_path / "notest")
    for i, rec in enumerate(src.records[:6]):
        w.add({"id": rec["id"], "captions": rec["captions"], "split": "val" if i == 0 else "train"},
              np.asarray(src.sequence(rec["id"])))
    w.finish({"generator": "test"})
    rc = main(["data", "tokenize", "--data", str(tmp_path / "notest"), "--tokenizer", str(tiny_tokenizer),
               "--out", str(tmp_path / "shards"), "--num-shards", "1"])
    out = capsys.readouterr()
    assert rc == 0 and "split 'test'" in out.err and "empty" in out.err
    assert json.loads(out.out)["empty_splits_skipped"] == ["test"]
    assert main(["data", "tokenize", "--data", str(tmp_path / "notest"), "--tokenizer", str(tiny_tokenizer),
                 "--out", str(tmp_path / "shards2"), "--splits", "test"]) == 2
    assert "every requested split" in capsys.readouterr().err


# Issue 13 items 12-14 (generate, eval, render, export-bvh): one named line, exit code 2, nothing drawn or loaded.


@pytest.mark.parametrize("argv, message", [
    (["generate", "walks", "--checkpoint", "RUN", "--out", "OUT", "--seconds", "inf"], "ConfigError: seconds=inf"),
    (["generate", "walks", "--checkpoint", "RUN", "--out", "OUT", "--seed", "-1"], "ConfigError: seed=-1"),
    (["generate", "walks", "--checkpoint", "RUN", "--out", "OUT", "--seed", str(2**32)], "ConfigError: seed="),
    (["eval", "--checkpoint", "RUN", "--evaluator", "EV", "--seed", str(2**64)], "ConfigError: seed="),
    (["render", "M.npy", "--out", "x.gif", "--fps", "0"], "ConfigError: fps=0"),
    (["render", "M.npy", "--out", "x.gif", "--fps", "-5"], "ConfigError: fps=-5"),
    (["compare", "M.npy", "--out", "x.gif", "--fps", "0"], "ConfigError: fps=0"),
])
def test_bad_options_are_one_named_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if argv[0] == "eval":
        argv = argv + ["--suite", "missing.jsonl"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mm-jax: error: {message}"), err
    assert not list(tmp_path.iterdir())


def test_generate_out_naming_a_file_and_eval_of_a_missing_suite(tmp_path, capsys):
    (tmp_path / "taken.txt").write_text("x")
    assert main(["generate", "walks", "--checkpoint", "RUN", "--out", str(tmp_path / "taken.txt")]) == 2
    assert "ConfigError: out_dir" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", "RUN", "--evaluator", "EV", "--suite", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "DataError: cannot read prompt suite" in err and "nope.jsonl" in err


def test_render_reports_the_frames_written_and_export_bvh_makes_its_directory(tiny_dataset, tmp_path, capsys):
    assert main(["render", f"{tiny_dataset}:0", "--out", str(tmp_path / "r.gif"), "--max-frames", "4",
                 "--stride", "3"]) == 0
    from PIL import Image

    with Image.open(tmp_path / "r.gif") as im:
        assert im.n_frames == 4
    assert "(4 frames of " in capsys.readouterr().out
    out = tmp_path / "new" / "deeper" / "m.bvh"
    assert main(["data", "export-bvh", f"{tiny_dataset}:0", str(out)]) == 0
    assert out.read_text().startswith("HIERARCHY")


def test_generate_and_eval_pass_tokenizer_and_overwrite(monkeypatch):
    import mm_jax.eval.suite as suite
    import mm_jax.generate as gen

    calls = []
    monkeypatch.setattr(gen, "generate", lambda *a, **kw: calls.append(kw) or [])
    assert main(["generate", "walks", "--checkpoint", "RUN", "--out", "OUT", "--tokenizer", "TOK",
                 "--overwrite"]) == 0
    assert calls[-1]["tokenizer_run"] == "TOK" and calls[-1]["overwrite"] is True

    class Stop(Exception):
        pass

    def stop(*a, **kw):
        calls.append(kw)
        raise Stop
    monkeypatch.setattr(suite, "evaluate_suite", stop)
    with pytest.raises(Stop):
        main(["eval", "--checkpoint", "RUN", "--evaluator", "EV", "--suite", "S", "--tokenizer", "TOK"])
    assert calls[-1]["tokenizer_run"] == "TOK"


def test_orbax_tracebacks_are_dropped_from_the_cli_log():
    """A failed background save reaches the user as one StorageError line, not orbax's logged traceback."""
    import logging

    from mm_jax.cli import _no_orbax_tracebacks

    try:
        raise OSError(28, "No space left on device")
    except OSError:
        import sys

        exc = sys.exc_info()
    orbax = logging.LogRecord("absl", logging.ERROR, "/x/orbax/checkpoint/async.py", 1, "save failed", (), exc)
    other = logging.LogRecord("absl", logging.ERROR, "/x/jax/foo.py", 1, "other", (), exc)
    assert not _no_orbax_tracebacks(orbax) and _no_orbax_tracebacks(other)


def test_tokenizer_set_takes_model_and_train_sections_like_every_trainer():
    import argparse

    from mm_jax.cli.tokenizer_cmd import _configs
    from mm_jax.errors import ConfigError

    args = argparse.Namespace(preset="tiny", steps=None, overrides=["model.width=40", "train.lr=0.002", "depth=2"],
                              train_overrides=["batch_size=3"])
    mcfg, tcfg = _configs(args)
    assert (mcfg.width, mcfg.depth, tcfg.lr, tcfg.batch_size) == (40, 2, 0.002, 3)
    with pytest.raises(ConfigError, match="nope"):
        _configs(argparse.Namespace(preset="tiny", steps=None, overrides=["train.nope=1"], train_overrides=[]))
