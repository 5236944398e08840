"""Loss curves of a run as a PNG (stage: train, reporting).

Input: a run directory's ``metrics.jsonl`` (:mod:`mm_jax.tracking`). Output:
one PNG with panels against the step: train and val loss, train and val
motion-token accuracy, the learning rate and, when the run evaluated during
training (``train.eval_every``), the generated motion's jerk and foot skating
beside the real clips' and the evaluator's FID and R-precision. Uses
matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

from mm_jax.errors import DataError
from mm_jax.tracking import read_metrics

log = logging.getLogger(__name__)

PANELS = (
    ("loss", (("train/loss", "train"), ("val/loss", "val")), "cross-entropy (nats)"),
    ("accuracy", (("train/accuracy", "train"), ("val/accuracy", "val")), "next-token accuracy"),
    ("learning rate", (("train/lr", "lr"),), "lr"),
)
# Drawn only when the run has these rows (in-training evaluation, mm_jax.train.periodic).
EVAL_PANELS = (
    ("jerk", (("eval/jerk", "generated"), ("eval/real_jerk", "real")), "mean jerk (m/s^3)"),
    ("foot skating", (("eval/foot_skating", "generated"), ("eval/real_foot_skating", "real")), "ratio"),
    ("evaluator", (("eval/fid", "FID"), ("eval/r_precision_top1", "R@1")), "FID / R-precision"),
)


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def plot_run(run_dir: str | pathlib.Path, out_png: str | pathlib.Path, *, title: str | None = None
             ) -> pathlib.Path:
    """Draws loss, accuracy and lr against step from ``run_dir/metrics.jsonl`` into ``out_png``.

    Raises:
      DataError: no metrics file, or no train/loss row in it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir, out_png = pathlib.Path(run_dir), pathlib.Path(out_png)
    try:
        rows = read_metrics(run_dir)
    except OSError as e:
        raise DataError(f"cannot read metrics of {run_dir}: {e}") from None
    if not _series(rows, "train/loss")[0]:
        raise DataError(f"{run_dir} has no train/loss rows to plot")
    panels = PANELS + tuple(p for p in EVAL_PANELS if any(_series(rows, k)[0] for k, _ in p[1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    for ax, (name, keys, ylabel) in zip(axes, panels):
        for key, label in keys:
            steps, values = _series(rows, key)
            if steps:
                style = {"linewidth": 1.2} if key.startswith("train/") else {"marker": "o", "markersize": 4}
                ax.plot(steps, values, label=label, **style)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if name == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        else:
            ax.legend()
    fig.suptitle(title or run_dir.name)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    log.info("wrote %s", out_png)
    return out_png
