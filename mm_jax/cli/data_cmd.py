"""``mm-jax data ...``: synthesise, import and (later) tokenize datasets."""

from __future__ import annotations

import argparse
import json
import sys

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
    p.add_argument("--map", dest="joint_map", action="append", default=[], metavar="SMPL=SOURCE",
                   help="force a joint mapping (repeatable), e.g. --map left_foot=LToeBase")
    _import_flags(p)
    add_overrides(p)  # RetargetConfig: unit, up_axis, fps, ground, root_scale
    p.set_defaults(handler=_import_bvh)

    p = dsub.add_parser("import-272", help="import a MotionMillion-layout folder of 272-d features")
    p.add_argument("source", metavar="DIR", help="holds motion_data/vector_272/*.npy and texts/*.txt")
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--split-version", default=None, metavar="VERSION",
                   help="which split/<VERSION>/ to use (default: the lexically last)")
    _import_flags(p)
    p.set_defaults(handler=_import_272)

    p = dsub.add_parser("import-smpl", help="import AMASS-style SMPL parameters (.npz or clip folders)")
    p.add_argument("source", metavar="FILE_OR_DIR")
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--y-up", action="store_true", help="the input is already y up (AMASS is z up)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of clips that state none")
    _import_flags(p)
    p.set_defaults(handler=_import_smpl)

    p = dsub.add_parser("convert", help="rewrite a format-1 dataset in the reference 272-d convention")
    p.add_argument("source", metavar="OLD_DIR")
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.set_defaults(handler=_convert)

    p = dsub.add_parser("export-bvh", help="write a motion as BVH (opens in Blender)")
    p.add_argument("motion", metavar="MOTION", help="features .npy [T,272] or DATASET_DIR:ID")
    p.add_argument("out", metavar="OUT.bvh")
    p.add_argument("--unit", default="m", choices=("m", "cm"))
    p.add_argument("--order", default="ZXY", help="Euler channel order")
    p.add_argument("--fps", type=float, default=30.0)
    p.set_defaults(handler=_export_bvh)

    p = dsub.add_parser("bvh-info", help="show a BVH skeleton and its mapping onto the SMPL joints")
    p.add_argument("file", metavar="FILE.bvh")
    p.set_defaults(handler=_bvh_info)

    p = dsub.add_parser("tokenize", help="pre-tokenize a dataset into ArrayRecord shards")
    p.add_argument("--data", required=True, help="dataset directory")
    p.add_argument("--tokenizer", required=True, help="trained tokenizer run directory")
    p.add_argument("--out", required=True, help="shards directory")
    p.add_argument("--splits", default="train,val,test")
    p.add_argument("--num-shards", type=int, default=8, help="shards per split (at most its record count)")
    p.add_argument("--text-max-tokens", type=int, default=64, help="caption budget in tokens")
    p.add_argument("--max-batch-frames", type=int, default=None, metavar="FRAMES",
                   help="motion encoder memory budget: frames per batch (default 32768); longer clips "
                        "are encoded in overlapping windows with the same codes")
    p.set_defaults(handler=_tokenize)

    p = dsub.add_parser("inspect", help="list shards, verify checksums, print records")
    p.add_argument("shards", metavar="SHARDS")
    p.add_argument("--num", type=int, default=3, help="records to print")
    p.add_argument("--split", default=None)
    p.add_argument("--no-verify", action="store_true")
    p.set_defaults(handler=_inspect)

    p = dsub.add_parser("stats", help="print statistics of a dataset directory (or compare two)")
    p.add_argument("data", metavar="DIR")
    p.add_argument("--compare", metavar="OTHER", default=None,
                   help="print per-slice mean/std ratios DIR / OTHER and motion figures of both")
    p.add_argument("--motion", action="store_true", help="add per-slice moments and motion figures")
    p.add_argument("--max-frames", type=int, default=500_000, help="read at most this many frames")
    p.add_argument("--json", action="store_true", help="JSON output for --compare")
    p.set_defaults(handler=_stats)


def _synth(args: argparse.Namespace) -> int:
    import dataclasses

    from mm_jax.configs import apply_overrides, get_preset
    from mm_jax.motion.synth import PRESETS, synthesize

    cfg = dataclasses.replace(get_preset(PRESETS, args.preset), seed=args.seed)
    if args.num is not None:
        cfg = dataclasses.replace(cfg, num=args.num)
    cfg = apply_overrides(cfg, args.overrides)
    with progress_bar("synthesising", unit="seq") as bar:  # DatasetWriter holds .OUT.lock beside OUT
        info = synthesize(cfg, args.out, progress=bar, overwrite=args.overwrite)
    print(json.dumps(info.summary(), indent=2))
    return 0


def _import_bvh(args: argparse.Namespace) -> int:
    from mm_jax.configs import apply_overrides
    from mm_jax.errors import ConfigError
    from mm_jax.motion import retarget

    cfg = apply_overrides(retarget.PRESETS["default"], args.overrides)
    naming: object = "auto"
    if args.joint_map:
        pairs = [m.split("=", 1) for m in args.joint_map]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError(f"--map takes SMPL=SOURCE pairs, got {args.joint_map}")
        naming = dict(pairs)
    from mm_jax.motion.import_bvh import import_bvh_dir

    with progress_bar("importing", unit="file") as bar:
        report = import_bvh_dir(args.source, args.out, naming=naming, config=cfg,
                                allow_uncaptioned=args.allow_uncaptioned, overwrite=args.overwrite,
                                progress=lambda done, total, _path: bar(done, total))
    _print_report(report)
    return 0


def _import_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-uncaptioned", action="store_true", help="import clips without captions too")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")


def _print_report(report: dict) -> None:
    print(json.dumps(report, indent=2, default=str))


def _run_import(importer, args: argparse.Namespace, **options) -> int:
    """Runs an importer of SOURCE into --out with a progress bar and prints its report."""
    with progress_bar("importing", unit="clip") as bar:
        report = importer(args.source, args.out, allow_uncaptioned=args.allow_uncaptioned, overwrite=args.overwrite,
                          progress=lambda done, total, _name: bar(done, total), **options)
    _print_report(report)
    return 0


def _import_272(args: argparse.Namespace) -> int:
    from mm_jax.motion.import_272 import import_272

    return _run_import(import_272, args, split_version=args.split_version)


def _import_smpl(args: argparse.Namespace) -> int:
    from mm_jax.motion.import_smpl import import_smpl

    return _run_import(import_smpl, args, y_up=args.y_up, fps=args.fps)


def _convert(args: argparse.Namespace) -> int:
    from mm_jax.motion import convert

    with progress_bar("converting", unit="seq") as bar:
        info = convert.convert_dataset(args.source, args.out, overwrite=args.overwrite, progress=bar)
    print(json.dumps(info, indent=2))
    return 0


def _export_bvh(args: argparse.Namespace) -> int:
    import pathlib

    import numpy as np

    from mm_jax.errors import ConfigError
    from mm_jax.motion import bvh
    from mm_jax.motion.loading import load_features

    feats = load_features(args.motion)
    out = pathlib.Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # as render does
    except OSError as e:
        raise ConfigError(f"cannot create the directory of {out}: {e.strerror or e}") from None
    bvh.write_motion_bvh(out, np.asarray(feats), unit=args.unit, order=args.order, fps=args.fps)
    print(f"wrote {out} ({len(feats)} frames)")
    return 0


def _bvh_info(args: argparse.Namespace) -> int:
    from mm_jax.motion import bvh, joint_map
    from mm_jax.motion.skeleton import JOINT_NAMES

    skel, motion = bvh.read_bvh(args.file)
    print(f"{args.file}: {len(skel.names)} joints, {len(motion.local_rot)} frames at {motion.fps:g} fps")
    for j, name in enumerate(skel.names):
        parent = skel.names[skel.parents[j]] if skel.parents[j] >= 0 else "-"
        print(f"  {name:<28} parent={parent:<24} channels={' '.join(skel.channels[j])}")
    mapping = joint_map.match_skeleton(skel)
    print("mapping onto the SMPL joints:")
    for name, src in zip(JOINT_NAMES, mapping):
        print(f"  {name:<16} <- {skel.names[src] if src is not None else '(none: placed between its neighbours)'}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from mm_jax.motion import stats
    from mm_jax.motion.synth import dataset_statistics, load_dataset

    ds = load_dataset(args.data)
    if args.compare is None:
        out = dataset_statistics(ds)
        if args.motion:
            out.update(stats.public(stats.dataset_summary(ds, args.max_frames)))
        print(json.dumps(out, indent=2))
        return 0
    a = stats.dataset_summary(ds, args.max_frames)
    result = stats.compare(a, stats.dataset_summary(load_dataset(args.compare), args.max_frames))
    print(json.dumps(result, indent=2) if args.json else stats.format_comparison(result))
    return 0


def _tokenize(args: argparse.Namespace) -> int:
    from mm_jax.errors import DataError
    from mm_jax.shards import write_shards
    from mm_jax.motion.synth import load_dataset

    ds = load_dataset(args.data)
    splits = args.splits.split(",")
    skipped = [split for split in splits if not ds.ids(split)]
    if len(skipped) == len(splits):
        raise DataError(f"every requested split ({args.splits}) of {args.data} is empty; nothing written")
    for split in splits:
        if split in skipped:  # the manifest records it as {"num_records": 0, "skipped": "empty"}
            print(f"mm-jax: note: split {split!r} of {args.data} is empty; no shards written for it",
                  file=sys.stderr)
        with progress_bar(f"sharding {split}", unit="rec") as bar:
            manifest = write_shards(ds, args.tokenizer, args.out, split=split,
                                    num_shards=min(args.num_shards, len(ds.ids(split))) or args.num_shards,
                                    text_max_tokens=args.text_max_tokens, progress=bar,
                                    max_batch_frames=args.max_batch_frames)
    summary = {k: v for k, v in manifest.items() if k != "splits"}
    summary["splits"] = {s: {k: v for k, v in e.items() if k != "shards"} for s, e in manifest["splits"].items()}
    summary["empty_splits_skipped"] = skipped
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from mm_jax.shards import inspect_shards

    print(json.dumps(inspect_shards(args.shards, num_records=args.num, split=args.split,
                                    verify=not args.no_verify), indent=2, default=str))
    return 0
