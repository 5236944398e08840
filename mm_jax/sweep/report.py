"""Human-readable lines of a sweep's fits (stage: sweep): what ``mm-jax sweep fit`` prints.

Input: :func:`mm_jax.sweep.fit.fit_sweep`'s result. Output: a list of text
lines (the CLI prints them; the README quotes them).
"""

from __future__ import annotations

from typing import Any


def _ci(fit: dict[str, Any], key: str) -> str:
    lo_hi = fit.get("ci", {}).get(key)
    return "" if not lo_hi else f" [{lo_hi[0]:.4g}, {lo_hi[1]:.4g}]"


def fit_line(name: str, fit: dict[str, Any]) -> str:
    """``name: alpha = a [lo, hi], A = .., E = .. (rms log residual r, n runs)``."""
    if "error" in fit:
        return f"{name}: no fit ({fit['error']})"
    return (f"{name}: alpha = {fit['alpha']:.4f}{_ci(fit, 'alpha')}, A = {fit['A']:.4g}{_ci(fit, 'A')}, "
            f"E = {fit['E']:.4g}{_ci(fit, 'E')}; rms log residual {fit['rms_log_residual']:.4f}, "
            f"{fit['num_points']} points, {fit['num_bootstrap']} bootstrap fits ({int(100 * fit['level'])}%)")


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The fits, the compute frontier and the extrapolations with their caveat."""
    lines = [f"{result['num_runs']} finished runs; fits of E + A * N^-alpha in log space:"]
    lines += ["  " + fit_line(name, fit) for name, fit in result["fits"].items()]
    lines.append("compute frontier (best run per training-FLOP budget):")
    lines += [f"  {f['flops']:.3g} FLOPs: {f['size']} ({f['total_params'] / 1e6:.3f}M), val loss {f['loss']:.4f}"
              for f in result["frontier"]]
    lines.append("extrapolation (size predicted to reach the target):")
    for name, e in result["extrapolation"].items():
        if e["n"] is None:
            lines.append(f"  {name} -> {e['target']:.4g}: not reached (the fitted E is above it); "
                         f"{100 * e['reachable']:.0f}% of bootstrap fits reach it")
            continue
        ci = "" if e["ci"] is None else f" [{e['ci'][0]:.3g}, {e['ci'][1]:.3g}]"
        lines.append(f"  {name} -> {e['target']:.4g}: N = {e['n']:.3g}{ci} parameters "
                     f"({100 * e['reachable']:.0f}% of bootstrap fits reach it)")
    if result["extrapolation"]:
        lines.append("  caveat: " + next(iter(result["extrapolation"].values()))["caveat"])
    return lines
