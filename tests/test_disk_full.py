"""A full disk (issue 13, item 7): writers clean up, name the space needed and keep the previous state.

The disk is simulated with an injected ``OSError(ENOSPC)``: a byte quota on
the files the dataset writer opens (the error surfaces where the kernel
gives it, including at the final flush inside ``close()``), and an
ArrayRecord writer that fails after a few records, as array_record's C++
writer does (a ``RuntimeError`` naming "No space left on device").
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import pathlib

import numpy as np
import pytest
import shards_fake as sf
from array_record.python.array_record_module import ArrayRecordWriter as _RealWriter

from mm_jax import atomic
from mm_jax.errors import DiskFullError
from mm_jax.motion.synth import storage
from mm_jax.shards import read_manifest, verify_shards


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _QuotaRaw(io.RawIOBase):
    """A raw file that takes ``quota[0]`` more bytes, then fails every write with ENOSPC."""

    def __init__(self, raw: io.FileIO, quota: list[int]):
        self.raw, self.quota = raw, quota

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.raw.seek(pos, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def write(self, b) -> int:
        if len(b) > self.quota[0]:
            raise _enospc()
        self.quota[0] -= len(b)
        return self.raw.write(b)

    def close(self) -> None:
        self.raw.close()
        super().close()


def _quota_open(quota: list[int]):
    """``open`` for the writer's module: writes go through a :class:`_QuotaRaw`, reads are untouched."""

    def fake(path, mode="r", buffering=-1, encoding=None, errors=None, newline=None):
        if "w" not in mode:
            return builtins.open(path, mode, buffering, encoding, errors, newline)
        buffered = io.BufferedWriter(_QuotaRaw(io.FileIO(path, "w"), quota))
        return buffered if "b" in mode else io.TextIOWrapper(buffered, encoding=encoding or "utf-8",
                                                             newline=newline)

    return fake


def _tree_digest(root: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _write_dataset(out: pathlib.Path, clips: int, frames: int = 50, *, overwrite: bool = False) -> pathlib.Path:
    rng = np.random.default_rng(clips)
    w = storage.DatasetWriter(out)
    try:
        for i in range(clips):
            w.add({"id": f"c{i}", "captions": ["a person walks"], "split": "train"},
                  rng.normal(size=(frames, 272)).astype(np.float32))
        w.finish({"generator": "test"}, overwrite=overwrite)
    except BaseException:
        w.abort()  # what data synth, the importers and convert do
        raise
    return out


# ----------------------------------------------------------------------------- data synth (DatasetWriter)

@pytest.mark.parametrize("quota", [30_000, 170_000, 326_600])  # first clip, fourth clip, last flush
def test_dataset_writer_on_a_full_disk_keeps_the_previous_data_set(tmp_path, monkeypatch, quota):
    out = _write_dataset(tmp_path / "data", clips=3)
    before = _tree_digest(out)
    monkeypatch.setattr(storage, "open", _quota_open([quota]), raising=False)
    with pytest.raises(DiskFullError) as info:
        _write_dataset(out, clips=6, overwrite=True)
    msg = str(info.value)
    assert str(tmp_path / ".data.partial") in msg and "MB free there" in msg and "MB needed" in msg
    assert "\n" not in msg and f"the data set already at {out} is untouched" in msg
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["data"]  # no .partial
    assert _tree_digest(out) == before
    assert len(storage.load_dataset(out)) == 3


def test_data_synth_on_a_full_disk_prints_one_line(tmp_path, monkeypatch, capsys):
    from mm_jax.cli import main

    monkeypatch.setattr(storage, "open", _quota_open([50_000]), raising=False)
    rc = main(["data", "synth", "--preset", "tiny", "--num", "4", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1, err
    assert err[0].startswith("mm-jax: error: DiskFullError: cannot write ") and "MB free there" in err[0]
    left = [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")]  # runlock's file stays
    assert left == []  # neither the data set nor a .partial directory


# ----------------------------------------------------------------------------- data tokenize (write_shards)

class _FullDiskWriter:
    """array_record's writer on a disk that fills after ``records`` records."""

    records = 5
    error = staticmethod(_enospc)

    def __init__(self, path: str, options: str):
        self._real, self._left, self._failed = _RealWriter(path, options), self.records, False
        self.path = path

    def write(self, data: bytes) -> None:
        if self._left == 0:
            self._failed = True
            raise self.error()
        self._left -= 1
        self._real.write(data)

    def close(self) -> None:
        self._real.close()
        if self._failed:  # the buffered chunk cannot be flushed either
            raise RuntimeError(f"write() failed: No space left on device; writing {self.path}")


@pytest.mark.parametrize("error", [_enospc, lambda: RuntimeError("write() failed: No space left on device")])
def test_write_shards_on_a_full_disk_keeps_the_previous_shards(tmp_path, monkeypatch, error):
    import array_record.python.array_record_module as arm

    ds = sf.FakeDataset(41)
    sf.make_shards(tmp_path, dataset=ds, num_shards=3)
    sf.make_shards(tmp_path, dataset=ds, num_shards=1, split="val")
    before = _tree_digest(tmp_path)
    monkeypatch.setattr(_FullDiskWriter, "error", staticmethod(error))
    monkeypatch.setattr(arm, "ArrayRecordWriter", _FullDiskWriter)
    with pytest.raises(DiskFullError) as info:  # re-tokenizing into 2 shards fills the disk
        sf.make_shards(tmp_path, dataset=ds, num_shards=2)
    msg = str(info.value)
    assert ".train-00000-of-00002.array_record.tmp-" in msg and "MB free there" in msg and "MB needed" in msg
    assert "the shards and manifest already in" in msg and "\n" not in msg
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]  # no temporary shard left
    after = {k: v for k, v in _tree_digest(tmp_path).items() if k != ".lock"}
    assert after == {k: v for k, v in before.items() if k != ".lock"}  # the old set, untouched
    assert verify_shards(tmp_path)["splits"]["train"]["num_shards"] == 3
    monkeypatch.undo()  # space freed: the next run completes
    assert sf.make_shards(tmp_path, dataset=ds, num_shards=2)["splits"]["train"]["num_shards"] == 2
    assert verify_shards(tmp_path)["ok"] and len(list(tmp_path.glob("train-*"))) == 2


def test_a_full_disk_at_the_manifest_keeps_the_previous_manifest(tmp_path, monkeypatch):
    ds = sf.FakeDataset(41)
    sf.make_shards(tmp_path, dataset=ds, num_shards=3)
    before = (tmp_path / "manifest.json").read_bytes()
    quota = _quota_open([10])  # a torn write of 10 bytes, then the disk is full

    def full_for_manifest(path, mode="r", *a, **k):
        if pathlib.Path(path).name.startswith(".manifest.json.tmp-"):
            return quota(path, mode, *a, **k)
        return builtins.open(path, mode, *a, **k)

    monkeypatch.setattr(atomic, "open", full_for_manifest, raising=False)
    with pytest.raises(DiskFullError, match=r"manifest.json.tmp-\d+: .*No space left.*MB free there, about "
                                            r"0.0 MB needed; deleted the temporary file"):
        sf.make_shards(tmp_path, dataset=ds, num_shards=1, split="val")
    assert (tmp_path / "manifest.json").read_bytes() == before
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    assert sorted(json.loads(before)["splits"]) == sorted(read_manifest(tmp_path)["splits"]) == ["train"]


# ----------------------------------------------------------------------------- tokenizer encode (.npz)

def test_tokenizer_encode_output_on_a_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    from mm_jax.tokenizer import data as tdata

    out = tmp_path / "tokens.npz"
    tdata.write_npz_atomic(out, tokens=np.arange(7, dtype=np.int32))
    before = out.read_bytes()
    monkeypatch.setattr(atomic, "open", _quota_open([1000]), raising=False)
    with pytest.raises(DiskFullError, match=r"tokens\.npz\.tmp: .*No space left.*MB free there, about 0\.1 MB "
                                            r"needed; deleted the temporary file"):
        tdata.write_npz_atomic(out, tokens=np.arange(30_011, dtype=np.int32))
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["tokens.npz"]
