"""Motion plans: the numpy description of a motion before it is posed (stage: synthetic data).

A :class:`Segment` holds, per frame ``T``, everything the poser
(:mod:`mm_jax.motion.synth.pose`) needs to turn a plan into joint rotations:

* the root's ground trajectory ``root_xz [T, 2]`` and heading ``yaw [T]``
  (radians; yaw 0 faces +z, positive yaw turns towards the body's left, +x),
* the desired pelvis height ``height [T]`` (the poser lowers it where the legs
  cannot reach the planted feet, and makes flight phases ballistic),
* the pelvis tilt relative to the heading ``tilt [T, 3]`` (ZYX Euler, radians),
* ankle targets ``ankle [T, 2, 3]`` in world coordinates (left, right), foot
  yaw ``foot_yaw [T, 2]``, foot pitch ``foot_pitch [T, 2]`` (positive lifts the
  heel) and whether each foot is planted, ``contact [T, 2]``,
* ZYX Euler angles ``euler [T, 22, 3]`` of the joints that are not solved by
  leg IK (spine, neck, head, arms); leg entries are ignored.

Arm angles are written in the *left-arm convention* and mirrored for the right
arm: the Euler triple (z, y, x) becomes (-z, -y, x) under the x -> -x mirror.
For the left arm (rest along +x) in ZYX order, z raises the arm (negative
lowers it to the side), y swings it (negative is forwards), x twists it; the
elbow flexes with negative y (forearm forwards).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mm_jax.motion import skeleton

IDX = skeleton.JOINT_INDEX
NUM_JOINTS = skeleton.NUM_JOINTS
LEFT, RIGHT = 0, 1
SIDES = ("left", "right")

# (collar, shoulder, elbow, wrist) of each arm.
ARM_JOINTS = {
    "left": (IDX["left_collar"], IDX["left_shoulder"], IDX["left_elbow"], IDX["left_wrist"]),
    "right": (IDX["right_collar"], IDX["right_shoulder"], IDX["right_elbow"], IDX["right_wrist"]),
}
SPINE = (IDX["spine1"], IDX["spine2"], IDX["spine3"])
NECK, HEAD = IDX["neck"], IDX["head"]
UPPER_JOINTS = SPINE + (NECK, HEAD) + ARM_JOINTS["left"] + ARM_JOINTS["right"]

# Neutral standing arm, left convention: (collar, shoulder, elbow, wrist) x (z, y, x).
NEUTRAL_ARM = np.array(
    [[0.0, 0.0, 0.0], [-1.40, -0.06, 0.0], [0.0, -0.25, 0.0], [0.0, 0.0, 0.0]], dtype=np.float64
)
MIRROR = np.array([-1.0, -1.0, 1.0])

# Rest ankle position relative to the pelvis on the ground plane (x, z), per side.
_REST = skeleton.rest_positions()
ANKLE_XZ = np.stack([_REST[IDX["left_ankle"], [0, 2]], _REST[IDX["right_ankle"], [0, 2]]]).astype(np.float64)
TOE_OFFSET = np.stack([skeleton.OFFSETS[IDX["left_foot"]], skeleton.OFFSETS[IDX["right_foot"]]]).astype(
    np.float64
)  # ankle -> foot joint, [2, 3]
HIP_OFFSET = np.stack([skeleton.OFFSETS[IDX["left_hip"]], skeleton.OFFSETS[IDX["right_hip"]]]).astype(
    np.float64
)
LEG_REACH = np.array(
    [np.linalg.norm(skeleton.OFFSETS[IDX[f"{s}_knee"]] + skeleton.OFFSETS[IDX[f"{s}_ankle"]]) for s in SIDES]
)
STAND_HEIGHT = skeleton.rest_root_height()


@dataclasses.dataclass(frozen=True)
class Segment:
    """A planned stretch of motion (see the module docstring for the fields)."""

    root_xz: np.ndarray
    yaw: np.ndarray
    height: np.ndarray
    tilt: np.ndarray
    ankle: np.ndarray
    foot_yaw: np.ndarray
    foot_pitch: np.ndarray
    contact: np.ndarray
    euler: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.yaw.shape[0])

    def replace(self, **changes) -> "Segment":
        return dataclasses.replace(self, **changes)

    def moved(self, xz: np.ndarray, yaw: float) -> "Segment":
        """This segment moved rigidly on the ground: rotated by ``yaw`` about the origin, then shifted."""
        c, s = np.cos(yaw), np.sin(yaw)
        # yaw_matrix(yaw) applied to (x, z): x' = c x + s z, z' = -s x + c z.
        rot = np.array([[c, s], [-s, c]])
        root = self.root_xz @ rot.T + xz
        ank = self.ankle.copy()
        ank[..., [0, 2]] = ank[..., [0, 2]] @ rot.T + xz
        return self.replace(root_xz=root, yaw=self.yaw + yaw, ankle=ank, foot_yaw=self.foot_yaw + yaw)


def rotate_xz(v: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Applies yaw_matrix(yaw) to ground vectors v [..., 2] (x, z); yaw broadcasts over [...]."""
    c, s = np.cos(yaw), np.sin(yaw)
    x, z = v[..., 0], v[..., 1]
    out = np.empty(np.broadcast_shapes(np.shape(x), np.shape(c)) + (2,))
    out[..., 0] = c * x + s * z
    out[..., 1] = -s * x + c * z
    return out


def neutral_euler(frames: int) -> np.ndarray:
    """[T, 22, 3] ZYX angles of the neutral standing upper body (arms down)."""
    e = np.zeros((frames, NUM_JOINTS, 3))
    for side in SIDES:
        set_arm(e, side, np.broadcast_to(NEUTRAL_ARM, (frames, 4, 3)))
    return e


def set_arm(euler: np.ndarray, side: str, arm: np.ndarray, frames: slice = slice(None)) -> None:
    """Writes left-convention arm angles arm [T, 4, 3] for ``side`` (mirrored for the right arm)."""
    vals = arm * MIRROR if side == "right" else arm
    euler[frames, list(ARM_JOINTS[side])] = vals


def get_arm(euler: np.ndarray, side: str) -> np.ndarray:
    """Left-convention arm angles [T, 4, 3] of ``side``."""
    vals = euler[:, list(ARM_JOINTS[side])]
    return vals * MIRROR if side == "right" else vals


def neutral_feet(root_xz: np.ndarray, yaw: np.ndarray, width: float = 0.0) -> np.ndarray:
    """Flat ankle positions [T, 2, 3] under the hips of a root at root_xz [T, 2], yaw [T].

    ``width`` adds that many metres of lateral spread to each foot.
    """
    off = ANKLE_XZ + np.array([[width, 0.0], [-width, 0.0]])
    xz = root_xz[:, None, :] + rotate_xz(off[None], yaw[:, None])
    y = np.broadcast_to(-TOE_OFFSET[:, 1], xz.shape[:2])
    return np.stack([xz[..., 0], y, xz[..., 1]], axis=-1)


def standing(frames: int, xz: tuple[float, float] = (0.0, 0.0), yaw: float = 0.0) -> Segment:
    """A segment of neutral standing, feet planted under the hips."""
    root = np.tile(np.asarray(xz, np.float64), (frames, 1))
    yaws = np.full(frames, float(yaw))
    return Segment(
        root_xz=root,
        yaw=yaws,
        height=np.full(frames, STAND_HEIGHT),
        tilt=np.zeros((frames, 3)),
        ankle=neutral_feet(root, yaws),
        foot_yaw=np.tile(yaws[:, None], (1, 2)),
        foot_pitch=np.zeros((frames, 2)),
        contact=np.ones((frames, 2), bool),
        euler=neutral_euler(frames),
    )


def smoothstep(u: np.ndarray) -> np.ndarray:
    """Minimum-jerk ramp 0 -> 1 on u in [0, 1] (clipped outside)."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (10.0 - 15.0 * u + 6.0 * u * u)


def envelope(frames: int, rise: float, fall: float | None = None) -> np.ndarray:
    """[T] weight rising 0 -> 1 over ``rise`` frames, falling back over ``fall`` frames at the end."""
    t = np.arange(frames, dtype=np.float64)
    fall = rise if fall is None else fall
    up = smoothstep(t / max(rise, 1e-6))
    down = smoothstep((frames - 1 - t) / max(fall, 1e-6))
    return np.minimum(up, down)


def bump(frames: int, start: float, peak_len: float, ramp: float) -> np.ndarray:
    """[T] weight: 0 until ``start``, ramps to 1 over ``ramp``, holds ``peak_len``, ramps back down."""
    t = np.arange(frames, dtype=np.float64) - start
    up = smoothstep(t / max(ramp, 1e-6))
    down = smoothstep((peak_len + 2 * ramp - t) / max(ramp, 1e-6))
    return np.minimum(up, down)


def keyed(frames: int, keys: list[tuple[float, np.ndarray | float]]) -> np.ndarray:
    """Keyframe animation: [T, ...] values eased (minimum jerk) between (frame, value) keys.

    Before the first key the first value holds, after the last key the last value.
    """
    times = [float(k[0]) for k in keys]
    vals = [np.asarray(k[1], np.float64) for k in keys]
    out = np.empty((frames,) + vals[0].shape)
    t = np.arange(frames, dtype=np.float64)
    out[:] = vals[0]
    for (t0, v0), (t1, v1) in zip(zip(times, vals), zip(times[1:], vals[1:])):
        m = (t >= t0) & (t <= t1)
        w = smoothstep((t[m] - t0) / max(t1 - t0, 1e-6)).reshape((-1,) + (1,) * v0.ndim)
        out[m] = v0 + (v1 - v0) * w
    out[t > times[-1]] = vals[-1]
    return out
