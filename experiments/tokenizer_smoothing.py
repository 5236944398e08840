"""A fixed Gaussian low-pass on the decoder's output, applied after training (issue 15).

Takes trained tokenizer runs (trained without smoothing) and scores each on
the test split with ``output_smoothing_frames`` set to each sigma, the
parameters unchanged: how much of the reconstruction's jitter is frame-level
noise that a fixed filter removes, and what it costs in MPJPE. Writes
``OUT.json`` and ``OUT.md``.

    .venv/bin/python experiments/tokenizer_smoothing.py --data runs/data2k \\
        --runs runs/variants/baseline_s0,runs/variants/haar_depth_s0,runs/variants/cdf53_depth_s0 \\
        --sigmas 0,1,1.5,2 --out experiments/results/tokenizer_variants/posthoc_smoothing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

from mm_jax.tokenizer.artifact import load_tokenizer, open_motion_data
from mm_jax.tokenizer.reconstruction import evaluate

KEYS = ("accel_error_mm", "accel_mm", "accel_gt_mm", "jitter", "jitter_gt", "mpjpe_local_mm", "vel_error_within_mm",
        "vel_error_across_mm", "foot_slide_mm", "foot_skating", "foot_skating_gt")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--runs", required=True, help="comma-separated run directories")
    p.add_argument("--sigmas", default="0,1,1.5,2")
    p.add_argument("--out", required=True, help="output stem (.json, .md)")
    args = p.parse_args()
    rows = []
    for run in args.runs.split(","):
        tok = load_tokenizer(run)
        data = open_motion_data(args.data, normalizer=tok.normalizer)
        for sigma in (float(s) for s in args.sigmas.split(",")):
            cfg = dataclasses.replace(tok.cfg, output_smoothing_frames=sigma)
            m = evaluate(tok.params, cfg, data, split=data.resolve_split(None))
            rows.append({"run": pathlib.Path(run).name, "sigma_frames": sigma, **{k: m[k] for k in KEYS}})
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join([".venv/bin/python"] + sys.argv)
    out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    cols = ("run", "sigma_frames") + KEYS
    md = ["# A fixed Gaussian low-pass on the decoder output, after training", "", f"`{command}`", "",
          "Test split; parameters unchanged, only `output_smoothing_frames` (sigma, frames) varies.", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |"
           for r in rows]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
