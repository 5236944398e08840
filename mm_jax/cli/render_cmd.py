"""``mm-jax render`` / ``mm-jax compare``: draw motions as animated stick figures."""

from __future__ import annotations

import argparse

from mm_jax.cli.common import progress_bar

_MOTION_HELP = (
    "MOTION is a .npy of features [T,272] or joints [T,22,3], a .bvh file, "
    "or DATASET_DIR:SEQUENCE_ID (or DATASET_DIR:INDEX)."
)


def _add_view_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fps", type=float, default=30, help="frames per second of the motion (> 0)")
    p.add_argument("--stride", type=int, default=1, help="draw every k-th frame")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--fixed-camera", action="store_true", help="frame the whole path instead of following")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a motion to GIF/MP4 (or a PNG strip)", description=_MOTION_HELP)
    p.add_argument("motion", metavar="MOTION")
    p.add_argument("--out", required=True, help="output .gif, .mp4 (needs ffmpeg) or .png with --strip")
    p.add_argument("--title", default=None)
    p.add_argument("--strip", type=int, default=None, metavar="N", help="write a PNG strip of N frames")
    _add_view_flags(p)
    p.set_defaults(handler=_render)

    p = sub.add_parser("compare", help="render several motions side by side", description=_MOTION_HELP)
    p.add_argument("motions", metavar="MOTION", nargs="+")
    p.add_argument("--titles", nargs="*", default=None)
    p.add_argument("--out", required=True, help="output .gif or .mp4")
    _add_view_flags(p)
    p.set_defaults(handler=_compare)


def _render(args: argparse.Namespace) -> int:
    from mm_jax.motion.loading import load_joints
    from mm_jax.motion import render

    render.check_fps(args.fps)  # before loading or drawing anything
    joints, title = load_joints(args.motion)
    if args.strip is not None:
        drawn = render.render_strip(joints, args.out, num_frames=args.strip, title=args.title or title, fps=args.fps)
        print(f"wrote {args.out} ({len(drawn)} of {len(joints)} frames in a strip)")
        return 0
    with progress_bar("render", unit="frame") as bar:
        count = render.render_motion(joints, args.out, fps=args.fps, title=args.title or title, stride=args.stride,
                                     max_frames=args.max_frames, follow=not args.fixed_camera, progress=bar)
    print(f"wrote {args.out} ({count} frames of {len(joints)})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from mm_jax.motion.loading import load_joints
    from mm_jax.motion.render import check_fps, render_side_by_side

    check_fps(args.fps)
    loaded = [load_joints(m) for m in args.motions]
    titles = args.titles or [t for _, t in loaded]
    with progress_bar("compare", unit="frame") as bar:
        count = render_side_by_side([j for j, _ in loaded], titles, args.out, fps=args.fps, stride=args.stride,
                                    max_frames=args.max_frames, follow=not args.fixed_camera, progress=bar)
    print(f"wrote {args.out} ({count} frames)")
    return 0
