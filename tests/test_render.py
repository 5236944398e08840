"""Tests of mm_jax.motion.render: GIF frame counts, strip PNG content, orientation, errors."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from PIL import Image

from mm_jax.errors import ConfigError, DataError, ShapeError
from mm_jax.motion import render, skeleton, video

RED = np.array([214, 39, 40])  # tab:red, the body's left
BLUE = np.array([31, 119, 180])  # tab:blue, the body's right
GREY = np.array([64, 64, 64])  # spine and head


def _walk(t: int) -> np.ndarray:
    """Rest pose standing on the ground, walking +z at 1 m/s with a bobbing pelvis: [T, 22, 3]."""
    rest = skeleton.rest_positions() + [0.0, skeleton.rest_root_height(), 0.0]
    offset = np.zeros((t, 1, 3), np.float32)
    offset[:, 0, 2] = np.arange(t) / 30.0
    offset[:, 0, 1] = 0.02 * np.sin(np.arange(t) / 3.0)
    return (rest[None] + offset).astype(np.float32)


def _mask(rgb: np.ndarray, color: np.ndarray, tol: int = 40) -> np.ndarray:
    return np.abs(rgb.astype(int) - color).sum(-1) < tol


def test_gif_frame_count(tmp_path):
    path = tmp_path / "out" / "walk.gif"
    assert render.render_motion(_walk(37), path, title="walks forward") == 37
    with Image.open(path) as im:
        assert im.n_frames == 37
        assert im.info["duration"] == pytest.approx(1000 / 30, abs=4)


def test_stride_and_max_frames(tmp_path):
    path = tmp_path / "s.gif"
    assert render.render_motion(_walk(37), path, stride=3) == 13
    with Image.open(path) as im:
        assert im.n_frames == 13
        assert im.info["duration"] == pytest.approx(100, abs=2)
    assert render.render_motion(_walk(37), path, max_frames=5, follow=False) == 5
    with Image.open(path) as im:
        assert im.n_frames == 5


def test_side_by_side_pads_shorter(tmp_path):
    path = tmp_path / "sbs.gif"
    n = render.render_side_by_side([_walk(11), _walk(23)], ["short", "long"], path, fps=30)
    assert n == 23
    with Image.open(path) as im:
        assert im.n_frames == 23
        assert im.size[0] > 1.6 * im.size[1]  # two panels in a row


def test_strip_png_is_upright_and_sided(tmp_path):
    """Frame 0 faces +z, towards the camera: the left (red) side is on the viewer's right."""
    path = tmp_path / "strip.png"
    idx = render.render_strip(_walk(30), path, num_frames=3)
    assert list(idx) == [0, 14, 29]
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert rgb.std() > 10  # not blank
    panel = rgb[:, : rgb.shape[1] // 3]
    red, blue = np.argwhere(_mask(panel, RED)), np.argwhere(_mask(panel, BLUE))
    assert len(red) > 50 and len(blue) > 50
    assert red[:, 1].mean() > blue[:, 1].mean() + 10  # columns: left limbs on the viewer's right
    # Upright: the head (top of the grey spine) is above the shoulders (top of the red/blue limbs),
    # and the limbs reach well below the spine (the legs).
    below_titles = panel[int(0.12 * panel.shape[0]):]
    grey = np.argwhere(_mask(below_titles, GREY, tol=20)) + [int(0.12 * panel.shape[0]), 0]
    assert len(grey) > 30
    assert grey[:, 0].min() < min(red[:, 0].min(), blue[:, 0].min()) - 5
    assert red[:, 0].max() > grey[:, 0].max() + 0.15 * panel.shape[0]


def test_axis_map_is_a_proper_rotation():
    """Data (x, y up, z) -> plot axes must not mirror the body (det +1) and must put y on Z-up.

    A mirror (e.g. (x, z, y)) would look right from the front of a symmetric pose but
    swap the body's front and back, which the pixel test above cannot see.
    """
    cols = np.stack(render._plot(np.eye(3)), axis=0)  # column j = image of data axis j
    assert np.allclose(np.abs(cols), np.abs(cols).round())
    assert np.linalg.det(cols) == pytest.approx(1.0)
    np.testing.assert_allclose(cols[:, 1], [0, 0, 1])


def test_bad_inputs(tmp_path):
    with pytest.raises(ShapeError, match=r"\(10, 21, 3\)"):
        render.render_motion(np.zeros((10, 21, 3)), tmp_path / "x.gif")
    bad = _walk(10)
    bad[4, 3, 1] = np.nan
    with pytest.raises(DataError, match="frame 4"):
        render.render_motion(bad, tmp_path / "x.gif")
    with pytest.raises(ConfigError, match=r"\.gif or \.mp4.*'\.avi'"):
        render.render_motion(_walk(3), tmp_path / "x.avi")
    with pytest.raises(ConfigError, match="stride"):
        render.render_motion(_walk(3), tmp_path / "x.gif", stride=0)
    with pytest.raises(ShapeError, match="2 motions, 1 titles"):
        render.render_side_by_side([_walk(3), _walk(3)], ["a"], tmp_path / "x.gif")
    with pytest.raises(ConfigError, match="num_frames"):
        render.render_strip(_walk(3), tmp_path / "x.png", num_frames=0)


def test_contact_sheet_stacks_one_strip_per_motion(tmp_path):
    calls = []
    h1, w1 = render.render_contact_sheet([(_walk(20), "one")], tmp_path / "one.png", num_frames=3)
    h3, w3 = render.render_contact_sheet([(_walk(20), "a"), (_walk(5), "b"), (_walk(30), "c")],
                                         tmp_path / "three.png", num_frames=3,
                                         progress=lambda d, n: calls.append((d, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert w1 == w3 and 2.5 * h1 < h3 < 3.5 * h1
    with Image.open(tmp_path / "three.png") as im:
        assert im.size == (w3, h3)
        assert np.asarray(im.convert("RGB")).std() > 10
    with pytest.raises(DataError, match="at least one motion"):
        render.render_contact_sheet([], tmp_path / "none.png")
    with pytest.raises(ShapeError):
        render.render_contact_sheet([(np.zeros((5, 21, 3)), "bad")], tmp_path / "bad.png")
    assert not (tmp_path / "none.png").exists() and not (tmp_path / "bad.png").exists()


def test_mp4_without_ffmpeg_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(video.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="ffmpeg"):
        render.render_motion(_walk(3), tmp_path / "x.mp4")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not on PATH")
def test_mp4_with_ffmpeg(tmp_path):
    path = tmp_path / "x.mp4"
    assert render.render_motion(_walk(9), path) == 9
    assert path.stat().st_size > 1000


@pytest.mark.slow
def test_render_speed(tmp_path):
    start = time.perf_counter()
    render.render_motion(_walk(120), tmp_path / "speed.gif")
    assert time.perf_counter() - start < 15.0


def test_long_titles_wrap_to_the_figure_width():
    caption = "a person walks forward then waves with the right hand  frame 61/116"
    lines = render._wrap_title(caption, render.PANEL_INCHES).split("\n")
    assert len(lines) == 2 and " ".join(lines) == caption
    assert render._wrap_title("a jump", render.PANEL_INCHES) == "a jump"
    lines = render._wrap_title("word " * 100, render.PANEL_INCHES).split("\n")
    assert len(lines) == 2 and lines[1].endswith("...") and max(map(len, lines)) <= len(lines[0]) + 3


# Issue 13 item 12: frames stream to the file (bounded memory), with progress, and the count is the file's.


def _live_images() -> int:
    import gc

    return sum(isinstance(o, Image.Image) for o in gc.get_objects())


def test_long_render_streams_frames_with_bounded_memory(tmp_path, monkeypatch):
    """400 frames (stand-ins for a long clip): at most a couple of images live at any time, not one per frame."""
    n, live, seen = 400, [], []

    def frames(motions, titles, plan, **kw):
        base = np.full((96, 128, 3), 255, np.uint8)
        for k, _ in enumerate(plan):
            f = base.copy()
            f[10:30, k % 100:(k % 100) + 20] = (k * 37 % 256, 80, 160)
            if k % 100 == 99:
                live.append(_live_images())
            yield f

    monkeypatch.setattr(render, "_render_frames", frames)
    path = tmp_path / "long.gif"
    count = render.render_motion(_walk(n), path, progress=lambda done, total: seen.append((done, total)))
    assert count == n and max(live) <= 3, live  # Pillow's save_all held one quantised image per frame
    assert seen[-1] == (n, n) and len(seen) == n
    with Image.open(path) as im:
        assert im.n_frames == n
        im.seek(n - 1)
        last = np.asarray(im.convert("RGB"))
    assert (np.abs(last[10:30, 99:119].astype(int) - (n - 1) * 37 % 256) < 40).any()


def test_reported_count_is_the_files_even_for_repeated_frames(tmp_path, monkeypatch):
    """Identical frames stay frames (Pillow merged them, so the file held fewer than reported)."""
    monkeypatch.setattr(render, "_render_frames",
                        lambda m, t, plan, **kw: (np.full((32, 48, 3), 200, np.uint8) for _ in plan))
    path = tmp_path / "still.gif"
    assert render.render_motion(_walk(9), path) == 9
    with Image.open(path) as im:
        assert im.n_frames == 9


def test_fps_is_checked_before_drawing(tmp_path, monkeypatch):
    def never(*a, **k):
        raise AssertionError("drew frames before checking fps")
    monkeypatch.setattr(render, "_render_frames", never)
    for bad in (0, -5, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=r"fps=.* must be a finite number > 0"):
            render.render_motion(_walk(5), tmp_path / "x.gif", fps=bad)
        with pytest.raises(ConfigError, match="fps"):
            render.render_strip(_walk(5), tmp_path / "x.png", 3, fps=bad)
    assert not list(tmp_path.iterdir())


def test_an_interrupted_render_leaves_no_file(tmp_path, monkeypatch):
    def frames(motions, titles, plan, **kw):
        yield np.zeros((32, 48, 3), np.uint8)
        raise KeyboardInterrupt
    monkeypatch.setattr(render, "_render_frames", frames)
    with pytest.raises(KeyboardInterrupt):
        render.render_motion(_walk(5), tmp_path / "x.gif")
    assert not list(tmp_path.iterdir())
