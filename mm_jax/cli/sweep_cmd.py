"""``mm-jax sweep run|plan|fit|plot|merge``: scaling-law sweeps of the decoder (mm_jax.sweep)."""

from __future__ import annotations

import argparse
import json
import sys

from mm_jax.cli.common import progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="scaling-law sweeps: train a grid of sizes, fit and plot power laws")
    ss = p.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND", required=True)

    q = ss.add_parser("run", help="train + evaluate every unfinished point, append to OUT/runs.jsonl")
    q.add_argument("file", metavar="FILE", help="sweep file (YAML or JSON), e.g. experiments/sweeps/cpu_proof.yaml")
    q.add_argument("--out", required=True, help="sweep output directory")
    q.add_argument("--point", action="append", default=None, help="only this point id or size name (repeatable)")
    q.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="multi-host: jax.distributed")
    q.add_argument("--num-processes", type=int, default=None)
    q.add_argument("--process-id", type=int, default=None)
    q.set_defaults(handler=_run)

    q = ss.add_parser("plan", help="per point: mesh for the named device and the multi-host commands")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--out", default="runs/sweep", help="the output directory the commands write to")
    q.add_argument("--check", action="store_true", help="also plan the memory of pinned meshes")
    q.set_defaults(handler=_plan)

    q = ss.add_parser("fit", help="fit E + A N^-alpha to loss and FID (bootstrap intervals), compute frontier")
    q.add_argument("dir", metavar="DIR", help="sweep output directory (holding runs.jsonl)")
    q.add_argument("--bootstrap", type=int, default=300, help="bootstrap resamples")
    q.add_argument("--target-loss", type=float, default=None, help="extrapolate the size reaching this loss")
    q.add_argument("--target-fid", type=float, default=None, help="extrapolate the size reaching this FID")
    q.set_defaults(handler=_fit)

    q = ss.add_parser("plot", help="PNGs (FID/loss vs params, loss vs compute), scaling_fit.json, scaling_table.md")
    q.add_argument("dir", metavar="DIR")
    q.add_argument("--out", default=None, help="directory for the figures (default DIR)")
    q.add_argument("--bootstrap", type=int, default=300)
    q.set_defaults(handler=_plot)

    q = ss.add_parser("merge", help="merge the runs.jsonl of separate slices into OUT/runs.jsonl")
    q.add_argument("sources", nargs="+", metavar="SRC", help="runs.jsonl files or directories holding one")
    q.add_argument("--out", required=True)
    q.set_defaults(handler=_merge)


def _run(args: argparse.Namespace) -> int:
    import jax

    from mm_jax.sweep.runner import run_sweep
    from mm_jax.sweep.spec import load_spec
    from mm_jax.train.interrupt import stop_on_signals

    if args.coordinator:
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    spec = load_spec(args.file)
    with stop_on_signals(multi_host=bool(args.coordinator)) as stop:
        written = run_sweep(spec, args.out, only=args.point, progress_factory=progress_bar, stop=stop, report=print)
    if stop.stopped_at is not None:
        print(f"mm-jax: sweep stopped by {stop.name} at step {stop.stopped_at}; checkpoint saved in {args.out}; "
              "run the same command again to resume", file=sys.stderr)
        return stop.exit_code()
    print(f"{len(written)} points written to {args.out}/runs.jsonl")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from mm_jax.sweep.plan import plan_sweep
    from mm_jax.sweep.spec import load_spec

    for row in plan_sweep(load_spec(args.file), args.out, args.file, check=args.check):
        row.pop("config")
        print(json.dumps(row, default=str))
    return 0


def _fit(args: argparse.Namespace) -> int:
    from mm_jax.sweep.fit import fit_sweep
    from mm_jax.sweep.plot import fit_json
    from mm_jax.sweep.record import read_runs
    from mm_jax.sweep.report import summary_lines

    result = fit_sweep(read_runs([args.dir]), num_bootstrap=args.bootstrap, target_loss=args.target_loss,
                       target_fid=args.target_fid)
    path = f"{args.dir}/scaling_fit.json"
    with open(path, "w") as f:
        f.write(json.dumps(fit_json(result), indent=1, default=str) + "\n")
    print("\n".join(summary_lines(result)))
    print(f"wrote {path}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from mm_jax.sweep.fit import fit_sweep
    from mm_jax.sweep.plot import write_all
    from mm_jax.sweep.record import read_runs

    records = read_runs([args.dir])
    for path in write_all(records, fit_sweep(records, num_bootstrap=args.bootstrap), args.out or args.dir):
        print(f"wrote {path}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from mm_jax.sweep.record import merge

    print(f"{merge(args.sources, args.out)} finished points in {args.out}/runs.jsonl")
    return 0
