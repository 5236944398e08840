"""The on-disk motion-caption data set: writer and reader (stage: data).

A data set is a directory (see docs/data_format.md) holding

* ``features.npy``  float32 ``[total_frames, 272]``, every sequence's features concatenated,
* ``sequences.jsonl`` one JSON object per sequence: ``id``, ``offset``, ``length``,
  ``captions`` (>= 1; >= 3 for synthetic data), ``split`` and source-specific keys
  (``primitives`` for synthetic data),
* ``split.json``     ``{"train": [ids], "val": [ids], "test": [ids]}``,
* ``stats.npz``      the train split's feature mean/std (:class:`Normalizer`),
* ``meta.json``      format version, generator, config, counts, held-out lists.

:class:`DatasetWriter` streams features to disk (nothing is held in memory),
writes into ``.<name>.partial`` next to the target and renames it into place
at the end, so an interrupted run never leaves a directory that looks
complete. A full disk (ENOSPC/EDQUOT) deletes the partial directory and
raises :class:`~mm_jax.errors.DiskFullError` naming it, the free space and
the space needed; a data set already at the target is untouched (replacing
one is two renames, undone if the second fails). JSON is written with sorted keys and fixed separators, and the
``.npz`` with fixed zip timestamps, so the same inputs give the same bytes.
:func:`load_dataset` validates every file and raises :class:`FormatError`
naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import pathlib
import shutil
import zipfile
from typing import Any

import numpy as np

from mm_jax import runlock
from mm_jax.errors import DataError, DiskFullError, FormatError
from mm_jax.motion.features import FEATURE_DIM, NORMALIZER_GROUPS
from mm_jax.motion.normalize import Normalizer
from mm_jax.motion.validate import validate_features

# 2: the reference 272-d convention (RECIPE.md); 1: 6D from columns, velocities of world joints.
FORMAT_VERSION = 2
FILES = ("features.npy", "sequences.jsonl", "split.json", "stats.npz", "meta.json")
SPLITS = ("train", "val", "test")
_HEADER_BYTES = 128  # reserved .npy header (magic + header), rewritten with the final shape
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
log = logging.getLogger(__name__)


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys, fixed separators) for byte-identical files."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _npy_header(rows: int, width: int) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": (rows, width)}
    )
    head = buf.getvalue()
    if len(head) > _HEADER_BYTES:
        raise DataError(f"npy header for shape ({rows}, {width}) does not fit {_HEADER_BYTES} bytes")
    # Pad the header dict with spaces before its newline so the data starts at the reserved offset.
    body = head[10:-1] + b" " * (_HEADER_BYTES - len(head)) + b"\n"
    return head[:8] + np.array(len(body), "<u2").tobytes() + body


def _freeze_npz(path: pathlib.Path) -> None:
    """Rewrites a zip (.npz) with fixed timestamps so its bytes depend only on its contents."""
    with zipfile.ZipFile(path) as zf:
        items = [(info.filename, zf.read(info.filename)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in items:
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


class DatasetWriter:
    """Streams sequences into a new data set directory (use as a context manager or call finish())."""

    def __init__(self, out_dir: str | pathlib.Path, *, width: int = FEATURE_DIM,
                 lock_for: str | pathlib.Path | None = None) -> None:
        self.out_dir = pathlib.Path(out_dir).absolute()
        self.tmp = self.out_dir.parent / f".{self.out_dir.name}.partial"
        # One writer per target (synth, every importer, convert): .NAME.lock beside it, held until
        # finish() or abort(); a second writer fails at once instead of deleting this one's .partial.
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(runlock.lock_target(lock_for or self.out_dir))  # lock_for: a staging dir's target
        try:
            self._open(width)
        except BaseException:
            self._lock.close()
            raise

    def _open(self, width: int) -> None:
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.width = width
        self.rows = 0
        self.bytes = _HEADER_BYTES  # written so far (features and records), for a full disk's message
        self.records: list[dict] = []
        self._feat = self._seqs = None
        with self._space():
            self.tmp.mkdir(parents=True)
            self._feat = open(self.tmp / "features.npy", "wb")
            self._feat.write(b"\0" * _HEADER_BYTES)
            self._seqs = open(self.tmp / "sequences.jsonl", "w", encoding="ascii", newline="\n")

    def add(self, record: dict, features: np.ndarray) -> dict:
        """Appends one sequence; ``record`` gets ``offset`` and ``length``; returns the stored record."""
        # The one feature check, before any cast: integer or boolean arrays are refused, not converted.
        checked = validate_features(features, name=f"sequence {record.get('id')!r}", width=self.width)
        feats = np.ascontiguousarray(checked, dtype="<f4")
        if checked.dtype.itemsize > 4 and not np.isfinite(feats).all():  # float64 beyond float32's range
            raise DataError(f"sequence {record.get('id')!r}: features overflow float32")
        rec = dict(record, offset=self.rows, length=int(feats.shape[0]))
        line = dumps(rec) + "\n"
        with self._space(pending=feats.nbytes + len(line)):
            self._feat.write(feats.tobytes())
            self._seqs.write(line)
        self.rows += feats.shape[0]
        self.bytes += feats.nbytes + len(line)
        self.records.append(rec)
        return rec

    def finish(self, meta: dict, *, overwrite: bool = False) -> pathlib.Path:
        """Writes split/stats/meta, then moves the directory into place.

        Raises:
          DiskFullError: the disk filled up (the partial directory is deleted,
            the target untouched).
        """
        with self._space():
            return self._finish(meta, overwrite)

    def _finish(self, meta: dict, overwrite: bool) -> pathlib.Path:
        self._feat.seek(0)
        self._feat.write(_npy_header(self.rows, self.width))
        self._feat.close()
        self._seqs.close()
        split = {s: [r["id"] for r in self.records if r["split"] == s] for s in SPLITS}
        (self.tmp / "split.json").write_text(dumps(split) + "\n")
        feats = np.load(self.tmp / "features.npy", mmap_mode="r")
        fit_split = "train" if split["train"] else "all"
        chosen = [r for r in self.records if fit_split == "all" or r["split"] == "train"]
        norm = Normalizer.fit((np.asarray(feats[r["offset"] : r["offset"] + r["length"]]) for r in chosen),
                              groups=NORMALIZER_GROUPS)
        del feats
        norm.save(self.tmp / "stats.npz")
        _freeze_npz(self.tmp / "stats.npz")
        meta = dict(
            meta,
            format_version=FORMAT_VERSION,
            feature_dim=self.width,
            total_frames=self.rows,
            num=len(self.records),
            counts={s: len(v) for s, v in split.items()},
            stats_split=fit_split,
        )
        (self.tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n")
        _move_into_place(self.tmp, self.out_dir, overwrite)
        self._lock.close()
        return self.out_dir

    def abort(self) -> None:
        """Closes and deletes the partial directory; never raises (it runs inside ``except``)."""
        for fh in (self._feat, self._seqs):
            try:
                if fh is not None and not fh.closed:
                    fh.close()  # on a full disk the final flush fails; the file is closed all the same
            except OSError as e:
                log.debug("closing %s during abort: %s", getattr(fh, "name", fh), e)
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.tmp.exists():
            log.warning("could not delete the partial data set %s; delete it by hand", self.tmp)
        self._lock.close()

    @contextlib.contextmanager
    def _space(self, pending: int = 0):
        """Turns a full disk into DiskFullError, after deleting the partial directory."""
        try:
            yield
        except OSError as e:
            if e.errno not in _FULL_ERRNOS:
                raise
            self.abort()
            kept = f"; the data set already at {self.out_dir} is untouched" if self.out_dir.exists() else ""
            raise DiskFullError.of(self.tmp, e, needed=self.bytes + pending, note=(
                f"deleted the partial data set (the space needed is a lower bound: it was still growing){kept}"
            )) from None


def check_target(out_dir: pathlib.Path, overwrite: bool) -> None:
    """DataError if ``out_dir`` is a non-empty directory (or a file) and ``overwrite`` is false."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise DataError(
            f"{out_dir} is not empty and holds a different data set; pass overwrite=True "
            "(--overwrite) to replace it, or choose another directory"
        )


def _move_into_place(tmp: pathlib.Path, out_dir: pathlib.Path, overwrite: bool) -> None:
    check_target(out_dir, overwrite)
    old = out_dir.parent / f".{out_dir.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if out_dir.exists():
        out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except OSError:
        if old.exists() and not out_dir.exists():
            old.rename(out_dir)  # the previous data set stays where it was
        raise
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def resolve_split(sizes: dict[str, int], split: str | None, *, preferred: str = "test",
                  where: str = "the data set") -> str:
    """The split to read: ``split`` if given, else ``preferred`` or the first non-empty of test, val, train.

    Args:
      sizes: sequences per split name.
      split: an explicit choice (it must hold sequences), or None for the default.
      preferred: the split a command reads by default.
      where: names the data in error messages.

    Raises:
      DataError: an unknown or empty ``split``, or no split with sequences; the
        message lists only the splits that hold sequences.
    """
    available = ", ".join(s for s, n in sizes.items() if n > 0) or "none"
    if split is not None:
        if sizes.get(split, 0) == 0:
            problem = "is empty" if split in sizes else "does not exist"
            raise DataError(f"split {split!r} of {where} {problem}; splits with sequences: {available}")
        return split
    for name in (preferred, "test", "val", "train"):
        if sizes.get(name, 0) > 0:
            return name
    raise DataError(f"{where} has no split with sequences (splits with sequences: {available})")


class Dataset:
    """A loaded data set (see :func:`load_dataset`).

    Attributes:
      path: the directory.
      features: memory-mapped float32 [total_frames, F].
      records: one dict per sequence, in file order.
      split: {"train": [ids], "val": [ids], "test": [ids]}.
      normalizer: the train split's :class:`Normalizer`.
      meta: the parsed meta.json.
    """

    def __init__(self, path, features, records, split, normalizer, meta) -> None:
        self.path = pathlib.Path(path)
        self.features = features
        self.records = records
        self.split = split
        self.normalizer = normalizer
        self.meta = meta
        self._index = {r["id"]: i for i, r in enumerate(records)}

    def __len__(self) -> int:
        return len(self.records)

    def ids(self, split: str | None = None) -> list[str]:
        """Sequence ids of one split (train/val/test), or all of them in file order."""
        if split is None:
            return [r["id"] for r in self.records]
        if split not in self.split:
            resolve_split(self.split_sizes(), split, where=str(self.path))  # raises, listing non-empty splits
        return list(self.split[split])

    def split_sizes(self) -> dict[str, int]:
        """Sequences per split, in train, val, test order."""
        return {name: len(self.split.get(name, ())) for name in SPLITS}

    def default_split(self, preferred: str = "test") -> str:
        """``preferred`` when it holds sequences, else the first non-empty of test, val, train.

        Imported data may lack a test (or val) split; commands that default to
        one read this and say which split they used.
        """
        return resolve_split(self.split_sizes(), None, preferred=preferred, where=str(self.path))

    def resolve_split(self, split: str | None, *, preferred: str = "test") -> str:
        """``split`` if given (DataError when it is empty), else :meth:`default_split` of ``preferred``."""
        return resolve_split(self.split_sizes(), split, preferred=preferred, where=str(self.path))

    def record(self, key: str | int) -> dict:
        """The record of a sequence by id or by index (file order)."""
        if isinstance(key, (int, np.integer)):
            if not -len(self.records) <= int(key) < len(self.records):
                raise DataError(f"sequence index {key} out of range; the data set has {len(self.records)}")
            return self.records[int(key)]
        if key not in self._index:
            raise DataError(f"unknown sequence id {key!r} in {self.path}")
        return self.records[self._index[key]]

    def sequence(self, key: str | int) -> np.ndarray:
        """Features [T, F] of a sequence (a read-only view of the memory map)."""
        rec = self.record(key)
        return self.features[rec["offset"] : rec["offset"] + rec["length"]]


def _read_json(path: pathlib.Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{path}: not valid JSON ({err})") from None


def _read_records(path: pathlib.Path, total: int) -> list[dict]:
    records = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: unreadable ({err})") from None
    for n, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise FormatError(f"{path}, line {n}: not valid JSON ({err})") from None
        missing = [k for k in ("id", "offset", "length", "captions") if k not in rec]
        if missing:
            raise FormatError(f"{path}, line {n}: missing key(s) {missing}")
        if not (0 <= rec["offset"] and rec["length"] >= 1 and rec["offset"] + rec["length"] <= total):
            raise FormatError(
                f"{path}, line {n} ({rec['id']}): frames [{rec['offset']}, "
                f"{rec['offset'] + rec['length']}) outside features.npy's {total} rows"
            )
        records.append(rec)
    if not records:
        raise FormatError(f"{path}: no sequences")
    return records


def load_dataset(data_dir: str | pathlib.Path, *, format_versions: tuple[int, ...] = (FORMAT_VERSION,)) -> Dataset:
    """Opens and validates a data set directory; FormatError names a missing or corrupt file.

    ``format_versions`` lists the versions accepted (only the converter reads older ones).
    """
    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise FormatError(f"{root}: no such data set directory")
    for name in FILES:
        if not (root / name).is_file():
            raise FormatError(f"{root / name}: missing (a data set needs {', '.join(FILES)})")
    meta = _read_json(root / "meta.json")
    if meta.get("format_version") not in format_versions:
        hint = ""
        if meta.get("format_version") == 1:
            hint = (f"; it was written with the old 272-d convention: convert it with "
                    f"`mm-jax data convert {root} --out NEW_DIR`")
        raise FormatError(
            f"{root / 'meta.json'}: format_version {meta.get('format_version')!r}, "
            f"this reader understands {FORMAT_VERSION}{hint}"
        )
    try:
        feats = np.load(root / "features.npy", mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:
        raise FormatError(f"{root / 'features.npy'}: not a readable .npy file ({err})") from None
    if feats.ndim != 2 or feats.shape[1] != FEATURE_DIM or feats.dtype != np.float32:
        raise FormatError(
            f"{root / 'features.npy'}: expected float32 [frames, {FEATURE_DIM}], "
            f"got {feats.dtype} {feats.shape}"
        )
    records = _read_records(root / "sequences.jsonl", feats.shape[0])
    split = _read_json(root / "split.json")
    ids = {r["id"] for r in records}
    if not isinstance(split, dict) or sorted(split) != sorted(SPLITS):
        raise FormatError(f"{root / 'split.json'}: expected keys {list(SPLITS)}")
    for name, members in split.items():
        unknown = [i for i in members if i not in ids]
        if unknown:
            raise FormatError(f"{root / 'split.json'}: split {name!r} names unknown id(s) {unknown[:3]}")
    norm = Normalizer.load(root / "stats.npz")
    if norm.dim != FEATURE_DIM:
        raise FormatError(f"{root / 'stats.npz'}: width {norm.dim}, expected {FEATURE_DIM}")
    return Dataset(root, feats, records, split, norm, meta)
