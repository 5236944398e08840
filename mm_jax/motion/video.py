"""Streaming writers of animations: RGB frames -> GIF (Pillow) or MP4 (ffmpeg) (stage: motion).

Input: an iterator of RGB frames [H, W, 3] uint8 (e.g. from
:mod:`mm_jax.motion.render`). Output: one .gif or .mp4 file and its frame count.

Each frame is encoded and appended before the next is read, so memory holds
one or two frames whatever the clip's length (Pillow's ``save_all`` keeps
every frame until the end: ~250 KB a frame, ~25 GB for 100k frames). The file
is written under a temporary name in its directory and renamed when complete,
so an interrupted render leaves no truncated file.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from typing import Any, Callable, Iterator

import numpy as np
from PIL import GifImagePlugin, Image

from mm_jax.errors import ConfigError, DataError, ShapeError


class _GifWriter:
    """Appends RGB frames to an open GIF one at a time; it holds only the previous frame.

    Each frame is quantised to 64 colours (median cut) with its own colour
    table, and only the box that changed since the previous frame is written
    (disposal 1 keeps the rest), as Pillow's ``save_all`` does; unlike it, no
    frame is merged into the one before, so every drawn frame is a frame of the file.
    """

    def __init__(self, fp: Any, duration_ms: int):
        self.fp, self.duration, self.prev, self.count = fp, duration_ms, None, 0

    @staticmethod
    def _quantize(rgb: np.ndarray) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(rgb)).quantize(colors=64, method=Image.Quantize.MEDIANCUT)

    def add(self, rgb: np.ndarray) -> None:
        params = {"duration": self.duration, "disposal": 1}
        if self.prev is None:
            im = self._quantize(rgb)
            header, _ = GifImagePlugin.getheader(im, info={"loop": 0, "duration": self.duration})
            chunks = [*header, *GifImagePlugin.getdata(im, (0, 0), **params)]
        else:
            if rgb.shape != self.prev.shape:
                raise ShapeError(f"GIF frame {self.count} is {rgb.shape}, the first was {self.prev.shape}")
            changed = (rgb != self.prev).any(-1)
            rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
            y0, y1 = (rows[0], rows[-1] + 1) if rows.size else (0, 1)
            x0, x1 = (cols[0], cols[-1] + 1) if cols.size else (0, 1)
            im = self._quantize(rgb[y0:y1, x0:x1])
            chunks = GifImagePlugin.getdata(im, (int(x0), int(y0)), include_color_table=True, **params)
        for chunk in chunks:
            self.fp.write(chunk)
        self.prev = rgb
        self.count += 1

    def close(self) -> None:
        self.fp.write(b";")


def _write_gif(frames: Iterator[np.ndarray], tmp: pathlib.Path, fps: float, tick: Callable[[int], None]) -> int:
    duration = round(1000 / fps)
    if duration // 10 > 0xFFFF:
        raise ConfigError(f"a GIF frame lasts at most 655 s; {fps:g} fps is too slow")
    with open(tmp, "wb") as fp:
        gif = _GifWriter(fp, duration)
        for frame in frames:
            gif.add(frame)
            tick(gif.count)
        if not gif.count:
            raise DataError(f"no frames to write to {tmp}")
        gif.close()
    return gif.count


def _write_mp4(frames: Iterator[np.ndarray], tmp: pathlib.Path, fps: float, tick: Callable[[int], None]) -> int:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ConfigError(f"writing {tmp.name} needs ffmpeg on PATH (not found); use a .gif path instead")
    first = next(frames)
    h, w = first.shape[:2]
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", f"{fps:g}", "-i", "-", "-pix_fmt", "yuv420p", "-vcodec", "libx264", str(tmp)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    count = 0
    try:
        for frame in _chain(first, frames):
            proc.stdin.write(frame.tobytes())
            count += 1
            tick(count)
    except BrokenPipeError:
        pass  # ffmpeg exited: its return code and stderr say why
    finally:
        _, err = proc.communicate()
    if proc.returncode:
        raise OSError(f"ffmpeg failed writing {tmp}: {err.decode(errors='replace')[-500:]}")
    return count


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def write_animation(frames: Iterator[np.ndarray], path: pathlib.Path, fps: float, *, total: int,
                    progress: Callable[[int, int], None] | None = None) -> int:
    """Streams frames into a .gif (Pillow) or .mp4 (ffmpeg); returns the frame count written.

    Frames go to a temporary file in ``path``'s directory, renamed to ``path``
    when complete (an interrupted render leaves no truncated file).
    """
    if not (np.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps={fps!r} must be a finite number > 0")
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ConfigError(f"output {path} must end with .gif or .mp4, got {suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{suffix}")
    tick = (lambda n: progress(n, total)) if progress is not None else (lambda n: None)
    try:
        count = (_write_gif if suffix == ".gif" else _write_mp4)(frames, tmp, fps, tick)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count
