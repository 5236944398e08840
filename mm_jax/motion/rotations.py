"""Rotation conversions in jnp (stage: motion representation).

Inputs and outputs are rotation matrices ``[..., 3, 3]`` acting on column
vectors (``p' = R @ p``), axis-angle vectors ``[..., 3]`` (radians), Euler
angles ``[..., 3]`` for a named axis order, and the continuous 6D form
``[..., 6]`` of Zhou et al. (2019) in the reference's convention (RECIPE.md):
the first two *rows* of the matrix, row-major ``[r00, r01, r02, r10, r11, r12]``. Every function is jit- and
vmap-able and works on any leading batch shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_AXES = {"X": 0, "Y": 1, "Z": 2}


def axis_rotation(axis: str, angle: jax.Array) -> jax.Array:
    """Rotation by ``angle`` (radians, [...]) about the named axis -> [..., 3, 3]."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    o, z = jnp.ones_like(angle), jnp.zeros_like(angle)
    if axis == "X":
        rows = [[o, z, z], [z, c, -s], [z, s, c]]
    elif axis == "Y":
        rows = [[c, z, s], [z, o, z], [-s, z, c]]
    elif axis == "Z":
        rows = [[c, -s, z], [s, c, z], [z, z, o]]
    else:
        raise ValueError(f"axis must be one of X, Y, Z, got {axis!r}")
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def euler_to_matrix(angles: jax.Array, order: str) -> jax.Array:
    """Intrinsic Euler angles (radians) to matrices: R = R_order[0] @ R_order[1] @ R_order[2].

    This is the BVH convention: channels listed as ``Zrotation Xrotation
    Yrotation`` mean ``order="ZXY"`` with ``angles[..., i]`` the i-th channel.
    """
    if sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"order must be a permutation of XYZ, got {order!r}")
    r = axis_rotation(order[0], angles[..., 0])
    r = r @ axis_rotation(order[1], angles[..., 1])
    return r @ axis_rotation(order[2], angles[..., 2])


def axis_angle_to_matrix(aa: jax.Array) -> jax.Array:
    """Rodrigues' formula, [..., 3] -> [..., 3, 3], stable at zero angle."""
    theta2 = jnp.sum(aa * aa, axis=-1, keepdims=True)[..., None]
    theta = jnp.sqrt(jnp.maximum(theta2, 1e-24))
    small = theta2 < 1e-12
    # sin(t)/t and (1-cos(t))/t^2 with Taylor fallbacks near zero.
    a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(theta) / theta)
    b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(theta)) / jnp.maximum(theta2, 1e-24))
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    zero = jnp.zeros_like(x)
    k = jnp.stack(
        [jnp.stack([zero, -z, y], -1), jnp.stack([z, zero, -x], -1), jnp.stack([-y, x, zero], -1)],
        axis=-2,
    )
    eye = jnp.broadcast_to(jnp.eye(3, dtype=aa.dtype), k.shape)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(r: jax.Array) -> jax.Array:
    """Inverse of :func:`axis_angle_to_matrix` for angles in [0, pi)."""
    cos = jnp.clip((jnp.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    theta = jnp.arccos(cos)
    vec = jnp.stack(
        [r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1
    )
    sin = jnp.sin(theta)[..., None]
    scale = jnp.where(sin < 1e-6, 0.5, theta[..., None] / (2.0 * jnp.maximum(sin, 1e-6)))
    return vec * scale


def matrix_to_6d(r: jax.Array) -> jax.Array:
    """[..., 3, 3] -> [..., 6]: first row then second row (r00 r01 r02 r10 r11 r12)."""
    return jnp.concatenate([r[..., 0, :], r[..., 1, :]], axis=-1)


def sixd_to_matrix(d6: jax.Array) -> jax.Array:
    """[..., 6] -> [..., 3, 3] by Gram-Schmidt over the two rows (exact for a valid 6D input).

    The third row is ``row0 x row1`` (the rows of a rotation are a right-handed basis).
    """
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / jnp.linalg.norm(a1, axis=-1, keepdims=True).clip(1e-8)
    a2 = a2 - jnp.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = a2 / jnp.linalg.norm(a2, axis=-1, keepdims=True).clip(1e-8)
    b3 = jnp.cross(b1, b2)
    return jnp.stack([b1, b2, b3], axis=-2)


def yaw_matrix(yaw: jax.Array) -> jax.Array:
    """Rotation about +y (up) by ``yaw`` radians; yaw 0 faces +z."""
    return axis_rotation("Y", yaw)


def heading_yaw(r: jax.Array) -> jax.Array:
    """Yaw (radians) of the direction the rotated +z axis faces on the ground plane."""
    fwd = r[..., :, 2]
    return jnp.arctan2(fwd[..., 0], fwd[..., 2])
