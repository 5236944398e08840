"""Tests of mm_jax.shards: record schema, writer (atomic, resumable), verify, compatibility."""

from __future__ import annotations

import json
import os
import pathlib
import struct

import numpy as np
import pytest
import shards_fake as sf

from mm_jax.errors import ConfigError, DataError, FormatError, ShapeError
from mm_jax.shards import (ShardRecord, ShardSource, check_compatible, decode_record, encode_record,
                           inspect_shards, read_manifest, text_identity, verify_shards)
from mm_jax.shards.record import HEADER_SIZE, records_equal


def _record(codes, rows=None, captions=None) -> ShardRecord:
    rows = rows if rows is not None else (np.array([101, 7, 11, 102]), np.array([101, 13, 17, 19, 23, 102]))
    captions = captions if captions is not None else tuple(f"caption {i}" for i in range(len(rows)))
    return ShardRecord(id="m-0007", split="train", num_frames=53, motion_codes=np.asarray(codes),
                       caption_ids=tuple(rows), captions=tuple(captions))


# ----------------------------------------------------------------------------- record schema

@pytest.mark.parametrize("codes", [np.arange(13) * 5, np.array([0, 65535, 3]), np.array([70001, 5, 64002]),
                                   np.zeros((0,), int)])
def test_record_round_trip(codes):
    rec = _record(codes, captions=("a person walks", "ünïcode — caption"))
    out = decode_record(encode_record(rec))
    assert records_equal(rec, out)
    assert out.motion_codes.dtype == np.int32 and all(r.dtype == np.int32 for r in out.caption_ids)


def test_record_uses_uint16_when_ids_fit():
    small, big = encode_record(_record(np.arange(97))), encode_record(_record(np.arange(97) + 65536))
    assert len(big) - len(small) == 97 * 2


def test_record_corruption_is_detected():
    data = bytearray(encode_record(_record(np.arange(31))))
    for pos in (HEADER_SIZE + 3, len(data) - 1):
        bad = bytearray(data)
        bad[pos] ^= 0x40
        with pytest.raises(FormatError, match="crc32 mismatch"):
            decode_record(bytes(bad))
    with pytest.raises(FormatError, match="magic"):
        decode_record(b"XXXX" + bytes(data[4:]))
    v2 = bytearray(data)
    struct.pack_into("<H", v2, 4, 2)
    with pytest.raises(FormatError, match="version 2 is not supported"):
        decode_record(bytes(v2))
    with pytest.raises(FormatError, match="shorter than"):
        decode_record(bytes(data[:7]))


def test_record_rejects_bad_inputs():
    with pytest.raises(ShapeError, match="motion_codes"):
        encode_record(_record(np.zeros((3, 2), int)))
    with pytest.raises(DataError, match="2 captions but 1"):
        encode_record(_record([1], rows=(np.array([101, 102]),), captions=("a", "b")))
    with pytest.raises(DataError, match="negative"):
        encode_record(_record([1, -2]))


# ----------------------------------------------------------------------------- writer

def test_write_shards_contents(tmp_path):
    ds = sf.FakeDataset(41)
    manifest = sf.make_shards(tmp_path, dataset=ds, num_shards=3)
    entry = manifest["splits"]["train"]
    ids = sorted(ds.ids("train"))
    assert entry["num_records"] == len(ids) == sum(s["num_records"] for s in entry["shards"])
    assert [s["file"] for s in entry["shards"]] == [f"train-0000{i}-of-00003.array_record" for i in range(3)]
    assert manifest["tokenizer"]["identity"] == sf.FAKE_IDENTITY
    assert manifest["text"]["max_tokens"] == 8 and manifest["text"]["vocab_identity"] == "fake:fake-v1"
    assert read_manifest(tmp_path) == json.loads(json.dumps(manifest))
    src = ShardSource(tmp_path, "train")
    text = sf.FakeTextTokenizer(8)
    for key, sid in enumerate(ids):
        rec = src.record(key)
        assert rec.id == sid and rec.split == "train"
        assert rec.num_frames == len(ds.sequence(sid))
        np.testing.assert_array_equal(rec.motion_codes, sf.fake_encode([ds.sequence(sid)])[0])
        assert list(rec.captions) == ds.record(sid)["captions"]
        tok = text.encode(list(rec.captions))
        for p, row in enumerate(rec.caption_ids):
            np.testing.assert_array_equal(row, tok.ids[p][tok.mask[p]])
    all_captions = [c for i in ids for c in ds.record(i)["captions"]]
    assert entry["num_truncated"] == text.encode(all_captions).num_truncated
    assert verify_shards(tmp_path)["splits"]["train"]["num_records"] == len(ids)


def test_splits_share_a_directory_and_identities_must_match(tmp_path):
    ds = sf.FakeDataset(41)
    sf.make_shards(tmp_path, dataset=ds, num_shards=2)
    manifest = sf.make_shards(tmp_path, dataset=ds, num_shards=1, split="val")
    assert sorted(manifest["splits"]) == ["train", "val"]
    with pytest.raises(DataError, match=r"tokenizer.fsq_levels: shards have \[5, 5, 5\], expected \[8, 5\]"):
        sf.make_shards(tmp_path, dataset=ds, split="test", num_shards=1,
                       tokenizer_identity={**sf.FAKE_IDENTITY, "fsq_levels": [8, 5]})


def test_writer_bad_arguments(tmp_path):
    ds = sf.FakeDataset(11)
    with pytest.raises(ConfigError, match="num_shards=0"):
        sf.make_shards(tmp_path, dataset=ds, num_shards=0)
    with pytest.raises(ConfigError, match="num_shards=99 exceeds"):
        sf.make_shards(tmp_path, dataset=ds, num_shards=99)
    with pytest.raises(ConfigError, match="tokenizer_identity"):
        sf.make_shards(tmp_path, dataset=ds, tokenizer_identity=None)
    with pytest.raises(ShapeError, match="returned 1 code arrays"):
        sf.make_shards(tmp_path, dataset=ds, num_shards=1, encode_fn=lambda seqs: sf.fake_encode(seqs[:1]))
    assert not list(tmp_path.glob("*.array_record")) and not list(tmp_path.glob(".*tmp*"))


class _CountingEncoder:
    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = 0, fail_after

    def __call__(self, seqs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        return sf.fake_encode(seqs)


def test_writer_is_atomic_and_resumable(tmp_path):
    ds = sf.FakeDataset(41)
    killed = _CountingEncoder(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        sf.make_shards(tmp_path, dataset=ds, num_shards=4, encode_fn=killed)
    assert not (tmp_path / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.glob("*.array_record")) == [
        "train-00000-of-00004.array_record", "train-00001-of-00004.array_record"]
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]

    resumed = _CountingEncoder()
    done = []
    manifest = sf.make_shards(tmp_path, dataset=ds, num_shards=4, encode_fn=resumed,
                              progress=lambda n, total: done.append((n, total)))
    assert resumed.calls == 2 and done[-1] == (33, 33)
    again = _CountingEncoder()
    assert sf.make_shards(tmp_path, dataset=ds, num_shards=4, encode_fn=again) == manifest
    assert again.calls == 0

    shard = tmp_path / "train-00002-of-00004.array_record"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match="train-00002-of-00004.array_record fails its sha256"):
        verify_shards(tmp_path)
    fixer = _CountingEncoder()
    assert sf.make_shards(tmp_path, dataset=ds, num_shards=4, encode_fn=fixer) == manifest
    assert fixer.calls == 1
    assert verify_shards(tmp_path)["ok"]


def test_verify_names_truncated_shard_and_corrupt_record(tmp_path):
    sf.make_shards(tmp_path, num_shards=2)
    shard = tmp_path / "train-00001-of-00002.array_record"
    original = shard.read_bytes()
    shard.write_bytes(original[: len(original) // 2])
    with pytest.raises(DataError, match=r"train-00001-of-00002.array_record has \d+ bytes, the manifest"):
        verify_shards(tmp_path)
    with pytest.raises(DataError, match="train-00001-of-00002.array_record has"):
        ShardSource(tmp_path, "train")
    # A shard whose bytes match the manifest but one record was corrupt when written.
    shard.write_bytes(original)
    _rewrite_with_bad_record(shard, bad_index=5)
    with pytest.raises(DataError, match="corrupt record 5 of shard .*train-00001-of-00002.array_record"):
        verify_shards(tmp_path)
    src = ShardSource(tmp_path, "train")
    with pytest.raises(DataError, match="corrupt record 5 of shard .*train-00001"):
        src.record(_key_of(src, shard, 5))
    src.record(0)  # the other records still read


def _key_of(src: ShardSource, shard: pathlib.Path, index: int) -> int:
    return next(k for k in range(len(src)) if src.locate(k) == (str(shard), index))


def _rewrite_with_bad_record(shard: pathlib.Path, bad_index: int) -> None:
    """Rewrites ``shard`` with one record's payload flipped, and updates the manifest to match."""
    from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

    from mm_jax.shards.bookkeeping import file_sha256

    reader = ArrayRecordReader(str(shard))
    records = [reader.read([i])[0] for i in range(reader.num_records())]
    reader.close()
    bad = bytearray(records[bad_index])
    bad[-1] ^= 0x01
    records[bad_index] = bytes(bad)
    writer = ArrayRecordWriter(str(shard), "group_size:1")
    for r in records:
        writer.write(r)
    writer.close()
    path = shard.parent / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in manifest["splits"]["train"]["shards"]:
        if entry["file"] == shard.name:
            entry.update(bytes=shard.stat().st_size, sha256=file_sha256(shard))
    path.write_text(json.dumps(manifest))


def test_missing_manifest_and_split(tmp_path):
    with pytest.raises(DataError, match="manifest.json does not exist"):
        verify_shards(tmp_path)
    sf.make_shards(tmp_path, num_shards=1)
    with pytest.raises(DataError, match=r"no split 'val'; splits with records: \['train'\]"):
        ShardSource(tmp_path, "val")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(FormatError, match="not readable JSON"):
        read_manifest(tmp_path)


def test_inspect_shards(tmp_path):
    sf.make_shards(tmp_path, num_shards=2)
    report = inspect_shards(tmp_path, num_records=3)
    assert report["verify"]["ok"] and len(report["shards"]) == 2 and len(report["records"]) == 3
    first = report["records"][0]
    assert first["id"] == "s00000" and first["caption_ids"][0][0] == 101 and first["captions"]
    json.dumps(report)


# ----------------------------------------------------------------------------- compatibility

def test_check_compatible(tmp_path):
    manifest = sf.make_shards(tmp_path, num_shards=1)
    text = text_identity(vocab_identity="fake:fake-v1", config_identity="all-MiniLM-L6-v2/S8/D384",
                         max_tokens=8)
    check_compatible(manifest, tokenizer_identity=sf.FAKE_IDENTITY, text_identity=text)
    check_compatible(manifest, tokenizer_identity={"fsq_levels": (5, 5, 5)})
    with pytest.raises(DataError, match=r"tokenizer.step: shards have 7, expected 9"):
        check_compatible(manifest, tokenizer_identity={**sf.FAKE_IDENTITY, "step": 9})
    with pytest.raises(DataError, match="text.vocab_identity: shards have 'fake:fake-v1', expected 'other'"):
        check_compatible(manifest, text_identity={**text, "vocab_identity": "other"})
    with pytest.raises(DataError, match="text.max_tokens: shards have 8, expected 32"):
        check_compatible(manifest, text_identity={**text, "max_tokens": 32})


def test_real_text_tokenizer_path(tmp_path):
    """The default text path: tensorflow-text WordPiece over the MiniLM vocabulary."""
    pytest.importorskip("tensorflow_text")
    from mm_jax.shards import write_shards
    from mm_jax.text.tokenize import TextTokenizer

    ds = sf.FakeDataset(11)
    manifest = write_shards(ds, None, tmp_path, split="train", num_shards=1, text_max_tokens=9,
                            encode_fn=sf.fake_encode, tokenizer_identity=sf.FAKE_IDENTITY)
    tok = TextTokenizer.from_pretrained(max_tokens=9)
    assert manifest["text"]["vocab_identity"] == tok.vocab_identity()
    assert manifest["text"]["config_identity"] == "all-MiniLM-L6-v2/S9/D384"
    rec = ShardSource(tmp_path, "train").record(0)
    enc = tok.encode(list(rec.captions))
    want = [enc.ids[p][enc.mask[p]].tolist() for p in range(len(enc.ids))]
    assert [row.tolist() for row in rec.caption_ids] == want
    assert os.path.exists(tmp_path / ".parts" / "train-00000-of-00001.array_record.json")


@pytest.mark.slow
def test_real_tokenizer_path(tmp_path):
    """write_shards on a synthesized dataset with a tiny tokenizer trained for 2 steps."""
    synth = pytest.importorskip("mm_jax.motion.synth")
    if not hasattr(synth, "synthesize") or not hasattr(synth, "load_dataset"):
        pytest.skip("mm_jax.motion.synth has no synthesize/load_dataset yet")
    import dataclasses

    from mm_jax.shards import write_shards
    from mm_jax.tokenizer.artifact import encode_sequences, load_tokenizer
    from mm_jax.tokenizer.config import PRESETS as TOK_PRESETS
    from mm_jax.tokenizer.train import train

    data = tmp_path / "data"
    cfg = dataclasses.replace(synth.PRESETS["tiny"], seed=3)
    synth.synthesize(cfg, data)
    mcfg, tcfg = TOK_PRESETS["tiny"]
    tcfg = dataclasses.replace(tcfg, steps=2, batch_size=4, warmup_steps=1, val_every=2, ckpt_every=2)
    train(mcfg, tcfg, data, tmp_path / "tok")
    manifest = write_shards(data, tmp_path / "tok", tmp_path / "shards", split="train", num_shards=2)
    tok = load_tokenizer(tmp_path / "tok")
    assert manifest["tokenizer"]["identity"] == json.loads(json.dumps(tok.identity()))
    ds = synth.load_dataset(data)
    ids = sorted(ds.ids("train"))
    src = ShardSource(tmp_path / "shards", "train")
    want = encode_sequences(tok, [ds.sequence(ids[0])])[0]  # alone: the same codes as in its shard
    rec = src.record(0)
    assert rec.id == ids[0] and len(src) == len(ids)
    np.testing.assert_array_equal(rec.motion_codes, want)
    assert len(rec.motion_codes) == -(-rec.num_frames // tok.cfg.frames_per_token)
    assert verify_shards(tmp_path / "shards")["ok"]


# ----------------------------------------------------------------------------- leftovers (issue 13, item 9)

def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_tmp_shards_of_dead_writers_are_removed(tmp_path):
    """A writer killed with kill -9 leaves ``.NAME.tmp-PID`` files; the next run deletes them."""
    import subprocess
    import sys

    from mm_jax.shards.cleanup import remove_stale_tmp

    tmp_path.joinpath(".parts").mkdir()
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = tmp_path / f".train-00000-of-00002.array_record.tmp-{_dead_pid()}"
        dead_part = tmp_path / ".parts" / f".train-00000-of-00002.array_record.json.tmp-{_dead_pid()}"
        live = tmp_path / f".val-00000-of-00001.array_record.tmp-{live_proc.pid}"
        for path in (dead, dead_part, live):
            path.write_bytes(b"x" * 1000)
        # Without the directory's lock only the files of processes that are gone are stale.
        assert sorted(remove_stale_tmp(tmp_path)) == sorted([dead, dead_part]) and live.exists()
        dead.write_bytes(b"x" * 1000)
        # write_shards holds the lock (mm_jax.runlock): no other writer can be running, all are stale.
        sf.make_shards(tmp_path, num_shards=2)
        assert not dead.exists() and not live.exists()
    finally:
        live_proc.kill()
        live_proc.wait()
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    assert verify_shards(tmp_path)["ok"]


def test_retokenizing_with_another_num_shards_leaves_one_set(tmp_path):
    ds = sf.FakeDataset(41)
    sf.make_shards(tmp_path, dataset=ds, num_shards=3)
    sf.make_shards(tmp_path, dataset=ds, num_shards=1, split="val")
    manifest = sf.make_shards(tmp_path, dataset=ds, num_shards=2)
    assert sorted(p.name for p in tmp_path.glob("train-*")) == [
        "train-00000-of-00002.array_record", "train-00001-of-00002.array_record"]
    assert sorted(p.name for p in (tmp_path / ".parts").glob("train-*")) == [
        "train-00000-of-00002.array_record.json", "train-00001-of-00002.array_record.json"]
    assert (tmp_path / "val-00000-of-00001.array_record").exists()  # other splits are kept
    assert [s["file"] for s in manifest["splits"]["train"]["shards"]] == [
        "train-00000-of-00002.array_record", "train-00001-of-00002.array_record"]
    assert verify_shards(tmp_path)["splits"]["train"]["num_records"] == 33


def test_a_reader_never_sees_a_mixed_shard_set(tmp_path):
    """Re-tokenizing other data into the same shard names: while it runs, the listed set stays consistent."""
    sf.make_shards(tmp_path, dataset=sf.FakeDataset(41, seed=0), num_shards=3)
    seen = []

    def encode_and_look(seqs):
        try:  # what a reader opening the directory now would get
            seen.append(verify_shards(tmp_path, decode=False)["splits"].get("train", "withdrawn"))
        except DataError as e:
            seen.append(f"mixed: {e}")
        return sf.fake_encode(seqs)

    sf.make_shards(tmp_path, dataset=sf.FakeDataset(44), num_shards=3, encode_fn=encode_and_look)
    assert seen == ["withdrawn"] * 3, seen
    assert verify_shards(tmp_path)["ok"]


# ----------------------------------------------------------------------------- empty split (item 11)

def test_an_empty_split_is_recorded_and_named_on_read(tmp_path):
    from mm_jax.pipeline import PipelineConfig, build_pipeline

    ds = sf.FakeDataset(41)
    sf.make_shards(tmp_path, dataset=ds, num_shards=2)
    sf.make_shards(tmp_path, dataset=ds, num_shards=1, split="val")
    empty = sf.FakeDataset(8)  # ids s00000..s00007: all train
    manifest = sf.make_shards(tmp_path, dataset=empty, num_shards=1, split="test")
    assert manifest["splits"]["test"]["skipped"] == "empty"
    assert manifest["splits"]["test"]["num_records"] == 0 and manifest["splits"]["test"]["shards"] == []
    assert read_manifest(tmp_path)["splits"]["test"] == manifest["splits"]["test"]
    want = r"split 'test' of the shards holds no records \(it was empty when tokenized\); " \
           r"splits with records: \['train', 'val'\]"
    with pytest.raises(DataError, match=want):
        ShardSource(tmp_path, "test")
    with pytest.raises(DataError, match=want):
        build_pipeline(tmp_path, PipelineConfig(global_batch_size=2, max_text_tokens=8), split="test",
                       process_index=0, process_count=1)
    assert verify_shards(tmp_path)["splits"]["test"]["num_records"] == 0
    assert inspect_shards(tmp_path, num_records=1)["records"][0]["split"] == "train"
    # A split that held records and is now empty loses its old shards.
    sf.make_shards(tmp_path, dataset=empty, num_shards=1, split="val")
    assert not list(tmp_path.glob("val-*")) and read_manifest(tmp_path)["splits"]["val"]["skipped"] == "empty"
