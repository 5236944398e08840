"""``mm-jax evaluator train``: the contrastive text/motion evaluator behind the metrics."""

from __future__ import annotations

import argparse
import json

from mm_jax.cli.common import add_overrides, progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluator", help="the text/motion evaluator (FID, R-precision, MM-Dist)")
    esub = ev.add_subparsers(dest="evaluator_command", metavar="SUBCOMMAND", required=True)
    p = esub.add_parser("train", help="train the evaluator contrastively on a dataset's train split")
    p.add_argument("--data", required=True, help="dataset directory")
    p.add_argument("--out", required=True, help="evaluator directory (a versioned artefact)")
    p.add_argument("--preset", default="small", help="tiny | small")
    p.add_argument("--steps", type=int, default=300)
    add_overrides(p)
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from mm_jax.configs import apply_overrides
    from mm_jax.eval.evaluator import preset
    from mm_jax.eval.train import train_evaluator

    cfg = apply_overrides(preset(args.preset), args.overrides)
    with progress_bar("evaluator", unit="step") as bar:
        metrics = train_evaluator(cfg, args.data, args.out, steps=args.steps, progress=bar)
    print(json.dumps(metrics, indent=2, default=str))
    return 0
