"""Subprocess entry point of the kill -9 / resume tests (not a test module).

    train_worker.py SHARDS WORKDIR STEPS [--resume] [--slow-after K] [--signals]

Trains the ``train_fixtures.experiment`` run to STEPS. With ``--slow-after K``
every step after step K sleeps 0.3 s, so the parent can SIGKILL the process
mid-run once step K's checkpoint is on disk. Prints ``DONE <step>`` after each
step, then ``TF_IMPORTED=<bool>`` (the train loop must never import
tensorflow) and ``SUMMARY <json>``. With ``--signals`` the run is wrapped as
``mm-jax train`` wraps it: SIGINT/SIGTERM stop it after the current step with
a checkpoint, one line on stderr and the CLI's exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("shards")
    parser.add_argument("workdir")
    parser.add_argument("steps", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--slow-after", type=int, default=None)
    parser.add_argument("--signals", action="store_true")
    args = parser.parse_args()

    import train_fixtures as tf_

    from mm_jax.train import loop

    def progress(done: int, total: int) -> None:
        print(f"DONE {done}", flush=True)
        if args.slow_after is not None and done >= args.slow_after:
            time.sleep(0.3)

    from mm_jax.cli.train_cmd import report_stop
    from mm_jax.train.interrupt import StopRequest, stop_on_signals

    signals = stop_on_signals() if args.signals else contextlib.nullcontext(StopRequest())
    with signals as stop:
        summary = loop.run(tf_.experiment(args.shards, steps=args.steps), args.workdir, resume=args.resume,
                           progress=progress, stop=stop)
    if stop.stopped_at is not None:
        sys.exit(report_stop("train", stop, args.workdir))
    print(f"TF_IMPORTED={'tensorflow' in sys.modules}", flush=True)
    print("SUMMARY " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
