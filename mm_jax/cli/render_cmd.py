"""``mm-jax render MOTION --out FILE``: draw a motion as an animated stick figure."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="render a motion to GIF (or MP4)",
        description=(
            "MOTION is a .npy of features [T,272] or joints [T,22,3], a .bvh file, "
            "or DATASET_DIR:SEQUENCE_ID (or DATASET_DIR:INDEX)."
        ),
    )
    p.add_argument("motion", metavar="MOTION")
    p.add_argument("--out", required=True, help="output .gif or .mp4")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--title", default=None)
    p.set_defaults(handler=_render)


def _render(args: argparse.Namespace) -> int:
    from mm_jax.motion.loading import load_joints
    from mm_jax.motion.render import render_motion

    joints, title = load_joints(args.motion)
    render_motion(joints, args.out, fps=args.fps, title=args.title or title)
    print(f"wrote {args.out} ({len(joints)} frames)")
    return 0
