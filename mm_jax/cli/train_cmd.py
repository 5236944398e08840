"""``mm-jax train`` / ``mm-jax plot`` / ``mm-jax plan``: the text-to-motion decoder at scale."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from mm_jax.cli.common import add_overrides, progress_bar, require_positive


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the text-to-motion decoder on pre-tokenized shards")
    p.add_argument("--shards", required=True, help="shards directory (mm-jax data tokenize)")
    p.add_argument("--workdir", required=True, help="run directory")
    p.add_argument("--preset", default="tiny", help="experiment preset (tiny, small, reference)")
    p.add_argument("--tokenizer", default=None, help="tokenizer run the shards were made with")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--until", type=int, default=None, help="stop at this step (schedule still spans --steps)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--plot", action="store_true", help="also write WORKDIR/curves.png")
    p.add_argument("--profile-steps", default=None, metavar="A:B",
                   help="jax.profiler trace of steps A..B into WORKDIR/profile (TensorBoard, Perfetto)")
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="multi-host: jax.distributed")
    p.add_argument("--num-processes", type=int, default=None)
    p.add_argument("--process-id", type=int, default=None)
    add_overrides(p)  # dotted keys: train.lr=3e-4, mesh.fsdp=2, model.remat=true
    p.set_defaults(handler=_train)

    p = sub.add_parser("plot", help="loss/accuracy/lr curves of a run as PNG")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--out", default=None, help="PNG path (default RUN/curves.png)")
    p.set_defaults(handler=_plot)

    p = sub.add_parser("plan", help="per-device memory of a train step, compiled on abstract shapes")
    p.add_argument("--model", required=True, help="model preset (tiny ... 1b, 3b, 7b)")
    p.add_argument("--mesh", required=True, help="data=..,fsdp=..,tensor=.. (or D,F,T)")
    p.add_argument("--batch", type=int, required=True, help="global batch size")
    p.add_argument("--seq", type=int, default=None, help="decoder length (default: block size)")
    p.add_argument("--device", default=None, help="v5e, v4, v5p, h100 or a size in GiB")
    p.add_argument("--preset", default="reference",
                   help="experiment preset whose optimizer, accumulation and text encoder the step uses")
    p.set_defaults(handler=_plan)


def _train(args: argparse.Namespace) -> int:
    import jax

    from mm_jax import train
    from mm_jax.train import loop
    from mm_jax.train.sizes import override_keys
    from mm_jax.train.interrupt import stop_on_signals
    from mm_jax.train.periodic import parse_profile_steps

    require_positive(steps=args.steps, until=args.until)
    profile = parse_profile_steps(args.profile_steps) if args.profile_steps else None
    if args.coordinator:
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    sets = list(args.overrides) + [f"shards_dir={args.shards}"]
    sets += [f"tokenizer_run={args.tokenizer}"] if args.tokenizer else []
    sets += [f"train.steps={args.steps}"] if args.steps is not None else []
    exp = train.apply_overrides(train.preset(args.preset), sets)
    with stop_on_signals(multi_host=bool(args.coordinator)) as stop, progress_bar("train", unit="step") as bar:
        summary = loop.run(exp, args.workdir, resume=args.resume, progress=bar, until=args.until, stop=stop,
                           explicit=override_keys(args.overrides), profile=profile)
    if stop.stopped_at is not None:
        return report_stop("train", stop, args.workdir)
    if args.plot:
        from mm_jax.plot import plot_run

        plot_run(args.workdir, pathlib.Path(args.workdir) / "curves.png")
    print(json.dumps(summary, indent=2, default=str))
    return 0


def report_stop(what: str, stop, directory: str) -> int:
    """One line for a run stopped by a signal (checkpoint saved); exit 0 after SIGTERM, 130 after SIGINT."""
    print(f"mm-jax: {what} stopped by {stop.name} at step {stop.stopped_at}; saved in {directory}; "
          "continue with --resume", file=sys.stderr)
    return stop.exit_code()


def _plot(args: argparse.Namespace) -> int:
    from mm_jax.plot import plot_run

    out = args.out or str(pathlib.Path(args.run) / "curves.png")
    plot_run(args.run, out)
    print(f"wrote {out}")
    return 0


def parse_mesh(text: str) -> dict[str, int]:
    """``data=2,fsdp=4,tensor=1`` or ``2,4,1`` -> {"data": 2, "fsdp": 4, "tensor": 1}."""
    from mm_jax.errors import ConfigError

    names = ("data", "fsdp", "tensor")
    parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            mesh = {k.strip(): int(v) for k, v in (p.split("=", 1) for p in parts)}
        else:
            mesh = dict(zip(names, (int(p) for p in parts)))
    except ValueError:
        raise ConfigError(f"--mesh {text!r}: sizes must be integers, e.g. data=2,fsdp=4,tensor=1") from None
    if set(mesh) - set(names) or len(parts) != len(mesh) or not mesh:
        raise ConfigError(f"--mesh {text!r}: expected axes {names}, e.g. data=2,fsdp=4,tensor=1")
    return {n: mesh.get(n, 1) for n in names}


def _device(text: str | None) -> str | float | None:
    """A device name (v5e, ...) or its memory in GiB."""
    try:
        return None if text is None else float(text)
    except ValueError:
        return text


def _plan(args: argparse.Namespace) -> int:
    from mm_jax.train.plan import preset_experiment, run_plan

    exp = preset_experiment(args.model, parse_mesh(args.mesh), args.batch, args.seq, train_preset=args.preset)
    result = run_plan(exp, _device(args.device))
    result["model_preset"] = args.model
    print(json.dumps(result, indent=2, default=str))
    return 0
