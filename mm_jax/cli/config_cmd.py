"""``mm-jax config show KIND``: the resolved config a command would run with (preset, then --config, then --set)."""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from mm_jax.cli.common import add_overrides


def _train(preset: str | None, sets: list[str]) -> Any:
    from mm_jax import train

    return train.apply_overrides(train.preset(preset or "tiny"), sets)


def _tokenizer(preset: str | None, sets: list[str]) -> Any:
    from mm_jax.cli.tokenizer_cmd import resolve_configs

    mcfg, tcfg = resolve_configs(preset or "small", sets)
    return {"model": mcfg, "train": tcfg}


def _flat(module: str, default: str, kind: str) -> Callable[[str | None, list[str]], Any]:
    def resolve(preset: str | None, sets: list[str]) -> Any:
        import importlib

        from mm_jax.configs import apply_overrides, get_preset

        presets = importlib.import_module(module).PRESETS
        return apply_overrides(get_preset(presets, preset or default, kind=kind), sets)

    return resolve


# KIND -> resolver(preset, overrides); the same preset and --set keys as the command in brackets.
KINDS: dict[str, Callable[[str | None, list[str]], Any]] = {
    "train": _train,  # mm-jax train (ExperimentConfig: model., train., pipeline., mesh., text. keys)
    "tokenizer": _tokenizer,  # mm-jax tokenizer train (model. and train. keys; a bare key is a model field)
    "evaluator": _flat("mm_jax.eval.evaluator", "small", "evaluator preset"),  # mm-jax evaluator train
    "synth": _flat("mm_jax.motion.synth", "demo", "SynthConfig preset"),  # mm-jax data synth
    "demo": _flat("mm_jax.demo", "demo", "demo preset"),  # mm-jax demo
    "retarget": _flat("mm_jax.motion.retarget", "default", "retarget preset"),  # mm-jax data import-bvh
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show resolved configs (preset + --config file + --set)")
    csub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    p = csub.add_parser("show", help="print the config a command would run with")
    p.add_argument("kind", choices=sorted(KINDS), help="which command's config")
    p.add_argument("--preset", default=None, help="preset name (default: the command's default)")
    p.add_argument("--format", default="json", choices=("json", "yaml"), help="output format")
    add_overrides(p)
    p.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    from mm_jax.configs import to_dict

    cfg = KINDS[args.kind](args.preset, list(args.overrides))
    data = {k: to_dict(v) for k, v in cfg.items()} if isinstance(cfg, dict) else to_dict(cfg)
    if args.format == "yaml":
        import yaml

        print(yaml.safe_dump(data, sort_keys=True), end="")
    else:
        print(json.dumps(data, indent=2, sort_keys=True))
    return 0
