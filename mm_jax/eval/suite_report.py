"""The prompt-suite report files: ``OUT.json``, ``OUT.md`` and contact sheets (stage: eval).

Input: the report dict of :func:`mm_jax.eval.suite.evaluate_suite` and the first
sample's joints of each prompt. Output: ``OUT.json`` (NaN written as null),
``OUT.md`` (options, the length rule, per-tag / per-category / overall tables,
the short clips) and one contact-sheet PNG per category in ``OUT_sheets/``.
"""

from __future__ import annotations

import collections
import json
import math
import pathlib
from typing import Any, Callable, Sequence

import numpy as np

from mm_jax.errors import DataError
from mm_jax.eval.suite import TABLE
from mm_jax.motion.render import render_contact_sheet


def _json_safe(x: Any) -> Any:
    """NaN -> None throughout (strict JSON has no NaN)."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else (f"{v:.1f}" if abs(v) >= 100 else f"{v:.3f}")
    return str(v)


def _table(groups: dict[str, dict[str, float]], first: str) -> list[str]:
    head = [first, "prompts"] + [h for _, h in TABLE]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, g in groups.items():
        cells = [name, str(g["prompts"])] + [_cell(g.get(k, float("nan"))) for k, _ in TABLE]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _sheets(records: list[dict[str, Any]], joints: Sequence[np.ndarray], out: pathlib.Path, sheet_frames: int,
            progress: Callable[[int, int], None] | None) -> dict[str, str]:
    """One contact sheet per category: a strip of each prompt's first sample, captioned with sim and length."""
    if len(joints) != len(records):
        raise DataError(f"{len(joints)} motions for {len(records)} prompts")
    by_cat: dict[str, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(records):
        by_cat[r["category"]].append(i)
    sheets, done, total = {}, 0, len(records)
    for cat, idx in by_cat.items():
        rows = [(joints[i], f"{r['id']} [{r['tag']}] {r['prompt']}   sim {r['model/similarity']:.2f}   "
                            f"{r['generated_seconds'][0]:.1f}/{r['seconds']:.1f} s")
                for i, r in ((i, records[i]) for i in idx)]
        path = out.parent / f"{out.name}_sheets" / f"contact_{cat}.png"

        def _tick(d: int, _n: int, base: int = done) -> None:
            if progress is not None:
                progress(base + d, total)

        render_contact_sheet(rows, path, num_frames=sheet_frames, progress=_tick)
        done += len(idx)
        sheets[cat] = str(path)
    return sheets


def _markdown(report: dict[str, Any]) -> list[str]:
    """The lines of ``OUT.md``: options, the length rule, the three tables and the short clips."""
    ev, o = report["evaluator"], report["overall"]
    refs = "" if report["data_dir"] is None else (
        f" Real reference clips from `{report['data_dir']}` (up to {report['max_references']} per prompt): "
        f"{o.get('n/reference/similarity', 0)} of {report['num_prompts']} prompts have one; their jerk "
        f"{_cell(o.get('reference/jerk', float('nan')))} m/s³, foot skating "
        f"{_cell(o.get('reference/foot_skating', float('nan')))}, floating "
        f"{_cell(o.get('reference/floating_m', float('nan')))} m.")
    short = [f"- {r['id']}: asked {r['seconds']:.1f} s, generated "
             + ", ".join(f"{s:.2f}" for s in r["generated_seconds"]) + " s"
             for r in report["prompts"] if r.get("model/short", 0.0) > 0]
    return [f"# Prompt-suite report: `{report['suite']}` ({report['num_prompts']} prompts, "
            f"{report['num_samples']} sample(s) each)\n",
            f"Decoder `{report['decoder_run']}` step {report['decoder_step']}, CFG {report['cfg_scale']}, top-p "
            f"{report['top_p']}, seed {report['seed']}, EOS held back until {report['min_share']:.0%} of the asked "
            f"seconds; evaluator `{ev['dir']}` (identity {ev['identity']}). "
            "sim: cosine of evaluator text and motion embeddings. match@k: one of the k suite prompts most "
            "similar to the motion means the same primitives (chance: the share of such prompts). "
            f"Length rule: a generated (or random) clip under {report['short_share']:.0%} of its asked seconds "
            "scores sim -1 and match 0; gen s is the mean generated length, gen/asked its mean ratio, "
            f"gen < {report['short_share']:.0%} the share of clips that short." + refs + "\n",
            "## By tag\n", *_table(report["by_tag"], "tag"), "",
            "## By category\n", *_table(report["by_category"], "category"), "",
            "## Overall\n", *_table({"all": o}, "suite"), "",
            f"## Clips under {report['short_share']:.0%} of the asked length\n", *(short or ["none"]), ""]


def write_suite_report(report: dict[str, Any], joints: Sequence[np.ndarray] | None,
                       out_stem: str | pathlib.Path, *, sheet_frames: int = 6,
                       progress: Callable[[int, int], None] | None = None) -> dict[str, str]:
    """Writes ``OUT.json``, ``OUT.md`` and (``joints`` given) ``OUT_sheets/contact_<category>.png``.

    Returns:
      {category: contact-sheet path}.
    """
    out = pathlib.Path(out_stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheets = {} if joints is None else _sheets(report["prompts"], joints, out, sheet_frames, progress)
    report = dict(report, contact_sheets=sheets)
    out.with_suffix(".json").write_text(json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n")
    lines = _markdown(report)
    if sheets:
        lines += ["## Contact sheets\n", *[f"- {cat}: `{p}`" for cat, p in sheets.items()], ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    return sheets
