"""``mm-jax curate run --tokenizer``: both runners write the training shards `mm-jax data tokenize` writes."""

from __future__ import annotations

import json
import pathlib

import pytest

pytest.importorskip("cv2")
pytest.importorskip("scenedetect")

from mm_jax.cli import main  # noqa: E402
from mm_jax.curation import synthvideo as sv  # noqa: E402
from mm_jax.shards import ShardSource, read_manifest  # noqa: E402
from mm_jax.shards.record import records_equal  # noqa: E402

FLAGS = ["--num-shards", "2", "--text-max-tokens", "32"]


@pytest.fixture(scope="module")
def people_set(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """(videos, config): 2 videos x 2 shots x 2 tracked people (8 clips), detections read from tracks files."""
    videos = tmp_path_factory.mktemp("people") / "videos"
    sv.write_people_set(videos)
    return videos, pathlib.Path("data/curation/synthetic_tracks.json")


def _curate(videos, cfg, out, *extra) -> list[str]:
    return ["curate", "run", "--config", str(cfg), "--videos", str(videos), "--out", str(out), *extra]


def _records(shards: pathlib.Path) -> dict:
    manifest = read_manifest(shards)
    return {s: [ShardSource(shards, s).record(k) for k in range(e["num_records"])]
            for s, e in manifest["splits"].items() if e["num_records"]}


def _same_shards(a: pathlib.Path, b: pathlib.Path) -> None:
    """Same manifest (but the data set path) and the same decoded records, shard by shard."""
    ma, mb = read_manifest(a), read_manifest(b)
    for m in (ma, mb):
        for entry in m["splits"].values():
            entry["source"].pop("data_dir")
    assert ma == mb
    ra, rb = _records(a), _records(b)
    assert ra.keys() == rb.keys()
    for split in ra:
        assert len(ra[split]) == len(rb[split]) and all(map(records_equal, ra[split], rb[split]))


@pytest.fixture(scope="module")
def local_run(people_set, tiny_tokenizer, tmp_path_factory):
    """A local run with --tokenizer, and `mm-jax data tokenize` run on its data set."""
    videos, cfg = people_set
    root = tmp_path_factory.mktemp("local")
    assert main(_curate(videos, cfg, root / "run", "--tokenizer", str(tiny_tokenizer), *FLAGS)) == 0
    assert main(["data", "tokenize", "--data", str(root / "run" / "dataset"), "--tokenizer", str(tiny_tokenizer),
                 "--out", str(root / "reference"), *FLAGS]) == 0
    return root


def test_local_runner_writes_the_shards_of_data_tokenize(local_run):
    _same_shards(local_run / "run" / "shards", local_run / "reference")
    funnel = json.loads((local_run / "run" / "funnel.json").read_text())
    assert funnel["clips_out"] == 8 and sum(s["records"] for s in funnel["shards"]["splits"].values()) == 8
    assert funnel["throughput"]["tokenize+shards"]["items"] == 8
    ids = [c for r in funnel["people"]["rows"] for c in r["clips"]]
    assert sorted(i.split("/")[2][:2] for i in ids) == ["t1"] * 4 + ["t2"] * 4


def test_beam_writes_the_same_shards_inside_the_pipeline_and_training_reads_them(people_set, local_run,
                                                                                 tiny_tokenizer, tmp_path):
    from mm_jax.pipeline import PipelineConfig, build_pipeline

    pytest.importorskip("apache_beam")
    videos, cfg = people_set
    assert main(_curate(videos, cfg, tmp_path / "beam", "--runner", "beam", "--tokenizer", str(tiny_tokenizer),
                        *FLAGS)) == 0
    shards, reference = tmp_path / "beam" / "shards", local_run / "reference"
    _same_shards(shards, reference)
    for name in read_manifest(reference)["splits"]["train"]["shards"]:  # the same plan: the same bytes too
        assert (shards / name["file"]).read_bytes() == (reference / name["file"]).read_bytes()
    stamps = {f: f.stat().st_mtime_ns for f in shards.glob("*.array_record")}
    assert main(_curate(videos, cfg, tmp_path / "beam", "--runner", "beam", "--tokenizer", str(tiny_tokenizer),
                        *FLAGS)) == 0  # a rerun: every shot and every shard is reused, the manifest rewritten
    assert {f: f.stat().st_mtime_ns for f in shards.glob("*.array_record")} == stamps
    _same_shards(shards, reference)
    pipe = build_pipeline(shards, PipelineConfig(global_batch_size=2, max_text_tokens=32, max_motion_tokens=32),
                          split="train", process_index=0, process_count=1)
    batch = next(iter(pipe.dataset))
    assert batch["text_ids"].shape == (2, 32) and batch["motion_ids"].shape == (2, 32)


def test_bad_tokenizer_runs_are_named_before_any_stage_runs(people_set, tiny_tokenizer, tmp_path, capsys):
    videos, cfg = people_set
    assert main(_curate(videos, cfg, tmp_path / "a", "--tokenizer", str(tmp_path / "nope"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a trained tokenizer run (no such directory)" in err[0]
    (tmp_path / "tok263").mkdir()
    (tmp_path / "tok263" / "tokenizer.json").write_text(json.dumps({"config": {"feature_dim": 263}}))
    assert main(_curate(videos, cfg, tmp_path / "b", "--runner", "beam", "--tokenizer", str(tmp_path / "tok263"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "encodes 263-d features; curated motions are 272-d" in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    small_budget = ["--tokenizer", str(tiny_tokenizer), "--max-batch-frames", "8"]
    assert main(_curate(videos, cfg, tmp_path / "c", *small_budget)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ConfigError: max_batch_frames=8 is below one window" in err[0]
    assert not (tmp_path / "c" / "results").exists()


def test_shards_of_another_tokenizer_in_the_way_are_named_before_any_stage_runs(
        people_set, local_run, tiny_tokenizer, tmp_path, capsys):
    videos, cfg = people_set
    other = tmp_path / "run" / "shards"
    other.mkdir(parents=True)
    manifest = read_manifest(local_run / "reference")
    manifest["tokenizer"]["identity"]["fsq_levels"] = [7, 5, 5, 5]
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert main(_curate(videos, cfg, tmp_path / "run", "--tokenizer", str(tiny_tokenizer), *FLAGS)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds shards made otherwise" in err[0] and "fsq_levels" in err[0]
    assert not (tmp_path / "run" / "results").exists()
