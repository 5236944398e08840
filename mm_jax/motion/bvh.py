"""BVH motion files in and out (stage: motion I/O).

Reading: :func:`read_bvh` parses any BVH (one ROOT, JOINTs, End Sites,
``CHANNELS`` of any count on any joint, any rotation order per joint) into a
:class:`BvhSkeleton` and a :class:`BvhMotion` whose rotations are matrices
``[T, J, 3, 3]`` built with ``rotations.euler_to_matrix`` (see :mod:`mm_jax.motion.euler`)
(degrees -> radians, intrinsic in the listed channel order). Position channels
*replace* the joint's OFFSET (the convention of Blender, CMU and LAFAN1); a
joint without them keeps its OFFSET. The parser tolerates tabs, CRLF and blank
lines and raises :class:`~mm_jax.errors.FormatError` naming the file and line
for a structural problem.

Writing lives in :mod:`mm_jax.motion.bvh_write`; its :func:`write_bvh`,
:func:`write_motion_bvh`, ``UNIT_SCALE`` and ``SMPL_END_SITES`` are
re-exported here so ``bvh.write_bvh`` keeps working.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import re

import numpy as np

from mm_jax.errors import DataError, FormatError
from mm_jax.motion import euler
from mm_jax.motion.bvh_write import SMPL_END_SITES, UNIT_SCALE, write_bvh, write_motion_bvh

log = logging.getLogger(__name__)
__all__ = [
    "BvhMotion", "BvhSkeleton", "parse_bvh", "read_bvh",
    "SMPL_END_SITES", "UNIT_SCALE", "write_bvh", "write_motion_bvh",  # from bvh_write
]

CHANNEL_NAMES = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
_CANON = {c.lower(): c for c in CHANNEL_NAMES}
_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class BvhSkeleton:
    """A BVH hierarchy; joints in file (depth-first) order, parents before children.

    Attributes:
      names: [J] joint names as written (may contain spaces).
      parents: [J] parent index, -1 for the root.
      offsets: [J, 3] OFFSET of each joint from its parent (file units).
      channels: [J] tuple of canonical channel names per joint, in file order.
      end_sites: joint index -> End Site OFFSET [3] of that joint.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    end_sites: dict[int, np.ndarray]

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def num_channels(self) -> int:
        return sum(len(c) for c in self.channels)

    def rotation_order(self, j: int) -> str:
        """Axis letters of joint ``j``'s rotation channels in file order, e.g. "ZXY"."""
        return "".join(c[0] for c in self.channels[j] if c.endswith("rotation"))

    def rest_positions(self) -> np.ndarray:
        """Joint positions [J, 3] with every rotation zero (file units, root at its OFFSET)."""
        pos = np.array(self.offsets, dtype=np.float64)
        for j, p in enumerate(self.parents):
            if p >= 0:
                pos[j] += pos[p]
        return pos


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class BvhMotion:
    """The MOTION section, decoded.

    Attributes:
      frame_time: seconds per frame.
      local_rot: [T, J, 3, 3] rotation of each joint relative to its parent.
      translations: [T, J, 3] each joint's translation from its parent: the
        position channels where the joint has them, else its OFFSET.
    """

    frame_time: float
    local_rot: np.ndarray
    translations: np.ndarray

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return int(self.local_rot.shape[0])


# ----------------------------------------------------------------------------- parsing


class _Tokens:
    """Hierarchy tokens with their line numbers, and errors that name the line."""

    def __init__(self, lines: list[tuple[int, str]], path: str, last_line: int):
        self.toks = [(t, n) for n, text in lines for t in text.split()]
        self.pos, self.path, self.last_line = 0, path, last_line

    def error(self, line: int, msg: str) -> FormatError:
        return FormatError(f"{self.path}:{line}: {msg}")

    def peek(self) -> tuple[str, int] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self, what: str) -> tuple[str, int]:
        if self.pos >= len(self.toks):
            raise self.error(self.last_line, f"unexpected end of the hierarchy, expected {what}")
        self.pos += 1
        return self.toks[self.pos - 1]

    def expect(self, word: str) -> int:
        tok, line = self.take(repr(word))
        if tok.lower() != word.lower():
            raise self.error(line, f"expected {word!r}, got {tok!r}")
        return line

    def rest_of_line(self, line: int) -> list[str]:
        out = []
        while self.peek() is not None and self.peek()[1] == line and self.peek()[0] != "{":
            out.append(self.take("")[0])
        return out

    def floats(self, n: int, what: str) -> np.ndarray:
        vals = []
        for _ in range(n):
            tok, line = self.take(what)
            try:
                vals.append(float(tok))
            except ValueError:
                raise self.error(line, f"{what}: {tok!r} is not a number") from None
        return np.array(vals, dtype=np.float64)


def _parse_channels(tk: _Tokens, joint: str) -> tuple[str, ...]:
    tok, line = tk.take("a channel count")
    if not tok.isdigit():
        raise tk.error(line, f"CHANNELS of {joint!r}: count {tok!r} is not a non-negative integer")
    chans = []
    for _ in range(int(tok)):
        name, cline = tk.take(f"a channel name of {joint!r}")
        canon = _CANON.get(name.lower())
        if canon is None:
            raise tk.error(
                cline, f"unknown channel {name!r} of joint {joint!r}; valid: {', '.join(CHANNEL_NAMES)}"
            )
        if canon in chans:
            raise tk.error(cline, f"channel {canon!r} listed twice for joint {joint!r}")
        chans.append(canon)
    return tuple(chans)


def _parse_joint(tk: _Tokens, kw_line: int, parent: int, acc: dict) -> None:
    """Parses one ROOT/JOINT block (its keyword already taken) into ``acc``."""
    name = " ".join(tk.rest_of_line(kw_line))
    if not name:
        raise tk.error(kw_line, "ROOT/JOINT without a name")
    j = len(acc["names"])
    acc["names"].append(name)
    acc["parents"].append(parent)
    acc["offsets"].append(None)
    acc["channels"].append(())
    open_line = tk.expect("{")
    while True:
        if tk.peek() is None:
            msg = f"unbalanced braces: '{{' of joint {name!r} (line {open_line}) never closed"
            raise tk.error(tk.last_line, msg)
        tok, line = tk.take("")
        word = tok.upper()
        if word == "OFFSET":
            acc["offsets"][j] = tk.floats(3, f"OFFSET of {name!r}")
        elif word == "CHANNELS":
            acc["channels"][j] = _parse_channels(tk, name)
        elif word == "JOINT":
            _parse_joint(tk, line, j, acc)
        elif word == "END":
            tk.expect("Site")
            tk.expect("{")
            tk.expect("OFFSET")
            acc["end_sites"][j] = tk.floats(3, f"End Site OFFSET of {name!r}")
            tk.expect("}")
        elif tok == "}":
            break
        else:
            raise tk.error(line, f"unexpected {tok!r} in joint {name!r}")
    if acc["offsets"][j] is None:
        raise tk.error(line, f"joint {name!r} has no OFFSET")


def _split_sections(lines: list[tuple[int, str]], path: str) -> tuple[list, list]:
    for k, (_, text) in enumerate(lines):
        if text.split()[0].upper() == "MOTION":
            return lines[:k], lines[k:]
    last = lines[-1][0] if lines else 0
    return lines, [(last, "")]


# Frame rates a capture file may state: a Frame Time outside them is a unit mistake (milliseconds
# instead of seconds), which would resample a 10 s clip into hundreds of thousands of frames.
MIN_FPS, MAX_FPS = 10.0, 240.0


def _parse_header(motion_lines: list[tuple[int, str]], path: str) -> tuple[int, float]:
    if len(motion_lines) < 3:
        line = motion_lines[-1][0]
        raise FormatError(f"{path}:{line}: MOTION must be followed by 'Frames:' and 'Frame Time:' lines")
    (l1, t1), (l2, t2) = motion_lines[1], motion_lines[2]
    m1 = re.fullmatch(r"frames\s*:\s*(\d+)", t1.strip(), re.IGNORECASE)
    if m1 is None:
        raise FormatError(f"{path}:{l1}: expected 'Frames: N', got {t1.strip()!r}")
    m2 = re.fullmatch(r"frame\s+time\s*:\s*(\S+)", t2.strip(), re.IGNORECASE)
    try:
        dt = float(m2.group(1)) if m2 else float("nan")
    except ValueError:
        dt = float("nan")
    if not dt > 0 or not np.isfinite(dt):
        raise FormatError(f"{path}:{l2}: expected 'Frame Time: SECONDS' (> 0), got {t2.strip()!r}")
    if not MIN_FPS * 0.99 <= 1.0 / dt <= MAX_FPS * 1.01:  # 1% for frame times written with few digits
        hint = " (written in milliseconds? a frame time is in seconds, e.g. 0.0333333)" if dt >= 1 else ""
        raise FormatError(f"{path}:{l2}: Frame Time {m2.group(1)} s implies {1.0 / dt:.4g} fps, outside the "
                          f"{MIN_FPS:g}-{MAX_FPS:g} fps of motion capture{hint}")
    return int(m1.group(1)), dt


def _parse_frames(frame_lines: list[tuple[int, str]], n_frames: int, n_chan: int, path: str) -> np.ndarray:
    """Frame values [T, C] (float64), checking counts and numbers line by line."""
    if len(frame_lines) != n_frames:
        where = frame_lines[-1][0] if frame_lines else "end"
        raise FormatError(
            f"{path}:{where}: 'Frames: {n_frames}' but the file has {len(frame_lines)} frame lines")
    rows = [text.split() for _, text in frame_lines]
    for i, ((line, _), row) in enumerate(zip(frame_lines, rows)):
        if len(row) != n_chan:
            raise FormatError(
                f"{path}:{line}: frame {i} has {len(row)} values, expected {n_chan} (one per channel)")
    try:
        values = np.array(rows, dtype=np.float64).reshape(n_frames, n_chan)
    except ValueError:
        for i, ((line, _), row) in enumerate(zip(frame_lines, rows)):
            for tok in row:
                try:
                    float(tok)
                except ValueError:
                    raise FormatError(f"{path}:{line}: frame {i}: {tok!r} is not a number") from None
        raise
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        i = int(bad[0, 0])
        raise FormatError(f"{path}:{frame_lines[i][0]}: frame {i} holds a NaN or infinite value")
    return values


def _decode(skel: BvhSkeleton, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Channel values [T, C] -> (local_rot [T, J, 3, 3] float32, translations [T, J, 3])."""
    t_len, n_j = values.shape[0], skel.num_joints
    trans = np.broadcast_to(skel.offsets, (t_len, n_j, 3)).copy()
    angles = np.zeros((t_len, n_j, 3))
    rot = np.broadcast_to(np.eye(3, dtype=np.float32), (t_len, n_j, 3, 3)).copy()
    col = 0
    for j, chans in enumerate(skel.channels):
        k = 0
        for c in chans:
            if c.endswith("position"):
                trans[:, j, _AXES[c[0]]] = values[:, col]
            else:
                angles[:, j, k] = np.deg2rad(values[:, col])
                k += 1
            col += 1
    by_order: dict[str, list[int]] = {}
    for j in range(n_j):
        by_order.setdefault(skel.rotation_order(j), []).append(j)
    for order, joints in by_order.items():
        if order in euler.EULER_ORDERS:
            mats = euler.euler_matrices(angles[:, joints].reshape(-1, 3), order)
            mats = mats.reshape(t_len, len(joints), 3, 3)
        elif order:  # one or two rotation channels: compose them in file order
            mats = euler.axis_matrix(order[0], angles[:, joints, 0])
            for k, axis in enumerate(order[1:], start=1):
                mats = mats @ euler.axis_matrix(axis, angles[:, joints, k])
        else:
            continue
        rot[:, joints] = mats
    return rot, trans


def parse_bvh(text: str, path: str = "<string>") -> tuple[BvhSkeleton, BvhMotion]:
    """Parses BVH text; ``path`` only names the source in error messages."""
    lines = [(n, t) for n, t in enumerate(text.splitlines(), start=1) if t.strip()]
    if not lines or lines[0][1].split()[0].upper() != "HIERARCHY":
        line = lines[0][0] if lines else 1
        raise FormatError(f"{path}:{line}: a BVH file must start with 'HIERARCHY'")
    hier, motion_lines = _split_sections(lines[1:], path)
    tk = _Tokens(hier, path, last_line=hier[-1][0] if hier else lines[0][0])
    acc: dict = {"names": [], "parents": [], "offsets": [], "channels": [], "end_sites": {}}
    root_line = tk.expect("ROOT")
    _parse_joint(tk, root_line, -1, acc)
    if tk.peek() is not None:
        tok, line = tk.peek()
        what = "unbalanced braces: an extra '}'" if tok == "}" else f"expected 'MOTION' here, got {tok!r}"
        raise tk.error(line, f"{what} (after the ROOT block; one ROOT per file)")
    if motion_lines[0][1].split() == []:
        raise FormatError(f"{path}:{motion_lines[0][0]}: missing MOTION section after the hierarchy")
    skel = BvhSkeleton(
        names=tuple(acc["names"]), parents=tuple(acc["parents"]), offsets=np.stack(acc["offsets"]),
        channels=tuple(acc["channels"]), end_sites=acc["end_sites"],
    )
    n_frames, dt = _parse_header(motion_lines, path)
    values = _parse_frames(motion_lines[3:], n_frames, skel.num_channels, path)
    rot, trans = _decode(skel, values)
    return skel, BvhMotion(frame_time=dt, local_rot=rot, translations=trans)


def read_bvh(path: str | pathlib.Path) -> tuple[BvhSkeleton, BvhMotion]:
    """Reads a BVH file (see :func:`parse_bvh`)."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataError(f"cannot read BVH file {str(path)!r}: {e}") from None
    return parse_bvh(text, str(path))
