"""Synthetic videos with planted cuts, people and defects, for tests and the funnel demo (stage: curation).

Input: :class:`VideoSpec` s (shots of a drawn person doing a
:mod:`~mm_jax.curation.synthmotion` motion over a textured background).
Output, per video ``<name>``: ``<name>.mp4`` (OpenCV ``mp4v``, 30 fps),
``<name>.gvhmr.npz`` (the drawn person's true SMPL parameters in GVHMR's
layout, one row per frame, with any planted estimation defect; this stands in
for running GVHMR, whose weights cannot be downloaded here),
``<name>.captions.json`` (the shot captions) and the planted truth returned as
:class:`VideoTruth` (cut frames, shot ranges).

The person is drawn as a filled silhouette (thick limbs, a torso polygon, a
head) seen by an orthographic camera turned 0.8 rad about the vertical, about
120 px tall at the default scale: OpenCV's HOG people detector finds it on
most frames (docs/curation.md gives the measured rate). Each shot has its
own background texture, so cuts are hard cuts. Defects planted in the GVHMR
file: ``jitter`` (0.3 rad joint-rotation noise on 10 % of frames), ``teleport`` (a 1.5 m jump
mid-clip), ``slide`` (the body glides at 0.8 m/s with still legs), ``shake``
(the root oscillates +-0.15 m at 3 Hz).

:func:`write_people_video` makes a shot set with several people whose
detections are given (``<name>.tracks.json``, the detector adapter format)
instead of drawn: per person a track of boxes, its own GVHMR result
``<name>.track<ID>.gvhmr.npz`` and its own captions (``"<shot>/t<ID>"``),
over plain background shots; the stages after detection are the real ones.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Literal, NamedTuple

import numpy as np

from mm_jax.curation.smpl import GvhmrParams, write_gvhmr_npz
from mm_jax.curation.synthmotion import axis_angle, procedural_motion
from mm_jax.curation.tracks import Track, to_json
from mm_jax.motion import skeleton
from mm_jax.motion.import_smpl import axis_angle_to_matrix
from mm_jax.motion.retarget import smpl_forward_kinematics

FPS = 30
CAMERA_YAW = 0.8
_LIMB_WIDTH = (0.13, 0.13, 0.16, 0.09, 0.09)  # metres, per skeleton.KINEMATIC_CHAINS


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShotSpec:
    """One shot: ``motion`` "none" draws no person; ``x`` is the root's start in image pixels."""

    frames: int
    motion: Literal["walk", "wave", "squat", "stand", "none"] = "walk"
    yaw: float = float(np.pi / 2)
    x: float = 90.0
    scale: float = 70.0
    background: int = 0
    defect: Literal["", "jitter", "teleport", "slide", "shake"] = ""
    caption: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class VideoSpec:
    name: str
    shots: tuple[ShotSpec, ...]
    width: int = 320
    height: int = 240


class VideoTruth(NamedTuple):
    path: pathlib.Path
    cuts: list[int]  # first frame of every shot after the first
    shots: list[tuple[int, int]]


def _background(seed: int, width: int, height: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    low = rng.integers(100, 200, (max(height // 24, 2), max(width // 24, 2), 3)).astype(np.uint8)
    img = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    img[int(height * 0.9):] = (img[int(height * 0.9):] * 0.6).astype(np.uint8)  # a darker floor band
    return img


def _draw(img: np.ndarray, uv: np.ndarray, scale: float) -> None:
    import cv2

    for chain, width in zip(skeleton.KINEMATIC_CHAINS, _LIMB_WIDTH):
        for a, b in zip(chain[:-1], chain[1:]):
            cv2.line(img, tuple(map(int, uv[a])), tuple(map(int, uv[b])), (50, 40, 40), max(2, int(scale * width)))
    cv2.fillConvexPoly(img, uv[[1, 2, 17, 14, 13, 16]].astype(np.int32), (60, 50, 120))
    head = uv[15] + [0, -0.04 * scale]
    cv2.circle(img, tuple(map(int, head)), int(scale * 0.11), (70, 90, 170), -1)


def _plant(defect: str, rot: np.ndarray, root: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The GVHMR-file copy of a motion with an estimation defect planted."""
    rot, root, t = rot.copy(), root.copy(), np.arange(len(root)) / FPS
    rng = np.random.default_rng(seed)
    if defect == "jitter":
        bad = rng.random(len(root)) < 0.1
        noise = rng.normal(0.0, 0.3, (int(bad.sum()), 22, 3))

        rot[bad] = axis_angle_to_matrix(noise) @ rot[bad]  # limbs flicker; the root path stays smooth
    elif defect == "teleport":
        root[len(root) // 2:, 0] += 1.5
    elif defect == "slide":
        root[:, 0] += 0.8 * t
    elif defect == "shake":
        root[:, 0] += 0.15 * np.sin(2 * np.pi * 3.0 * t)
    return rot, root


def _shot_frames(spec: VideoSpec, shot: ShotSpec, index: int, rows: dict) -> list[np.ndarray]:
    bg = _background(shot.background * 1000 + index, spec.width, spec.height)
    if shot.motion == "none":
        for k, width in (("go", 3), ("bp", 63), ("tr", 3)):
            rows[k].append(np.zeros((shot.frames, width)))
        return [bg.copy() for _ in range(shot.frames)]
    rot, root = procedural_motion(shot.motion, shot.frames, yaw=shot.yaw)
    joints = smpl_forward_kinematics(rot, root)
    c, s = np.cos(CAMERA_YAW), np.sin(CAMERA_YAW)
    across = c * joints[..., 0] + s * joints[..., 2]
    u = shot.x + shot.scale * (across - across[0, 0])
    v = spec.height * 0.8 - shot.scale * joints[..., 1]
    frames = []
    for t in range(shot.frames):
        img = bg.copy()
        _draw(img, np.stack([u[t], v[t]], -1), shot.scale)
        frames.append(img)
    grot, groot = _plant(shot.defect, rot, root, seed=index)
    aa = axis_angle(grot)
    rows["go"].append(aa[:, 0]), rows["bp"].append(aa[:, 1:].reshape(-1, 63)), rows["tr"].append(groot)
    return frames


def write_video(spec: VideoSpec, out_dir: str | pathlib.Path) -> VideoTruth:
    """Writes the video, its GVHMR-layout file and captions (module docstring); returns the planted truth."""
    import cv2

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{spec.name}.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (spec.width, spec.height))
    rows: dict = {"go": [], "bp": [], "tr": []}
    bounds, start = [], 0
    try:
        for i, shot in enumerate(spec.shots):
            for img in _shot_frames(spec, shot, i, rows):
                writer.write(img)
            bounds.append((start, start + shot.frames))
            start += shot.frames
    finally:
        writer.release()
    params = GvhmrParams(global_orient=np.concatenate(rows["go"]), body_pose=np.concatenate(rows["bp"]),
                         transl=np.concatenate(rows["tr"]), betas=np.zeros((start, 10)))
    write_gvhmr_npz(out_dir / f"{spec.name}.gvhmr.npz", params)
    caps = {str(i): [s.caption] for i, s in enumerate(spec.shots) if s.caption}
    (out_dir / f"{spec.name}.captions.json").write_text(json.dumps(caps, indent=1, sort_keys=True) + "\n")
    return VideoTruth(path, [b[0] for b in bounds[1:]], bounds)


def funnel_set() -> tuple[VideoSpec, ...]:
    """The small synthetic set of the committed funnel report: every stage has something to drop."""
    walk_r, walk_l = float(np.pi / 2), float(-np.pi / 2)
    return (
        VideoSpec(name="v0_clean", shots=(
            ShotSpec(frames=90, motion="walk", yaw=walk_r, x=70, background=1, caption="a person walks to the right"),
            ShotSpec(frames=75, motion="wave", yaw=-0.3, x=150, background=2, caption="a person waves both hands"),
            ShotSpec(frames=15, motion="squat", yaw=-0.3, x=150, background=3, caption="a person squats"))),
        VideoSpec(name="v1_defects", shots=(
            ShotSpec(frames=75, motion="walk", yaw=walk_r, x=70, background=4, defect="jitter",
                     caption="a person walks to the right"),
            ShotSpec(frames=75, motion="walk", yaw=walk_l, x=240, background=5, defect="teleport",
                     caption="a person walks to the left"),
            ShotSpec(frames=75, motion="wave", yaw=-0.3, x=150, background=6, defect="slide",
                     caption="a person waves both hands"))),
        VideoSpec(name="v2_people", shots=(
            ShotSpec(frames=60, motion="none", background=7),
            ShotSpec(frames=75, motion="stand", yaw=-0.3, x=150, background=8, caption="a person stands still"),
            ShotSpec(frames=90, motion="walk", yaw=walk_r, x=200, background=9,
                     caption="a person walks to the right"),
            ShotSpec(frames=75, motion="squat", yaw=-0.3, x=150, background=10, defect="shake",
                     caption="a person squats down and stands up"))),
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class PersonSpec:
    """One person of :func:`write_people_video`: a track ``track_id`` doing ``motion`` in a box at ``x``.

    ``height`` is the box height in pixels (its width 0.4 of that); the box
    drifts ``drift`` px per frame; ``score`` is the detection confidence.
    """

    track_id: int
    motion: Literal["walk", "wave", "squat", "stand"] = "walk"
    yaw: float = 0.4
    x: float = 40.0
    height: float = 140.0
    drift: float = 0.5
    score: float = 0.9
    caption: str = "a person walks forward"


def write_people_video(name: str, out_dir: str | pathlib.Path, people: tuple[PersonSpec, ...], *,
                       shot_frames: tuple[int, ...] = (45, 45), width: int = 320, height: int = 240) -> VideoTruth:
    """A video of plain background shots with the given people's tracks, GVHMR files and captions (module doc)."""
    out_dir = pathlib.Path(out_dir)
    shots = tuple(ShotSpec(frames=n, motion="none", background=20 + i) for i, n in enumerate(shot_frames))
    spec = VideoSpec(name=name, width=width, height=height, shots=shots)
    truth = write_video(spec, out_dir)
    total = sum(shot_frames)
    frames = np.arange(total)
    tracks, caps = [], {}
    for person in people:
        x0 = person.x + person.drift * frames
        y1 = np.full(total, height * 0.85)
        boxes = np.stack([x0, y1 - person.height, x0 + 0.4 * person.height, y1], 1)
        tracks.append(Track(person.track_id, frames, boxes, np.full(total, person.score)))
        rot, root = procedural_motion(person.motion, total, yaw=person.yaw)
        aa = axis_angle(rot)
        write_gvhmr_npz(out_dir / f"{name}.track{person.track_id}.gvhmr.npz",
                        GvhmrParams(global_orient=aa[:, 0], body_pose=aa[:, 1:].reshape(total, 63), transl=root,
                                    betas=np.zeros((total, 10))))
        caps.update({f"{i}/t{person.track_id}": [person.caption] for i in range(len(shot_frames))})
    data = json.dumps(to_json(tracks, width=width, height=height), sort_keys=True)
    (out_dir / f"{name}.tracks.json").write_text(data + "\n")
    (out_dir / f"{name}.captions.json").write_text(json.dumps(caps, indent=1, sort_keys=True) + "\n")
    return truth


def write_people_set(out_dir: str | pathlib.Path, videos: int = 2) -> list[VideoTruth]:
    """``videos`` videos of two 45-frame shots, each with two tracked people (a walker, a waver): 4 clips a video.

    Run with ``data/curation/synthetic_tracks.json`` (detections read from the tracks files).
    """
    people = (PersonSpec(track_id=1, motion="walk", x=30, height=150, caption="a person walks forward"),
              PersonSpec(track_id=2, motion="wave", x=200, height=110, drift=0.0,
                         caption="a person waves both hands"))
    return [write_people_video(f"p{i}", out_dir, people, shot_frames=(45, 45)) for i in range(videos)]
