"""``mm-jax data ...``: synthesise, import and (later) tokenize datasets."""

from __future__ import annotations

import argparse
import json

from mm_jax.cli.common import add_overrides, progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build and inspect datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    p = dsub.add_parser("synth", help="synthesise the embedded motion-caption dataset")
    p.add_argument("--num", type=int, default=None, help="number of sequences")
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="demo", help="SynthConfig preset")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    add_overrides(p)
    p.set_defaults(handler=_synth)

    p = dsub.add_parser("import-bvh", help="import BVH file(s) onto the 22-joint skeleton")
    p.add_argument("source", metavar="FILE_OR_DIR")
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--naming", default="auto", help="skeleton naming (auto, smpl, lafan1, mixamo, cmu)")
    p.set_defaults(handler=_import_bvh)

    p = dsub.add_parser("stats", help="print statistics of a dataset directory")
    p.add_argument("data", metavar="DIR")
    p.set_defaults(handler=_stats)


def _synth(args: argparse.Namespace) -> int:
    import dataclasses

    from mm_jax.configs import apply_overrides, get_preset
    from mm_jax.motion.synth import PRESETS, synthesize

    cfg = dataclasses.replace(get_preset(PRESETS, args.preset), seed=args.seed)
    if args.num is not None:
        cfg = dataclasses.replace(cfg, num=args.num)
    cfg = apply_overrides(cfg, args.overrides)
    with progress_bar("synthesising", unit="seq") as bar:
        info = synthesize(cfg, args.out, progress=bar, overwrite=args.overwrite)
    print(json.dumps(info.summary(), indent=2))
    return 0


def _import_bvh(args: argparse.Namespace) -> int:
    from mm_jax.motion.retarget import import_bvh_dir

    with progress_bar("importing", unit="file") as bar:
        info = import_bvh_dir(args.source, args.out, naming=args.naming, progress=bar)
    print(json.dumps(info, indent=2, default=str))
    return 0


def _stats(args: argparse.Namespace) -> int:
    from mm_jax.motion.synth import dataset_statistics, load_dataset

    print(json.dumps(dataset_statistics(load_dataset(args.data)), indent=2))
    return 0
