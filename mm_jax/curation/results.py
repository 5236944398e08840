"""Per-video and per-shot results on disk, and the data set built from them (stage: curation).

Layout of a run's ``--out`` directory::

    shots/<video stem>.json           stage 1 (``shots.to_json``), one per video
    results/<video stem>/shot007.json  stages 2-6 of one shot (``process.process_shot``)
    results/<video stem>/shot007.npz   its kept clips' features, keyed by clip index "c0", "c1"...
    timing/<video stem>/shot007.json   seconds per stage (not part of the result: it varies)
    timing/shards.json                 records tokenized and seconds (with a tokenizer)
    dataset/                           the motion-caption data set (docs/data_format.md)
    shards/                            its training shards (with a tokenizer: curation.tokenize)
    funnel.md, funnel.png, funnel.json the report (:mod:`mm_jax.curation.report`)

Every file is written once, atomically (``atomic.write_atomic``); a shot's
``.npz`` is written before its ``.json``, so an existing ``.json`` means the
shot is done and a rerun skips it. JSON is written with sorted keys and the
``.npz`` with fixed zip timestamps, so the same inputs give the same bytes
whichever runner (local or Beam) wrote them.
"""

from __future__ import annotations

import io
import json
import pathlib

import numpy as np

from mm_jax.atomic import write_atomic
from mm_jax.curation.process import ShotTask
from mm_jax.errors import DataError
from mm_jax.motion import import_common as ic

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def dumps(obj) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1) + "\n").encode()


def write_json(path: pathlib.Path, obj) -> None:
    data = dumps(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: f.write(data), needed=len(data))


def read_json(path: pathlib.Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable result ({e})") from None


def videos(src: str | pathlib.Path) -> list[pathlib.Path]:
    """The video files of a directory (sorted), or the one file given."""
    src = pathlib.Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise DataError(f"{src}: no such video file or directory")
    found = sorted(p for p in src.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not found:
        raise DataError(f"{src}: no videos ({', '.join(VIDEO_SUFFIXES)})")
    return found


def shots_path(out: pathlib.Path, video: pathlib.Path) -> pathlib.Path:
    return out / "shots" / f"{video.stem}.json"


def result_paths(out: pathlib.Path, task: ShotTask) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    """(result .json, features .npz, timing .json) of one shot."""
    return label_paths(out, f"{task.name}/shot{task.index:03d}")


def label_paths(out: pathlib.Path, label: str) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    """:func:`result_paths` of the shot labelled ``"<video>/shotNNN"`` (a clip id's first two parts)."""
    return out / "results" / f"{label}.json", out / "results" / f"{label}.npz", out / "timing" / f"{label}.json"


def is_done(out: pathlib.Path, task: ShotTask) -> bool:
    return result_paths(out, task)[0].is_file()


def write_result(out: pathlib.Path, task: ShotTask, result: dict, feats: dict, seconds: dict) -> None:
    """Writes one shot's features, then its result (the done marker), then its timing."""
    res, npz, timing = result_paths(out, task)
    res.parent.mkdir(parents=True, exist_ok=True)
    keyed = {f"c{i}": feats[c["id"]] for i, c in enumerate(result["clips"])}
    buf = io.BytesIO()
    ic.save_npz(buf, **keyed)
    data = buf.getvalue()
    write_atomic(npz, lambda f: f.write(data), needed=len(data))
    write_json(res, result)
    write_json(timing, {k: round(v, 6) for k, v in seconds.items()})


def load_results(out: pathlib.Path) -> list[dict]:
    """Every shot result of a run, sorted by video and shot."""
    return [read_json(p) for p in sorted((out / "results").glob("*/shot*.json"))]


def assemble_dataset(out: pathlib.Path, *, source: str, overwrite: bool = False) -> dict:
    """Writes ``out/dataset`` from the kept clips of every shot result; returns the import report."""
    items = []
    for path in sorted((out / "results").glob("*/shot*.json")):
        result = read_json(path)
        items += [(path.with_suffix(".npz"), i, clip) for i, clip in enumerate(result["clips"])]
    if not items:
        raise DataError(f"no clip passed every stage in {out}; see {out / 'funnel.md'}")

    def load(item) -> ic.Clip:
        npz, i, clip = item
        with np.load(npz, allow_pickle=False) as z:
            feats = z[f"c{i}"]
        return ic.Clip(id=clip["id"], features=feats, captions=clip["captions"], source=clip["id"].split("/")[0],
                       source_fps=None, fps=30.0, floor_shift=None)

    report = ic.ImportReport("curate", source)
    return ic.write_dataset(items, load, lambda it: it[2]["id"], out / "dataset", report=report,
                            meta={"curation": "mm_jax.curation"}, overwrite=overwrite)
