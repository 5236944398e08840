"""The foot lock: planted feet of decoded motion held still, a decode-time post-step (stage: motion).

Input: denormalised 272-d features ``[T, 272]`` (``mm_jax.motion.features``
layout) of a decoded or generated clip. Output: features of the same shape
whose ankles and toes do not slide while planted. It is applied by
``mm_jax.generate.decode_codes`` (every generation and evaluation) and by the
torch runtime's ``TextToMotion`` when the tokenizer config has ``foot_lock``.

numpy only (each joint's anchor is carried frame to frame, a sequential
loop): this module imports no JAX, so the torch runtime (``mm_jax.torch_port``)
uses this one implementation. The contact rule is the reference's, the one
``mm_jax.motion.contact.foot_contacts`` computes in jnp for the loss;
``tests/test_foot_lock.py`` checks the two agree.
"""

from __future__ import annotations

import numpy as np

from mm_jax.errors import ConfigError, ShapeError
from mm_jax.motion.layout import (CONTACT_HEIGHT, FEATURE_DIM, JOINT_INDEX, LOCAL_POS, LOCAL_VEL, NUM_JOINTS,
                                  ROOT_LIN_VEL, SQ_DISPLACEMENT)
from mm_jax.motion.validate import validate_features

LEGS = tuple(tuple(JOINT_INDEX[f"{side}_{name}"] for name in ("hip", "knee", "ankle", "foot"))
             for side in ("left", "right"))  # (hip, knee, ankle, toe) per leg: (1, 4, 7, 10), (2, 5, 8, 11)
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
    """Planted feet held still: denormalised features [T, 272] -> features [T, 272] (float32, numpy).

    Contacts are the reference rule (``contact.foot_contacts``) on the decoded joints:
    a foot joint (ankle, toe) is planted at transition t-1 -> t when it is below
    ``contact_height`` in both frames and its squared step is below
    ``sq_displacement``. Then, in joint space (``features.joints_from_features``):

    1. Root: the horizontal step of the contacting joints, weighted by
       ``exp(-(speed / root_speed)^2)`` and divided by ``max(sum of weights, 1)``
       (a slow joint counts fully, a fast one, e.g. a real foot dragging at
       3 cm/frame, hardly), is taken off the root's step, smoothed by a Gaussian
       of ``root_sigma`` frames (so the correction has no corners: jerk does not
       jump). This removes the drift the feet share without bending a leg.
    2. Pins: each ankle and toe has its own anchor, set where its contact run
       starts at its corrected position of the frame before, so a planted joint
       moves 0 mm per frame. Beyond ``soft_offset`` from the decoded joint the
       anchor creeps towards it at ``creep`` per frame at most, and it is never
       further than ``max_offset`` (10 cm): the bound on the displacement; past
       it the joint slides with the decoded one. A joint out of contact follows
       its foot's planted joint (the foot moves as a unit), else the decoded
       motion, reached over ``blend_frames`` frames (smoothstep) after a change.
    3. Foot and leg: the ankle-toe distance is held within ``foot_tolerance`` of
       the decoded one's by moving the ankle along the foot; the knee is placed
       by two-bone IK from the (unmoved) hip to the new ankle, keeping the
       frame's thigh and shin lengths and the knee's bending plane, on frames
       where the ankle moved (a target out of reach straightens the leg and
       stretches both bones in proportion). Heights are never changed except
       the knee's.

    What changes: the root linear velocity [0:2] (step 1) and the local
    positions [8:74] of the knees, ankles and toes, with their local velocities
    [74:140] changed by the same frame differences (the decoder's own velocity
    channels are kept elsewhere; frame 0's stay 0). What does not: the heading
    [2:8] and the rotations [140:272] (stale for the moved leg joints: nothing
    that shows the motion reads them there). ``write_motion_bvh`` fits rotations
    to the positions (``mm_jax.motion.ik``), so a BVH of a locked clip shows the
    locked feet only up to the clip's bone-length variation: its fit gives every
    bone the clip's mean length, which moves decoded feet by up to 5 cm (on the
    demo's generated clips the BVH's skating is 0.37 after the lock, 0.91
    before, the joints' 0.08). Feature rows more than
    ``ceil(3 root_sigma) + blend_frames + 1`` frames from every contact come back
    bit for bit, and so does a clip whose planted joints do not move at all.
    Measured (``experiments/results/foot_lock.md``, demo tokenizer): foot skating
    0.84 -> 0.06 on test-split reconstructions (real data: 0.05), jerk +2%.

    Args:
      features_tf: [T, 272] denormalised features, T >= 2.
      contact_height, sq_displacement: the contact rule (metres, m^2).
      blend_frames, root_sigma, root_speed, soft_offset, creep, max_offset,
        foot_tolerance: as above (frames, metres, metres per frame).

    Returns:
      [T, 272] float32 features.

    Raises:
      ShapeError: not [T, 272] with T >= 2. DataError: NaN/inf or a non-float dtype.
    """
    f = validate_features(features_tf, name="foot_lock features", min_frames=2).astype(np.float64)
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


def foot_lock_batch(features_btf, lengths_b) -> np.ndarray:
    """:func:`foot_lock` of each row's first ``lengths_b[b]`` frames of [B, T, 272]; padding frames unchanged."""
    x = np.array(features_btf, np.float32)
    if x.ndim != 3 or x.shape[-1] != FEATURE_DIM:
        raise ShapeError(f"foot_lock_batch needs features [B, T, {FEATURE_DIM}]; got shape {x.shape}")
    lengths = np.asarray(lengths_b).reshape(-1)
    if len(lengths) != len(x) or (lengths > x.shape[1]).any():
        raise ShapeError(f"lengths {lengths.tolist()} do not fit features of shape {x.shape}")
    for b, n in enumerate(lengths):
        x[b, :n] = foot_lock(x[b, :n])
    return x


def _check_args(blend_frames, root_sigma, root_speed, soft_offset, creep, max_offset, foot_tolerance) -> None:
    if not isinstance(blend_frames, int) or blend_frames < 1:
        raise ConfigError(f"foot_lock blend_frames={blend_frames!r} must be an int >= 1")
    if not (root_sigma >= 0 and root_speed > 0 and creep >= 0 and foot_tolerance >= 0):
        raise ConfigError(f"foot_lock needs root_sigma >= 0, root_speed > 0, creep >= 0, foot_tolerance >= 0; got "
                          f"{root_sigma!r}, {root_speed!r}, {creep!r}, {foot_tolerance!r}")
    if not 0 <= soft_offset <= max_offset:
        raise ConfigError(f"foot_lock needs 0 <= soft_offset <= max_offset; got {soft_offset!r} and {max_offset!r}")


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
