"""Stages 2-6 and captions on one shot: a pure per-shot function both runners call (stage: curation).

Input: a :class:`ShotTask` (a video file and one kept shot's frames) and the
:class:`~mm_jax.curation.config.CurationConfig`. Output: the shot's result,
a JSON-ready dict recording every decision::

    {"video", "shot", "start", "end",
     "dropped": [{"stage", "reason", "track", "frames", "value", "threshold", ...}],
     "clips": [{"id", "track", "start", "end", "frames", "captions", "metrics"}]}

and the kept clips' 272-d features ``{clip id: [T, 272] float32}``. The
main person of a shot is its track with the most frames x mean box height
(GVHMR's demo also follows one main person); the others are recorded as
dropped. Timings are returned apart (they differ from run to run, the result
does not).
"""

from __future__ import annotations

import pathlib
import time
from typing import NamedTuple

import numpy as np

from mm_jax.curation import boxes, motion_filter, smpl, transitions
from mm_jax.curation.captions import RuleParaphraser, SidecarCaptioner, with_paraphrases
from mm_jax.curation.config import CurationConfig
from mm_jax.curation.detect_hog import detect_tracks
from mm_jax.curation.tracks import interpolate, read_tracks, Track, within
from mm_jax.errors import DataError


class ShotTask(NamedTuple):
    """One kept shot of one video: frames [start, end) at ``fps``, frame size ``width`` x ``height``."""

    video: str
    index: int
    start: int
    end: int
    fps: float
    width: int
    height: int

    @property
    def name(self) -> str:
        return pathlib.Path(self.video).stem


def _tracks(task: ShotTask, cfg: CurationConfig, detector) -> list[Track]:
    if cfg.detect.detector == "tracks":
        video = pathlib.Path(task.video)
        folder = pathlib.Path(cfg.detect.tracks_dir) if cfg.detect.tracks_dir else video.parent
        tracks, _, _ = read_tracks(folder / f"{video.stem}.tracks.json")
        return [interpolate(t) for t in (within(t, task.start, task.end) for t in tracks) if t is not None]

    return detect_tracks(task.video, task.start, task.end, cfg.detect, detector)


def _gvhmr_file(task: ShotTask, cfg: CurationConfig, track_id: int) -> pathlib.Path | None:
    video = pathlib.Path(task.video)
    folder = pathlib.Path(cfg.smpl.gvhmr_dir) if cfg.smpl.gvhmr_dir else video.parent
    names = [f"{video.stem}.track{track_id}.gvhmr", f"{video.stem}.gvhmr"]
    return next((folder / (n + s) for n in names for s in (".npz", ".pt") if (folder / (n + s)).is_file()), None)


def _drop(out: dict, stage: str, reason: str, track: Track | None, **extra) -> None:
    row = {"stage": stage, "reason": reason, "track": None if track is None else int(track.track_id),
           "frames": 0 if track is None else int(len(track.frames))}
    out["dropped"].append(dict(row, **extra))


def _people(task: ShotTask, cfg: CurationConfig, out: dict, detector) -> Track | None:
    """Stage 2: the shot's main person track, or None (drops recorded)."""
    found = _tracks(task, cfg, detector)
    long = [t for t in found if len(t.frames) >= cfg.detect.min_track_frames]
    for t in found:
        if len(t.frames) < cfg.detect.min_track_frames:
            _drop(out, "detect", "short track", t, value=len(t.frames), threshold=cfg.detect.min_track_frames)
    if not long:
        _drop(out, "detect", "no person", None, frames=task.end - task.start)
        return None
    main = max(long, key=lambda t: (len(t.frames) * float(np.mean(t.boxes[:, 3] - t.boxes[:, 1])), -t.track_id))
    for t in long:
        if t is not main:
            _drop(out, "detect", "not the main person", t)
    return main


def _pieces(task: ShotTask, cfg: CurationConfig, main: Track, out: dict) -> list[Track]:
    """Stages 3 and 4: the main track's clean pieces."""
    good, bad = boxes.box_filter(main, width=task.width, height=task.height, cfg=cfg.boxes)
    out["bad_frames"], out["box_runs"] = bad, len(good)
    if not good:
        worst = max(bad, key=bad.get) if bad else "short run"
        _drop(out, "boxes", worst, main, bad_frames=bad)
        return []
    pieces = []
    for piece in good:
        kept, events = transitions.split_transitions(piece, cfg.transitions)
        out["jumps"] += events
        if not kept:
            _drop(out, "transitions", "jump" if events else "short piece", piece, jumps=events)
        pieces += kept
    out["pieces"] = len(pieces)
    return pieces


def _motion(task: ShotTask, cfg: CurationConfig, piece: Track, out: dict, cache: dict):
    """Stages 5 and 6 on one piece: (local_rot, joints, metrics) or None (drop recorded)."""
    path = _gvhmr_file(task, cfg, piece.track_id)
    if path is None:
        _drop(out, "smpl", "no SMPL estimate", piece)
        return None
    try:
        params = cache.setdefault(path, smpl.read_gvhmr(path))
        rot, joints = smpl.clip_motion(params, int(piece.frames[0]), int(piece.frames[-1]) + 1,
                                       fps=task.fps, y_up=cfg.smpl.y_up)
    except DataError as e:
        _drop(out, "smpl", "unreadable SMPL estimate", piece, detail=str(e))
        return None
    metrics, failure = motion_filter.motion_filter(joints, cfg.motion)
    metrics = {k: round(v, 6) for k, v in metrics.items()}
    if failure is not None:
        reason, value, threshold = failure
        _drop(out, "motion", reason, piece, value=round(value, 6), threshold=threshold, metrics=metrics)
        return None
    return rot, joints, metrics


def process_shot(task: ShotTask, cfg: CurationConfig, *, detector=None) -> tuple[dict, dict, dict]:
    """(result, {clip id: features [T, 272]}, seconds per stage) of one shot (module docstring)."""
    out = {"video": pathlib.Path(task.video).name, "shot": task.index, "start": task.start, "end": task.end,
           "dropped": [], "clips": [], "jumps": [], "bad_frames": {}, "box_runs": 0, "pieces": 0}
    feats: dict[str, np.ndarray] = {}
    seconds = {"detect": 0.0, "filter": 0.0, "smpl+motion": 0.0, "features+captions": 0.0}
    t0 = time.perf_counter()
    main = _people(task, cfg, out, detector)
    t1 = time.perf_counter()
    pieces = [] if main is None else _pieces(task, cfg, main, out)
    t2 = time.perf_counter()
    seconds["detect"], seconds["filter"] = t1 - t0, t2 - t1
    cache: dict = {}
    for piece in pieces:
        t3 = time.perf_counter()
        got = _motion(task, cfg, piece, out, cache)
        t4 = time.perf_counter()
        seconds["smpl+motion"] += t4 - t3
        if got is None:
            continue
        caps = SidecarCaptioner()(pathlib.Path(task.video), task.index, int(piece.frames[0]), int(piece.frames[-1]))
        if not caps:
            _drop(out, "captions", "no caption", piece)
            continue
        caps = with_paraphrases(caps, RuleParaphraser(cfg.captions.seed), cfg.captions.paraphrases)
        rot, joints, metrics = got
        first, last = int(piece.frames[0]), int(piece.frames[-1]) + 1
        cid = f"{task.name}/shot{task.index:03d}/t{piece.track_id}_{first:06d}-{last:06d}"
        feats[cid] = smpl.clip_features(rot, joints)
        out["clips"].append({"id": cid, "track": int(piece.track_id), "start": first, "end": last,
                             "frames": int(len(joints)), "captions": caps, "metrics": metrics})
        seconds["features+captions"] += time.perf_counter() - t4
    return out, feats, seconds
