"""``mm-jax tokenizer ...``: train, evaluate, encode with and ablate the motion tokenizer."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from mm_jax.cli.common import add_overrides, progress_bar, require_positive


def register(sub: argparse._SubParsersAction) -> None:
    tok = sub.add_parser("tokenizer", help="the wavelet FSQ motion tokenizer")
    tsub = tok.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND", required=True)

    p = tsub.add_parser("train", help="train a tokenizer on a dataset")
    p.add_argument("--data", required=True, help="dataset directory")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--preset", default="small", help="tiny | small | base | reference")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    _add_config_flags(p)
    p.set_defaults(handler=_train)

    p = tsub.add_parser("eval", help="reconstruction metrics of a trained tokenizer")
    p.add_argument("--checkpoint", required=True, help="tokenizer run directory")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default=None,
                   help="split to score (default: test, or val, or train, the first that holds sequences)")
    p.set_defaults(handler=_eval)

    p = tsub.add_parser("encode", help="turn a dataset into token sequences (.npz)")
    p.add_argument("--checkpoint", required=True, help="tokenizer run directory")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--max-batch-frames", type=int, default=None, metavar="FRAMES",
                   help="memory budget: frames per batch (default 32768); longer clips are encoded in "
                        "overlapping windows with the same codes")
    p.set_defaults(handler=_encode)

    p = tsub.add_parser("ablate", help="train 0/1/2 wavelet levels and compare (the paper's ablation)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="experiments/results", help="where the table and plot go")
    p.add_argument("--runs", default=None, help="where the runs go (default OUT/tokenizer_ablation_runs)")
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--levels", default="0,1,2")
    _add_config_flags(p)
    p.add_argument("--hold", default="compression", choices=("compression", "encoder"),
                   help="keep the token rate fixed (a level replaces a down block) or the encoder fixed")
    p.set_defaults(handler=_ablate)


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    # As every trainer: --set model.width=128 / --set train.lr=1e-3 (a bare key is a model field;
    # --train-set KEY=VALUE is kept as the older spelling of --set train.KEY=VALUE).
    add_overrides(p)
    p.add_argument("--train-set", dest="train_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TokenizerTrainConfig field (repeatable), same as --set train.KEY=VALUE")


SECTIONS = ("model", "train")  # --set / --config sections: TokenizerConfig, TokenizerTrainConfig


def resolve_configs(preset: str, overrides: list[str], train_overrides: list[str] = ()):
    """(TokenizerConfig, TokenizerTrainConfig) of ``preset`` with ``section.key=value`` overrides applied.

    ``model.KEY`` (or a bare ``KEY``) sets a TokenizerConfig field, ``train.KEY``
    a TokenizerTrainConfig field, in the order given (a config file's keys come
    first: ``--config`` puts them before every ``--set``); ``train_overrides``
    are bare TokenizerTrainConfig keys applied last (``--train-set``).

    Raises:
      ConfigError: an unknown preset, section or key, or a value of the wrong
        type, naming the dotted key (``train.lr``).
    """
    from mm_jax.configs import apply_overrides, get_preset
    from mm_jax.errors import ConfigError
    from mm_jax.tokenizer import PRESETS

    mcfg, tcfg = get_preset(PRESETS, preset, kind="tokenizer preset")
    sections: dict[str, list[str]] = {name: [] for name in SECTIONS}
    for item in overrides:
        key = item.split("=", 1)[0]
        section, rest = item.split(".", 1) if "." in key else ("model", item)
        if section not in sections:
            raise ConfigError(f"override {item!r}: unknown section {section!r}; valid: {', '.join(SECTIONS)} "
                              "(a bare key is a model field)")
        sections[section].append(rest)
    mcfg = apply_overrides(mcfg, sections["model"], prefix="model.")
    tcfg = apply_overrides(tcfg, sections["train"] + list(train_overrides), prefix="train.")
    return mcfg, tcfg


def _configs(args: argparse.Namespace):
    require_positive(steps=args.steps)
    mcfg, tcfg = resolve_configs(args.preset, getattr(args, "overrides", []), getattr(args, "train_overrides", []))
    if args.steps is not None:
        tcfg = dataclasses.replace(tcfg, steps=args.steps)
    return mcfg, tcfg


def _train(args: argparse.Namespace) -> int:
    from mm_jax.cli.train_cmd import report_stop
    from mm_jax.tokenizer.train import train
    from mm_jax.train.interrupt import stop_on_signals

    mcfg, tcfg = _configs(args)
    with stop_on_signals() as stop, progress_bar("tokenizer", unit="step") as bar:
        val = train(mcfg, tcfg, args.data, args.out, resume=args.resume, progress=bar, stop=stop)
    if stop.stopped_at is not None:
        return report_stop("tokenizer train", stop, args.out)
    print(json.dumps(val, indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from mm_jax.tokenizer.artifact import load_tokenizer
    from mm_jax.tokenizer.reconstruction import evaluate_tokenizer

    # Without --split, a dataset lacking a test split is scored on val or train: the library logs
    # which (shown on stderr) and the JSON's "split" names it.
    print(json.dumps(evaluate_tokenizer(load_tokenizer(args.checkpoint), args.data, split=args.split), indent=2))
    return 0


def _encode(args: argparse.Namespace) -> int:
    from mm_jax.tokenizer.artifact import MAX_BATCH_FRAMES, encode_dataset

    with progress_bar("encoding", unit="seq") as bar:
        summary = encode_dataset(args.checkpoint, args.data, args.out, progress=bar,
                                 max_batch_frames=MAX_BATCH_FRAMES if args.max_batch_frames is None
                                 else args.max_batch_frames)
    print(json.dumps(summary, indent=2))
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from mm_jax.tokenizer.ablation import run_ablation

    from mm_jax.errors import ConfigError

    mcfg, tcfg = _configs(args)
    try:
        levels = tuple(int(x) for x in args.levels.split(","))
    except ValueError:
        raise ConfigError(f"--levels {args.levels!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not levels or min(levels) < 0:
        raise ConfigError(f"--levels {args.levels!r}: wavelet levels must be >= 0")
    rows = run_ablation(mcfg, tcfg, args.data, args.out, levels=levels, hold=args.hold, runs_dir=args.runs,
                        progress_factory=progress_bar, command="mm-jax " + " ".join(sys.argv[1:]))
    for r in rows:
        keys = ("wavelet_levels", "mpjpe_mm", "accel_error_mm", "jitter", "utilisation", "perplexity")
        print(json.dumps({k: r[k] for k in keys}))
    return 0
