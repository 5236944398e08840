"""Stage 2, the offline person detector: OpenCV's HOG people detector plus an IoU tracker.

Input: a video file and a shot's frames ``[start, end)``. Output: person
:class:`~mm_jax.curation.tracks.Track` s with one box per frame (boxes between
sampled frames interpolated). This is the detector that runs here without
downloads (``cv2.HOGDescriptor_getDefaultPeopleDetector``: Dalal-Triggs
pedestrians, a 64x128 window with the person about 96 px tall, so people
under ~100 px are not found); the paper's Grounding DINO + SAM2 plug in
through :func:`mm_jax.curation.tracks.convert_grounded_sam2` instead.

Scores: HOG returns an SVM margin ``w`` (0 at the decision threshold);
the score is ``w / (1 + |w|)`` mapped to ``(0.5 + 0.5 * that)``, so 0.5 is the
default threshold and the box-confidence filter compares the same [0, 1]
number as for Grounding DINO. OpenCV is imported here only (the
``[curate]`` extra).
"""

from __future__ import annotations

import pathlib
from typing import Iterator

import numpy as np

from mm_jax.curation.config import DetectConfig
from mm_jax.curation.tracks import Track, interpolate, link, nms
from mm_jax.errors import DataError


def read_frames(path: str | pathlib.Path, start: int, end: int, stride: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, BGR image [H, W, 3] uint8) for frames start, start + stride, ... < end.

    Frames are decoded in order from the first (no seeking: exact frame numbers for any codec).
    """
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video")
    try:
        frame = 0
        while frame < end:
            ok = cap.grab()
            if not ok:
                break
            if frame >= start and (frame - start) % stride == 0:
                ok, img = cap.retrieve()
                if not ok:
                    raise DataError(f"{path}: frame {frame} cannot be decoded")
                yield frame, img
            frame += 1
    finally:
        cap.release()


def video_info(path: str | pathlib.Path) -> tuple[float, int, int, int]:
    """(fps, frame count, width, height) of a video as OpenCV reports them."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video")
    try:
        return (float(cap.get(cv2.CAP_PROP_FPS)), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()


def margin_score(w: np.ndarray) -> np.ndarray:
    """HOG SVM margins -> scores in (0, 1), 0.5 at the margin 0."""
    w = np.asarray(w, float)
    return 0.5 + 0.5 * w / (1.0 + np.abs(w))


class HogDetector:
    """The default people detector; one per process (it holds OpenCV state)."""

    def __init__(self, cfg: DetectConfig) -> None:
        import cv2

        if not hasattr(cv2, "HOGDescriptor"):
            raise DataError(f"OpenCV {cv2.__version__} has no HOGDescriptor (removed in 5.x); "
                            "install opencv-python-headless<5 (the [curate] extra)")
        cv2.setNumThreads(1)  # one core per worker: the runners parallelise over shots
        self.cfg = cfg
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(boxes [K, 4] x0 y0 x1 y1, scores [K]) of one BGR image, after NMS."""
        s = self.cfg.win_stride
        rects, weights = self.hog.detectMultiScale(image, hitThreshold=self.cfg.hit_threshold,
                                                   winStride=(s, s), padding=(8, 8), scale=self.cfg.scale)
        if len(rects) == 0:
            return np.zeros((0, 4)), np.zeros(0)
        r = np.asarray(rects, float)
        boxes = np.concatenate([r[:, :2], r[:, :2] + r[:, 2:]], axis=1)
        scores = margin_score(np.ravel(weights))
        keep = nms(boxes, scores, self.cfg.nms_iou)
        return boxes[keep], scores[keep]


def detect_tracks(path: str | pathlib.Path, start: int, end: int, cfg: DetectConfig,
                  detector: HogDetector | None = None) -> list[Track]:
    """Person tracks of one shot, every frame filled (see module docstring)."""
    detector = detector or HogDetector(cfg)
    dets = [(f, *detector(img)) for f, img in read_frames(path, start, end, cfg.frame_stride)]
    return [interpolate(t) for t in link(dets, link_iou=cfg.link_iou, max_gap=cfg.max_gap)]
