"""Import a folder of BVH files into a data set (stage: motion I/O).

Input: ``*.bvh`` files (any depth) or one file, each with an optional
``clip.txt`` caption file beside ``clip.bvh`` (:func:`import_common.read_captions`).
Output: a data set (docs/data_format.md) and the import report.

Each file is retargeted onto the 22 SMPL joints
(:func:`mm_jax.motion.retarget.import_bvh_source`). The 272-d features keep the
source's own body: their position slices come from the source's joints
(matched joints exactly, bone lengths of the file, unit and up axis converted),
their rotation slices from the retargeted SMPL rotations, via
``features.features_from_joints`` (which applies the floor and origin step).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable, Mapping

from mm_jax.errors import DataError
from mm_jax.motion import bvh
from mm_jax.motion import import_common as ic
from mm_jax.motion.features import floor_shift
from mm_jax.motion.retarget import RetargetConfig, retarget_source


def import_bvh_dir(
    src: str | pathlib.Path,
    out_dir: str | pathlib.Path,
    *,
    naming: str | Mapping[str, str] = "auto",
    config: RetargetConfig = RetargetConfig(),
    allow_uncaptioned: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """Retargets every ``*.bvh`` under ``src`` (or the one file) into a data set at ``out_dir``.

    A file that fails to parse or match, that has fewer than 2 frames, or (unless
    ``allow_uncaptioned``) no captions is skipped and reported. Records carry
    ``source``, ``fps``, ``source_fps`` and ``floor_shift_m``; ids are the paths
    relative to ``src`` without ``.bvh``.

    Returns:
      The import report (docs/data_format.md); ``joints_mapped`` maps each SMPL
      joint to the source joint name(s) matched over all files (None: virtual).
    """
    src, out_dir = pathlib.Path(src), pathlib.Path(out_dir)
    files = [src] if src.is_file() else ic.discover(src, lambda p: p.suffix.lower() == ".bvh")
    if not files:
        raise DataError(f"no .bvh files found at {str(src)!r}")
    report = ic.ImportReport("import-bvh", str(src))
    seen: dict[str, list] = {}

    def load(path: pathlib.Path) -> ic.Clip:
        skel, motion = bvh.read_bvh(path)  # parse first: a broken file is "invalid", not "no captions"
        captions, _ = ic.read_captions(path.with_suffix(".txt"))
        ic.require_captions(captions, path.with_suffix(".txt"), allow_uncaptioned)
        try:
            clip = retarget_source(skel, motion, naming=naming, config=config)
        except DataError as e:
            raise type(e)(f"{path}: {e}") from None
        m = clip.motion
        if len(m.local_rot) < 2:
            raise ic.SkipClip("too short", f"{path}: only {len(m.local_rot)} frame(s) at {m.fps:g} fps")
        for smpl, name in clip.mapping.items():
            if name not in seen.setdefault(smpl, []):
                seen[smpl].append(name)
        return ic.Clip(id=ic.clip_id(path, src), features=ic.joint_features(clip.joints, m.local_rot),
                       captions=captions, source=str(path), source_fps=clip.source_fps, fps=m.fps,
                       floor_shift=floor_shift(clip.joints))

    report.extra["joints_mapped"] = lambda: {k: v[0] if len(v) == 1 else v for k, v in seen.items()}
    report.extra["positions"] = "the source's own joints (its bone lengths); rotations retargeted to SMPL"
    return ic.write_dataset(files, load, lambda p: ic.clip_id(p, src), out_dir, report=report,
                            meta={"retarget": dataclasses.asdict(config)}, progress=progress,
                            overwrite=overwrite)
