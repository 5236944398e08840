"""Subprocess entry point of the kill -9 / resume tests (not a test module).

    train_worker.py SHARDS WORKDIR STEPS [--resume] [--slow-after K]

Trains the ``train_fixtures.experiment`` run to STEPS. With ``--slow-after K``
every step after step K sleeps 0.3 s, so the parent can SIGKILL the process
mid-run once step K's checkpoint is on disk. Prints ``DONE <step>`` after each
step, then ``TF_IMPORTED=<bool>`` (the train loop must never import
tensorflow) and ``SUMMARY <json>``.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()

    import train_fixtures as tf_

    from mm_jax import train

    def progress(done: int, total: int) -> None:
        print(f"DONE {done}", flush=True)
        if args.slow_after is not None and done >= args.slow_after:
            time.sleep(0.3)

    summary = train.run(tf_.experiment(args.shards, steps=args.steps), args.workdir, resume=args.resume,
                        progress=progress)
    print(f"TF_IMPORTED={'tensorflow' in sys.modules}", flush=True)
    print("SUMMARY " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
