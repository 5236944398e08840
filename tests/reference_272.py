"""An independent NumPy implementation of the reference 272-d frame, written from RECIPE.md.

It shares no code with ``mm_jax.motion.features``: plain per-frame loops over
matrices, float64, the slices exactly as ../shared/RECIPE.md states them. Tests
compare the project's encoder (and every importer) against it.
"""

from __future__ import annotations

import numpy as np


def y_matrix(h: float) -> np.ndarray:
    """Y(h) = [[cos h, 0, sin h], [0, 1, 0], [-sin h, 0, cos h]]."""
    c, s = np.cos(h), np.sin(h)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rows6(m: np.ndarray) -> np.ndarray:
    """The first two rows of a 3x3 matrix, row-major."""
    return np.concatenate([m[0], m[1]])


def reference_features(pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """pos [T, 22, 3] SMPL joint positions, rot [T, 22, 3, 3] local rotations -> [T, 272] float64."""
    pos = np.asarray(pos, np.float64)
    rot = np.asarray(rot, np.float64)
    t_len = pos.shape[0]
    floor = pos[:, :, 1].min()
    origin = np.array([pos[0, 0, 0], floor, pos[0, 0, 2]])
    pos = pos - origin
    h = np.array([-np.arctan2(rot[t, 0, 0, 2], rot[t, 0, 2, 2]) for t in range(t_len)])
    out = np.zeros((t_len, 272))
    local_pos = np.zeros((t_len, 22, 3))
    for t in range(t_len):
        root = pos[t, 0]
        for j in range(22):
            local_pos[t, j] = y_matrix(h[t]) @ (pos[t, j] - np.array([root[0], 0.0, root[2]]))
    for t in range(t_len):
        if t == 0:
            lin = np.zeros(2)
            ang = rows6(np.eye(3))
            vel = np.zeros((22, 3))
        else:
            d = y_matrix(h[t - 1]) @ (pos[t, 0] - pos[t - 1, 0])
            lin = d[[0, 2]]
            ang = rows6(y_matrix(h[t] - h[t - 1]))
            vel = local_pos[t] - local_pos[t - 1]
        rots = [rows6(y_matrix(h[t]) @ rot[t, 0])] + [rows6(rot[t, j]) for j in range(1, 22)]
        out[t, 0:2] = lin
        out[t, 2:8] = ang
        out[t, 8:74] = local_pos[t].reshape(-1)
        out[t, 74:140] = vel.reshape(-1)
        out[t, 140:272] = np.concatenate(rots)
    return out
