"""Motion statistics of a data set and comparisons between two (stage: motion, diagnostics).

Input: a loaded data set (:func:`mm_jax.motion.synth.load_dataset`: memory-mapped
features ``[total_frames, 272]`` plus one record per sequence). Output: flat
JSON-ready dicts.

* :func:`slice_moments`: per feature slice (``features.FEATURE_SLICES``) the
  root mean square over its channels of the per-channel means (``mean_rms``)
  and of the per-channel standard deviations (``std``, the value a shared
  per-slice std would take).
* :func:`motion_figures`: summary figures read from the features, all in the
  body's own terms so they need no inverse kinematics: root speed, share of
  clips and frames that stay in place, pelvis height, elbow flexion, foot
  (ball) and ankle heights, toe bend, spine rotation, trunk lean and twist, and
  limb lengths (mean and spread across clips: body-size variation).
* :func:`dataset_summary` and :func:`compare`: both of the above for one data
  set, and ratios between two (``A / B``) plus each slice's mean shift in
  units of B's slice std. ``mm-jax data stats DATASET --compare OTHER`` prints them.

Angles use only rotation-invariant parts of the 6D channels (the rotation
angle from ``r00 + r11 + r22``, with ``r22 = r00 r11 - r01 r10``), so they read
the same whether the 6D holds a matrix's first two rows or columns. Large data
sets are subsampled: every k-th sequence, so that at most ``max_frames``
frames are read (deterministic).
"""

from __future__ import annotations

import math

import numpy as np

from mm_jax.errors import DataError
from mm_jax.motion.features import FEATURE_DIM, FEATURE_SLICES, LOCAL_POS, LOCAL_ROT, ROOT_LIN_VEL
from mm_jax.motion.skeleton import JOINT_INDEX

IN_PLACE_MPS = 0.25  # a clip (or frame) whose mean root speed is below this stays in place
_J = JOINT_INDEX
_PCTS = (5, 50, 95)


def _select(records: list[dict], max_frames: int | None) -> list[dict]:
    total = sum(r["length"] for r in records)
    if not max_frames or total <= max_frames:
        return list(records)
    return list(records[:: math.ceil(total / max_frames)])


def _chunks(features, records: list[dict], rows: int = 1 << 16):
    """Yields (features [n, F] float64, first [n] bool: frame 0 of its sequence) in record order."""
    buf, first, n = [], [], 0
    for r in records:
        x = np.asarray(features[r["offset"] : r["offset"] + r["length"]], np.float64)
        buf.append(x)
        f = np.zeros(len(x), bool)
        f[0] = True
        first.append(f)
        n += len(x)
        if n >= rows:
            yield np.concatenate(buf), np.concatenate(first)
            buf, first, n = [], [], 0
    if buf:
        yield np.concatenate(buf), np.concatenate(first)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def slice_moments(mean: np.ndarray, std: np.ndarray) -> dict[str, dict[str, float]]:
    """Per slice: ``mean_rms`` and ``std`` (RMS over the slice's channels) of per-channel moments [F]."""
    return {n: {"mean_rms": _rms(mean[sl]), "std": _rms(std[sl])} for n, sl in FEATURE_SLICES.items()}


def _joint(x: np.ndarray, name: str) -> np.ndarray:
    """Local position [n, 3] of a joint from features [n, F]."""
    j = LOCAL_POS.start + 3 * _J[name]
    return x[:, j : j + 3]


def _rot_angle(x: np.ndarray, name: str) -> np.ndarray:
    """Angle (degrees) of a joint's local rotation, from its 6D channels (rows or columns alike)."""
    k = LOCAL_ROT.start + 6 * _J[name]
    a, b = x[:, k : k + 3], x[:, k + 3 : k + 6]
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-9)
    b = b - np.sum(a * b, -1, keepdims=True) * a
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-9)
    trace = a[:, 0] + b[:, 1] + (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    return np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle (degrees) between vectors u, v [n, 3]."""
    cos = np.sum(u * v, -1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-9)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _length(x: np.ndarray, chain: tuple[str, ...]) -> np.ndarray:
    return sum(np.linalg.norm(_joint(x, b) - _joint(x, a), axis=-1) for a, b in zip(chain, chain[1:]))


def _frame_values(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame scalars of features [n, F] (both sides pooled where a joint has two)."""
    out: dict[str, np.ndarray] = {"pelvis_height_m": _joint(x, "pelvis")[:, 1]}
    flex, foot, ankle, toe = [], [], [], []
    for s in ("left", "right"):
        sh, el, wr = (_joint(x, f"{s}_{n}") for n in ("shoulder", "elbow", "wrist"))
        flex.append(_angle(el - sh, wr - el))
        foot.append(_joint(x, f"{s}_foot")[:, 1])
        ankle.append(_joint(x, f"{s}_ankle")[:, 1])
        toe.append(_rot_angle(x, f"{s}_foot"))
    out["elbow_flex_deg"] = np.concatenate(flex)
    out["foot_height_m"] = np.concatenate(foot)
    out["ankle_height_m"] = np.concatenate(ankle)
    out["toe_bend_deg"] = np.concatenate(toe)
    out["spine_rot_deg"] = np.concatenate([_rot_angle(x, n) for n in ("spine1", "spine2", "spine3")])
    trunk = _joint(x, "neck") - _joint(x, "pelvis")  # heading frame: +z forward, +x the body's left
    out["trunk_pitch_deg"] = np.degrees(np.arctan2(trunk[:, 2], trunk[:, 1]))
    out["trunk_roll_deg"] = np.degrees(np.arctan2(trunk[:, 0], trunk[:, 1]))
    shoulders = _joint(x, "left_shoulder") - _joint(x, "right_shoulder")
    hips = _joint(x, "left_hip") - _joint(x, "right_hip")
    twist = np.arctan2(shoulders[:, 2], shoulders[:, 0]) - np.arctan2(hips[:, 2], hips[:, 0])
    out["trunk_twist_deg"] = np.degrees(np.arctan2(np.sin(twist), np.cos(twist)))
    return out


def motion_figures(features, records: list[dict], fps: float, max_frames: int | None = 500_000) -> dict:
    """Summary figures of a data set's motion (flat dict, see the module docstring)."""
    records = _select(records, max_frames)
    values: dict[str, list[np.ndarray]] = {}
    speeds, clip_speed, legs, arms = [], [], [], []
    for x, first in _chunks(features, records):
        v = np.linalg.norm(x[:, ROOT_LIN_VEL], axis=-1) * fps
        speeds.append(v[~first])
        starts = np.flatnonzero(first)
        sums = np.add.reduceat(np.where(first, 0.0, v), starts)
        lens = np.diff(np.append(starts, len(x))) - 1
        clip_speed.append(sums / np.maximum(lens, 1))
        legs.append(_length(x[starts], ("left_hip", "left_knee", "left_ankle")))
        arms.append(_length(x[starts], ("left_shoulder", "left_elbow", "left_wrist")))
        for k, arr in _frame_values(x).items():
            values.setdefault(k, []).append(arr)
    speed, clip = np.concatenate(speeds), np.concatenate(clip_speed)
    leg, arm = np.concatenate(legs), np.concatenate(arms)
    out = {
        "sequences_read": len(records),
        "root_speed_mps/mean": float(speed.mean()) if speed.size else 0.0,
        "still_frame_share": float(np.mean(speed < IN_PLACE_MPS)) if speed.size else 1.0,
        "in_place_clip_share": float(np.mean(clip < IN_PLACE_MPS)),
        "leg_length_m/mean": float(leg.mean()),
        "leg_length_m/std": float(leg.std()),
        "arm_length_m/mean": float(arm.mean()),
        "arm_length_m/std": float(arm.std()),
    }
    for k, parts in values.items():
        arr = np.concatenate(parts)
        out[f"{k}/mean"] = float(arr.mean())
        for q, val in zip(_PCTS, np.percentile(arr, _PCTS)):
            out[f"{k}/p{q}"] = float(val)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def dataset_summary(ds, max_frames: int | None = 500_000) -> dict:
    """Slice moments and motion figures of a loaded data set (same subsample for both)."""
    if ds.features.shape[1] != FEATURE_DIM:
        raise DataError(f"{ds.path}: features are {ds.features.shape[1]}-d, expected {FEATURE_DIM}")
    fps = float(ds.meta.get("fps", 30))
    records = _select(ds.records, max_frames)
    n, s, ss = 0, np.zeros(FEATURE_DIM), np.zeros(FEATURE_DIM)
    for x, _ in _chunks(ds.features, records):
        n, s, ss = n + len(x), s + x.sum(0), ss + np.square(x).sum(0)
    if n == 0:
        raise DataError(f"{ds.path}: no frames")
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean**2, 0.0))
    return {
        "path": str(ds.path),
        "frames_read": n,
        "slices": slice_moments(mean, std),
        "motion": motion_figures(ds.features, records, fps, max_frames=None),
        "_mean": mean,
        "_std": std,
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def compare(a: dict, b: dict) -> dict:
    """Ratios ``a / b`` of two :func:`dataset_summary` results, per slice and per motion figure.

    Per slice: ``mean_rms`` and ``std`` ratios and ``mean_shift``, the RMS over the
    slice's channels of ``(mean_a - mean_b) / std_b`` (std_b: b's shared slice std).
    """
    slices = {}
    for name, sl in FEATURE_SLICES.items():
        sa, sb = a["slices"][name], b["slices"][name]
        shift = (a["_mean"][sl] - b["_mean"][sl]) / max(sb["std"], 1e-9)
        slices[name] = {
            "mean_rms_ratio": _ratio(sa["mean_rms"], sb["mean_rms"]),
            "std_ratio": _ratio(sa["std"], sb["std"]),
            "mean_shift": round(_rms(shift), 4),
        }
    motion = {
        k: {"a": a["motion"][k], "b": b["motion"].get(k), "ratio": _ratio(a["motion"][k], b["motion"].get(k) or 0)}
        for k in a["motion"]
        if k != "sequences_read"
    }
    return {"a": a["path"], "b": b["path"], "slices": slices, "motion": motion}


def public(summary: dict) -> dict:
    """A :func:`dataset_summary` without its per-channel arrays (JSON-ready)."""
    return {k: v for k, v in summary.items() if not k.startswith("_")}


def format_comparison(result: dict) -> str:
    """A plain-text table of a :func:`compare` result (what the CLI prints)."""
    lines = [f"A = {result['a']}", f"B = {result['b']}", "", "per slice (A / B):"]
    lines.append(f"  {'slice':<14}{'mean_rms':>10}{'std':>10}{'mean_shift':>12}")
    for name, s in result["slices"].items():
        ratios = f"{_fmt(s['mean_rms_ratio']):>10}{_fmt(s['std_ratio']):>10}{_fmt(s['mean_shift']):>12}"
        lines.append(f"  {name:<14}{ratios}")
    lines += ["", "motion:", f"  {'figure':<26}{'A':>10}{'B':>10}{'A / B':>10}"]
    for name, m in result["motion"].items():
        lines.append(f"  {name:<26}{_fmt(m['a']):>10}{_fmt(m['b']):>10}{_fmt(m['ratio']):>10}")
    return "\n".join(lines)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"
