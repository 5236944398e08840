"""Import a MotionMillion-layout folder of 272-d features (stage: motion I/O).

Input (RECIPE.md, MotionMillion's released layout)::

    DIR/motion_data/vector_272/<name>.npy    [T, 272] features, 30 fps (names may contain folders)
    DIR/texts/<name>.txt                     captions, one per line (``caption#tokens#start#end`` allowed)
    DIR/split/<version>/{train,val,test}.txt optional, one name per line
    DIR/mean_std/vector_272/{mean,std}.npy   optional, [272] each

Output: a data set (docs/data_format.md) and the import report. The features
are copied as they are (they already are the reference convention, so no
frame-rate conversion or floor step happens here). Each ``.npy`` must be 2-D,
272 wide, at least one frame, floating point and finite
(:func:`mm_jax.motion.validate.validate_features`); a bad one (also an empty,
text, object or ``.npz`` file) is skipped and named in the report.

Splits: with split files, the version ``split_version`` (default: the
lexically last folder under ``split/``, or ``split/`` itself when it holds the
files directly) decides; a name in none of its files gets the hashed split
(:func:`import_common.split_of`) and is counted. Without split files every
clip gets the hashed split. The source's mean/std are copied into the data
set as ``source_mean_std.npz`` (and named in ``meta.json``); the data set's
own ``stats.npz`` is still fitted on its train split.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Callable

import numpy as np

from mm_jax.errors import DataError, ShapeError
from mm_jax.motion import import_common as ic
from mm_jax.motion.features import FEATURE_DIM
from mm_jax.motion.loading import read_npy
from mm_jax.motion.validate import validate_features

log = logging.getLogger(__name__)
MOTION_DIR = pathlib.Path("motion_data", "vector_272")
SPLIT_FILES = ("train", "val", "test")


def split_versions(root: pathlib.Path) -> list[str]:
    """Split versions under ``root/split`` ("" when the files sit in ``split/`` itself), sorted."""
    base = root / "split"
    if not base.is_dir():
        return []
    found = [d.name for d in base.iterdir() if d.is_dir() and any((d / f"{s}.txt").is_file() for s in SPLIT_FILES)]
    if any((base / f"{s}.txt").is_file() for s in SPLIT_FILES):
        found.append("")
    return sorted(found)


def read_splits(root: pathlib.Path, version: str | None) -> tuple[dict[str, str], str | None, list[str]]:
    """({name: split}, the chosen version or None, all versions) from ``root/split``.

    Raises:
      DataError: ``version`` is given but does not exist (the message lists those that do).
    """
    versions = split_versions(root)
    if version is None and not versions:
        return {}, None, []
    if version is None:
        version = versions[-1]
    if version not in versions:
        raise DataError(f"split version {version!r} not found under {root / 'split'}; "
                        f"versions: {versions or 'none'}")
    given: dict[str, str] = {}
    for s in SPLIT_FILES:
        path = root / "split" / version / f"{s}.txt"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            name = line.strip().removesuffix(".npy")
            if name and given.setdefault(name, s) != s:
                log.warning("%s is listed in both %s and %s; keeping %s", name, given[name], s, given[name])
    return given, version, versions


def _source_stats(root: pathlib.Path) -> dict[str, np.ndarray] | None:
    """The source's mean/std [272] (None when absent). DataError names a bad file."""
    d = root / "mean_std" / "vector_272"
    if not (d / "mean.npy").is_file() and not (d / "std.npy").is_file():
        return None
    out = {}
    for name in ("mean", "std"):
        path = d / f"{name}.npy"
        arr = read_npy(path)
        if arr.shape != (FEATURE_DIM,):
            raise DataError(f"{path}: expected {FEATURE_DIM} values, got shape {arr.shape}")
        out[name] = validate_features(arr[None], name=str(path))[0].astype(np.float32)
    if (out["std"] <= 0).any():
        raise DataError(f"{d / 'std.npy'}: std must be > 0 everywhere")
    return out


def read_features(path: pathlib.Path) -> np.ndarray:
    """A validated [T, 272] float32 array; SkipClip("invalid") names the file and the problem.

    The file is read by :func:`~mm_jax.motion.loading.read_npy` and checked by
    :func:`~mm_jax.motion.validate.validate_features`, as every ``.npy`` a user names.
    """
    try:
        return validate_features(read_npy(path), name=str(path)).astype(np.float32)
    except (DataError, ShapeError) as e:
        raise ic.SkipClip("invalid", str(e)) from None


def import_272(
    src: str | pathlib.Path,
    out_dir: str | pathlib.Path,
    *,
    split_version: str | None = None,
    allow_uncaptioned: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """Imports a MotionMillion-layout folder into a data set at ``out_dir`` (see the module docstring).

    Returns:
      The import report (docs/data_format.md), with ``split_source`` (the split
      version used, or "hash of the clip name"), ``split_versions``,
      ``unlisted_in_split_files``, ``listed_but_missing``, ``captions_with_hash_tail``
      and ``source_mean_std``.
    """
    root = pathlib.Path(src)
    motion_dir = root / MOTION_DIR
    if not motion_dir.is_dir():
        raise DataError(f"{motion_dir}: missing; a MotionMillion-layout folder holds "
                        "motion_data/vector_272/*.npy, texts/*.txt and optionally split/ and mean_std/")
    files = ic.discover(motion_dir, lambda p: p.suffix == ".npy" and p.is_file())
    if not files:
        raise DataError(f"no .npy files under {motion_dir}")
    given, version, versions = read_splits(root, split_version)
    if version is not None:
        log.info("using split files split/%s (versions found: %s)", version, versions)
    stats = _source_stats(root)
    names = {p: ic.clip_id(p, motion_dir) for p in files}
    report = ic.ImportReport("import-272", str(root))
    counts = {"unlisted": 0, "tagged": 0}

    def load(path: pathlib.Path) -> ic.Clip:
        name = names[path]
        captions, tagged = ic.read_captions(root / "texts" / f"{name}.txt")
        ic.require_captions(captions, root / "texts" / f"{name}.txt", allow_uncaptioned)
        feats = read_features(path)
        split = given.get(name)
        if given and split is None:
            counts["unlisted"] += 1
        counts["tagged"] += tagged
        return ic.Clip(id=name, features=feats, captions=captions, source=str(path), source_fps=30.0,
                       fps=30.0, floor_shift=None, split=split)

    report.extra.update(
        split_source=f"split/{version}" if version is not None else "hash of the clip name",
        split_versions=versions,
        unlisted_in_split_files=lambda: counts["unlisted"],
        listed_but_missing=len(set(given) - set(names.values())),
        captions_with_hash_tail=lambda: counts["tagged"],
        joints_mapped="none: the 272-d features are copied as they are (reference convention)",
        frame_rate="30 fps, the 272-d format's rate: features copied, not resampled",
        source_mean_std="source_mean_std.npz" if stats else None,
    )
    extra = {"source_mean_std.npz": lambda p: ic.save_npz(p, **stats)} if stats else {}
    meta = {"source_mean_std": {"file": "source_mean_std.npz", "from": str(root / "mean_std" / "vector_272")}
            if stats else None, "split_version": version}
    return ic.write_dataset(files, load, lambda p: names[p], out_dir, report=report, meta=meta,
                            extra_files=extra, progress=progress, overwrite=overwrite)
