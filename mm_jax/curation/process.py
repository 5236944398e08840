"""Stages 2-6 and captions on one shot: a pure per-shot function both runners call (stage: curation).

Input: a :class:`ShotTask` (a video file and one kept shot's frames) and the
:class:`~mm_jax.curation.config.CurationConfig`. Output: the shot's result,
a JSON-ready dict recording every decision::

    {"video", "shot", "start", "end",
     "dropped": [{"stage", "reason", "track", "frames", "value", "threshold", ...}],
     "clips": [{"id", "track", "start", "end", "frames", "captions", "metrics"}]}

and the kept clips' 272-d features ``{clip id: [T, 272] float32}``. Every
tracked person is a candidate: the tracks are ranked by frames x mean box
height, each goes through the box and transition filters in that order, and
up to ``detect.max_people_per_shot`` people with a piece left become clips
(the track id is in the clip id; ``"people"`` in the result lists each
person's rank, frames, box runs, pieces and clips). Per-person GVHMR results
``<video>.track<ID>.gvhmr.*`` are used when present; the video's own
``<video>.gvhmr.*`` (GVHMR's demo follows one main person) only for the
top-ranked track. Timings are returned apart (they differ from run to run,
the result does not).
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


def _gvhmr_file(task: ShotTask, cfg: CurationConfig, track_id: int, rank: int) -> pathlib.Path | None:
    """The person's own GVHMR result, else (the top-ranked person only) the video's."""
    video = pathlib.Path(task.video)
    folder = pathlib.Path(cfg.smpl.gvhmr_dir) if cfg.smpl.gvhmr_dir else video.parent
    names = [f"{video.stem}.track{track_id}.gvhmr"] + ([f"{video.stem}.gvhmr"] if rank == 0 else [])
    return next((folder / (n + s) for n in names for s in (".npz", ".pt") if (folder / (n + s)).is_file()), None)


def _drop(out: dict, stage: str, reason: str, track: Track | None, **extra) -> None:
    row = {"stage": stage, "reason": reason, "track": None if track is None else int(track.track_id),
           "frames": 0 if track is None else int(len(track.frames))}
    out["dropped"].append(dict(row, **extra))


def _people(task: ShotTask, cfg: CurationConfig, out: dict, detector) -> list[Track]:
    """Stage 2: the shot's person tracks of at least ``min_track_frames``, largest first (drops recorded)."""
    found = _tracks(task, cfg, detector)
    long = [t for t in found if len(t.frames) >= cfg.detect.min_track_frames]
    for t in found:
        if len(t.frames) < cfg.detect.min_track_frames:
            _drop(out, "detect", "short track", t, value=len(t.frames), threshold=cfg.detect.min_track_frames)
    if not long:
        _drop(out, "detect", "no person", None, frames=task.end - task.start)
    return sorted(long, key=lambda t: (-len(t.frames) * float(np.mean(t.boxes[:, 3] - t.boxes[:, 1])), t.track_id))


def _pieces(task: ShotTask, cfg: CurationConfig, person: Track, out: dict) -> tuple[list[Track], dict]:
    """Stages 3 and 4: one person's clean pieces, and the person's row of ``out["people"]``."""
    good, bad = boxes.box_filter(person, width=task.width, height=task.height, cfg=cfg.boxes)
    row = {"track": int(person.track_id), "frames": int(len(person.frames)), "bad_frames": bad,
           "box_runs": len(good), "pieces": 0, "clips": []}
    if not good:
        worst = max(bad, key=bad.get) if bad else "short run"
        _drop(out, "boxes", worst, person, bad_frames=bad)
        return [], row
    pieces = []
    for piece in good:
        kept, events = transitions.split_transitions(piece, cfg.transitions)
        out["jumps"] += events
        if not kept:
            _drop(out, "transitions", "jump" if events else "short piece", piece, jumps=events)
        pieces += kept
    row["pieces"] = len(pieces)
    return pieces, row


def _filter_people(task: ShotTask, cfg: CurationConfig, people: list[Track], out: dict) -> list[tuple[int, Track]]:
    """Stages 3 and 4 over the ranked people, up to ``max_people_per_shot`` with pieces: [(rank, piece)]."""
    pieces: list[tuple[int, Track]] = []
    kept_people = 0
    for rank, person in enumerate(people):
        if kept_people == cfg.detect.max_people_per_shot:
            _drop(out, "detect", "over max_people_per_shot", person, value=rank + 1,
                  threshold=cfg.detect.max_people_per_shot)
            continue
        got, row = _pieces(task, cfg, person, out)
        out["people"].append(dict(row, rank=rank))
        for k, v in row["bad_frames"].items():
            out["bad_frames"][k] = out["bad_frames"].get(k, 0) + v
        out["box_runs"] += row["box_runs"]
        out["pieces"] += row["pieces"]
        kept_people += bool(got)
        pieces += [(rank, p) for p in got]
    return pieces


def _motion(task: ShotTask, cfg: CurationConfig, rank: int, piece: Track, out: dict, cache: dict):
    """Stages 5 and 6 on one piece of the person ranked ``rank``: (local_rot, joints, metrics) or None."""
    path = _gvhmr_file(task, cfg, piece.track_id, rank)
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
           "dropped": [], "clips": [], "jumps": [], "bad_frames": {}, "box_runs": 0, "pieces": 0, "people": []}
    feats: dict[str, np.ndarray] = {}
    seconds = {"detect": 0.0, "filter": 0.0, "smpl+motion": 0.0, "features+captions": 0.0}
    t0 = time.perf_counter()
    people = _people(task, cfg, out, detector)
    t1 = time.perf_counter()
    pieces = _filter_people(task, cfg, people, out)
    out["bad_frames"] = dict(sorted(out["bad_frames"].items()))
    t2 = time.perf_counter()
    seconds["detect"], seconds["filter"] = t1 - t0, t2 - t1
    cache: dict = {}
    for rank, piece in pieces:
        t3 = time.perf_counter()
        got = _motion(task, cfg, rank, piece, out, cache)
        t4 = time.perf_counter()
        seconds["smpl+motion"] += t4 - t3
        if got is None:
            continue
        caps = SidecarCaptioner()(pathlib.Path(task.video), task.index, int(piece.frames[0]), int(piece.frames[-1]),
                                  track=int(piece.track_id))
        if not caps:
            _drop(out, "captions", "no caption", piece)
            continue
        caps = with_paraphrases(caps, RuleParaphraser(cfg.captions.seed), cfg.captions.paraphrases)
        rot, joints, metrics = got
        first, last = int(piece.frames[0]), int(piece.frames[-1]) + 1
        cid = f"{task.name}/shot{task.index:03d}/t{piece.track_id}_{first:06d}-{last:06d}"
        feats[cid] = smpl.clip_features(rot, joints)
        out["clips"].append({"id": cid, "track": int(piece.track_id), "person_rank": rank, "start": first,
                             "end": last, "frames": int(len(joints)), "captions": caps, "metrics": metrics})
        next(p for p in out["people"] if p["rank"] == rank)["clips"].append(cid)
        seconds["features+captions"] += time.perf_counter() - t4
    return out, feats, seconds
