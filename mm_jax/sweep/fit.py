"""Power-law fits of a sweep, their bootstrap intervals, the compute frontier and extrapolation (stage: sweep).

Input: the records of ``runs.jsonl`` (:func:`mm_jax.sweep.record.read_runs`).
Output: plain dicts (``fit.json`` beside the plots).

**Form.** ``L(N) = E + A * N^-alpha`` fitted in log space: the residuals are
``log y_i - log(E + A * N_i^-alpha)``, so every point weighs by its relative
error, minimised by ``scipy.optimize.least_squares`` (trust-region
reflective) under the bounds ``0 <= E < min(y)``, ``0 <= alpha <= 3``, from
a grid of starts (the best kept: the problem is not convex in E). N is
divided by its geometric mean inside the fit for conditioning; the reported
A is for N in parameters (FLOPs for compute fits).

**Intervals.** A nonparametric bootstrap over runs (seeds are separate runs):
``num_bootstrap`` resamples with replacement, each refitted; the interval is
the ``(1 -/+ level) / 2`` quantiles. Resamples with fewer than 3 distinct x
are skipped (counted). ``rms_log_residual`` is the fit's residual.

**Compute frontier.** Every run's validation curve gives (training FLOPs
so far, val loss) pairs. For each of a log-spaced set of budgets C, a run's
loss at C is its latest validation at or below C; the frontier is the best
run at each C (the compute-optimal size found), and ``L(C) = E + A C^-beta``
is fitted to it.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import jax
import numpy as np

from mm_jax.errors import DataError

log = logging.getLogger(__name__)

ALPHA_MAX = 3.0
CAVEAT = ("extrapolation beyond the fitted range assumes the power law holds there: it ignores the tokenizer "
          "floor for FID, a fixed data budget (larger models become data-limited) and learning-rate tuning; "
          "treat it as an order of magnitude")


def _residuals(theta: np.ndarray, x: np.ndarray, logy: np.ndarray) -> np.ndarray:
    e, log_a, alpha = theta
    return logy - np.log(e + np.exp(log_a - alpha * np.log(x)))


def _starts(y: np.ndarray) -> list[np.ndarray]:
    """A grid of (E, log A, alpha) starts: E at 0, half and 0.9 of min(y); alpha 0.1, 0.5, 1.5."""
    ymin = float(y.min())
    return [np.array([e0, float(np.log(max(np.median(y) - e0, 1e-12))), a0])
            for e0 in (0.0, 0.5 * ymin, 0.9 * ymin) for a0 in (0.1, 0.5, 1.5)]


def _fit_once(x: np.ndarray, y: np.ndarray, starts: list[np.ndarray] | None = None) -> tuple[np.ndarray, float]:
    """Best (E, log A, alpha) for normalised x over ``starts`` (default :func:`_starts`); (theta, cost)."""
    from scipy.optimize import least_squares

    logy = np.log(y)
    e_hi = float(y.min()) * (1 - 1e-9)
    best, best_cost = None, math.inf
    for start in starts if starts is not None else _starts(y):
        start = np.array([min(start[0], e_hi * 0.999), start[1], min(start[2], ALPHA_MAX)])
        try:
            res = least_squares(_residuals, start, args=(x, logy), method="trf",
                                bounds=([0.0, -50.0, 0.0], [e_hi, 50.0, ALPHA_MAX]))
        except ValueError:
            continue
        if res.cost < best_cost:
            best, best_cost = res.x, float(res.cost)
    if best is None:
        raise DataError("power-law fit failed from every start")
    return best, best_cost


def _params(theta: np.ndarray, x0: float) -> dict[str, float]:
    e, log_a, alpha = (float(v) for v in theta)
    return {"alpha": alpha, "A": math.exp(log_a + alpha * math.log(x0)), "E": e}


def fit_power_law(n: Sequence[float], y: Sequence[float], *, num_bootstrap: int = 300, seed: int = 0,
                  level: float = 0.95) -> dict[str, Any]:
    """Fits ``y = E + A * n^-alpha`` (module docstring); returns the estimates, intervals and residual.

    Raises:
      DataError: fewer than 3 distinct n, or a y that is not positive and finite.
    """
    x, yv = np.asarray(n, np.float64), np.asarray(y, np.float64)
    if x.shape != yv.shape or len(np.unique(x)) < 3:
        raise DataError(f"a power-law fit needs >= 3 distinct x with one y each; got x {x.tolist()}")
    if not (np.isfinite(yv).all() and (yv > 0).all() and (x > 0).all()):
        raise DataError(f"a power-law fit needs positive finite x and y; got y {yv.tolist()}")
    x0 = float(np.exp(np.log(x).mean()))
    theta, cost = _fit_once(x / x0, yv)
    rms = math.sqrt(2 * cost / len(x))
    idx = np.asarray(jax.random.randint(jax.random.key(seed), (num_bootstrap, len(x)), 0, len(x)))
    samples, skipped = [], 0
    for row in idx:
        if len(np.unique(x[row])) < 3:
            skipped += 1
            continue
        samples.append(_params(_fit_once(x[row] / x0, yv[row], [theta])[0], x0))
    est = _params(theta, x0)
    q = [(1 - level) / 2, (1 + level) / 2]
    ci = {k: [float(v) for v in np.quantile([s[k] for s in samples], q)] for k in est} if samples else {}
    return {"form": "E + A * N^-alpha", **est, "ci": ci, "level": level, "rms_log_residual": rms,
            "num_points": int(len(x)), "num_bootstrap": len(samples), "bootstrap_skipped": skipped,
            "x_range": [float(x.min()), float(x.max())], "bootstrap": samples}


def predict(fit: dict[str, Any], n: float) -> float:
    """The fitted ``E + A * n^-alpha``."""
    return fit["E"] + fit["A"] * n ** -fit["alpha"]


def size_for(fit: dict[str, Any], target: float, level: float = 0.95) -> dict[str, Any]:
    """The N predicted to reach ``target`` (``(A / (target - E))^(1/alpha)``), with its bootstrap interval.

    A bootstrap fit whose E is at or above the target never reaches it; the
    share that does is ``reachable``. The interval is over the reachable fits.
    """
    def solve(p: dict[str, float]) -> float:
        gap = target - p["E"]
        return math.inf if gap <= 0 or p["alpha"] <= 0 else (p["A"] / gap) ** (1 / p["alpha"])

    point = solve(fit)
    sols = [solve(p) for p in fit.get("bootstrap", [])]
    finite = [s for s in sols if math.isfinite(s)]
    q = [(1 - level) / 2, (1 + level) / 2]
    ci = [float(v) for v in np.quantile(finite, q)] if finite else None
    return {"target": target, "n": point if math.isfinite(point) else None, "ci": ci,
            "reachable": len(finite) / len(sols) if sols else float(math.isfinite(point)),
            "extrapolates": math.isfinite(point) and point > fit["x_range"][1], "caveat": CAVEAT}


def _curve_flops(rec: dict[str, Any]) -> list[tuple[float, float]]:
    per_step = rec["flops_per_token"] * rec["global_batch_size"] * rec["seq_len"]
    return [(step * per_step, loss) for step, loss in rec["val_curve"]]


def compute_frontier(records: list[dict[str, Any]], num_budgets: int = 16) -> list[dict[str, Any]]:
    """The best run (lowest val loss) at each of ``num_budgets`` log-spaced training-FLOP budgets."""
    curves = {r["point"]: (r, _curve_flops(r)) for r in records if r.get("val_curve")}
    if not curves:
        return []
    lo = min(c[0][0] for _, c in curves.values())
    hi = max(c[-1][0] for _, c in curves.values())
    out = []
    for budget in np.geomspace(lo, hi, num_budgets):
        best = None
        for point, (rec, curve) in curves.items():
            seen = [loss for flops, loss in curve if flops <= budget * (1 + 1e-9)]
            if seen and (best is None or seen[-1] < best["loss"]):
                best = {"flops": float(budget), "loss": seen[-1], "point": point, "size": rec["size"],
                        "total_params": rec["total_params"]}
        if best is not None:
            out.append(best)
    return out


def _y(rec: dict[str, Any], metric: str) -> float:
    return rec["eval"][metric] if metric in rec["eval"] else rec[metric]


def fit_sweep(records: list[dict[str, Any]], *, num_bootstrap: int = 300, level: float = 0.95,
              target_loss: float | None = None, target_fid: float | None = None) -> dict[str, Any]:
    """Every fit of the sweep: {loss, FID, FID above floor} x {total, non-embedding params}, compute, extrapolation."""
    if not records:
        raise DataError("no finished runs to fit")
    fits: dict[str, Any] = {}
    for metric, key in (("loss", "final_val_loss"), ("fid", "fid"), ("fid_above_floor", "fid_above_floor")):
        for axis in ("total_params", "non_embedding_params"):
            name = f"{metric}_vs_{axis}"
            try:
                fits[name] = fit_power_law([r[axis] for r in records], [_y(r, key) for r in records],
                                           num_bootstrap=num_bootstrap, level=level)
            except DataError as e:
                fits[name] = {"error": str(e)}
                log.warning("%s: %s", name, e)
    frontier = compute_frontier(records)
    try:
        fits["loss_vs_compute"] = fit_power_law([f["flops"] for f in frontier], [f["loss"] for f in frontier],
                                                num_bootstrap=num_bootstrap, level=level)
    except DataError as e:
        fits["loss_vs_compute"] = {"error": str(e)}
    best_loss = min(r["final_val_loss"] for r in records)
    best_fid = min(r["eval"]["fid"] for r in records)
    targets = {"loss": target_loss if target_loss is not None else 0.95 * best_loss,
               "fid": target_fid if target_fid is not None else 0.8 * best_fid}
    extrap = {f"{m}_vs_{axis}": size_for(fits[f"{m}_vs_{axis}"], targets[m], level)
              for m in ("loss", "fid") for axis in ("total_params", "non_embedding_params")
              if "error" not in fits[f"{m}_vs_{axis}"]}
    return {"fits": fits, "frontier": frontier, "extrapolation": extrap, "targets": targets,
            "num_runs": len(records), "level": level}
