"""The funnel report of a curation run: markdown, PNG and JSON (stage: curation).

Input: a run's output folder (:mod:`mm_jax.curation.results`). Output:
``funnel.json`` (counts in and out of every stage, drops per reason, hours
of motion out, per-stage throughput), ``funnel.md`` (the same as tables)
and ``funnel.png`` (a bar per stage). :func:`finish` first builds the data
set from the kept clips, then the report; both runners end with it.

Throughput is items per second of one process (per core: the workers run
OpenCV single-threaded), from the per-shot timing files: stage 1 per video,
detection and box/transition filters per shot, SMPL + motion filters per
clip piece, features + captions per kept clip, tokenize + shards per record
(with a tokenizer). Each stage group is also given in clips out per second
of its work, and "total" sums the groups: clips out per core-second of the
whole pipeline (start-up, Beam's own overhead and waiting not counted; the
wall time of a run is the caller's to report).
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Callable

from mm_jax.curation import results
from mm_jax.curation.config import CurationConfig, config_dict

log = logging.getLogger(__name__)
STAGES = ("shots", "detect", "boxes", "transitions", "smpl", "motion", "captions")
MAX_ROWS = 1000  # per-person rows kept in funnel.json (counts are over all of them)
MD_ROWS = 40  # of which funnel.md shows this many


def _drops(rows: list[dict], stage: str, reasons: tuple[str, ...] | None = None) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        if r["stage"] == stage and (reasons is None or r["reason"] in reasons):
            out[r["reason"]] = out.get(r["reason"], 0) + 1
    return dict(sorted(out.items()))


def funnel(out: pathlib.Path) -> dict:
    """The counts of a run (module docstring)."""
    shot_files = [results.read_json(p) for p in sorted((out / "shots").glob("*.json"))]
    shot_rows = [s for f in shot_files for s in f["shots"]]
    res = results.load_results(out)
    drops = [d for r in res for d in r["dropped"]]
    people = sum(len(r.get("people", [])) for r in res)
    runs, pieces = sum(r["box_runs"] for r in res), sum(r["pieces"] for r in res)
    smpl_ok = pieces - sum(_drops(drops, "smpl").values())
    motion_ok = smpl_ok - sum(_drops(drops, "motion").values())
    clips = [c for r in res for c in r["clips"]]
    rows = [
        ("shots", len(shot_rows), sum(s["kept"] for s in shot_rows),
         {"too short": sum(not s["kept"] for s in shot_rows)}),
        ("detect", len(res), people, _drops(drops, "detect", ("no person",))),
        ("boxes", people, runs, _drops(drops, "boxes")),
        ("transitions", runs, pieces, _drops(drops, "transitions")),
        ("smpl", pieces, smpl_ok, _drops(drops, "smpl")),
        ("motion", smpl_ok, motion_ok, _drops(drops, "motion")),
        ("captions", motion_ok, len(clips), _drops(drops, "captions")),
    ]
    frames = sum(c["frames"] for c in clips)
    return {"videos": len(shot_files), "video_hours": round(sum(f["frames"] / f["fps"] for f in shot_files) / 3600, 6),
            "stages": [{"stage": s, "in": i, "out": o, "dropped": d} for s, i, o, d in rows],
            "other_tracks_dropped": _drops(drops, "detect", ("short track", "over max_people_per_shot")),
            "people": people_summary(res),
            "bad_frames": _sum_dicts(r["bad_frames"] for r in res),
            "motion_drops": [{"track": d["track"], "reason": d["reason"], "value": d["value"],
                              "threshold": d["threshold"]} for d in drops if d["stage"] == "motion"],
            "clips_out": len(clips), "frames_out": frames, "hours_out": round(frames / 30.0 / 3600, 6),
            "throughput": throughput(out, len(shot_files), len(res), pieces, len(clips))}


def people_summary(res: list[dict]) -> dict:
    """Shots by number of people filtered, and one row per person (the first :data:`MAX_ROWS`)."""
    by_count: dict[str, int] = {}
    rows = []
    for r in res:
        ppl = r.get("people", [])
        by_count[str(len(ppl))] = by_count.get(str(len(ppl)), 0) + 1
        rows += [{"shot": f"{pathlib.Path(r['video']).stem}/shot{r['shot']:03d}", "track": p["track"],
                  "rank": p["rank"], "frames": p["frames"], "box_runs": p["box_runs"], "pieces": p["pieces"],
                  "clips": p["clips"]} for p in ppl]
    return {"shots_by_people": dict(sorted(by_count.items(), key=lambda kv: int(kv[0]))),
            "people_with_clips": sum(bool(p["clips"]) for p in rows), "rows": rows[:MAX_ROWS],
            "rows_left_off": max(0, len(rows) - MAX_ROWS)}


def _sum_dicts(dicts) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


def _rate(n: int, seconds: float, clips: int, unit: str) -> dict:
    return {"items": n, "unit": unit, "seconds": round(seconds, 3),
            "per_second_per_core": round(n / seconds, 3) if seconds > 0 else None,
            "clips_per_second_per_core": round(clips / seconds, 3) if seconds > 0 else None}


def throughput(out: pathlib.Path, videos: int, shots: int, pieces: int, clips: int) -> dict:
    """Items, and clips out, per second of one process for each stage group (module docstring)."""
    secs = _sum_dicts({k: int(round(v * 1e6)) for k, v in results.read_json(p).items()}
                      for p in sorted((out / "timing").glob("*/*.json")))
    items = {"shots": videos, "detect": shots, "filter": shots, "smpl+motion": pieces, "features+captions": clips}
    unit = {"shots": "videos", "detect": "shots", "filter": "shots", "smpl+motion": "pieces",
            "features+captions": "clips"}
    rates = {k: _rate(n, secs.get(k, 0) / 1e6, clips, unit[k]) for k, n in items.items()}
    return _with_total(rates, clips)


def _with_total(rates: dict, clips: int) -> dict:
    rates.pop("total", None)
    rates["total"] = _rate(clips, sum(r["seconds"] for r in rates.values()), clips, "clips")
    return rates


def _shard_rate(out: pathlib.Path, clips: int) -> dict:
    """Clips tokenized and written to shards per second of one process (``timing/shards.json``)."""
    timed = results.read_json(out / "timing" / "shards.json")
    return _rate(timed["records"], timed["seconds"], clips, "clips")


def markdown(f: dict, cfg: dict, *, runner: str, workers: int) -> str:
    """The report as markdown tables."""
    lines = [f"# Curation funnel ({runner} runner, {workers} worker(s))", "",
             f"{f['videos']} videos ({f['video_hours'] * 3600:.1f} s of video) -> {f['clips_out']} clips, "
             f"{f['frames_out']} frames, {f['hours_out'] * 3600:.1f} s ({f['hours_out']:.4f} h) of motion.", "",
             "| stage | in | out | dropped (reason: count) |", "|---|---|---|---|"]
    for s in f["stages"]:
        why = ", ".join(f"{k}: {v}" for k, v in s["dropped"].items() if v) or "-"
        lines.append(f"| {s['stage']} | {s['in']} | {s['out']} | {why} |")
    lines += ["", f"Other tracks dropped at detection: {f['other_tracks_dropped'] or 'none'}.",
              f"Bad frames of the people's tracks (box filter): {f['bad_frames'] or 'none'}.", ""]
    lines += _people_lines(f["people"])
    lines += ["", "Motion-filter drops (value against threshold):", ""]
    lines += [f"- {d['reason']}: {d['value']:.4g} (threshold {d['threshold']:.4g})" for d in f["motion_drops"]]
    lines += ["", "| stage group | items | seconds (one process) | items/s per core | clips out/s per core |",
              "|---|---|---|---|---|"]
    for k, t in f["throughput"].items():
        lines.append(f"| {k} | {t['items']} {t['unit']} | {t['seconds']} | {t['per_second_per_core']} | "
                     f"{t.get('clips_per_second_per_core')} |")
    if f.get("shards"):
        sh = f["shards"]
        per = ", ".join(f"{k} {v['records']} records in {v['shards']} shards" for k, v in sh["splits"].items())
        lines += ["", f"Training shards (`mm-jax data tokenize` format) in {sh['dir']}, tokenizer {sh['tokenizer']}: "
                      f"{per}."]
    lines += ["", "Config:", "", "```json", json.dumps(cfg, indent=1, sort_keys=True), "```", ""]
    return "\n".join(lines)


def _people_lines(ppl: dict) -> list[str]:
    """The people table of funnel.md: one row per person filtered (stages 3-6), track id and clips kept."""
    counts = ", ".join(f"{k} people: {v} shots" for k, v in ppl["shots_by_people"].items()) or "none"
    lines = [f"People per shot (filtered at stages 3-4): {counts}; {ppl['people_with_clips']} people gave clips.",
             "", "| shot | track | rank | frames | box runs | pieces | clips kept |", "|---|---|---|---|---|---|---|"]
    for p in ppl["rows"][:MD_ROWS]:
        clips = ", ".join(c.split("/")[-1] for c in p["clips"]) or "-"
        lines.append(f"| {p['shot']} | {p['track']} | {p['rank']} | {p['frames']} | {p['box_runs']} | "
                     f"{p['pieces']} | {clips} |")
    more = len(ppl["rows"]) - MD_ROWS + ppl["rows_left_off"]
    return lines + ([f"| ... {more} more (funnel.json) | | | | | | |"] if more > 0 else [])


def plot(f: dict, path: pathlib.Path) -> None:
    """A bar per stage: in (light) and out (dark), drop reasons written beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = f["stages"]
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=100)
    ys = range(len(stages))[::-1]
    ax.barh(list(ys), [s["in"] for s in stages], color="#c9d6e8", label="in")
    ax.barh(list(ys), [s["out"] for s in stages], color="#2f5d8a", label="out")
    for y, s in zip(ys, stages):
        why = ", ".join(f"{k} {v}" for k, v in s["dropped"].items() if v)
        ax.text(max(s["in"], 0.1) + 0.1, y, why, va="center", fontsize=8)
    ax.set_yticks(list(ys), [s["stage"] for s in stages])
    ax.set_xlabel("items (shots, then people, then clip pieces)")
    ax.set_title(f"{f['videos']} videos -> {f['clips_out']} clips, {f['hours_out'] * 3600:.1f} s of motion")
    ax.set_xlim(0, max(s["in"] for s in stages) * 1.9 + 1)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def finish(out: pathlib.Path, cfg: CurationConfig, *, source: str, runner: str, workers: int,
           overwrite: bool = False, shards: Callable[[], dict] | None = None) -> dict:
    """Builds ``out/dataset`` (when a clip survived) and writes the report; returns funnel.json's dict.

    ``shards`` (after the data set) writes or reads back the training shards
    and returns their summary (:mod:`mm_jax.curation.tokenize`), reported under "shards".
    """
    f = funnel(out)
    if f["clips_out"]:
        f["dataset"] = results.assemble_dataset(out, source=source, overwrite=overwrite)["out"]
        if shards is not None:
            f["shards"] = shards()
            f["throughput"]["tokenize+shards"] = _shard_rate(out, f["clips_out"])
            f["throughput"] = _with_total(f["throughput"], f["clips_out"])
    results.write_json(out / "funnel.json", f)
    (out / "funnel.md").write_text(markdown(f, config_dict(cfg), runner=runner, workers=workers), encoding="utf-8")
    plot(f, out / "funnel.png")
    log.info("funnel: %d videos -> %d clips (%.1f s of motion); report in %s", f["videos"], f["clips_out"],
             f["hours_out"] * 3600, out / "funnel.md")
    return f
