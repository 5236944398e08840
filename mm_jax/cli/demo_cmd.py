"""``mm-jax demo``: the whole recipe on the embedded data, end to end."""

from __future__ import annotations

import argparse
import pathlib

from mm_jax.cli.common import add_overrides, progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the recipe end to end on the embedded synthetic data")
    p.add_argument("--out", default="runs/demo", help="output directory")
    p.add_argument("--preset", default="demo", help="DemoConfig preset (demo, smoke)")
    add_overrides(p)
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from mm_jax.configs import apply_overrides, get_preset
    from mm_jax.demo import PRESETS, run_demo

    cfg = apply_overrides(get_preset(PRESETS, args.preset), args.overrides)
    summary = run_demo(cfg, args.out, progress_factory=progress_bar, report=print)
    out = pathlib.Path(args.out)
    print(f"done. figures: {out / 'summary.json'}; report: {out / 'eval_report.md'}; "
          f"suite: {out / 'suite_report.md'} and {out / 'suite_report_sheets'}/")
    print("GIFs: " + ", ".join(str(p) for p in summary["generated"] + summary["renders"] if p))
    return 0
