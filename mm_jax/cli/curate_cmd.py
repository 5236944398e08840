"""``mm-jax curate ...``: the video-to-motion data-construction pipeline (docs/curation.md).

Beam, PySceneDetect and OpenCV (the ``[curate]`` extra) are imported inside
the handlers only.
"""

from __future__ import annotations

import argparse
import json
import shlex

from mm_jax.cli.common import progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    cur = sub.add_parser("curate", help="build a motion data set from video (shots, people, SMPL, filters)")
    csub = cur.add_subparsers(dest="curate_command", metavar="SUBCOMMAND", required=True)

    p = csub.add_parser("shots", help="split one video into shots; writes DIR/<video stem>.json")
    p.add_argument("video", metavar="VIDEO")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--config", default=None, help="a data/curation/*.json config (its 'shots' part is used)")
    p.set_defaults(handler=_shots)

    p = csub.add_parser("run", help="run every stage over a folder of videos (resumable)")
    p.add_argument("--config", required=True, help="e.g. data/curation/default.json")
    p.add_argument("--videos", required=True, metavar="DIR", help="videos with their GVHMR results and captions")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--runner", choices=("local", "beam"), default="local")
    p.add_argument("--beam-options", default="", metavar="'FLAGS'",
                   help="Beam pipeline flags in one string, given with '=': "
                        "--beam-options='--runner=DirectRunner --direct_num_workers=2'")
    p.add_argument("--workers", type=int, default=1, help="local runner processes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT/dataset")
    p.add_argument("--tokenizer", default=None, metavar="RUN",
                   help="also tokenize the curated motions with this trained tokenizer run into OUT/shards "
                        "(the ArrayRecord shards `mm-jax data tokenize` writes; Beam writes them in the pipeline)")
    p.add_argument("--num-shards", type=int, default=8, help="with --tokenizer: shards per split")
    p.add_argument("--text-max-tokens", type=int, default=64, help="with --tokenizer: caption budget in tokens")
    p.add_argument("--max-batch-frames", type=int, default=None, metavar="FRAMES",
                   help="with --tokenizer: motion encoder frames per batch (default 32768)")
    p.set_defaults(handler=_run)


def _shots(args: argparse.Namespace) -> int:
    import pathlib

    from mm_jax.curation import results, shots
    from mm_jax.curation.config import ShotConfig, load_config

    cfg = load_config(args.config).shots if args.config else ShotConfig()
    found = shots.detect_shots(args.video, cfg)
    path = pathlib.Path(args.out) / f"{pathlib.Path(args.video).stem}.json"
    results.write_json(path, shots.to_json(found))
    print(f"{len(found.shots)} shots ({sum(found.kept)} kept) -> {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from mm_jax.cli.common import require_positive
    from mm_jax.curation.config import load_config

    from mm_jax.curation.tokenize import ShardOptions

    require_positive(workers=args.workers, num_shards=args.num_shards)
    cfg = load_config(args.config)
    shards = None if args.tokenizer is None else ShardOptions(
        tokenizer=args.tokenizer, num_shards=args.num_shards, text_max_tokens=args.text_max_tokens,
        max_batch_frames=args.max_batch_frames)
    if args.runner == "beam":
        from mm_jax.curation.runner_beam import run_beam

        funnel = run_beam(cfg, args.videos, args.out, beam_options=shlex.split(args.beam_options),
                          overwrite=args.overwrite, shards=shards)
    else:
        from mm_jax.curation.runner_local import run_local

        with progress_bar("curating", unit="item") as bar:
            funnel = run_local(cfg, args.videos, args.out, workers=args.workers, progress=bar,
                               overwrite=args.overwrite, shards=shards)
    keys = ("videos", "clips_out", "frames_out", "hours_out", "shards")
    print(json.dumps({k: funnel[k] for k in keys if k in funnel}, indent=2))
    print(f"report: {args.out}/funnel.md")
    return 0
