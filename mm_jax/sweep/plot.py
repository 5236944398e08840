"""Plots and tables of a sweep: FID / loss vs parameters with their fits, loss vs compute (stage: sweep).

Input: finished records (:func:`mm_jax.sweep.record.read_runs`) and the
result of :func:`mm_jax.sweep.fit.fit_sweep`. Output, in a directory::

    fid_vs_params.png       FID vs total and vs non-embedding parameters (log x), per-run bootstrap
                            intervals, seeds as spread, the fit, the tokenizer floor (dashed)
    loss_vs_params.png      final validation loss vs total and non-embedding parameters, with fits
    loss_vs_compute.png     every run's validation curve against training FLOPs, the frontier and its fit
    metrics_vs_params.png   FID above floor, R-precision top-1/2/3, MM-Dist and diversity vs parameters
    scaling_fit.json        the fits (without bootstrap replicates), frontier and extrapolation
    scaling_table.md        one row per size: params, loss, FID, R@1, MM-Dist (mean and spread over seeds)
"""

from __future__ import annotations

import json
import logging
import pathlib
from collections import defaultdict
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

AXES = (("total_params", "total parameters"), ("non_embedding_params", "non-embedding parameters"))


def _ev(rec: dict[str, Any], key: str) -> float:
    return rec["eval"][key] if key in rec["eval"] else rec[key]


def by_size(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Records grouped by size (same data fraction and tokenizer), ordered by total parameters."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in records:
        groups[(r["size"], r["tokenizer"], r["data_fraction"])].append(r)
    return sorted(groups.values(), key=lambda g: g[0]["total_params"])


def _spread(ax: Any, records: list[dict[str, Any]], x_key: str, y_key: str, *, ci: bool = False,
            label: str | None = None, color: str = "C0") -> None:
    """Each run faint (with its bootstrap interval when ``ci``), the seed mean with its min-max bar."""
    for r in records:
        y = _ev(r, y_key)
        if ci:
            lo, hi = r["eval"]["fid_ci_lo"], r["eval"]["fid_ci_hi"]
            ax.errorbar(r[x_key], y, yerr=[[max(y - lo, 0)], [max(hi - y, 0)]], fmt="o", color=color, alpha=0.35,
                        ms=3, capsize=2)
        else:
            ax.plot(r[x_key], y, "o", color=color, alpha=0.35, ms=3)
    for i, g in enumerate(by_size(records)):
        ys = [_ev(r, y_key) for r in g]
        m = float(np.mean(ys))
        ax.errorbar(g[0][x_key], m, yerr=[[m - min(ys)], [max(ys) - m]], fmt="s", color=color, ms=6,
                    capsize=4, label=label if i == 0 else None)


def _fit_line(ax: Any, fit: dict[str, Any], xs: list[float], color: str = "k") -> None:
    if "error" in fit:
        return
    grid = np.geomspace(min(xs) / 1.5, max(xs) * 1.5, 100)
    lo, hi = fit["ci"].get("alpha", [np.nan, np.nan]) if fit.get("ci") else [np.nan, np.nan]
    ax.plot(grid, fit["E"] + fit["A"] * grid ** -fit["alpha"], "-", color=color, lw=1,
            label=f"fit: E + A N^-α, α = {fit['alpha']:.3f} [{lo:.3f}, {hi:.3f}]")


def _fid_plot(records, fits, floors, out: pathlib.Path) -> pathlib.Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, label) in zip(axes, AXES):
        _spread(ax, records, key, "fid", ci=True, label="FID (mean over seeds, min-max)")
        _fit_line(ax, fits[f"fid_vs_{key}"], [r[key] for r in records])
        for i, f in enumerate(sorted(set(floors))):
            ax.axhline(f, ls="--", color="C3", lw=1, label="tokenizer floor (its reconstructions)" if i == 0 else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("FID (test split, fixed evaluator)")
        ax.legend(fontsize=7)
    fig.suptitle("FID vs model size (95% bootstrap intervals per run)")
    return _save(fig, out / "fid_vs_params.png")


def _loss_plot(records, fits, out: pathlib.Path) -> pathlib.Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, label) in zip(axes, AXES):
        _spread(ax, records, key, "final_val_loss", label="final val loss (mean over seeds, min-max)")
        _fit_line(ax, fits[f"loss_vs_{key}"], [r[key] for r in records])
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("validation loss (nats/token)")
        ax.legend(fontsize=7)
    fig.suptitle("Validation loss vs model size")
    return _save(fig, out / "loss_vs_params.png")


def _compute_plot(records, result, out: pathlib.Path) -> pathlib.Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = by_size(records)
    cmap = plt.get_cmap("viridis")
    for i, g in enumerate(groups):
        for j, r in enumerate(g):
            per_step = r["flops_per_token"] * r["global_batch_size"] * r["seq_len"]
            steps, losses = zip(*r["val_curve"])
            ax.plot(np.array(steps) * per_step, losses, "-", color=cmap(i / max(len(groups) - 1, 1)), lw=1,
                    alpha=0.8, label=f"{r['size']} ({r['total_params'] / 1e6:.2f}M)" if j == 0 else None)
    front = result["frontier"]
    if front:
        ax.plot([f["flops"] for f in front], [f["loss"] for f in front], "kD", ms=4, label="frontier (best run)")
    _fit_line(ax, result["fits"]["loss_vs_compute"], [f["flops"] for f in front] or [1.0])
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs (6N + attention, causal not halved)")
    ax.set_ylabel("validation loss")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title("Loss vs compute and the compute-optimal frontier")
    return _save(fig, out / "loss_vs_compute.png")


def _metrics_plot(records, out: pathlib.Path) -> pathlib.Path:
    import matplotlib.pyplot as plt

    panels = (("fid_above_floor", "FID above the tokenizer floor"), ("r_precision_top1", "R-precision"),
              ("mm_dist", "MM-Dist"), ("diversity", "diversity"))
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for ax, (key, label) in zip(axes, panels):
        if key == "r_precision_top1":
            for k, c in ((1, "C0"), (2, "C1"), (3, "C2")):
                _spread(ax, records, "total_params", f"r_precision_top{k}", label=f"top-{k}", color=c)
            ax.legend(fontsize=7)
        else:
            _spread(ax, records, "total_params", key)
        ax.set_xscale("log")
        ax.set_xlabel("total parameters")
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    return _save(fig, out / "metrics_vs_params.png")


def _save(fig: Any, path: pathlib.Path) -> pathlib.Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fit_json(result: dict[str, Any]) -> dict[str, Any]:
    """The fit result without the bootstrap replicates (they stay in memory only)."""
    fits = {k: {kk: vv for kk, vv in v.items() if kk != "bootstrap"} for k, v in result["fits"].items()}
    return {**result, "fits": fits}


def table(records: list[dict[str, Any]]) -> str:
    """A markdown table, one row per size (mean over seeds; FID with the seeds' range)."""
    lines = ["| size | layers/heads/width | total params | non-emb. params | seeds | epochs | final val loss | "
             "FID [seed min, max] | FID above floor | R@1 | MM-Dist |", "|---" * 11 + "|"]
    for g in by_size(records):
        r0 = g[0]
        m = {k: float(np.mean([_ev(r, k) for r in g])) for k in
             ("final_val_loss", "fid", "fid_above_floor", "r_precision_top1", "mm_dist", "epochs")}
        fids = [r["eval"]["fid"] for r in g]
        lines.append(f"| {r0['size']} | {r0['layers']}/{r0['heads']}/{r0['width']} | {r0['total_params'] / 1e6:.3f}M | "
                     f"{r0['non_embedding_params'] / 1e6:.3f}M | {len(g)} | {m['epochs']:.2f} | "
                     f"{m['final_val_loss']:.4f} | {m['fid']:.4f} [{min(fids):.4f}, {max(fids):.4f}] | "
                     f"{m['fid_above_floor']:.4f} | {m['r_precision_top1']:.3f} | {m['mm_dist']:.3f} |")
    return "\n".join(lines) + "\n"


def write_all(records: list[dict[str, Any]], result: dict[str, Any], out_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """Writes every plot, ``scaling_fit.json`` and ``scaling_table.md`` (module docstring); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    floors = [r["eval"]["fid_floor"] for r in records]
    paths = [_fid_plot(records, result["fits"], floors, out), _loss_plot(records, result["fits"], out),
             _compute_plot(records, result, out), _metrics_plot(records, out)]
    (out / "scaling_fit.json").write_text(json.dumps(fit_json(result), indent=1, default=str) + "\n")
    (out / "scaling_table.md").write_text(table(records))
    log.info("wrote %s", ", ".join(str(p) for p in paths))
    return paths + [out / "scaling_fit.json", out / "scaling_table.md"]
