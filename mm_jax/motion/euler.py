"""Euler angles in NumPy for BVH files (stage: motion I/O).

:func:`euler_matrices` is ``rotations.euler_to_matrix`` (intrinsic, BVH
order: R = R_order[0] @ R_order[1] @ R_order[2]) jitted on inputs padded to a
power of two, so that reading many files of different lengths compiles only a
handful of times; :func:`matrix_to_euler` is its exact inverse.
"""

from __future__ import annotations

import jax
import numpy as np

from mm_jax.errors import ConfigError
from mm_jax.motion import rotations

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
_AXES = {"X": 0, "Y": 1, "Z": 2}


_EULER_JIT = jax.jit(rotations.euler_to_matrix, static_argnames="order")


def euler_matrices(angles: np.ndarray, order: str) -> np.ndarray:
    """rotations.euler_to_matrix of radians [N, 3] -> [N, 3, 3], jitted on N padded to a
    power of two so that files of any length reuse a handful of compilations."""
    n = len(angles)
    padded = np.zeros((max(256, 1 << max(n - 1, 0).bit_length()), 3), np.float32)
    padded[:n] = angles
    return np.asarray(_EULER_JIT(padded, order=order))[:n]


def axis_matrix(axis: str, angle: np.ndarray) -> np.ndarray:
    """NumPy rotation by ``angle`` (radians, [...]) about the named axis -> [..., 3, 3]."""
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(angle), np.zeros_like(angle)
    rows = {
        "X": [[o, z, z], [z, c, -s], [z, s, c]],
        "Y": [[c, z, s], [z, o, z], [-s, z, c]],
        "Z": [[c, -s, z], [s, c, z], [z, z, o]],
    }[axis]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def matrix_to_euler(r: np.ndarray, order: str) -> np.ndarray:
    """Inverse of ``rotations.euler_to_matrix``: [..., 3, 3] -> radians [..., 3].

    Exact everywhere including gimbal lock: the first angle is chosen to zero
    one entry of the rotated last column, and the other two are then read
    from the remainder ``R_first(a)^T R`` with well-conditioned atan2 calls.
    The middle angle is in [-pi/2, pi/2].
    """
    if order not in EULER_ORDERS:
        raise ConfigError(f"Euler order {order!r} is not one of {EULER_ORDERS}")
    r = np.asarray(r, dtype=np.float64)
    i, j, k = (_AXES[c] for c in order)
    sign = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    a = np.arctan2(-sign * r[..., j, k], r[..., k, k])
    m = np.swapaxes(axis_matrix(order[0], a), -1, -2) @ r
    b = np.arctan2(sign * m[..., i, k], m[..., k, k])
    c = np.arctan2(sign * m[..., j, i], m[..., j, j])
    return np.stack([a, b, c], axis=-1)
