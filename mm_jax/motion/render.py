"""Stick-figure rendering of joint positions to GIF, MP4 or a PNG strip (stage: motion).

Input: joint positions ``[T, 22, 3]`` (metres, y up, SMPL order), e.g. from
:func:`mm_jax.motion.features.joints_from_features`. Output: an animated GIF
(Pillow), an MP4 (``ffmpeg`` on PATH) or a PNG strip of frames.

Animations stream: each frame is drawn, then encoded and appended to the
file by :func:`mm_jax.motion.video.write_animation` before the next is drawn,
so memory does not grow with the clip's length; the count returned is the
number of frames in the file.

Drawing: a 3D stick figure along ``skeleton.KINEMATIC_CHAINS`` (the body's
left limbs red, right limbs blue, spine and head dark grey), a ground grid at
y = 0 and the root's trail on the ground. Data axes map to matplotlib's as
``(x, y, z) -> (x, -z, y)``, a proper rotation (no mirror image), so the
figure is upright and its left stays its left. By default the camera follows
the root (a window of ``2 * radius`` metres); ``follow=False`` fixes the view
on the whole path. Figures are drawn with ``matplotlib.figure.Figure`` and
the Agg canvas directly, so no global matplotlib backend is set.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import textwrap
from typing import Callable, Iterator, Sequence

import jax
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from mm_jax.errors import ConfigError, DataError, ShapeError
from mm_jax.motion import skeleton
from mm_jax.motion.video import write_animation

log = logging.getLogger(__name__)

LEFT_COLOR, RIGHT_COLOR, CENTER_COLOR = "tab:red", "tab:blue", "0.25"
TRAIL_COLOR, GRID_COLOR = "tab:orange", "0.75"
GRID_STEP = 0.5  # metres between ground grid lines
PANEL_INCHES, DPI = 3.2, 100


def _as_joints(joints: np.ndarray | jax.Array, name: str) -> np.ndarray:
    arr = np.asarray(joints, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (skeleton.NUM_JOINTS, 3) or arr.shape[0] < 1:
        raise ShapeError(f"{name}: joints must be [T>=1, {skeleton.NUM_JOINTS}, 3], got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        frame = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(f"{name}: joints contain NaN/inf (first at frame {frame})")
    return arr


def _plot(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Data (x, y up, z) -> matplotlib (X, Y, Z up) = (x, -z, y)."""
    return p[..., 0], -p[..., 2], p[..., 1]


def _chain_color(chain: Sequence[int]) -> str:
    names = [skeleton.JOINT_NAMES[j] for j in chain]
    if any(n.startswith("left_") for n in names):
        return LEFT_COLOR
    if any(n.startswith("right_") for n in names):
        return RIGHT_COLOR
    return CENTER_COLOR


class _Panel:
    """One 3D axes showing one motion; :meth:`show` draws frame t."""

    def __init__(self, ax, joints: np.ndarray, title: str | None, follow: bool, radius: float):
        self.ax, self.joints, self.follow = ax, joints, follow
        self.root = joints[:, 0] * np.array([1.0, 0.0, 1.0], np.float32)  # ground trail [T, 3]
        height = max(1.8, float(joints[..., 1].max()) + 0.1)
        if follow:
            self.half = radius
        else:
            xz = joints[..., [0, 2]].reshape(-1, 2)
            lo, hi = xz.min(0), xz.max(0)
            self.half = max(radius, 0.5 * float((hi - lo).max()) + 0.3)
            self.center = 0.5 * (lo + hi)
        ax.set_box_aspect((1.0, 1.0, height / (2 * self.half)), zoom=1.25)
        ax.set_zlim(0.0, height)
        ax.view_init(elev=12, azim=-60)
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=9, pad=0)
        n_grid = int(np.ceil(2 * self.half / GRID_STEP)) + 2
        self.grid = [ax.plot([], [], [], color=GRID_COLOR, lw=0.6)[0] for _ in range(2 * n_grid)]
        self.trail = ax.plot([], [], [], color=TRAIL_COLOR, lw=1.5)[0]
        self.bones = [ax.plot([], [], [], color=_chain_color(c), lw=2.5, marker="o", ms=2)[0]
                      for c in skeleton.KINEMATIC_CHAINS]

    def _window(self, t: int) -> tuple[float, float]:
        if self.follow:
            return float(self.root[t, 0]), float(self.root[t, 2])
        return float(self.center[0]), float(self.center[1])

    def _draw_ground(self, cx: float, cz: float) -> None:
        h, n = self.half, len(self.grid) // 2
        first_x = np.floor((cx - h) / GRID_STEP) * GRID_STEP
        first_z = np.floor((cz - h) / GRID_STEP) * GRID_STEP
        for i in range(n):
            gx, gz = first_x + i * GRID_STEP, first_z + i * GRID_STEP
            ok_x, ok_z = cx - h <= gx <= cx + h, cz - h <= gz <= cz + h
            xs = np.array([[gx, 0, cz - h], [gx, 0, cz + h]]) if ok_x else np.full((2, 3), np.nan)
            zs = np.array([[cx - h, 0, gz], [cx + h, 0, gz]]) if ok_z else np.full((2, 3), np.nan)
            self.grid[2 * i].set_data_3d(*_plot(xs))
            self.grid[2 * i + 1].set_data_3d(*_plot(zs))

    def show(self, t: int) -> None:
        t = min(t, len(self.joints) - 1)  # shorter motions hold their last frame
        cx, cz = self._window(t)
        h = self.half
        self.ax.set_xlim(cx - h, cx + h)
        self.ax.set_ylim(-cz - h, -cz + h)
        self._draw_ground(cx, cz)
        trail = self.root[: t + 1].copy()
        outside = (np.abs(trail[:, 0] - cx) > h) | (np.abs(trail[:, 2] - cz) > h)
        trail[outside] = np.nan
        self.trail.set_data_3d(*_plot(trail))
        for line, chain in zip(self.bones, skeleton.KINEMATIC_CHAINS):
            line.set_data_3d(*_plot(self.joints[t, list(chain)]))


def _wrap_title(text: str, width_inches: float, fontsize: float = 10) -> str:
    """``text`` broken into lines that fit ``width_inches`` (a character is ~0.55 em wide), at most 2."""
    chars = max(12, int(width_inches * 72 / (0.55 * fontsize)))
    lines = textwrap.wrap(text, chars)
    if len(lines) > 2:
        lines = [lines[0], textwrap.shorten(" ".join(lines[1:]), chars, placeholder="...")]
    return "\n".join(lines)


def _render_frames(
    motions: Sequence[np.ndarray], titles: Sequence[str | None], plan: Sequence[Sequence[int]],
    *, suptitle: str | None, follow: bool, radius: float, counter: bool = True, dpi: int = DPI,
) -> Iterator[np.ndarray]:
    """Yields RGB frames [H, W, 3] uint8, motions side by side.

    ``plan[k][i]`` is the frame of motion ``i`` drawn in output frame ``k``.
    """
    n = len(motions)
    fig = Figure(figsize=(PANEL_INCHES * n, PANEL_INCHES + 0.5), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.03, top=0.84, wspace=0.0)
    panels = [_Panel(fig.add_subplot(1, n, i + 1, projection="3d"), m, titles[i], follow, radius)
              for i, m in enumerate(motions)]
    total = max(len(m) for m in motions)
    head = fig.suptitle(_wrap_title(suptitle or "", PANEL_INCHES * n), fontsize=10)
    for frame_ts in plan:
        for panel, t in zip(panels, frame_ts):
            panel.show(t)
        if counter:
            text = f"{suptitle + '  ' if suptitle else ''}frame {max(frame_ts) + 1}/{total}"
            head.set_text(_wrap_title(text, PANEL_INCHES * n))
        canvas.draw()
        rgb = np.asarray(canvas.buffer_rgba())[..., :3]
        yield rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2].copy()  # even size for MP4


def check_fps(fps: float) -> None:
    """ConfigError unless ``fps`` is a finite number > 0 (checked before anything is drawn)."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not (
            math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps={fps!r} must be a finite number > 0 (frames per second of the motion)")


def _frame_indices(total: int, stride: int, max_frames: int | None) -> list[int]:
    if stride < 1:
        raise ConfigError(f"stride must be >= 1, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max_frames must be >= 1 or None, got {max_frames}")
    return list(range(0, total, stride))[:max_frames]


def render_motion(
    joints: np.ndarray | jax.Array, path: str | os.PathLike, *, fps: float = 30, title: str | None = None,
    stride: int = 1, max_frames: int | None = None, follow: bool = True, radius: float = 1.25,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Renders one motion [T, 22, 3] to ``path`` (.gif, or .mp4 with ffmpeg), streaming frame by frame.

    Args:
      joints: [T, 22, 3] joint positions, metres, y up.
      path: output file; its suffix picks the format.
      fps: frame rate of ``joints``; the file plays at ``fps / stride``.
      title: text above the figure (a caption).
      stride: draw every ``stride``-th frame.
      max_frames: cap on the number of drawn frames.
      follow: camera follows the root (else a fixed view of the whole path).
      radius: half-width of the followed window, metres.
      progress: ``progress(frames_written, frames_to_draw)`` after each frame.

    Returns:
      The number of frames written (the file's frame count).

    Raises:
      ConfigError: ``fps`` not finite and > 0, a bad ``stride``/``max_frames`` or
        suffix (checked before anything is drawn). ShapeError, DataError: bad joints.
    """
    return render_side_by_side([joints], [None], path, fps=fps, suptitle=title, stride=stride,
                               max_frames=max_frames, follow=follow, radius=radius, progress=progress)


def render_side_by_side(
    list_of_joints: Sequence[np.ndarray | jax.Array], titles: Sequence[str | None], path: str | os.PathLike,
    fps: float = 30, *, suptitle: str | None = None, stride: int = 1, max_frames: int | None = None,
    follow: bool = True, radius: float = 1.25, progress: Callable[[int, int], None] | None = None,
) -> int:
    """Renders several motions in a row of panels; shorter ones hold their last frame.

    Args are as in :func:`render_motion`; ``titles`` has one entry per motion.
    Returns the number of frames written (the file's frame count).
    """
    check_fps(fps)
    if len(list_of_joints) == 0 or len(titles) != len(list_of_joints):
        raise ShapeError(
            f"need one title per motion: got {len(list_of_joints)} motions, {len(titles)} titles"
        )
    motions = [_as_joints(j, f"motion {i}") for i, j in enumerate(list_of_joints)]
    indices = _frame_indices(max(len(m) for m in motions), stride, max_frames)
    plan = [[t] * len(motions) for t in indices]
    if pathlib.Path(path).suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"output {path} must end with .gif or .mp4, got {pathlib.Path(path).suffix!r}")
    frames = _render_frames(motions, titles, plan, suptitle=suptitle, follow=follow, radius=radius)
    count = write_animation(frames, pathlib.Path(path), fps / stride, total=len(plan), progress=progress)
    log.info("wrote %s (%d frames)", path, count)
    return count


def strip_image(
    joints: np.ndarray | jax.Array, num_frames: int = 8, *, title: str | None = None, fps: float = 30,
    radius: float = 1.0, dpi: int = DPI,
) -> tuple[np.ndarray, np.ndarray]:
    """``num_frames`` evenly spaced frames of one motion in a row, as an image.

    Each panel follows the root at its frame and shows the trail so far.

    Returns:
      (RGB image [H, W, 3] uint8, the frame indices drawn: <= num_frames ints,
      fewer for very short clips).
    """
    check_fps(fps)
    motion = _as_joints(joints, "joints")
    if num_frames < 1:
        raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
    idx = np.unique(np.linspace(0, len(motion) - 1, num_frames).round().astype(int))
    names = [f"t={i / fps:.1f}s" for i in idx]
    plan = [[int(i) for i in idx]]
    rgb = next(_render_frames([motion] * len(idx), names, plan, suptitle=title, follow=True,
                              radius=radius, counter=False, dpi=dpi))
    return rgb, idx


def _save_png(rgb: np.ndarray, path_png: str | os.PathLike, colors: int | None = None) -> None:
    """Writes an RGB image; ``colors`` quantizes it to a palette of that many colours first (smaller files)."""
    path = pathlib.Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(rgb)
    if colors is not None:
        image = image.quantize(colors=colors)
    try:
        image.save(path)
    except (ValueError, KeyError) as err:
        raise ConfigError(f"cannot write an image to {path}: unknown suffix {path.suffix!r}") from err


def render_strip(
    joints: np.ndarray | jax.Array, path_png: str | os.PathLike, num_frames: int = 8,
    *, title: str | None = None, fps: float = 30, radius: float = 1.0,
) -> np.ndarray:
    """Writes one image (PNG) with ``num_frames`` evenly spaced frames in a row (see :func:`strip_image`).

    Returns:
      The frame indices drawn, [<= num_frames] ints (fewer for very short clips).
    """
    rgb, idx = strip_image(joints, num_frames, title=title, fps=fps, radius=radius)
    _save_png(rgb, path_png)
    return idx


def render_contact_sheet(
    rows: Sequence[tuple[np.ndarray | jax.Array, str]], path_png: str | os.PathLike, num_frames: int = 6,
    *, fps: float = 30, dpi: int = 60, progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """One PNG with a frame strip per motion, stacked top to bottom, each titled with its label.

    Args:
      rows: (joints [T, 22, 3], label) per strip.
      path_png: output image.
      num_frames: frames per strip (clips shorter than that give fewer; rows are padded white).
      dpi: resolution of each strip (the default keeps a 20-row sheet near 0.3 MB).
      progress: called as ``progress(done, total)`` after each strip.

    Returns:
      The sheet's (height, width) in pixels.
    """
    if not rows:
        raise DataError("a contact sheet needs at least one motion")
    strips = []
    for i, (joints, label) in enumerate(rows):
        rgb = strip_image(joints, num_frames, title=label, fps=fps, dpi=dpi)[0]
        inked = np.flatnonzero((rgb < 250).any(axis=(1, 2)))  # drop the blank bands above and below
        strips.append(rgb[max(int(inked[0]) - 4, 0) : int(inked[-1]) + 5] if inked.size else rgb)
        if progress is not None:
            progress(i + 1, len(rows))
    width = max(s.shape[1] for s in strips)
    sheet = np.full((sum(s.shape[0] for s in strips), width, 3), 255, np.uint8)
    top = 0
    for s in strips:
        sheet[top : top + s.shape[0], : s.shape[1]] = s
        top += s.shape[0]
        sheet[top - 1] = 160  # a thin rule between rows
    _save_png(sheet, path_png, colors=64)
    return sheet.shape[0], sheet.shape[1]
