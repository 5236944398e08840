"""Foot tracks and gait planning (stage: synthetic data).

Feet are planned as a list of :class:`Stance` intervals per foot: while a foot
is planted its toe (the SMPL ``*_foot`` joint) stays fixed on the ground, so a
planted foot does not skate; near the end of a stance the heel may rise
(pitch about the toe, as in toe-off). Between two stances the foot swings:
the ankle follows a minimum-jerk path from lift-off to landing plus a
``sin(pi u)`` lift, and the foot flexes up by ``dorsiflex sin(pi u)`` on the
way (toes clear the ground; a negative value points the foot, as in a jump's
flight). The leg rotations that realise these targets come from
the analytic IK in :mod:`mm_jax.motion.synth.pose`.

:func:`gait` turns a root trajectory and a step schedule into stances: each
landing is placed under the hip where the root will be at that stance's
mid-point, and the last landing of each foot is placed under the final root
pose, so every locomotion segment ends standing with its feet together.
All times are in frames (floats).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mm_jax.motion.synth.plan import ANKLE_XZ, TOE_OFFSET, rotate_xz, smoothstep


@dataclasses.dataclass(frozen=True)
class Stance:
    """One planted interval of one foot.

    Attributes:
      start, end: first and last planted frame (floats).
      x, z: where the ankle would be with the foot flat (world, metres).
      yaw: foot heading (radians).
      pitch: constant heel lift while planted (radians; > 0 stands on the toes).
      heel_rise: extra pitch reached at lift-off (toe-off).
      heel_time: frames over which that heel rise happens, ending at ``end``.
    """

    start: float
    end: float
    x: float
    z: float
    yaw: float
    pitch: float = 0.0
    heel_rise: float = 0.0
    heel_time: float = 0.0


def toe_pivot(side: int, x: float, z: float, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Ankle positions [T, 3] of a foot whose toe is fixed, for pitch [T] and yaw [T].

    The toe sits at the flat foot's toe, ``(x, z) + yaw(TOE_OFFSET)``; the ankle is
    the toe minus the pitched offset ``R_x(pitch) TOE_OFFSET`` turned by the yaw. The
    lateral parts cancel, leaving ``(x, z) + yaw((0, oz - rz))`` on the ground and
    ``-ry`` in height.
    """
    oy, oz = TOE_OFFSET[side, 1], TOE_OFFSET[side, 2]
    yaw, pitch = np.broadcast_arrays(np.asarray(yaw, np.float64), np.asarray(pitch, np.float64))
    c, s = np.cos(pitch), np.sin(pitch)
    d = oz - (s * oy + c * oz)  # R_x(pitch) applied to the toe offset: (y, z) = (c oy - s oz, s oy + c oz)
    out = np.empty(yaw.shape + (3,))
    out[..., 0] = x + np.sin(yaw) * d
    out[..., 1] = -(c * oy - s * oz)
    out[..., 2] = z + np.cos(yaw) * d
    return out


def _stance_pitch(st: Stance, t: np.ndarray) -> np.ndarray:
    if st.heel_time <= 0 or st.heel_rise == 0:
        return np.full(t.shape, st.pitch)
    u = (t - (st.end - st.heel_time)) / st.heel_time
    return st.pitch + st.heel_rise * smoothstep(u)


def foot_track(
    stances: list[Stance], frames: int, side: int, swing_height: float | list[float], dorsiflex: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ankle targets of one foot.

    Args:
      stances: planted intervals in time order; the first must start at frame
        0 and the last end at ``frames - 1``.
      frames: T.
      side: 0 left, 1 right.
      swing_height: lift (metres) of each swing, or one value for all.
      dorsiflex: peak upward flex of the foot mid-swing (radians; negative points it).

    Returns:
      (ankle [T, 3], yaw [T], pitch [T], contact [T] bool).
    """
    assert stances[0].start <= 0 and stances[-1].end >= frames - 1, (stances[0], stances[-1], frames)
    t = np.arange(frames, dtype=np.float64)
    ankle = np.zeros((frames, 3))
    yaw = np.zeros(frames)
    pitch = np.zeros(frames)
    contact = np.zeros(frames, bool)
    heights = swing_height if isinstance(swing_height, list) else [swing_height] * len(stances)
    for k, st in enumerate(stances):
        m = (t >= st.start) & (t <= st.end)
        p = _stance_pitch(st, t[m])
        ankle[m] = toe_pivot(side, st.x, st.z, np.full(p.shape, st.yaw), p)
        yaw[m], pitch[m], contact[m] = st.yaw, p, True
        if k + 1 == len(stances):
            break
        nxt = stances[k + 1]
        m = (t > st.end) & (t < nxt.start)
        if not m.any():
            continue
        u = (t[m] - st.end) / (nxt.start - st.end)
        w = u * u * (3.0 - 2.0 * u)  # cubic ease: peak foot speed 1.5x the mean
        a = toe_pivot(side, st.x, st.z, np.array([st.yaw]), np.array([st.pitch + st.heel_rise]))[0]
        b = toe_pivot(side, nxt.x, nxt.z, np.array([nxt.yaw]), np.array([nxt.pitch]))[0]
        ankle[m] = a + (b - a) * w[:, None]
        ankle[m, 1] += heights[k] * np.sin(np.pi * u)
        dyaw = np.arctan2(np.sin(nxt.yaw - st.yaw), np.cos(nxt.yaw - st.yaw))
        yaw[m] = st.yaw + dyaw * w
        pitch[m] = (st.pitch + st.heel_rise) * (1 - w) + nxt.pitch * w - dorsiflex * np.sin(np.pi * u)
    return ankle, yaw, pitch, contact


def feet_tracks(
    stances: tuple[list[Stance], list[Stance]], frames: int, swing_height: float | tuple = 0.1,
    dorsiflex: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both feet: (ankle [T, 2, 3], yaw [T, 2], pitch [T, 2], contact [T, 2])."""
    hs = swing_height if isinstance(swing_height, tuple) else (swing_height, swing_height)
    out = [foot_track(stances[s], frames, s, hs[s], dorsiflex) for s in (0, 1)]
    return tuple(np.stack([o[i] for o in out], axis=1) for i in range(4))  # type: ignore[return-value]


def planted(
    side: int,
    root_xz: np.ndarray,
    yaw: float,
    start: float,
    end: float,
    width: float = 0.0,
    forward: float = 0.0,
    **kw,
) -> Stance:
    """A stance under the hip of a root at root_xz [2] facing ``yaw`` (offsets in the body frame)."""
    off = ANKLE_XZ[side] + np.array([width if side == 0 else -width, forward])
    x, z = np.asarray(root_xz) + rotate_xz(off, np.asarray(yaw))
    return Stance(start=float(start), end=float(end), x=float(x), z=float(z), yaw=float(yaw), **kw)


def alternating_steps(
    first: int, n: int, start: float, period: float, swing: float
) -> list[tuple[int, float, float]]:
    """A step schedule [(foot, lift, land)] of ``n`` alternating steps, the first lifting at ``start``."""
    return [((first + k) % 2, start + k * period, start + k * period + swing) for k in range(n)]


def gait(
    root_xz: np.ndarray,
    yaw: np.ndarray,
    steps: list[tuple[int, float, float]],
    *,
    width: float = 0.0,
    heel_rise: float = 0.0,
    heel_frac: float = 0.3,
    pitch: float = 0.0,
) -> tuple[list[Stance], list[Stance]]:
    """Stances of both feet for a root trajectory and a step schedule.

    Args:
      root_xz: [T, 2] root ground path; yaw: [T] heading.
      steps: [(foot, lift, land)] in time order (frames).
      width: extra lateral spread of each foot (metres).
      heel_rise: toe-off pitch reached at each lift (radians).
      heel_frac: fraction of a stance spent rising onto the toe.
      pitch: constant pitch while planted (tiptoe walking).

    Returns:
      (left stances, right stances).
    """
    frames = root_xz.shape[0]
    end = frames - 1
    out: tuple[list[Stance], list[Stance]] = ([], [])
    t_idx = np.arange(frames, dtype=np.float64)
    for side in (0, 1):
        mine = [(lift, land) for foot, lift, land in steps if foot == side]
        lands = [0.0] + [land for _, land in mine]
        lifts = [lift for lift, _ in mine] + [float(end)]
        for k, (a, b) in enumerate(zip(lands, lifts)):
            if k == 0 or k == len(lands) - 1:
                when = 0.0 if k == 0 else float(end)
            else:
                when = 0.5 * (a + b)
            pos = np.array([np.interp(when, t_idx, root_xz[:, 0]), np.interp(when, t_idx, root_xz[:, 1])])
            h = np.interp(when, t_idx, np.unwrap(yaw))
            rise = heel_rise if k < len(lands) - 1 else 0.0
            out[side].append(
                planted(
                    side,
                    pos,
                    h,
                    a,
                    b,
                    width=width,
                    pitch=pitch if 0 < k < len(lands) - 1 else 0.0,
                    heel_rise=rise,
                    heel_time=heel_frac * (b - a),
                )
            )
    return out
