"""The foot lock of decoded motion in numpy, for the torch runtime (stage: export).

The same code as :func:`mm_jax.motion.contact.foot_lock` (read its docstring:
root drift removed, planted ankles and toes pinned within 10 cm, knees by
two-bone IK; root velocity, local positions and local velocities change,
heading and rotations do not), copied because the torch runtime imports
nothing of mm_jax outside ``mm_jax.torch_port``. ``tests/test_foot_lock.py``
checks that the two give the same features. Imports numpy only.
"""

from __future__ import annotations

import numpy as np

CONTACT_HEIGHT = 0.05  # m, the reference's contact rule (mm_jax.motion.contact)
SQ_DISPLACEMENT = 0.002  # m^2 per frame
FEATURE_DIM = 272
NUM_JOINTS = 22
ROOT_LIN_VEL, LOCAL_POS, LOCAL_VEL = slice(0, 2), slice(8, 74), slice(74, 140)

LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))  # (hip, knee, ankle, toe) per leg, SMPL joint indices
LOCK_BLEND_FRAMES = 6  # a released joint returns to the decoded motion over this many frames
LOCK_ROOT_SIGMA = 2.0  # frames: Gaussian smoothing of the root correction
LOCK_ROOT_SPEED = 0.02  # m/frame: the speed scale of a contacting joint's weight in the root correction
LOCK_SOFT_OFFSET = 0.04  # m: beyond this offset a pinned joint creeps back towards the decoded one ...
LOCK_CREEP = 0.002  # m/frame: ... at most this fast (below the skating metric's 2.5 mm)
LOCK_MAX_OFFSET = 0.10  # m: a pinned joint never ends further than this from the decoded one (it slides)
LOCK_FOOT_TOLERANCE = 0.01  # m: the ankle-toe distance stays within this of the decoded one's


def foot_lock(features_tf, *, contact_height: float = CONTACT_HEIGHT, sq_displacement: float = SQ_DISPLACEMENT,
              blend_frames: int = LOCK_BLEND_FRAMES, root_sigma: float = LOCK_ROOT_SIGMA,
              root_speed: float = LOCK_ROOT_SPEED, soft_offset: float = LOCK_SOFT_OFFSET,
              creep: float = LOCK_CREEP, max_offset: float = LOCK_MAX_OFFSET,
              foot_tolerance: float = LOCK_FOOT_TOLERANCE) -> np.ndarray:
    """Planted feet held still: ``mm_jax.motion.contact.foot_lock``, the same code (see its docstring).

    Denormalised features [T, 272] (T >= 2) -> [T, 272] float32 numpy; ValueError on another
    shape or NaN/inf.
    """
    f = _checked(features_tf)
    _check_args(blend_frames, root_sigma, root_speed, soft_offset, creep, max_offset, foot_tolerance)
    t_len = len(f)
    h, ground = _root_np(f)
    local = f[:, LOCAL_POS].reshape(t_len, NUM_JOINTS, 3)
    joints = _yaw(-h[:, None], local) + ground[:, None, :]  # [T, J, 3]
    contacts = {j: _planted(joints[:, j], contact_height, sq_displacement) for leg in LEGS for j in leg[2:]}
    shift = _root_shift(joints, contacts, root_sigma, root_speed)  # [T, 3]
    moved = joints + shift[:, None, :]
    new = moved.copy()
    for hip, knee, ankle, toe in LEGS:
        d = _pin(moved[:, [ankle, toe]][..., [0, 2]], np.stack([contacts[ankle], contacts[toe]], -1),
                 blend_frames, soft_offset, creep, max_offset)  # [T, 2, 2]
        new[:, ankle, [0, 2]] += d[:, 0]
        new[:, toe, [0, 2]] += d[:, 1]
        new[:, ankle] = _foot_length(new[:, ankle], new[:, toe], moved[:, ankle] - moved[:, toe], foot_tolerance)
        at = np.any(new[:, ankle] != moved[:, ankle], axis=-1)
        new[at, knee] = _two_bone(moved[at, hip], moved[at, knee], moved[at, ankle], new[at, ankle])
    out = f.copy()
    h_prev = np.concatenate([h[:1], h[:-1]])
    out[1:, ROOT_LIN_VEL] += _yaw(h_prev[1:], np.diff(shift, axis=0))[:, [0, 2]]
    d_local = _yaw(h[:, None], new - moved)  # [T, J, 3], zero for every joint the pins left alone
    out[:, LOCAL_POS] += d_local.reshape(t_len, -1)
    out[1:, LOCAL_VEL] += np.diff(d_local, axis=0).reshape(t_len - 1, -1)
    return out.astype(np.float32)


def _checked(features_tf) -> np.ndarray:
    f = np.asarray(features_tf)
    if f.ndim != 2 or f.shape[1] != FEATURE_DIM or f.shape[0] < 2:
        raise ValueError(f"foot_lock needs features [T >= 2, {FEATURE_DIM}]; got shape {f.shape}")
    if not np.issubdtype(f.dtype, np.floating):
        raise ValueError(f"foot_lock needs floating-point features; got dtype {f.dtype}")
    if not np.isfinite(f).all():
        frame, chan = (int(i) for i in np.argwhere(~np.isfinite(f))[0])
        raise ValueError(f"foot_lock needs finite features; NaN/inf at frame {frame}, channel {chan}")
    return f.astype(np.float64)


def _check_args(blend_frames, root_sigma, root_speed, soft_offset, creep, max_offset, foot_tolerance) -> None:
    if not isinstance(blend_frames, int) or blend_frames < 1:
        raise ValueError(f"foot_lock blend_frames={blend_frames!r} must be an int >= 1")
    if not (root_sigma >= 0 and root_speed > 0 and creep >= 0 and foot_tolerance >= 0):
        raise ValueError(f"foot_lock needs root_sigma >= 0, root_speed > 0, creep >= 0, foot_tolerance >= 0; got "
                         f"{root_sigma!r}, {root_speed!r}, {creep!r}, {foot_tolerance!r}")
    if not 0 <= soft_offset <= max_offset:
        raise ValueError(f"foot_lock needs 0 <= soft_offset <= max_offset; got {soft_offset!r} and {max_offset!r}")


def _yaw(yaw: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``Y(yaw) @ v`` (``features._rotate_y``) for yaw [...] and v [..., 3]."""
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    x, y, z = v[..., 0:1], v[..., 1:2], v[..., 2:3]
    return np.concatenate([c * x + s * z, y, -s * x + c * z], axis=-1)


def _root_np(f_tf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Headings [T] and ground points [T, 3] integrated as ``features._integrate_root`` does."""
    dh = np.arctan2(f_tf[:, 4], f_tf[:, 2])  # the first row of Y(dh) is (cos, 0, sin): channels 2, 3, 4
    dh[0] = 0.0
    h = np.cumsum(dh)
    step = np.stack([f_tf[:, 0], np.zeros(len(f_tf)), f_tf[:, 1]], axis=-1)
    step[0] = 0.0
    return h, np.cumsum(_yaw(-np.concatenate([h[:1], h[:-1]]), step), axis=0)


def _planted(p_t3: np.ndarray, contact_height: float, sq_displacement: float) -> np.ndarray:
    """[T] bool: the joint is planted at transition t-1 -> t (frame 0 False), the :func:`foot_contacts` rule."""
    low = p_t3[:, 1] < contact_height
    out = np.zeros(len(p_t3), bool)
    out[1:] = low[1:] & low[:-1] & (np.sum(np.square(np.diff(p_t3, axis=0)), axis=-1) < sq_displacement)
    return out


def _root_shift(joints: np.ndarray, contacts: dict, sigma: float, speed: float) -> np.ndarray:
    """[T, 3] horizontal shift of the whole body (frame 0: 0) that takes the planted joints' common step off."""
    t_len = len(joints)
    num, den = np.zeros((t_len, 2)), np.zeros(t_len)
    for j, c in contacts.items():
        step = np.zeros((t_len, 2))
        step[1:] = np.diff(joints[:, j][:, [0, 2]], axis=0)
        w = np.where(c, np.exp(-np.square(np.linalg.norm(step, axis=-1) / speed)), 0.0)
        num += w[:, None] * step
        den += w
    corr = _gauss_time(-num / np.maximum(den, 1.0)[:, None], sigma)
    corr[0] = 0.0
    shift = np.zeros((t_len, 3))
    shift[:, [0, 2]] = np.cumsum(corr, axis=0)
    return shift


def _gauss_time(x_tc: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along time (radius ceil(3 sigma), zero outside the clip) of [T, C]."""
    if sigma <= 0:
        return x_tc
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * np.square(np.arange(-r, r + 1) / sigma))
    k /= k.sum()
    pad = np.pad(x_tc, ((r, r), (0, 0)))
    return np.stack([np.convolve(pad[:, c], k, mode="valid") for c in range(x_tc.shape[1])], axis=-1)


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _pin(p_t22: np.ndarray, c_t2: np.ndarray, blend: int, soft: float, creep: float, cap: float) -> np.ndarray:
    """Horizontal offsets [T, 2, 2] of (ankle, toe) [T, 2, 2] with contacts [T, 2] (step 2 of :func:`foot_lock`)."""
    d = np.zeros_like(p_t22)
    anchor, hold, since, source = np.zeros((2, 2)), np.zeros((2, 2)), [blend, blend], ["free", "free"]
    for t in range(len(p_t22)):
        for j in (0, 1):
            if not c_t2[t, j]:
                continue
            if t == 0 or not c_t2[t - 1, j]:
                anchor[j] = p_t22[t - 1, j] + d[t - 1, j]  # where the joint was shown the frame before
            off = anchor[j] - p_t22[t, j]
            n = float(np.hypot(*off))
            if n > soft:  # creep back towards the decoded joint, at most `creep` per frame
                anchor[j] -= off / n * min(creep, n - soft)
                off = anchor[j] - p_t22[t, j]
                n = float(np.hypot(*off))
            if n > cap:
                anchor[j] = p_t22[t, j] + off * (cap / n)
            d[t, j] = anchor[j] - p_t22[t, j]
        for j in (0, 1):
            if c_t2[t, j]:
                source[j] = "self"
                continue
            follow = bool(c_t2[t, 1 - j])  # the foot's other joint is planted: move with it
            goal = d[t, 1 - j] if follow else np.zeros(2)
            if source[j] != ("other" if follow else "free"):  # a change: blend from where it was
                source[j] = "other" if follow else "free"
                hold[j] = (d[t - 1, j] if t else 0.0) - goal
                since[j] = 0
            since[j] += 1
            d[t, j] = goal + hold[j] * (1.0 - _smoothstep(since[j] / blend))
    return d


def _foot_length(ankle_t3: np.ndarray, toe_t3: np.ndarray, decoded_t3: np.ndarray, tol: float) -> np.ndarray:
    """Ankles [T, 3] moved horizontally along the foot so |ankle - toe| is within ``tol`` of |decoded|."""
    want = np.linalg.norm(decoded_t3, axis=-1)
    v = ankle_t3 - toe_t3
    have = np.linalg.norm(v, axis=-1)
    target = np.clip(have, want - tol, want + tol)
    fix = np.abs(target - have) > 0
    flat2 = np.square(v[:, 0]) + np.square(v[:, 2])
    new_flat = np.sqrt(np.maximum(np.square(target) - np.square(v[:, 1]), 0.0))
    scale = np.where(fix & (flat2 > 1e-12), new_flat / np.sqrt(np.maximum(flat2, 1e-12)), 1.0)
    out = ankle_t3.copy()
    out[:, [0, 2]] = toe_t3[:, [0, 2]] + v[:, [0, 2]] * scale[:, None]
    return np.where(fix[:, None], out, ankle_t3)


def _two_bone(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Knees [N, 3] with the thigh |knee - hip| and shin |ankle - knee| of each frame, the ankle at ``target``."""
    l1, l2 = np.linalg.norm(knee - hip, axis=-1), np.linalg.norm(ankle - knee, axis=-1)
    v = target - hip
    dist = np.linalg.norm(v, axis=-1)
    u = v / np.maximum(dist, 1e-9)[:, None]
    reach = np.clip(dist, np.abs(l1 - l2) + 1e-9, l1 + l2)
    along = (np.square(reach) + np.square(l1) - np.square(l2)) / (2 * reach)
    side = np.sqrt(np.maximum(np.square(l1) - np.square(along), 0.0))
    bend = (knee - hip) - np.sum((knee - hip) * u, axis=-1, keepdims=True) * u  # the knee's bending direction
    norm = np.linalg.norm(bend, axis=-1)
    bend = np.where(norm[:, None] > 1e-9, bend / np.maximum(norm, 1e-9)[:, None], 0.0)
    stretch = np.maximum(dist / np.maximum(l1 + l2, 1e-9), 1.0)  # out of reach: both bones stretched alike
    return hip + u * (along * stretch)[:, None] + bend * (side * stretch)[:, None]
