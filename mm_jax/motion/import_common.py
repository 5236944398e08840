"""What the real-data importers share: captions, splits, features and the report (stage: motion I/O).

The importers (:mod:`~mm_jax.motion.import_272`, :mod:`~mm_jax.motion.import_smpl`,
:mod:`~mm_jax.motion.import_bvh`) each turn a source into :class:`Clip` s, one
per input, and hand them to :func:`write_dataset`, which streams them into a
data set (:class:`~mm_jax.motion.synth.storage.DatasetWriter`: features,
sequences, train/val/test splits, train-split stats) and builds the import
report (:class:`ImportReport`), stored in ``meta.json`` under
``"import_report"`` and returned.

Captions (:func:`read_captions`): a ``.txt`` file, one caption per line; a
HumanML3D-style line ``caption#tokens#start#end`` keeps the part before the
first ``#`` (its start/end times are not used: the caption stands for the
whole clip; such lines are counted); blank lines and repeats are dropped. A
clip without captions is skipped unless ``allow_uncaptioned``; a caption file
that is not UTF-8 skips its clip (kind ``bad caption file``, the file named).

Splits: a given split wins; otherwise :func:`split_of` hashes the clip id
(CRC-32): 90% train, 5% val, 5% test, the same for the same id every time.
"""

from __future__ import annotations

import filecmp
import io
import json
import logging
import pathlib
import shutil
import zipfile
import zlib
from typing import Callable, NamedTuple, Sequence, TypeVar

import numpy as np

from mm_jax.errors import DataError
from mm_jax.motion import features as mfeat
from mm_jax.motion.synth.storage import check_target, DatasetWriter

log = logging.getLogger(__name__)
Item = TypeVar("Item")


class SkipClip(DataError):
    """A clip an importer leaves out; ``kind`` names the reason class in the report."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class Clip(NamedTuple):
    """One imported clip, ready for the data set.

    Attributes:
      id: the sequence id (the source's name, relative path without suffix).
      features: [T, 272] float32.
      captions: the clip's captions (may be empty with allow_uncaptioned).
      source: the file it came from.
      source_fps: the source's frame rate (None: not stated by the source).
      fps: the features' frame rate (30).
      floor_shift: metres subtracted from y by the floor step (None: not applied, e.g. copied features).
      split: a given split, or None to hash the id.
    """

    id: str
    features: np.ndarray
    captions: list[str]
    source: str
    source_fps: float | None
    fps: float
    floor_shift: float | None
    split: str | None = None


def read_captions(path: pathlib.Path) -> tuple[list[str], int]:
    """(captions, number of lines with a ``#`` tail) of a caption file ([] if it does not exist).

    Raises:
      SkipClip: ("bad caption file") the file is not UTF-8 text; the message
        names the file and the first bad byte. The importers skip that clip,
        report it and go on (a guessed decoding would store garbled captions).
    """
    if not path.is_file():
        return [], 0
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a leading byte-order mark is not part of a caption
    except UnicodeDecodeError as e:
        raise SkipClip("bad caption file", f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                                           f"{e.start}); re-save it as UTF-8") from None
    out, tagged = [], 0
    for line in text.splitlines():
        text, sep, _ = line.partition("#")
        tagged += bool(sep)
        text = " ".join(text.split())
        if text and text not in out:
            out.append(text)
    return out, tagged


def require_captions(captions: list[str], path: pathlib.Path, allow_uncaptioned: bool) -> None:
    """SkipClip("no captions") unless the clip has captions or uncaptioned clips are allowed."""
    if not captions and not allow_uncaptioned:
        raise SkipClip("no captions", f"no captions in {path} (pass --allow-uncaptioned to import it anyway)")


def split_of(seq_id: str) -> str:
    """A stable split from the clip id: 90% train, 5% val, 5% test."""
    bucket = zlib.crc32(seq_id.encode()) % 20
    return "val" if bucket == 0 else "test" if bucket == 1 else "train"


def joint_features(joints: np.ndarray, local_rot: np.ndarray) -> np.ndarray:
    """``features.features_from_joints`` -> [T, 272] float32, T padded to a power of two >= 64.

    Padding repeats the last frame, so clips of many lengths share a few compilations and the
    values are unchanged (frame 0 and the lowest y over the clip stay the same; a frame's features
    depend only on it and the frame before).
    """

    t = len(joints)
    pad = max(64, 1 << (t - 1).bit_length()) - t
    pos = np.concatenate([joints, np.repeat(joints[-1:], pad, 0)]).astype(np.float32)
    rot = np.concatenate([local_rot, np.repeat(local_rot[-1:], pad, 0)]).astype(np.float32)
    return np.asarray(mfeat.features_from_joints(pos, rot))[:t]


def fps_key(src: float | None, dst: float) -> str:
    """``"60->30"`` (``"?->30"`` when the source states no rate)."""
    return f"{'?' if src is None else f'{src:g}'}->{dst:g}"


class ImportReport:
    """Counts what an import did; :meth:`as_dict` is the report (docs/data_format.md)."""

    def __init__(self, importer: str, source: str) -> None:
        self.importer, self.source = importer, source
        self.clips_in = 0
        self.skipped: list[dict] = []
        self.fps: dict[str, int] = {}
        self.floors: list[float] = []
        self.frames = 0
        self.extra: dict = {}  # importer-specific fields (a callable is called when the report is made)

    def skip(self, clip: str, kind: str, reason: str) -> None:
        log.warning("skipping %s: %s", clip, reason)
        self.skipped.append({"clip": clip, "kind": kind, "reason": reason})

    def add(self, clip: Clip) -> None:
        key = fps_key(clip.source_fps, clip.fps)
        self.fps[key] = self.fps.get(key, 0) + 1
        if clip.source_fps is not None and abs(clip.source_fps - clip.fps) > 1e-3 * clip.fps:
            log.debug("%s: resampled %s fps (%d frames at 30 fps)", clip.id, key, len(clip.features))
        if clip.floor_shift is not None:
            self.floors.append(clip.floor_shift)
            log.debug("%s: floor step subtracted %.4f m from y", clip.id, clip.floor_shift)
        self.frames += len(clip.features)

    def as_dict(self, records: Sequence[dict], out: str) -> dict:
        kinds: dict[str, int] = {}
        for s in self.skipped:
            kinds[s["kind"]] = kinds.get(s["kind"], 0) + 1
        floor = None
        if self.floors:
            f = np.asarray(self.floors)
            floor = {"min": round(float(f.min()), 6), "mean": round(float(f.mean()), 6),
                     "max": round(float(f.max()), 6), "clips": len(f)}
        splits = {s: sum(r["split"] == s for r in records) for s in ("train", "val", "test")}
        extra = {k: v() if callable(v) else v for k, v in self.extra.items()}
        return dict(extra, importer=self.importer, source=self.source, out=out,
                    clips_in=self.clips_in, imported=len(records), frames=self.frames,
                    skipped=self.skipped, skipped_by_kind=kinds, fps_conversions=dict(sorted(self.fps.items())),
                    floor_shift_m=floor, splits=splits)


def log_summary(report: dict) -> None:
    """The import's frame-rate conversions and floor shift, said at INFO (never silent)."""
    log.info("imported %d of %d clips (%d frames) into %s; skipped %d %s", report["imported"],
             report["clips_in"], report["frames"], report["out"], len(report["skipped"]),
             report["skipped_by_kind"] or "")
    resampled = {k: n for k, n in report["fps_conversions"].items() if k.split("->")[0] != k.split("->")[1]}
    if resampled:
        log.info("frame rates converted (clips): %s", resampled)
    if report["floor_shift_m"]:
        f = report["floor_shift_m"]
        log.info("floor step: subtracted each clip's lowest joint height, min %.3f / mean %.3f / max %.3f m",
                 f["min"], f["mean"], f["max"])


def save_npz(path: pathlib.Path, **arrays: np.ndarray) -> None:
    """An .npz with fixed zip timestamps (same arrays, same bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def write_dataset(
    items: Sequence[Item],
    load: Callable[[Item], Clip],
    label: Callable[[Item], str],
    out_dir: str | pathlib.Path,
    *,
    report: ImportReport,
    meta: dict | None = None,
    extra_files: dict[str, Callable[[pathlib.Path], None]] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """Loads every item into a data set at ``out_dir``; returns the import report.

    Args:
      items: the inputs (files, clip folders, names).
      load: item -> :class:`Clip`; a DataError (SkipClip with its kind) skips the item.
      label: item -> its name in the report.
      out_dir: the data set directory.
      report: the report to fill (``report.extra`` holds importer-specific fields).
      meta: extra meta.json fields.
      extra_files: file name -> writer(path), written into the data set.
      progress: ``progress(done, total, label)`` after each item.
      overwrite: replace a non-empty ``out_dir``. Without it, ``out_dir`` may
        only hold an earlier import of the same source by the same importer:
        the import is built beside it and compared file by file; identical,
        ``out_dir`` is left as it is (a re-run is not an error).

    Raises:
      DataError: no item imported (the message names the first reasons), or
        ``out_dir`` is not empty and holds another data set (pass overwrite).
    """

    out_dir = pathlib.Path(out_dir)
    stage = _reimport_stage(out_dir, report, overwrite)
    writer = DatasetWriter(out_dir if stage is None else stage, lock_for=out_dir)
    try:
        for k, item in enumerate(items):
            report.clips_in += 1
            name = label(item)
            try:
                clip = load(item)
            except DataError as e:  # FormatError and SkipClip included
                report.skip(name, getattr(e, "kind", "invalid"), str(e))
            else:
                writer.add(_record(clip), clip.features)
                report.add(clip)
            if progress is not None:
                progress(k + 1, len(items), name)
        if not writer.records:
            reasons = [f"{s['clip']}: {s['reason']}" for s in report.skipped[:3]]
            raise DataError(f"none of the {len(items)} clips at {report.source!r} imported: {reasons}")
        result = report.as_dict(writer.records, str(out_dir))
        for name, write in (extra_files or {}).items():
            write(writer.tmp / name)
        writer.finish(dict(meta or {}, source=report.source, importer=report.importer,
                           fps=30.0, import_report=result), overwrite=overwrite or stage is not None)
    except BaseException:
        writer.abort()
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        raise
    if stage is not None:
        _settle_reimport(stage, out_dir)
    log_summary(result)
    return result


def _reimport_stage(out_dir: pathlib.Path, report: ImportReport, overwrite: bool) -> pathlib.Path | None:
    """Where to build an import that may repeat the one in ``out_dir`` (None: build in place).

    Raises:
      DataError: ``out_dir`` is not empty, ``overwrite`` is false and it does
        not hold an import of the same source by the same importer.
    """

    try:
        check_target(out_dir, overwrite)
        return None
    except DataError:
        try:
            meta = json.loads((out_dir / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = None
        if not isinstance(meta, dict) or (meta.get("importer"), meta.get("source")) != (report.importer,
                                                                                        report.source):
            raise
    return out_dir.parent / f".{out_dir.name}.reimport"


def _settle_reimport(stage: pathlib.Path, out_dir: pathlib.Path) -> None:
    """Keeps ``out_dir`` when ``stage`` holds the same files; else DataError (pass overwrite)."""
    ours = sorted(p.relative_to(stage) for p in stage.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(out_dir) for p in out_dir.rglob("*") if p.is_file())
    if ours != theirs:
        differ = sorted(set(map(str, ours)) ^ set(map(str, theirs)))[:3]
        why = f"files present in only one: {differ}"
    else:
        differ = [str(r) for r in ours if not filecmp.cmp(stage / r, out_dir / r, shallow=False)][:3]
        why = f"these files differ: {differ}"
    shutil.rmtree(stage, ignore_errors=True)
    if differ:
        raise DataError(f"{out_dir} is not empty and holds a different import of the same source ({why}); "
                        "pass overwrite=True (--overwrite) to replace it, or choose another directory")
    log.info("%s already holds this identical data set; re-import left it unchanged", out_dir)


def _record(clip: Clip) -> dict:
    rec = {"id": clip.id, "captions": clip.captions, "source": clip.source, "fps": clip.fps,
           "source_fps": clip.source_fps, "split": clip.split or split_of(clip.id)}
    if clip.floor_shift is not None:
        rec["floor_shift_m"] = round(clip.floor_shift, 6)
    return rec


def discover(root: pathlib.Path, match: Callable[[pathlib.Path], bool]) -> list[pathlib.Path]:
    """Sorted paths under ``root`` (recursively) for which ``match`` holds."""
    return sorted(p for p in root.rglob("*") if match(p))


def clip_id(path: pathlib.Path, root: pathlib.Path, *, strip_suffix: bool = True) -> str:
    """The clip id: ``path`` relative to ``root`` (posix), or its name when ``path`` is ``root``;
    without the file suffix when ``strip_suffix``."""
    rel = path.relative_to(root) if root.is_dir() and path != root else pathlib.Path(path.name)
    return (rel.with_suffix("") if strip_suffix else rel).as_posix()
