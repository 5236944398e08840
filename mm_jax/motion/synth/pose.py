"""From a plan to joint rotations: leg IK, forward kinematics, ground contact (stage: synthetic data).

Input: a :class:`~mm_jax.motion.synth.plan.Segment` (numpy) and the
sequence's :class:`~mm_jax.motion.synth.body.Body` (bone lengths; the plan is
fitted to it first, :meth:`Body.apply`). Output: local joint rotations
``[T, 22, 3, 3]`` (each relative to its parent, the root's global), the root
position ``[T, 3]`` and the joints ``[T, 22, 3]``, or directly the 272-d
features of :mod:`mm_jax.motion.features`, all on the body's own offsets.

Steps:

1. :func:`pelvis_height` (numpy) lowers the desired pelvis height wherever a
   planted foot would be out of the leg's reach (98% of the straight leg),
   smooths that limit from below, and fills every stretch with no foot on the
   ground (jumps, hops, running flight) with a ballistic arc under gravity.
2. :func:`pose_batch` (jnp, jit) builds the pelvis rotation from the heading
   and tilt, solves each leg analytically (hip = yaw(d) Z(psi) X(phi), knee =
   X(kappa), the ankle makes the foot take its planned yaw/pitch), turns the
   other joints' ZYX Euler angles into matrices, bends the toes (the SMPL
   ``*_foot`` joints: flat on the ground while the heel is up, a little pointed
   with a pointed foot in the air, :func:`toe_angles`), runs forward kinematics, and
   on frames where a foot is planted shifts the root vertically so that the
   lowest foot joint touches y = 0 (a few millimetres at most, where IK could
   not reach exactly).

Batches are padded to a fixed length by repeating the last frame, so one
compiled program serves every sequence and a sequence's result does not
depend on what it was batched with (the features are causal in time).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mm_jax.motion import features as mfeat
from mm_jax.motion import rotations, skeleton
from mm_jax.motion.synth.body import Body
from mm_jax.motion.synth.plan import HIP_OFFSET, LEG_REACH, TOE_OFFSET, Segment, rotate_xz

GRAVITY = 9.81
REACH = 0.98  # fraction of the straight leg used when lowering the pelvis
_IDX = skeleton.JOINT_INDEX
_LEGS = {
    0: (_IDX["left_hip"], _IDX["left_knee"], _IDX["left_ankle"]),
    1: (_IDX["right_hip"], _IDX["right_knee"], _IDX["right_ankle"]),
}
_TOES = (_IDX["left_foot"], _IDX["right_foot"])
_LEG_JOINTS = tuple(j for s in (0, 1) for j in _LEGS[s]) + _TOES
_FOOT_JOINTS = jnp.asarray(skeleton.FOOT_JOINTS)


def _erode_mean(x: np.ndarray, width: int) -> np.ndarray:
    """A smooth curve that stays below x [T]: running min, then running mean (same window)."""
    pad = width // 2
    xp = np.pad(x, pad, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(xp, width)
    lo = np.pad(win.min(axis=1), pad, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(lo, width)
    return win.mean(axis=1)


def _leg_geometry(offsets: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(hip offsets [2, 3], straight-leg reach [2]) of a body (default: the neutral one)."""
    if offsets is None:
        return HIP_OFFSET, LEG_REACH
    off = np.asarray(offsets, np.float64)
    hips = off[[_LEGS[0][0], _LEGS[1][0]]]
    reach = np.array([np.linalg.norm(off[_LEGS[s][1]] + off[_LEGS[s][2]]) for s in (0, 1)])
    return hips, reach


def pelvis_height(seg: Segment, fps: float, smooth: int = 5, offsets: np.ndarray | None = None) -> np.ndarray:
    """Pelvis height [T]: the desired height within the legs' reach, ballistic in flight.

    ``offsets`` [22, 3]: the body whose legs must reach (default: the SMPL neutral body).
    """
    hip_off, leg_reach = _leg_geometry(offsets)
    hip_xz = seg.root_xz[:, None, :] + rotate_xz(hip_off[None, :, [0, 2]], seg.yaw[:, None])
    horiz2 = np.sum((seg.ankle[..., [0, 2]] - hip_xz) ** 2, axis=-1)  # [T, 2]
    reach = (REACH * leg_reach)[None, :]
    hmax = seg.ankle[..., 1] - hip_off[None, :, 1] + np.sqrt(np.maximum(reach**2 - horiz2, 1e-4))
    hmax = np.where(seg.contact, hmax, np.inf).min(axis=1)
    h = np.minimum(seg.height, hmax)
    h = np.minimum(seg.height, _erode_mean(h, smooth))
    air = ~seg.contact.any(axis=1)
    if air.any():
        h = _ballistic(h, air, fps)
    return h


def _ballistic(h: np.ndarray, air: np.ndarray, fps: float) -> np.ndarray:
    """Replaces each run of airborne frames by a free-fall arc between its neighbours."""
    h = h.copy()
    t = np.arange(h.shape[0])
    edges = np.flatnonzero(np.diff(np.concatenate([[0], air.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):  # airborne frames a .. b-1
        if a == 0 or b >= h.shape[0]:
            continue
        t0, t1 = a - 1, b
        u = (t[a:b] - t0) / (t1 - t0)
        h[a:b] = h[t0] + (h[t1] - h[t0]) * u + 0.5 * GRAVITY * (t[a:b] - t0) * (t1 - t[a:b]) / fps**2
    return h


def _ang(v_y: jax.Array, v_z: jax.Array) -> jax.Array:
    """Angle of a (y, z) vector from straight down, positive towards +z."""
    return jnp.arctan2(v_z, -v_y)


def _solve_leg(side: int, root_rot, root_pos, ankle, foot_rot, off):
    """Analytic 2-bone IK of one leg over T frames -> (hip, knee, ankle) local rotations [T, 3, 3].

    ``off`` [22, 3]: the body's rest offsets.
    """
    hip_j, knee_j, ankle_j = _LEGS[side]
    u1, u2 = off[knee_j], off[ankle_j]
    hip_w = root_pos + jnp.einsum("tij,j->ti", root_rot, off[hip_j])
    rt = jnp.swapaxes(root_rot, -1, -2)
    d = jnp.einsum("tij,tj->ti", rt, ankle - hip_w)
    f_loc = rt @ foot_rot
    delta = jnp.arctan2(f_loc[:, 0, 2], f_loc[:, 2, 2])  # foot yaw relative to the pelvis
    d = jnp.einsum("tij,tj->ti", rotations.yaw_matrix(-delta), d)
    cx = u1[0] + u2[0]
    a_len, b_len = jnp.hypot(u1[1], u1[2]), jnp.hypot(u2[1], u2[2])
    delta0 = _ang(u1[1], u1[2]) - _ang(u2[1], u2[2])
    r2 = jnp.sum(d * d, -1) - cx * cx
    cos = (r2 - a_len**2 - b_len**2) / (2 * a_len * b_len)
    kappa = jnp.arccos(jnp.clip(cos, -0.99, jnp.cos(delta0))) - delta0  # >= 0: the knee never hyperextends
    knee = rotations.axis_rotation("X", kappa)
    w = u1 + jnp.einsum("tij,j->ti", knee, u2)  # hip->ankle in the hip frame, [T, 3]
    d = d * (jnp.linalg.norm(w, axis=-1) / jnp.maximum(jnp.linalg.norm(d, axis=-1), 1e-6))[:, None]
    wy2 = -jnp.sqrt(jnp.maximum(d[:, 0] ** 2 + d[:, 1] ** 2 - cx * cx, 1e-8))
    psi = jnp.arctan2(d[:, 1], d[:, 0]) - jnp.arctan2(wy2, cx)
    phi = _ang(w[:, 1], w[:, 2]) - _ang(wy2, d[:, 2])
    hip = rotations.euler_to_matrix(jnp.stack([delta, psi, phi], -1), "YZX")
    glob = root_rot @ hip @ knee
    ank = jnp.swapaxes(glob, -1, -2) @ foot_rot
    return hip, knee, ank


def _pose_one(root_xz, yaw, height, tilt, ankle, foot_yaw, foot_pitch, contact, euler, toe, offsets):
    """One sequence's plan -> (local_rot [T,22,3,3], root_pos [T,3], joints [T,22,3]) on ``offsets`` [22,3]."""
    root_rot = rotations.yaw_matrix(yaw) @ rotations.euler_to_matrix(tilt, "ZYX")
    root_pos = jnp.stack([root_xz[:, 0], height, root_xz[:, 1]], -1)
    local = rotations.euler_to_matrix(euler, "ZYX")  # [T, J, 3, 3]
    local = local.at[:, 0].set(root_rot)
    eye = jnp.eye(3, dtype=local.dtype)
    local = local.at[:, jnp.asarray(_LEG_JOINTS)].set(eye)
    for side in (0, 1):
        foot_rot = rotations.yaw_matrix(foot_yaw[:, side]) @ rotations.axis_rotation("X", foot_pitch[:, side])
        hip, knee, ank = _solve_leg(side, root_rot, root_pos, ankle[:, side], foot_rot, offsets)
        local = local.at[:, jnp.asarray(_LEGS[side])].set(jnp.stack([hip, knee, ank], 1))
        local = local.at[:, _TOES[side]].set(rotations.axis_rotation("X", toe[:, side]))
    _, joints = skeleton.forward_kinematics(local, root_pos, offsets)
    lowest = jnp.min(joints[:, _FOOT_JOINTS, 1], axis=-1)
    lift = jnp.where(contact, -lowest, 0.0)
    shift = jnp.stack([jnp.zeros_like(lift), lift, jnp.zeros_like(lift)], -1)
    return local, root_pos + shift, joints + shift[:, None, :]


@jax.jit
def pose_batch(plan: dict) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Batched plans (dict of [B, T, ...] arrays) -> (local_rot, root_pos, joints) with a B axis."""
    return jax.vmap(lambda p: _pose_one(**p))(plan)


@jax.jit
def features_batch(plan: dict) -> jax.Array:
    """Batched plans -> features [B, T, 272] (via :func:`mm_jax.motion.features.features_from_motion`)."""

    def one(p):
        local, root, _ = _pose_one(**p)
        return mfeat.features_from_motion(local, root, p["offsets"])

    return jax.vmap(one)(plan)


def toe_angles(seg: Segment, fps: float) -> np.ndarray:
    """Toe bend [T, 2] (radians about x; negative bends the toes up, towards the shin).

    A planted foot with its heel up keeps its toes flat on the ground (minus the
    foot's pitch); a foot pointed in the air points its toes a little too
    (a quarter of the pitch); eased over ~0.15 s so lift-off does not snap.
    """
    pitch = np.maximum(seg.foot_pitch, 0.0)
    toe = np.where(seg.contact, -pitch, 0.25 * pitch)
    width = max(3, int(round(0.15 * fps)) | 1)
    pad = width // 2
    win = np.lib.stride_tricks.sliding_window_view(np.pad(toe, ((pad, pad), (0, 0)), mode="edge"), width, axis=0)
    return win.mean(axis=-1)


def plan_arrays(seg: Segment, fps: float, frames: int, body: Body | None = None) -> dict[str, np.ndarray]:
    """The poser's inputs for one segment on ``body`` (default neutral), padded to ``frames``.

    Time arrays are padded by repeating the last frame; ``offsets`` [22, 3] is
    the body's (float32 throughout).
    """
    body = body or Body()
    seg = body.apply(seg)
    offsets = body.offsets()
    t = seg.frames
    if t > frames:
        raise ValueError(f"segment has {t} frames, more than the padded length {frames}")
    arrays = {
        "root_xz": seg.root_xz,
        "yaw": seg.yaw,
        "height": pelvis_height(seg, fps, offsets=offsets),
        "tilt": seg.tilt,
        "ankle": seg.ankle,
        "foot_yaw": seg.foot_yaw,
        "foot_pitch": seg.foot_pitch,
        "contact": seg.contact.any(axis=1),
        "euler": seg.euler,
        "toe": toe_angles(seg, fps),
    }
    out = {}
    for k, v in arrays.items():
        pad = [(0, frames - t)] + [(0, 0)] * (v.ndim - 1)
        out[k] = np.pad(v, pad, mode="edge").astype(bool if k == "contact" else np.float32)
    out["offsets"] = offsets
    return out


def stack_plans(plans: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stacks per-sequence plan dicts along a new leading B axis."""
    return {k: np.stack([p[k] for p in plans]) for k in plans[0]}


def pose_segments(
    segs: list[Segment], fps: float, frames: int | None = None, bodies: list[Body] | None = None
) -> list[tuple[np.ndarray, ...]]:
    """Poses several segments in one batch: [(local_rot [T,22,3,3], root_pos [T,3], joints [T,22,3])].

    All are padded to ``frames`` (default: the longest, rounded up to a multiple of 64, so
    repeated calls reuse compiled programs); ``bodies`` (default: all neutral) gives each its skeleton.
    """
    frames = frames or int(-(-max(s.frames for s in segs) // 64) * 64)
    bodies = bodies or [Body()] * len(segs)
    arrays = stack_plans([plan_arrays(s, fps, frames, b) for s, b in zip(segs, bodies)])
    local, root, joints = (np.asarray(a) for a in pose_batch(arrays))
    return [(local[i, : s.frames], root[i, : s.frames], joints[i, : s.frames]) for i, s in enumerate(segs)]


def pose_segment(seg: Segment, fps: float, body: Body | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses one segment (for tests and tools) on ``body``: (local_rot, root_pos, joints)."""
    return pose_segments([seg], fps, bodies=[body or Body()])[0]


def attach_foot(seg: Segment, side: int, rel: np.ndarray, weight: np.ndarray, fps: float,
                pitch: float = 0.0) -> Segment:
    """Moves one foot's ankle target towards a pose held relative to its hip.

    The pelvis height is settled first (:func:`pelvis_height`, with that foot's
    contact as planned), then the ankle target becomes
    ``lerp(planned, hip + yaw(rel), weight)``; the settled height is stored
    in the segment so that posing it again gives the same pelvis.

    Args:
      seg: the segment; the foot must be marked not planted wherever weight > 0.
      side: 0 left, 1 right.
      rel: [T, 3] or [3] ankle offset from the hip in the body frame (x left, y up, z forward).
      weight: [T] in [0, 1].
      fps: frames per second.
      pitch: toe pointing (radians) once the ankle is 15 cm up; it grows with the
        lift so the toes never dip below the ground while the foot rises or lands.
    """
    h = pelvis_height(seg, fps)
    hip_xz = seg.root_xz + rotate_xz(HIP_OFFSET[side, [0, 2]], seg.yaw)
    rel = np.broadcast_to(np.asarray(rel, np.float64), (seg.frames, 3))
    target = np.stack([hip_xz[:, 0], h + HIP_OFFSET[side, 1] + rel[:, 1], hip_xz[:, 1]], -1)
    target[:, [0, 2]] += rotate_xz(rel[:, [0, 2]], seg.yaw)
    ankle = seg.ankle.copy()
    ankle[:, side] = ankle[:, side] + (target - ankle[:, side]) * weight[:, None]
    lifted = np.clip((ankle[:, side, 1] + TOE_OFFSET[side, 1]) / 0.15, 0.0, 1.0)
    foot_pitch = seg.foot_pitch.copy()
    foot_pitch[:, side] = np.where(weight > 0, pitch * lifted, foot_pitch[:, side])
    return seg.replace(ankle=ankle, height=h, foot_pitch=foot_pitch)
