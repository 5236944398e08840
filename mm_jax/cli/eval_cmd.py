"""``mm-jax generate`` and ``mm-jax evaluator train``: text to motion, and the evaluator behind the metrics."""

from __future__ import annotations

import argparse
import json

from mm_jax.cli.common import add_overrides, progress_bar, require_positive


def register(sub: argparse._SubParsersAction) -> None:
    register_generate(sub)
    register_eval(sub)
    ev = sub.add_parser("evaluator", help="the text/motion evaluator (FID, R-precision, MM-Dist)")
    esub = ev.add_subparsers(dest="evaluator_command", metavar="SUBCOMMAND", required=True)
    p = esub.add_parser("train", help="train the evaluator contrastively on a dataset's train split")
    p.add_argument("--data", required=True, help="dataset directory")
    p.add_argument("--out", required=True, help="evaluator directory (a versioned artefact)")
    p.add_argument("--preset", default="small", help="tiny | small")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--resume", action="store_true", help="continue a run stopped by SIGINT/SIGTERM")
    add_overrides(p)
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from mm_jax.configs import apply_overrides
    from mm_jax.eval.evaluator import preset
    from mm_jax.cli.train_cmd import report_stop
    from mm_jax.eval.train import train_evaluator
    from mm_jax.train.interrupt import stop_on_signals

    require_positive(steps=args.steps)
    cfg = apply_overrides(preset(args.preset), args.overrides)
    with stop_on_signals() as stop, progress_bar("evaluator", unit="step") as bar:
        metrics = train_evaluator(cfg, args.data, args.out, steps=args.steps, progress=bar, resume=args.resume,
                                  stop=stop)
    if stop.stopped_at is not None:
        return report_stop("evaluator train", stop, args.out)
    print(json.dumps(metrics, indent=2, default=str))
    return 0


def register_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="text -> motion: .npy features and joints, .bvh, .gif")
    p.add_argument("prompts", nargs="+", metavar="TEXT")
    p.add_argument("--checkpoint", required=True, help="decoder run directory (mm-jax train --workdir)")
    p.add_argument("--out", required=True)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seconds", type=float, default=4.0, help="the longest motion, in seconds (default 4)")
    p.add_argument("--min-seconds", type=float, default=None,
                   help="the shortest motion: EOS is suppressed until this many seconds of motion exist, in "
                        "[0, --seconds]. Default: --seconds, so every clip is as long as asked; 0 lets the "
                        "model stop whenever it samples EOS (a clip can then be a fraction of a second)")
    p.add_argument("--cfg", type=float, default=2.5, help="classifier-free guidance scale")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0, help="sampling seed, in [0, 2**32)")
    p.add_argument("--no-render", action="store_true")
    _add_tokenizer_flag(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace the outputs of an earlier generate in --out (refused without it)")
    p.set_defaults(handler=_generate)


def _add_tokenizer_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", default=None, metavar="DIR",
                   help="the motion tokenizer run (default: the one the decoder run records); it must be the "
                        "one the decoder was trained with (its identity is checked)")


def _generate(args: argparse.Namespace) -> int:
    from mm_jax.generate import generate

    min_seconds = args.seconds if args.min_seconds is None else args.min_seconds
    with progress_bar("generate", unit="motion") as bar:
        records = generate(args.checkpoint, args.prompts, args.out, num_samples=args.num_samples,
                           seconds=args.seconds, min_seconds=min_seconds, cfg_scale=args.cfg,
                           temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                           render=not args.no_render, tokenizer_run=args.tokenizer, overwrite=args.overwrite,
                           progress=bar)
    for r in records:
        print(json.dumps({k: r[k] for k in ("prompt", "sample", "num_tokens", "frames", "paths") if k in r}))
    return 0


def register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="report: real / model / random_tokens / untrained through the evaluator; "
                                    "with --suite, per-prompt scores of a prompt suite")
    p.add_argument("--checkpoint", required=True, help="decoder run directory")
    p.add_argument("--evaluator", required=True, help="evaluator directory (mm-jax evaluator train)")
    p.add_argument("--data", help="dataset directory (required without --suite; with it, real reference clips)")
    p.add_argument("--split", default=None, help="default: test, else val, else train (the one used is logged)")
    p.add_argument("--suite", help="a prompt suite (JSONL, data/prompts/README.md): score it instead")
    p.add_argument("--num-samples", type=int, default=1, help="with --suite: motions per prompt")
    p.add_argument("--per-cell", type=int, help="with --suite: only the first N prompts of each category x tag")
    p.add_argument("--min-share", type=float, default=0.6,
                   help="with --suite: EOS is suppressed until this share of each prompt's asked seconds exists "
                        "(default 0.6; 0 = the model's own lengths). Clips under 60%% of the asked length score "
                        "as failures either way")
    p.add_argument("--no-sheets", action="store_true", help="with --suite: skip the contact-sheet PNGs")
    p.add_argument("--out", help="output stem (.md and .json); default experiments/results/eval_report, "
                                 "or suite_report with --suite")
    p.add_argument("--cfg", type=float, default=2.5)
    p.add_argument("--seed", type=int, default=0, help="sampling seed, in [0, 2**32)")
    _add_tokenizer_flag(p)
    p.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    from mm_jax.errors import ConfigError
    from mm_jax.eval.report import evaluate_decoder, write_report

    if args.suite:
        return _eval_suite(args)
    if not args.data:
        raise ConfigError("mm-jax eval needs --data (the dataset whose split is scored), or --suite")
    args.out = args.out or "experiments/results/eval_report"
    report = evaluate_decoder(args.checkpoint, args.evaluator, args.data, split=args.split, seed=args.seed,
                              cfg_scale=args.cfg, tokenizer_run=args.tokenizer)
    write_report(report, args.out)
    print(open(f"{args.out}.md").read())
    return 0


def _eval_suite(args: argparse.Namespace) -> int:
    from mm_jax.eval.suite import evaluate_suite
    from mm_jax.eval.suite_report import write_suite_report

    report, joints = evaluate_suite(args.checkpoint, args.evaluator, args.suite, data_dir=args.data,
                                    num_samples=args.num_samples, seed=args.seed, cfg_scale=args.cfg,
                                    min_share=args.min_share, per_cell=args.per_cell, tokenizer_run=args.tokenizer)
    out = args.out or "experiments/results/suite_report"
    with progress_bar("contact sheets", unit="strip") as bar:
        write_suite_report(report, None if args.no_sheets else joints, out, progress=bar)
    print(open(f"{out}.md").read())
    return 0
