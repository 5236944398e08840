"""Stage 2, person tracks: the per-frame format, a tracker and the Grounding DINO + SAM2 converter.

The adapter format (one JSON file per video, ``<video stem>.tracks.json``;
format tag ``mm_jax.tracks/1``)::

    {"format": "mm_jax.tracks/1", "width": 320, "height": 240,
     "tracks": [{"id": 1, "frames": [f, ...], "boxes": [[x0, y0, x1, y1], ...],
                 "scores": [s, ...], "mask_areas": [pixels, ...] or null}]}

``frames`` are increasing video frame numbers (0-based), ``boxes`` are pixel
corners (x right, y down, exclusive far corner), ``scores`` the detector's
person confidence in [0, 1] (HOG margins are squashed, see
:mod:`mm_jax.curation.detect_hog`), ``mask_areas`` the person mask's pixel
count when a segmenter made one. In memory a track is a :class:`Track`.

:func:`convert_grounded_sam2` reads what Grounded-SAM-2's video tracking demo
writes: ``json_data/mask_<frame>.json`` per frame (``MaskDictionaryModel.to_dict``:
``mask_name``, ``mask_height``, ``mask_width``, ``labels`` =
``{"<instance_id>": {"instance_id", "class_name", "x1", "y1", "x2", "y2",
"logit"}}``) and optionally ``mask_data/mask_<frame>.npy`` (uint16 image of
instance ids). The frame number is the digits of ``mask_name``; the
instance id is the track id; ``logit`` is the Grounding DINO box score (the
demo leaves it 0.0 when it does not store scores: ``score_if_missing``).
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import NamedTuple, Sequence

import numpy as np

from mm_jax.errors import DataError, FormatError

FORMAT = "mm_jax.tracks/1"


class Track(NamedTuple):
    """One person's boxes over frames.

    Attributes:
      track_id: the tracker's id.
      frames: [N] int video frame numbers, increasing.
      boxes: [N, 4] float (x0, y0, x1, y1) pixels.
      scores: [N] float person confidence.
      mask_areas: [N] float mask pixels, or None.
    """

    track_id: int
    frames: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    mask_areas: np.ndarray | None = None

    def take(self, sl: slice | np.ndarray) -> "Track":
        """The track restricted to an index slice or mask."""
        areas = None if self.mask_areas is None else self.mask_areas[sl]
        return Track(self.track_id, self.frames[sl], self.boxes[sl], self.scores[sl], areas)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box [4] with boxes [K, 4] -> [K]."""
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, max_iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, highest score first."""
    order, keep = list(np.argsort(-scores, kind="stable")), []
    while order:
        i = order.pop(0)
        keep.append(i)
        order = [j for j in order if iou(boxes[i], boxes[j][None])[0] <= max_iou]
    return np.asarray(keep, dtype=int)


def link(detections: Sequence[tuple[int, np.ndarray, np.ndarray]], *, link_iou: float, max_gap: int) -> list[Track]:
    """Greedy IoU tracker over sampled frames.

    Args:
      detections: (frame, boxes [K, 4], scores [K]) per sampled frame, in frame order.
      link_iou: least IoU between a detection and a track's last box to continue it.
      max_gap: a track ends after this many sampled frames without a match.

    Returns:
      Tracks numbered from 0 in order of their first frame.
    """
    open_: list[dict] = []
    done: list[dict] = []
    for step, (frame, boxes, scores) in enumerate(detections):
        free = list(np.argsort(-scores, kind="stable"))
        for tr in sorted(open_, key=lambda t: -t["scores"][-1]):
            if not free:
                break
            ious = iou(tr["boxes"][-1], boxes[free])
            best = int(np.argmax(ious))
            if ious[best] >= link_iou:
                k = free.pop(best)
                tr["frames"].append(frame), tr["boxes"].append(boxes[k]), tr["scores"].append(scores[k])
                tr["last"] = step
        for k in free:
            open_.append({"frames": [frame], "boxes": [boxes[k]], "scores": [scores[k]], "last": step})
        done += [t for t in open_ if step - t["last"] > max_gap]
        open_ = [t for t in open_ if step - t["last"] <= max_gap]
    done = sorted(done + open_, key=lambda t: t["frames"][0])
    return [Track(i, np.asarray(t["frames"]), np.asarray(t["boxes"], float).reshape(-1, 4),
                  np.asarray(t["scores"], float)) for i, t in enumerate(done)]


def interpolate(track: Track) -> Track:
    """Fills every frame between the track's first and last with linearly interpolated boxes and scores."""
    frames = np.arange(track.frames[0], track.frames[-1] + 1)
    boxes = np.stack([np.interp(frames, track.frames, track.boxes[:, c]) for c in range(4)], 1)
    areas = None if track.mask_areas is None else np.interp(frames, track.frames, track.mask_areas)
    return Track(track.track_id, frames, boxes, np.interp(frames, track.frames, track.scores), areas)


def within(track: Track, start: int, end: int) -> Track | None:
    """The part of a track inside frames [start, end), or None if empty."""
    sel = (track.frames >= start) & (track.frames < end)
    return track.take(sel) if sel.any() else None


def to_json(tracks: Sequence[Track], *, width: int, height: int) -> dict:
    """The adapter format (module docstring) as a JSON-ready dict."""
    def one(t: Track) -> dict:
        return {"id": int(t.track_id), "frames": [int(f) for f in t.frames],
                "boxes": [[round(float(v), 3) for v in b] for b in t.boxes],
                "scores": [round(float(s), 6) for s in t.scores],
                "mask_areas": None if t.mask_areas is None else [float(a) for a in t.mask_areas]}
    return {"format": FORMAT, "width": int(width), "height": int(height), "tracks": [one(t) for t in tracks]}


def from_json(data: dict, where: str) -> tuple[list[Track], int, int]:
    """(tracks, width, height) of an adapter-format dict; FormatError names ``where`` and the problem."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FormatError(f"{where}: not a {FORMAT} tracks file (format {data.get('format')!r})"
                          if isinstance(data, dict) else f"{where}: not a JSON object")
    out = []
    for i, t in enumerate(data.get("tracks", [])):
        try:
            frames = np.asarray(t["frames"], int)
            boxes = np.asarray(t["boxes"], float).reshape(len(frames), 4)
            scores = np.asarray(t["scores"], float).reshape(len(frames))
            areas = None if t.get("mask_areas") is None else np.asarray(t["mask_areas"], float).reshape(len(frames))
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"{where}: track {i}: {type(e).__name__}: {e}") from None
        if len(frames) and np.any(np.diff(frames) <= 0):
            raise FormatError(f"{where}: track {i}: frames must increase")
        out.append(Track(int(t.get("id", i)), frames, boxes, scores, areas))
    return out, int(data["width"]), int(data["height"])


def read_tracks(path: str | pathlib.Path) -> tuple[list[Track], int, int]:
    """Reads an adapter-format file."""
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the tracks file ({e})") from None
    return from_json(data, str(path))


def _gsam2_frame(path: pathlib.Path, mask_dir: pathlib.Path | None, score_if_missing: float):
    data = json.loads(path.read_text(encoding="utf-8"))
    digits = re.findall(r"\d+", data.get("mask_name", ""))
    if not digits:
        raise FormatError(f"{path}: mask_name {data.get('mask_name')!r} holds no frame number")
    frame, shape = int(digits[-1]), (int(data["mask_height"]), int(data["mask_width"]))
    masks = None
    if mask_dir is not None and (mask_dir / data["mask_name"]).is_file():
        masks = np.load(mask_dir / data["mask_name"], allow_pickle=False)
    rows = []
    for key, lab in data.get("labels", {}).items():
        inst = int(lab.get("instance_id", key))
        logit = float(lab.get("logit", 0.0) or 0.0)
        area = None if masks is None else float(np.count_nonzero(masks == inst))
        box = [float(lab[k]) for k in ("x1", "y1", "x2", "y2")]
        rows.append((inst, box, logit if logit > 0 else score_if_missing, area, lab.get("class_name", "")))
    return frame, shape, rows


def convert_grounded_sam2(json_dir: str | pathlib.Path, *, mask_dir: str | pathlib.Path | None = None,
                          class_name: str = "person", score_if_missing: float = 1.0) -> tuple[list[Track], int, int]:
    """(tracks, width, height) from Grounded-SAM-2 tracking output (module docstring).

    Args:
      json_dir: the demo's ``json_data`` folder.
      mask_dir: its ``mask_data`` folder (mask areas), or None.
      class_name: keep only instances with this class name ("" keeps all).
      score_if_missing: the score of a box whose ``logit`` is 0 or absent.
    """
    json_dir = pathlib.Path(json_dir)
    files = sorted(json_dir.glob("*.json"))
    if not files:
        raise DataError(f"{json_dir}: no Grounded-SAM-2 per-frame .json files")
    per: dict[int, dict] = {}
    shape = None
    for f in files:
        frame, shape, rows = _gsam2_frame(f, None if mask_dir is None else pathlib.Path(mask_dir), score_if_missing)
        for inst, box, score, area, name in rows:
            if class_name and name.strip(". ").lower() != class_name:
                continue
            t = per.setdefault(inst, {"f": [], "b": [], "s": [], "a": []})
            t["f"].append(frame), t["b"].append(box), t["s"].append(score), t["a"].append(area)
    tracks = []
    for inst, t in sorted(per.items()):
        order = np.argsort(t["f"], kind="stable")
        areas = None if any(a is None for a in t["a"]) else np.asarray(t["a"], float)[order]
        tracks.append(Track(inst, np.asarray(t["f"])[order], np.asarray(t["b"], float)[order],
                            np.asarray(t["s"], float)[order], areas))
    return tracks, shape[1], shape[0]
