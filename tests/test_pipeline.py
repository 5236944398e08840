"""Tests of mm_jax.pipeline: batch contents, seeding, process slicing, exact resume, corruption."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import shards_fake as sf

from mm_jax.errors import ConfigError, DataError
from mm_jax.pipeline import PipelineConfig, build_pipeline, empty_prompt, global_batch, preset
from mm_jax.shards import ShardSource

N_RECORDS = 33  # train records of FakeDataset(41)
CFG = PipelineConfig(global_batch_size=6, max_text_tokens=8, max_motion_tokens=13, text_dropout=0.25, seed=3)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("shards")
    sf.make_shards(out, num_shards=3)
    return out


def _take(it, n):
    return [next(it) for _ in range(n)]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
                                    for x, y in zip(a, b))


def _samples(shards, cfg, pi=0, pc=1, n=None):
    samples = build_pipeline(shards, cfg, process_index=pi, process_count=pc).samples
    return [samples[i] for i in range(n if n is not None else N_RECORDS)]


# ----------------------------------------------------------------------------- contents

def test_batch_layout_and_contents(shards):
    pipe = build_pipeline(shards, CFG, process_index=0, process_count=1)
    src = ShardSource(shards, "train")
    bos, eos, pad = sf.CODEBOOK, sf.CODEBOOK + 1, sf.CODEBOOK + 2
    assert (pipe.special.bos, pipe.special.eos, pipe.special.pad) == (bos, eos, pad)
    empty_ids, empty_mask = empty_prompt(8)
    for batch in _take(pipe.iterator(), 5):
        assert batch["text_ids"].shape == (6, 8) and batch["text_ids"].dtype == np.int32
        assert batch["motion_ids"].shape == (6, 13) and batch["motion_mask"].dtype == bool
        for b in range(6):
            rec = src.record(int(batch["sample_index"][b]))
            ids, mask = batch["text_ids"][b], batch["text_mask"][b]
            text = ids[mask].tolist()
            is_empty = np.array_equal(ids, empty_ids) and np.array_equal(mask, empty_mask)
            assert text in [r.tolist() for r in rec.caption_ids] or is_empty
            assert (ids[~mask] == 0).all()
            m, mm = batch["motion_ids"][b], batch["motion_mask"][b]
            real = m[mm]
            assert real[0] == bos and (m[~mm] == pad).all() and mm[: mm.sum()].all()
            codes = rec.motion_codes.tolist()
            window = real[1:-1].tolist() if real[-1] == eos else real[1:].tolist()
            assert len(window) == min(len(codes), 11)
            start = next(i for i in range(len(codes) - len(window) + 1) if codes[i:i + len(window)] == window)
            assert (real[-1] == eos) == (start + len(window) == len(codes))
        assert (batch["num_skipped"] == 0).all()


def test_text_dropout_rates(shards):
    def empty_fraction(p):
        samples = _samples(shards, dataclasses.replace(CFG, text_dropout=p, num_epochs=5), n=5 * N_RECORDS)
        return np.mean([s["text_mask"].sum() == 2 for s in samples])

    assert empty_fraction(0.0) == 0.0 and empty_fraction(1.0) == 1.0
    assert 0.3 < empty_fraction(0.5) < 0.7


def test_randomness_is_seeded_per_sample_and_epoch(shards):
    cfg = dataclasses.replace(CFG, num_epochs=2)
    both = _samples(shards, cfg, n=2 * N_RECORDS)
    one = {(i // N_RECORDS, int(s["sample_index"])): s for i, s in enumerate(both)}
    # The same (epoch, key) gives the same sample on another process count.
    for pi in range(2):
        local = _samples(shards, cfg, pi, 2, n=2 * len(range(pi, N_RECORDS, 2)))
        per_epoch = len(range(pi, N_RECORDS, 2))
        for i, s in enumerate(local):
            ref = one[(i // per_epoch, int(s["sample_index"]))]
            assert all(np.array_equal(s[k], ref[k]) for k in s)
    # Epochs differ in order and in choices; seeds differ.
    first = [int(s["sample_index"]) for s in _samples(shards, cfg, n=2 * N_RECORDS)]
    assert first[:N_RECORDS] != first[N_RECORDS:] and sorted(first[:N_RECORDS]) == list(range(N_RECORDS))
    choices, later = ([(one[(e, k)]["text_ids"].tolist(), one[(e, k)]["motion_ids"].tolist())
                       for k in range(N_RECORDS)] for e in (0, 1))
    assert choices != later
    other = _samples(shards, dataclasses.replace(cfg, seed=4))
    assert [int(s["sample_index"]) for s in other] != first[:N_RECORDS]


@pytest.mark.parametrize("pc", [2, 3])
def test_process_slices_cover_each_record_once_per_epoch(shards, pc):
    for epoch in range(2):
        seen = []
        for pi in range(pc):
            pipe = build_pipeline(shards, dataclasses.replace(CFG, global_batch_size=pc), process_index=pi,
                                  process_count=pc)
            n = pipe.records_per_process
            seen += [int(pipe.samples[epoch * n + i]["sample_index"]) for i in range(n)]
        assert sorted(seen) == list(range(N_RECORDS))


def test_finite_epochs_give_every_process_the_same_batch_count(shards):
    cfg = dataclasses.replace(CFG, global_batch_size=2, num_epochs=2)
    counts = [len(list(build_pipeline(shards, cfg, process_index=pi, process_count=2).iterator()))
              for pi in range(2)]
    assert counts == [16 * 2, 16 * 2]  # slices of 17 and 16 records, 1 per batch per process


def test_batches_are_deterministic_and_finite_epochs_end(shards):
    cfg = dataclasses.replace(CFG, num_epochs=2)
    a = list(build_pipeline(shards, cfg, process_index=0, process_count=1).iterator())
    b = list(build_pipeline(shards, cfg, process_index=0, process_count=1).iterator())
    assert len(a) == (2 * N_RECORDS) // 6 and _same(a, b)


# ----------------------------------------------------------------------------- resume

def test_set_state_resumes_exactly(shards):
    pipe = build_pipeline(shards, CFG, process_index=0, process_count=1)
    it = pipe.iterator()
    _take(it, 4)
    state = it.get_state()
    expected = _take(it, 9)  # crosses the epoch boundary (33 records / 6)
    fresh = build_pipeline(shards, CFG, process_index=0, process_count=1).iterator()
    fresh.set_state(state)
    assert _same(_take(fresh, 9), expected)


def test_checkpointer_restores_the_iterator(shards, tmp_path):
    from mm_jax.checkpoint import Checkpointer

    pipe = build_pipeline(shards, CFG, process_index=0, process_count=1)
    it = pipe.iterator()
    _take(it, 3)
    ckpt = Checkpointer(tmp_path / "ckpt", async_save=False)
    ckpt.save(3, {"w": np.arange(5.0)}, {"run": "t"}, data_iter=it)
    expected = _take(it, 6)
    ckpt.close()
    fresh = pipe.iterator()
    _take(fresh, 1)  # a moved iterator is reset to the saved position
    ckpt = Checkpointer(tmp_path / "ckpt", async_save=False)
    step, state, _ = ckpt.restore({"w": np.zeros(5)}, data_iter=fresh)
    ckpt.close()
    assert step == 3 and np.array_equal(state["w"], np.arange(5.0))
    assert _same(_take(fresh, 6), expected)


# ----------------------------------------------------------------------------- bad input

def _corrupt_copy(shards: pathlib.Path, dst: pathlib.Path, bad_index: int) -> pathlib.Path:
    import shutil

    from test_shards import _rewrite_with_bad_record

    shutil.copytree(shards, dst)
    _rewrite_with_bad_record(dst / "train-00001-of-00003.array_record", bad_index=bad_index)
    return dst


def test_corrupt_record_raises_or_is_skipped(shards, tmp_path):
    bad = _corrupt_copy(shards, tmp_path / "bad", bad_index=4)
    cfg = dataclasses.replace(CFG, num_epochs=1)
    with pytest.raises(DataError, match="corrupt record 4 of shard .*train-00001-of-00003.array_record"):
        list(build_pipeline(bad, cfg, process_index=0, process_count=1).iterator())
    skip = dataclasses.replace(cfg, skip_corrupt=True, global_batch_size=1)
    batches = list(build_pipeline(bad, skip, process_index=0, process_count=1).iterator())
    seen = sorted(int(b["sample_index"][0]) for b in batches)
    bad_key = 11 + 4  # shard 0 holds 11 records
    assert seen == [k for k in range(N_RECORDS) if k != bad_key]
    assert sum(int(b["num_skipped"].sum()) for b in batches) == 1


def test_truncated_shard(shards, tmp_path):
    import shutil

    bad = tmp_path / "trunc"
    shutil.copytree(shards, bad)
    shard = bad / "train-00002-of-00003.array_record"
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(DataError, match="train-00002-of-00003.array_record has 1000 bytes"):
        build_pipeline(bad, CFG, process_index=0, process_count=1)
    skip = dataclasses.replace(CFG, skip_corrupt=True, num_epochs=1, global_batch_size=1)
    batches = list(build_pipeline(bad, skip, process_index=0, process_count=1).iterator())
    assert sorted(int(b["sample_index"][0]) for b in batches) == list(range(22))
    assert sum(int(b["num_skipped"].sum()) for b in batches) == 11


def test_a_flipped_byte_fails_at_start_up_not_mid_training(shards, tmp_path, caplog):
    """Issue 13, item 9: the shards' sha256 are checked when the pipeline is built (train start-up)."""
    import shutil

    bad = tmp_path / "flipped"
    shutil.copytree(shards, bad)
    shard = bad / "train-00002-of-00003.array_record"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, so only a checksum can tell
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"split 'train' fails verification at start-up: .*"
                                        r"train-00002-of-00003.array_record fails its sha256"):
        build_pipeline(bad, CFG, process_index=0, process_count=1)
    skip = dataclasses.replace(CFG, skip_corrupt=True)
    build_pipeline(bad, skip, process_index=0, process_count=1)  # logged; bad records skipped when read
    assert "fails verification" in caplog.text
    build_pipeline(bad, CFG, process_index=0, process_count=1, verify=False)  # opt out: fails when read


def test_shards_of_another_tokenizer_or_vocabulary_fail_at_build(shards, tmp_path):
    from mm_jax.shards import text_identity

    text = text_identity(vocab_identity="fake:fake-v1", config_identity="all-MiniLM-L6-v2/S8/D384",
                         max_tokens=8)
    build_pipeline(shards, CFG, process_index=0, process_count=1, tokenizer_identity=sf.FAKE_IDENTITY,
                   text_identity=text)
    with pytest.raises(DataError, match=r"tokenizer.fsq_levels: shards have \[5, 5, 5\], expected \[8, 8"):
        build_pipeline(shards, CFG, process_index=0, process_count=1,
                       tokenizer_identity={"fsq_levels": [8, 8, 8, 5, 5, 5]})
    with pytest.raises(DataError, match="text.vocab_identity: shards have 'fake:fake-v1', expected 'x'"):
        build_pipeline(shards, CFG, process_index=0, process_count=1,
                       text_identity={**text, "vocab_identity": "x"})
    # Codes outside the manifest's codebook (a mislabelled manifest) are named at read time.
    sf.make_shards(tmp_path, num_shards=1, encode_fn=lambda seqs: [c + 100 for c in sf.fake_encode(seqs)])
    with pytest.raises(DataError, match="record .* of shard .*train-00000-of-00001.array_record holds motion "
                                        "code .*outside the manifest's codebook of 125"):
        next(build_pipeline(tmp_path, CFG, process_index=0, process_count=1).iterator())


def test_config_errors(shards):
    with pytest.raises(ConfigError, match="global_batch_size=6 is not divisible by process_count=4"):
        build_pipeline(shards, CFG, process_index=0, process_count=4)
    with pytest.raises(ConfigError, match="max_text_tokens=5 is below the shards' caption budget 8"):
        build_pipeline(shards, dataclasses.replace(CFG, max_text_tokens=5), process_index=0, process_count=1)
    with pytest.raises(ConfigError, match="fewer than one batch of 64"):
        build_pipeline(shards, dataclasses.replace(CFG, global_batch_size=64), process_index=0,
                       process_count=1)
    with pytest.raises(ConfigError, match="process_index=2"):
        build_pipeline(shards, CFG, process_index=2, process_count=2)
    with pytest.raises(ConfigError, match="text_dropout=1.5"):
        PipelineConfig(text_dropout=1.5)
    with pytest.raises(ConfigError, match="max_motion_tokens=2"):
        PipelineConfig(max_motion_tokens=2)
    with pytest.raises(ConfigError, match="unknown pipeline preset 'huge'"):
        preset("huge")
    with pytest.raises(DataError, match="no split 'val'"):
        build_pipeline(shards, CFG, split="val", process_index=0, process_count=1)


def test_global_batch_single_process(shards):
    import jax
    from jax.sharding import PartitionSpec

    mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    local = next(build_pipeline(shards, CFG).iterator())
    out = global_batch(local, mesh, PartitionSpec("data"))
    assert out.keys() == local.keys()
    for k in local:
        assert out[k].shape == local[k].shape and np.array_equal(np.asarray(out[k]), local[k])
    assert out["text_ids"].sharding.spec == PartitionSpec("data", None)


# ----------------------------------------------------------------------------- multi-process (slow)

def _run_worker(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    worker = pathlib.Path(__file__).with_name("pipeline_worker.py")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(worker.parent.parent)}
    return subprocess.run([sys.executable, str(worker), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.slow
def test_mp_prefetch_workers_resume_exactly(shards):
    res = _run_worker("mp", str(shards))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "MP_OK" in res.stdout


@pytest.mark.slow
def test_two_real_processes_global_batch(shards, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = pathlib.Path(__file__).with_name("pipeline_worker.py")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(worker.parent.parent)}
    procs = [subprocess.Popen([sys.executable, str(worker), "dist", str(shards), str(port), str(i),
                               str(tmp_path / f"keys{i}.npy")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    keys = [np.load(tmp_path / f"keys{i}.npy") for i in range(2)]
    assert not set(keys[0].tolist()) & set(keys[1].tolist())
    assert all("DIST_OK" in out for out, _ in outs)
