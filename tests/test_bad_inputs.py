"""Bad inputs a user hits (issue 13, items 3, 13, 14): each is a one-line named error or a reported skip,
never a traceback or a silent wrong result. The step-count flags (item 4) are in test_step_counts.py.

Every test here failed on the code before the fix (a raw exception, exit code 0 with NaN metrics, a
silently garbled caption, a refused identical re-import).
"""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest

from mm_jax.cli import main
from mm_jax.errors import ConfigError, DataError, FormatError
from mm_jax.motion import import_common
from mm_jax.motion.features import FEATURE_DIM
from mm_jax.motion.import_272 import import_272
from mm_jax.motion.import_smpl import import_smpl
from mm_jax.motion.loading import load_features, load_joints

F = FEATURE_DIM
BVH = pathlib.Path(__file__).parent / "fixtures" / "bvh" / "mixamo_apose_cm_zxy.bvh"


def _bad_npy(path: pathlib.Path, kind: str) -> pathlib.Path:
    """Writes one kind of bad ``.npy`` to ``path``; returns it."""
    if kind == "zero_frames":
        np.save(path, np.zeros((0, F), np.float32))
    elif kind == "object":
        np.save(path, np.array([np.zeros(3), "x"], dtype=object), allow_pickle=True)
    elif kind == "text":
        path.write_text("0.1 0.2 0.3\n0.4 0.5 0.6\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "npz":
        with open(path, "wb") as f:
            np.savez(f, features=np.zeros((5, F), np.float32))
    elif kind == "truncated":
        np.save(path, np.zeros((40, F), np.float32))
        path.write_bytes(path.read_bytes()[:300])
    elif kind in ("int", "bool", "complex"):
        np.save(path, np.zeros((5, F), {"int": np.int64, "bool": bool, "complex": np.complex64}[kind]))
    else:
        raise AssertionError(kind)
    return path


def _error_lines(err: str) -> list[str]:
    """The CLI's one-line named errors in ``err`` (progress bars and log lines aside)."""
    return [line for line in err.splitlines() if line.startswith("mm-jax: error: ")]


BAD_KINDS = ("zero_frames", "object", "text", "empty", "npz", "truncated", "int", "bool", "complex")
EXPECT = {
    "zero_frames": "0 frames is too short",
    "object": "object array",
    "text": "not a .npy file",
    "empty": "empty file",
    "npz": "zip (.npz) archive",
    "truncated": "not a readable .npy",
    "int": "dtype int64",
    "bool": "dtype bool",
    "complex": "dtype complex64",
}


# ----------------------------------------------------------------------------- item 13/14: .npy inputs


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_npy_is_a_one_line_named_error_in_every_loader(tmp_path, kind, capsys):
    path = _bad_npy(tmp_path / f"{kind}.npy", kind)
    for load in (load_features, load_joints):
        with pytest.raises((DataError, ConfigError, ValueError)) as info:
            load(str(path))
        assert type(info.value).__name__ in ("DataError", "FormatError", "ShapeError"), repr(info.value)
        assert str(path) in str(info.value) and EXPECT[kind] in str(info.value)
    assert main(["data", "export-bvh", str(path), str(tmp_path / "x.bvh")]) == 2
    assert main(["render", str(path), "--out", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err
    lines = _error_lines(err)
    assert len(lines) == 2 and all(EXPECT[kind] in line for line in lines) and "Traceback" not in err
    assert not (tmp_path / "x.bvh").exists() and not (tmp_path / "x.gif").exists()


def test_read_npy_refuses_pickles_and_names_the_file(tmp_path):
    from mm_jax.motion.loading import read_npy

    path = _bad_npy(tmp_path / "obj.npy", "object")
    with pytest.raises(FormatError, match=r"obj\.npy: an object array"):
        read_npy(path)
    with pytest.raises(DataError, match="no such file"):
        read_npy(tmp_path / "missing.npy")
    good = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.save(tmp_path / "good.npy", good)
    assert np.array_equal(read_npy(tmp_path / "good.npy"), good)


def test_joints_npy_gets_the_same_checks(tmp_path):
    np.save(tmp_path / "j.npy", np.zeros((0, 22, 3), np.float32))
    with pytest.raises(Exception, match=r"j\.npy \(joints\): 0 frames"):
        load_joints(str(tmp_path / "j.npy"))
    bad = np.zeros((4, 22, 3), np.float32)
    bad[2, 5, 1] = np.inf
    np.save(tmp_path / "k.npy", bad)
    with pytest.raises(DataError, match=r"inf at frame 2, channel 16"):
        load_joints(str(tmp_path / "k.npy"))


def _mm_root(root: pathlib.Path, good: int = 2) -> pathlib.Path:
    (root / "motion_data/vector_272").mkdir(parents=True)
    (root / "texts").mkdir()
    rng = np.random.default_rng(0)
    for i in range(good):
        np.save(root / f"motion_data/vector_272/good{i}.npy", rng.normal(size=(6, F)).astype(np.float32))
        (root / f"texts/good{i}.txt").write_text(f"a person waves {i}\n")
    return root


def test_import_272_skips_each_bad_npy_by_name_and_goes_on(tmp_path):
    root = _mm_root(tmp_path / "mm")
    for kind in BAD_KINDS:
        _bad_npy(root / f"motion_data/vector_272/{kind}.npy", kind)
        (root / f"texts/{kind}.txt").write_text("caption\n")
    report = import_272(root, tmp_path / "ds")
    assert report["imported"] == 2
    skipped = {s["clip"]: s for s in report["skipped"]}
    assert sorted(skipped) == sorted(BAD_KINDS)
    for kind in BAD_KINDS:
        assert skipped[kind]["kind"] == "invalid"
        assert f"{kind}.npy" in skipped[kind]["reason"] and EXPECT[kind] in skipped[kind]["reason"], kind


def test_import_272_bad_source_stats_is_a_named_error(tmp_path):
    root = _mm_root(tmp_path / "mm")
    (root / "mean_std/vector_272").mkdir(parents=True)
    _bad_npy(root / "mean_std/vector_272/mean.npy", "npz")
    np.save(root / "mean_std/vector_272/std.npy", np.ones(F, np.float32))
    with pytest.raises(FormatError, match=r"mean\.npy: a zip \(\.npz\) archive"):
        import_272(root, tmp_path / "ds")


def test_non_utf8_caption_skips_that_clip_names_the_file_and_continues(tmp_path):
    root = _mm_root(tmp_path / "mm", good=3)
    (root / "texts/good1.txt").write_bytes("une personne saute très haut\n".encode("latin-1"))
    (root / "texts/good2.txt").write_bytes(b"\xef\xbb\xbfa person jumps\n")  # a UTF-8 byte-order mark is fine
    report = import_272(root, tmp_path / "ds")
    assert report["imported"] == 2 and report["skipped_by_kind"] == {"bad caption file": 1}
    (skip,) = report["skipped"]
    assert skip["clip"] == "good1" and str(root / "texts/good1.txt") in skip["reason"]
    assert "not UTF-8" in skip["reason"] and "0xe8" in skip["reason"]
    recs = [json.loads(line) for line in (tmp_path / "ds/sequences.jsonl").read_text().splitlines()]
    assert {r["id"]: r["captions"] for r in recs} == {"good0": ["a person waves 0"], "good2": ["a person jumps"]}


def test_import_smpl_bad_files_are_skipped_by_name(tmp_path):
    src = tmp_path / "smpl"
    src.mkdir()
    rng = np.random.default_rng(0)
    good = {"poses": rng.normal(0, 0.2, (8, 66)), "trans": rng.normal(0, 0.1, (8, 3)), "mocap_framerate": 30.0}
    np.savez(src / "good.npz", **good)
    (src / "good.txt").write_text("a person stands\n")
    np.save(src / "plain.npy", good["poses"])
    (src / "plain.npz").write_bytes((src / "plain.npy").read_bytes())  # a .npy named .npz
    (src / "plain.npy").unlink()
    np.savez(src / "ints.npz", poses=np.zeros((8, 66), np.int32), trans=np.zeros((8, 3)), fps=30.0)
    np.savez(src / "zero.npz", poses=np.zeros((0, 66)), trans=np.zeros((0, 3)), fps=30.0)
    folder = src / "folder"
    folder.mkdir()
    (folder / "poses.npy").write_text("not an array")
    np.save(folder / "trans.npy", np.zeros((8, 3)))
    for name in ("plain", "ints", "zero", "folder"):
        (src / f"{name}.txt").write_text("caption\n")
    report = import_smpl(src, tmp_path / "ds")
    assert report["imported"] == 1
    reasons = {s["clip"]: s["reason"] for s in report["skipped"]}
    assert "plain.npz: not a zip (.npz) archive" in reasons["plain"]
    assert "ints.npz: poses: features must be floating point" in reasons["ints"] and "int32" in reasons["ints"]
    assert "0 frames" in reasons["zero"]
    assert "poses.npy: not a .npy file" in reasons["folder"]


# ----------------------------------------------------------------------------- item 13: manifest


@pytest.mark.parametrize("text", ["[1, 2]", '"shards"', "null", "3"])
def test_manifest_that_is_valid_json_but_not_an_object(tmp_path, text, capsys):
    from mm_jax.shards import read_manifest

    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(FormatError, match=r"manifest\.json holds .*not a JSON object"):
        read_manifest(tmp_path)
    assert main(["train", "--shards", str(tmp_path), "--workdir", str(tmp_path / "run")]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith("mm-jax: error: FormatError: ")


# ----------------------------------------------------------------------------- item 14: re-import


def test_import_bvh_identical_reimport_and_the_real_overwrite_flag(tmp_path, capsys, caplog):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(BVH, src / "clip.bvh")
    (src / "clip.txt").write_text("a person walks\n")
    out = tmp_path / "ds"
    argv = ["data", "import-bvh", str(src), "--out", str(out)]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    with caplog.at_level("INFO"):
        assert main(argv) == 0  # the same import again: recognised, not an error
    assert "identical data set" in caplog.text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # No staging left behind (.ds.lock, the target's lock file, stays by design: docs/reliability.md).
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and "ds" in p.name] == [".ds.lock"]
    (src / "clip.txt").write_text("a person strolls\n")  # the same source, now another data set
    assert main(argv) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "--overwrite" in line and "sequences.jsonl" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(argv + ["--overwrite"]) == 0  # the flag the message names exists
    assert json.loads((out / "sequences.jsonl").read_text().splitlines()[0])["captions"] == ["a person strolls"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["data", "import-bvh", str(src), "--out", str(other)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (other / "notes.txt").read_text() == "mine"


def test_reimport_helpers_leave_other_directories_alone(tmp_path):
    report = import_common.ImportReport("import-bvh", "somewhere")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "meta.json").write_text("[]")  # not an import's meta
    with pytest.raises(DataError, match="--overwrite"):
        import_common._reimport_stage(tmp_path / "ds", report, overwrite=False)
    assert import_common._reimport_stage(tmp_path / "ds", report, overwrite=True) is None


# ----------------------------------------------------------------------------- item 3: tokenizer eval


def test_tokenizer_eval_rejects_nan_data_naming_the_sequence_id(tiny_dataset, tiny_tokenizer, tmp_path, capsys):
    from mm_jax.motion.synth import load_dataset
    from mm_jax.tokenizer.artifact import load_tokenizer
    from mm_jax.tokenizer.reconstruction import evaluate_tokenizer

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    ds = load_dataset(data)
    victim = ds.record(ds.ids("test")[-1])
    feats = np.load(data / "features.npy", mmap_mode="r+")
    feats[victim["offset"] + 2, 7] = np.nan  # bytes damaged after the data set was written
    feats.flush()
    del feats, ds
    assert main(["tokenizer", "eval", "--checkpoint", str(tiny_tokenizer), "--data", str(data)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no metrics, so no NaN printed as JSON
    (line,) = _error_lines(err)
    assert line.startswith("mm-jax: error: DataError: ") and f"sequence {victim['id']!r}" in line
    assert "NaN at frame 2, channel 7" in line
    with pytest.raises(DataError, match=victim["id"]):
        evaluate_tokenizer(load_tokenizer(tiny_tokenizer), data, split="test")


def test_tokenizer_eval_of_non_finite_params_is_a_named_error(tiny_dataset, tiny_tokenizer):
    import dataclasses

    import jax

    from mm_jax.errors import NonFiniteError
    from mm_jax.tokenizer.artifact import load_tokenizer
    from mm_jax.tokenizer.reconstruction import evaluate_tokenizer

    tok = load_tokenizer(tiny_tokenizer)
    broken = dataclasses.replace(tok, params=jax.tree.map(lambda a: a * np.nan, tok.params))
    with pytest.raises(NonFiniteError, match="non-finite"):
        evaluate_tokenizer(broken, tiny_dataset, max_sequences=2)


def test_dataset_writer_refuses_non_float_features_naming_the_sequence(tmp_path):
    """Integer features were silently cast to float32 by DatasetWriter.add; now the one check refuses them."""
    from mm_jax.motion.synth import DatasetWriter

    w = DatasetWriter(tmp_path / "ds")
    try:
        with pytest.raises(DataError, match=r"sequence 'clip-7'.*floating point"):
            w.add({"id": "clip-7", "captions": ["x"], "split": "train"}, np.zeros((5, 272), np.int64))
        bad = np.zeros((5, 272), np.float32)
        bad[2, 150] = np.inf
        with pytest.raises(DataError, match=r"sequence 'clip-8'.*inf at frame 2, channel 150"):
            w.add({"id": "clip-8", "captions": ["x"], "split": "train"}, bad)
    finally:
        w.abort()
