"""The wavelet ablation of the paper, reproduced (stage: tokenizer experiments).

Trains the same tokenizer with 0, 1 and 2 Haar levels on the same data, for
the same steps and seed, and evaluates each on the test split (or val, or
train, the first that holds sequences), normalised with its own statistics.
The total temporal compression ``2**(wavelet_levels + down_t)`` is held
fixed, so every variant emits the same number of tokens per second: a
wavelet level replaces a stride-2 conv block rather than adding
compression. Writes
``tokenizer_ablation.{json,md,png}`` into ``out_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Callable

from mm_jax.errors import ConfigError
from mm_jax.tokenizer.artifact import load_tokenizer, open_motion_data
from mm_jax.tokenizer.reconstruction import evaluate
from mm_jax.tokenizer.config import WAVELET_ONLY_FIELDS, TokenizerConfig, TokenizerTrainConfig
from mm_jax.tokenizer.train import train

COLUMNS = ("wavelet_levels", "down_t", "mpjpe_mm", "mpjpe_local_mm", "accel_error_mm", "accel_mm", "accel_gt_mm",
           "jitter", "jitter_gt", "vel_error_within_mm", "vel_error_across_mm", "foot_skating", "foot_skating_gt",
           "utilisation", "perplexity")


HOLDS = ("compression", "encoder")


def variants(base: TokenizerConfig, levels: tuple[int, ...], hold: str = "compression") -> list[TokenizerConfig]:
    """One config per wavelet level count.

    ``hold="compression"`` keeps ``wavelet_levels + down_t`` (the token rate)
    fixed; ``hold="encoder"`` keeps the encoder's ``down_t`` fixed and adds
    the wavelet on top, so each level halves the token rate as well.
    """
    if hold not in HOLDS:
        raise ConfigError(f"hold={hold!r} is not one of {HOLDS}")
    # Fields with no effect without a wavelet go back to their defaults at 0 levels, so that
    # row is the plain no-wavelet tokenizer whatever the design (and a finished run of it is reused).
    plain = {f.name: f.default for f in dataclasses.fields(TokenizerConfig) if f.name in WAVELET_ONLY_FIELDS}
    return [dataclasses.replace(c, **plain) if c.wavelet_levels == 0 else c for c in _split(base, levels, hold)]


def _split(base: TokenizerConfig, levels: tuple[int, ...], hold: str) -> list[TokenizerConfig]:
    if hold == "encoder":  # the window must divide by the largest compression (TokenizerConfig checks)
        return [dataclasses.replace(base, wavelet_levels=lv) for lv in levels]
    total = base.wavelet_levels + base.down_t
    out = []
    for lv in levels:
        if lv > total:
            raise ConfigError(
                f"wavelet_levels={lv} exceeds the total compression log2={total} of the base config"
            )
        out.append(dataclasses.replace(base, wavelet_levels=lv, down_t=total - lv))
    return out


def run_ablation(
    base: TokenizerConfig,
    tcfg: TokenizerTrainConfig,
    data_dir: str | pathlib.Path,
    out_dir: str | pathlib.Path,
    *,
    levels: tuple[int, ...] = (0, 1, 2),
    hold: str = "compression",
    runs_dir: str | pathlib.Path | None = None,
    progress_factory: Callable[..., Any] | None = None,
    command: str = "",
) -> list[dict[str, Any]]:
    """Trains and evaluates each variant; returns the table rows.

    Results go to ``tokenizer_ablation.*`` (``hold="compression"``) or
    ``tokenizer_ablation_hold_encoder.*``; ``command`` (the command line) is
    recorded in the .md. A variant whose run directory already holds a
    finished run of the same config is only evaluated (the config is checked).
    Runs are trained without ``output_smoothing_frames`` (it has no parameters
    and the loss never sees it) and scored with the design's value.
    """
    out_dir = pathlib.Path(out_dir)
    stem = "tokenizer_ablation" if hold == "compression" else f"tokenizer_ablation_hold_{hold}"
    runs_dir = pathlib.Path(runs_dir or out_dir / f"{stem}_runs")
    data = open_motion_data(data_dir)
    split = data.resolve_split(None)  # test, or val, or train: the first that holds sequences
    rows = []
    for cfg in variants(base, levels, hold):
        run = runs_dir / f"wavelet{cfg.wavelet_levels}_down{cfg.down_t}"
        trained = dataclasses.replace(cfg, output_smoothing_frames=0.0)  # the filter is not trained through
        if progress_factory is None:
            train(trained, tcfg, data_dir, run, resume=True)
        else:
            with progress_factory(f"wavelet_levels={cfg.wavelet_levels}", unit="step") as bar:
                train(trained, tcfg, data_dir, run, resume=True, progress=bar)
        tok = load_tokenizer(run)
        m = evaluate(tok.params, cfg, data.with_normalizer(tok.normalizer), split=split)
        rows.append({"wavelet_levels": cfg.wavelet_levels, "down_t": cfg.down_t, **m, "split": split,
                     "steps": tcfg.steps,
                     "frames_per_token": cfg.frames_per_token, "window": cfg.window, "run": str(run)})
    write_results(rows, base, tcfg, out_dir, stem=stem, hold=hold, command=command)
    return rows


def _design(base: TokenizerConfig) -> str:
    return (f"{base.wavelet_family} wavelet (gain {base.wavelet_gain:g}), "
            + ("each level keeps the residual stack of the down block it replaces (equal depth)"
               if base.wavelet_res_stacks else "a level replaces a down block and its residual stack")
            + (f", refinement head of width {base.refine_width}" if base.refine_width else "")
            + (f", output filter sigma {base.output_smoothing_frames:g} frames (decoding only; every row)"
               if base.output_smoothing_frames else "")
            + (", foot lock (decoding only; every row; foot_skating_before_lock in the JSON)"
               if base.foot_lock else ""))


def _markdown(rows: list[dict[str, Any]], base: TokenizerConfig, tcfg: TokenizerTrainConfig, hold: str,
              command: str = "") -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    body = ""
    for r in rows:
        cells = [f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS]
        body += "| " + " | ".join(cells) + " |\n"
    weights = ("w_recon", "w_vel", "w_accel", "w_pos_velocity", "w_pos_accel", "w_joint_accel", "w_foot_contact")
    losses = ", ".join(f"{k} {getattr(tcfg, k):g}" for k in weights if getattr(tcfg, k))
    return (
        "# Tokenizer wavelet ablation\n\n"
        + (f"`{command}`\n\n" if command else "")
        + f"Design: {_design(base)}; loss ({tcfg.loss_type}): {losses}.\n\n"
        f"Same data, seed {tcfg.seed}, {tcfg.steps} steps, batch {tcfg.batch_size}, width {base.width}, "
        f"window {rows[0].get('window', base.window)}; "
        + (f"total compression x{base.frames_per_token} held fixed (a wavelet level replaces a stride-2 block)."
           if hold == "compression" else
           f"encoder held fixed (down_t={base.down_t}); each wavelet level also halves the token rate.")
        + f" Metrics on the {rows[0].get('split', 'test')} split: MPJPE and "
        "acceleration error of joints recovered from features (mm, mm/frame^2), jitter = mean jerk "
        "(m/s^3) of reconstructions (jitter_gt: of the ground truth), FSQ utilisation and perplexity. "
        "mpjpe_local_mm subtracts the pelvis per frame (the reference's pelvis-relative MPJPE). "
        "accel_mm / accel_gt_mm: the reference's pair (mean acceleration magnitude of reconstruction and "
        "ground truth, mm/frame²); vel_error within / across: frame-to-frame velocity error (mm/frame) "
        "inside a wavelet pair and across pairs; foot_skating: share of frame transitions with a planted "
        "foot sliding (eval.quality.foot_skating_ratio).\n\n"
        + head + body
    )


def write_results(rows: list[dict[str, Any]], base: TokenizerConfig, tcfg: TokenizerTrainConfig,
                  out_dir: pathlib.Path, *, stem: str = "tokenizer_ablation", hold: str = "compression",
                  command: str = "") -> None:
    """STEM.json / .md / .png."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    del matplotlib
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out_dir / f"{stem}.md").write_text(_markdown(rows, base, tcfg, hold, command))
    fig = Figure(figsize=(12, 3.2))
    FigureCanvasAgg(fig)
    lv = [r["wavelet_levels"] for r in rows]
    panels = [("mpjpe_local_mm", "pelvis-rel. MPJPE (mm)"), ("accel_error_mm", "accel. error (mm/frame²)"),
              ("jitter", "jitter (m/s³)"), ("foot_skating", "foot skating ratio")]
    for i, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.bar([str(v) for v in lv], [r[key] for r in rows], color=["#888", "#3a7", "#37a"][: len(rows)])
        gt_key = {"jitter": "jitter_gt", "foot_skating": "foot_skating_gt"}.get(key)
        if gt_key:
            ax.axhline(rows[0][gt_key], color="k", ls="--", lw=1, label="ground truth")
            ax.legend(fontsize=8)
        ax.set_xlabel("wavelet levels")
        ax.set_title(label, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_dir / f"{stem}.png", dpi=110)
