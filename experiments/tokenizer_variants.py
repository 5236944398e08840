"""Wavelet variants of the tokenizer at equal token rate and equal depth, with validation curves (issue 15).

Every variant compresses time x4 (7.5 tokens/s at 30 fps) and, except the
reference placement, has two residual stacks in the encoder and decoder:

* ``baseline``: no wavelet, two stride-2 down blocks (each with its stack).
* ``haar_depth``: one Haar level replaces a down block and keeps its stack.
* ``haar_refine`` / ``cdf53_refine``: ``haar_depth`` / ``cdf53_depth`` + the full-rate
  refinement head (variant a).
* ``cdf53_depth``: ``haar_depth`` with the overlapping CDF 5/3 wavelet (b).
* ``haar_posdiff`` / ``baseline_posdiff``: ``haar_depth`` / ``baseline`` with
  the temporal-difference loss on the local positions (c).
* ``reference_placement``: Haar on top of one down block, analysis x1/2 and
  synthesis x2, no stack for the wavelet level: the reference's own (d).
* ``*_contact``: the foot-contact term on top (``w_foot_contact``).

Every field a variant depends on is set here, not taken from the preset (the
``small`` preset's wavelet became CDF 5/3, so a variant that left the family to it
silently became another variant).

Usage (one process; runs resume, so a killed sweep continues)::

    .venv/bin/python experiments/tokenizer_variants.py --data runs/data2k --runs runs/variants \\
        --steps 3000 --variants baseline,haar_depth --seeds 0,1

It trains each (variant, seed) into ``RUNS/NAME_sSEED``, scores it on the
test split and writes ``OUT/variants.{json,md}`` (end points, mean over
seeds) and ``OUT/curves.{json,png}`` (validation acceleration error against
steps, from each run's ``metrics.jsonl``). ``--report`` rescans the runs
without training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

import numpy as np

from mm_jax.tokenizer.config import PRESETS, TokenizerConfig, TokenizerTrainConfig

# The position channels' first and second differences. Stronger settings collapsed training to a
# static pose within 250 steps (val accel_mm 0.001, MPJPE 117 mm): w_pos_velocity 1 + w_pos_accel 10 +
# w_accel 2 (velocity channels, root included), and w_joint_accel 0.1 (runs/collapsed_*, README),
# both at full weight from step 0; here the terms are off for 500 steps, then ramp in over 500.
POS_DIFF = {"w_pos_velocity": 1.0, "w_pos_accel": 5.0, "aux_ramp_steps": 500}
JOINT_ACCEL = {"w_joint_accel": 0.1}
CONTACT = {"w_foot_contact": 0.5, "aux_ramp_steps": 500}
VARIANTS: dict[str, tuple[dict, dict]] = {
    "baseline": ({"wavelet_levels": 0, "down_t": 2}, {}),
    "haar_depth": ({"wavelet_levels": 1, "down_t": 1, "wavelet_res_stacks": True, "wavelet_family": "haar"}, {}),
    "haar_refine": ({"wavelet_levels": 1, "down_t": 1, "wavelet_res_stacks": True, "wavelet_family": "haar",
                     "refine_width": 64}, {}),
    "cdf53_refine": ({"wavelet_levels": 1, "down_t": 1, "wavelet_res_stacks": True, "wavelet_family": "cdf53",
                      "refine_width": 64}, {}),
    "cdf53_depth": ({"wavelet_levels": 1, "down_t": 1, "wavelet_res_stacks": True, "wavelet_family": "cdf53"}, {}),
    "haar_posdiff": ({"wavelet_levels": 1, "down_t": 1, "wavelet_res_stacks": True, "wavelet_family": "haar"},
                     POS_DIFF),
    "baseline_posdiff": ({"wavelet_levels": 0, "down_t": 2}, POS_DIFF),
    "reference_placement": ({"wavelet_levels": 1, "down_t": 1, "wavelet_gain": 0.5, "wavelet_family": "haar",
                             "wavelet_res_stacks": False}, {}),
    "cdf53_posdiff": ({"wavelet_levels": 1, "down_t": 1, "wavelet_res_stacks": True, "wavelet_family": "cdf53"},
                      POS_DIFF),
    "baseline_jointaccel": ({"wavelet_levels": 0, "down_t": 2}, JOINT_ACCEL),
    "cdf53_jointaccel": ({"wavelet_levels": 1, "down_t": 1, "wavelet_res_stacks": True, "wavelet_family": "cdf53"},
                         JOINT_ACCEL),
    "cdf53_depth_l2": ({"wavelet_levels": 2, "down_t": 0, "wavelet_res_stacks": True, "wavelet_family": "cdf53"},
                       {}),
    "cdf53_contact": ({"wavelet_levels": 1, "down_t": 1, "wavelet_res_stacks": True, "wavelet_family": "cdf53"},
                      CONTACT),
    "baseline_posdiff_contact": ({"wavelet_levels": 0, "down_t": 2}, {**POS_DIFF, **CONTACT}),
    "cdf53_posdiff_contact": ({"wavelet_levels": 1, "down_t": 1, "wavelet_res_stacks": True,
                               "wavelet_family": "cdf53"}, {**POS_DIFF, **CONTACT}),
}
KEYS = ("accel_error_mm", "accel_mm", "accel_gt_mm", "jitter", "jitter_gt", "mpjpe_local_mm", "mpjpe_mm",
        "vel_error_within_mm", "vel_error_across_mm", "foot_slide_mm", "foot_skating", "foot_skating_gt",
        "utilisation")


def configs_for(name: str, base: tuple[TokenizerConfig, TokenizerTrainConfig], steps: int,
                seed: int) -> tuple[TokenizerConfig, TokenizerTrainConfig]:
    """The variant's configs: ``base`` (a preset, already shrunk by --set/--train-set) with its overrides."""
    m, t = VARIANTS[name]
    mcfg = dataclasses.replace(base[0], **m)
    tcfg = dataclasses.replace(base[1], steps=steps, seed=seed, **t)
    return mcfg, tcfg


def curve(run: pathlib.Path, key: str = "val/accel_error_mm") -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(r["step"], r[key]) for r in rows if key in r]


def _mean_rows(rows: list[dict]) -> list[dict]:
    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        group = [r for r in rows if r["variant"] == name]
        mean = {k: float(np.mean([r[k] for r in group])) for k in KEYS}
        spread = {f"{k}_sd": float(np.std([r[k] for r in group])) for k in ("accel_error_mm", "jitter")}
        out.append({"variant": name, "seeds": [r["seed"] for r in group], "steps": min(r["steps"] for r in group),
                    **mean, **spread})
    return out


def write_report(rows: list[dict], curves: dict, out: pathlib.Path, command: str, suffix: str = "") -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out.mkdir(parents=True, exist_ok=True)
    means = _mean_rows(rows)
    (out / f"variants{suffix}.json").write_text(json.dumps({"command": command, "runs": rows, "mean": means},
                                                           indent=2))
    (out / "curves.json").write_text(json.dumps({"command": command, "key": "val/accel_error_mm",
                                                 "curves": curves}, indent=2))
    cols = ("variant", "seeds", "steps") + KEYS
    md = ["# Tokenizer variants at equal token rate (x4) and equal depth"
          + (f", scored with the output filter ({suffix[1:]})" if suffix else ""), "", f"`{command}`", "",
          "Test split, mean over seeds (accel_error_mm and jitter: ± the spread over seeds in the JSON). "
          "accel_mm / accel_gt_mm: the reference's pair (mean acceleration magnitude of the reconstruction "
          "and of the ground truth, mm/frame²); vel_error within / across: frame-to-frame velocity error "
          "inside a Haar pair vs across pairs (mm/frame); foot_slide_mm: the reconstruction's foot speed "
          "where the input's feet are planted.", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in means:
        md.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    (out / f"variants{suffix}.md").write_text("\n".join(md) + "\n")
    if suffix:  # the curves do not depend on the scoring filter
        return
    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = {}
    for run_name, pts in curves.items():
        variant = run_name.rsplit("_s", 1)[0]
        color = colors.setdefault(variant, f"C{len(colors)}")
        steps, vals = zip(*pts)
        ax.plot(steps, vals, color=color, lw=1.2, label=variant if run_name.endswith("_s0") else None)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation accel. error (mm/frame²)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Validation acceleration error vs steps (x4, equal depth; one line per seed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)


def main() -> None:
    from mm_jax.configs import apply_overrides
    from mm_jax.tokenizer.artifact import load_tokenizer, open_motion_data
    from mm_jax.tokenizer.reconstruction import evaluate
    from mm_jax.tokenizer.train import train

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--runs", required=True)
    p.add_argument("--out", default="experiments/results/tokenizer_variants")
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--seeds", default="0", help="comma-separated; VARIANT:SEEDS pairs allowed, e.g. baseline:0+1")
    p.add_argument("--set", dest="model_set", action="append", default=[], metavar="KEY=VALUE",
                   help="TokenizerConfig override for every variant, e.g. width=64")
    p.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                   help="TokenizerTrainConfig override for every variant, e.g. batch_size=16")
    p.add_argument("--report", action="store_true", help="rescan existing runs, train nothing")
    p.add_argument("--smoothing", type=float, default=0.0,
                   help="score with this output_smoothing_frames (decode-time filter; the runs are unchanged)")
    p.add_argument("--foot-lock", action="store_true",
                   help="score through the decode-time foot lock (default: off, the decoder's own output)")
    p.add_argument("--command", default=None, help="the command line recorded in the report")
    args = p.parse_args()
    mcfg0, tcfg0 = PRESETS[args.preset]
    base = (apply_overrides(mcfg0, args.model_set), apply_overrides(tcfg0, args.train_set))
    runs, rows, curves = pathlib.Path(args.runs), [], {}
    for item in args.variants.split(","):
        name, _, seeds = item.partition(":")
        for seed in [int(s) for s in (seeds.replace("+", ",") or args.seeds).split(",")]:
            run = runs / f"{name}_s{seed}"
            mcfg, tcfg = configs_for(name, base, args.steps, seed)
            if not args.report:
                train(mcfg, tcfg, args.data, run, resume=True)
            if not (run / "metrics.jsonl").exists():
                continue
            tok = load_tokenizer(run)
            data = open_motion_data(args.data, normalizer=tok.normalizer)
            # Scored as the tokenizer's own output: the decode-time filter and foot lock as asked, whatever
            # the preset the run was made with set (the foot lock is measured in experiments/foot_lock.py).
            cfg = dataclasses.replace(tok.cfg, output_smoothing_frames=args.smoothing, foot_lock=args.foot_lock)
            m = evaluate(tok.params, cfg, data, split=data.resolve_split(None))
            rows.append({"variant": name, "seed": seed, "steps": tok.step, "run": str(run),
                         **{k: m[k] for k in KEYS}})
            curves[run.name] = curve(run)
            write_report(rows, curves, pathlib.Path(args.out), args.command or " ".join(sys.argv),
                         suffix=f"_smooth{args.smoothing:g}" if args.smoothing else "")


if __name__ == "__main__":
    main()
