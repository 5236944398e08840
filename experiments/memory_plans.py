"""Which model preset fits which device slice: compiled memory plans of the train step.

Run: ``.venv/bin/python experiments/memory_plans.py`` (several minutes on 2 CPU cores: each plan
compiles the full train step on abstract shapes over as many fake CPU devices as its mesh).

For each (model, mesh, global batch) it plans the step ``mm-jax train`` compiles with
:func:`mm_jax.train.plan.run_plan` (the reference experiment's optimizer and text encoder, the
model's own dtype/remat/scan settings, sequence = block size 301)
and writes per-device GiB of parameters, optimizer state, temporaries and the
total, plus whether it fits 16 GiB (v5e), 32 GiB (v4), 80 GiB (H100) and
95 GiB (v5p) with 10% headroom, to experiments/results/memory_plans.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from mm_jax.train.plan import fits, preset_experiment, run_plan

GRID = (
    ("1b", {"data": 1, "fsdp": 8, "tensor": 1}, 128),
    ("1b", {"data": 2, "fsdp": 2, "tensor": 2}, 128),
    ("3b", {"data": 1, "fsdp": 8, "tensor": 1}, 128),
    ("3b", {"data": 1, "fsdp": 4, "tensor": 2}, 64),
    ("7b", {"data": 1, "fsdp": 8, "tensor": 1}, 128),
    ("7b", {"data": 1, "fsdp": 16, "tensor": 1}, 256),
    ("7b", {"data": 1, "fsdp": 4, "tensor": 4}, 64),
)
DEVICES = ("v5e", "v4", "h100", "v5p")
GIB = 2**30


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="experiments/results/memory_plans")
    args = p.parse_args()
    rows = []
    for model, mesh, batch in GRID:
        plan = run_plan(preset_experiment(model, mesh, batch))
        keys = ("params_bytes", "opt_state_bytes", "temp_bytes", "total_bytes", "num_params", "compile_s")
        row = {"model": model, "mesh": "x".join(str(mesh[k]) for k in ("data", "fsdp", "tensor")),
               "batch": batch, **{k: plan[k] for k in keys}, "fits": {d: fits(plan, d) for d in DEVICES}}
        rows.append(row)
        summary = json.dumps({k: row[k] for k in ("model", "mesh", "batch", "fits")})
        print(summary, f"{row['total_bytes'] / GIB:.1f} GiB", flush=True)
    out = pathlib.Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["# Memory plans (per device, AdamW, seq 301, XLA memory analysis on abstract shapes)\n",
             "| model | mesh d x f x t | global batch | params GiB | opt state GiB | temps GiB | total GiB | "
             + " | ".join(DEVICES) + " |", "|" + "---|" * (7 + len(DEVICES))]
    for r in rows:
        lines.append(f"| {r['model']} | {r['mesh']} | {r['batch']} | {r['params_bytes'] / GIB:.2f} | "
                     f"{r['opt_state_bytes'] / GIB:.2f} | {r['temp_bytes'] / GIB:.2f} | {r['total_bytes'] / GIB:.2f} | "
                     + " | ".join("yes" if r["fits"][d] else "no" for d in DEVICES) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
