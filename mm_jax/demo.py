"""The whole recipe on the embedded synthetic data, end to end (stage: demo).

``run_demo(cfg, out_dir)`` is what ``make demo`` runs: synthesise a dataset,
summarise it, render samples, train the wavelet FSQ tokenizer, measure its
reconstruction on the test split, render reconstructions beside their
originals, pre-tokenize every split into ArrayRecord shards and train the
text-to-motion decoder on them (its loss curves: ``decoder/curves.png``),
generate motion for a few prompts, train the evaluator and write the report
(``eval_report.md``: real / model / random_tokens / untrained), then score
the zero-shot prompt suite (``suite_report.md`` and one contact sheet per
category in ``suite_report_sheets/``).
Every stage writes into ``out_dir`` and is skipped when its
output is already complete, so an interrupted demo continues where it
stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import pathlib
from typing import Any, Callable, ContextManager

import numpy as np

from mm_jax import configs
from mm_jax import train as decoder_train
from mm_jax.errors import ConfigError
from mm_jax.eval.evaluator import preset as evaluator_preset
from mm_jax.eval.report import evaluate_decoder, write_report
from mm_jax.eval.suite import evaluate_suite
from mm_jax.eval.suite_report import write_suite_report
from mm_jax.eval.train import train_evaluator
from mm_jax.generate import generate
from mm_jax.motion import features as mfeat
from mm_jax.motion.loading import load_joints
from mm_jax.motion.render import render_motion, render_side_by_side
from mm_jax.motion.synth import PRESETS as SYNTH_PRESETS
from mm_jax.motion.synth import dataset_statistics, load_dataset, synthesize
from mm_jax.plot import plot_run
from mm_jax.shards import write_shards
from mm_jax.tokenizer import PRESETS as TOK_PRESETS
from mm_jax.tokenizer import data as tdata
from mm_jax.tokenizer.artifact import load_tokenizer, open_motion_data
from mm_jax.tokenizer.reconstruction import evaluate, reconstruct_batch
from mm_jax.tokenizer.train import train as train_tokenizer
from mm_jax.train import loop

log = logging.getLogger(__name__)

ProgressFactory = Callable[..., ContextManager[Callable[[int, int], None]]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """Sizes of the demo's stages."""

    num_sequences: int = 2000
    seed: int = 0
    num_renders: int = 3
    tokenizer_preset: str = "small"
    tokenizer_steps: int = 1500
    tokenizer_fsq_levels: tuple[int, ...] = (8, 5, 5, 5)
    text_max_tokens: int = 64
    shards_per_split: int = 4
    decoder_preset: str = "tiny"
    decoder_steps: int = 600
    max_motion_tokens: int = 80
    evaluator_preset: str = "small"
    evaluator_steps: int = 300
    suite: str = "data/prompts/motionmillion_eval_v1.jsonl"  # relative: the working directory, else the checkout
    suite_per_cell: int | None = None  # None: every prompt
    prompts: tuple[str, ...] = (
        "a person walks forward then waves with the right hand",
        "someone jumps in place three times",
        "a man strolls ahead, then sits down",
    )


PRESETS: dict[str, DemoConfig] = {
    "demo": DemoConfig(),
    # A minute-long run of every stage, for tests and a quick look.
    "smoke": DemoConfig(num_sequences=48, num_renders=1, tokenizer_preset="tiny", tokenizer_steps=40,
                        decoder_steps=20, evaluator_preset="tiny", evaluator_steps=20, suite_per_cell=1,
                        prompts=("a person waves",)),
}


@contextlib.contextmanager
def _no_progress(*_args: Any, **_kwargs: Any):
    yield lambda done, total: None


def _stage_data(cfg: DemoConfig, out: pathlib.Path, progress: ProgressFactory) -> pathlib.Path:

    data_dir = out / "data"
    synth_cfg = dataclasses.replace(SYNTH_PRESETS["demo"], num=cfg.num_sequences, seed=cfg.seed)
    if (data_dir / "meta.json").exists():
        meta = json.loads((data_dir / "meta.json").read_text())
        if meta.get("num") == synth_cfg.num and meta.get("seed") == synth_cfg.seed:
            log.info("dataset %s already complete", data_dir)
            return data_dir
    with progress("synthesising", unit="seq") as bar:
        synthesize(synth_cfg, data_dir, progress=bar, overwrite=True)
    return data_dir


def _stage_renders(data_dir: pathlib.Path, out: pathlib.Path, n: int) -> list[str]:

    ds = load_dataset(data_dir)
    paths = []
    for i, seq_id in enumerate(ds.ids("test")[:n]):
        joints, caption = load_joints(f"{data_dir}:{seq_id}")
        path = out / "renders" / f"sample_{i}.gif"
        path.parent.mkdir(parents=True, exist_ok=True)
        render_motion(joints, path, title=caption)
        paths.append(str(path))
    return paths


def _stage_tokenizer(cfg: DemoConfig, data_dir: pathlib.Path, out: pathlib.Path, progress: ProgressFactory):

    mcfg, tcfg = TOK_PRESETS[cfg.tokenizer_preset]
    mcfg = dataclasses.replace(mcfg, fsq_levels=tuple(cfg.tokenizer_fsq_levels))
    tcfg = dataclasses.replace(tcfg, steps=cfg.tokenizer_steps, seed=cfg.seed)
    run = out / "tokenizer"
    with progress("tokenizer", unit="step") as bar:
        train_tokenizer(mcfg, tcfg, data_dir, run, resume=True, progress=bar)
    return run


def _stage_reconstructions(data_dir: pathlib.Path, tok_dir: pathlib.Path, out: pathlib.Path, n: int):

    tok = load_tokenizer(tok_dir)
    data = open_motion_data(data_dir, normalizer=tok.normalizer)  # the tokenizer's statistics
    metrics = evaluate(tok.params, tok.cfg, data, split="test")
    offsets, lengths = data.spans("test")
    paths = []
    for i in range(min(n, len(offsets))):
        x, _ = tdata.padded_batch(data.features, offsets[i : i + 1], lengths[i : i + 1],
                                  multiple=tok.cfg.frames_per_token, normalizer=data.normalizer)
        x_hat = np.asarray(data.normalizer.denormalize(reconstruct_batch(tok.params, x, tok.cfg)[0]))
        n_frames = int(lengths[i])
        orig = np.asarray(mfeat.joints_from_features(np.asarray(data.normalizer.denormalize(x[0]))[:n_frames]))
        rec = np.asarray(mfeat.joints_from_features(x_hat[0, :n_frames]))
        path = out / "renders" / f"reconstruction_{i}.gif"
        render_side_by_side([orig, rec], ["original", "tokenizer reconstruction"], path)
        paths.append(str(path))
    return metrics, paths


def _stage_shards(cfg: DemoConfig, data_dir: pathlib.Path, tok_dir: pathlib.Path, out: pathlib.Path,
                  progress: ProgressFactory) -> dict[str, Any]:

    ds = load_dataset(data_dir)
    manifest: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        n = max(1, min(cfg.shards_per_split, len(ds.ids(split))))
        with progress(f"shards ({split})", unit="rec") as bar:
            manifest = write_shards(ds, tok_dir, out / "shards", split=split, num_shards=n,
                                    text_max_tokens=cfg.text_max_tokens, progress=bar)
    return {s: {k: v for k, v in e.items() if k != "shards"} for s, e in manifest.get("splits", {}).items()}


def _stage_decoder(cfg: DemoConfig, tok_dir: pathlib.Path, out: pathlib.Path,
                   progress: ProgressFactory) -> dict[str, Any]:

    # S, N and the codebook come from the shards (mm_jax.train.sizes); N is capped at max_motion_tokens.
    exp = decoder_train.apply_overrides(decoder_train.preset(cfg.decoder_preset), [
        f"shards_dir={out / 'shards'}", f"tokenizer_run={tok_dir}", f"train.steps={cfg.decoder_steps}",
        f"train.seed={cfg.seed}", f"pipeline.seed={cfg.seed}", f"pipeline.max_motion_tokens={cfg.max_motion_tokens}",
    ])
    run = out / "decoder"
    with progress("decoder", unit="step") as bar:
        summary = loop.run(exp, run, resume=True, progress=bar)
    plot_run(run, run / "curves.png")
    return summary


def _stage_evaluate(cfg: DemoConfig, data_dir: pathlib.Path, out: pathlib.Path,
                    progress: ProgressFactory) -> dict[str, Any]:

    ev_dir = out / "evaluator"
    meta = ev_dir / "evaluator.json"
    if not (meta.exists() and json.loads(meta.read_text()).get("step") == cfg.evaluator_steps):
        with progress("evaluator", unit="step") as bar:
            train_evaluator(evaluator_preset(cfg.evaluator_preset), data_dir, ev_dir, steps=cfg.evaluator_steps,
                            progress=bar)
    report = evaluate_decoder(out / "decoder", ev_dir, data_dir, split="test", seed=cfg.seed)
    write_report(report, out / "eval_report")
    return report["rows"]


def _stage_suite(cfg: DemoConfig, data_dir: pathlib.Path, out: pathlib.Path,
                 progress: ProgressFactory) -> dict[str, Any]:

    suite = pathlib.Path(cfg.suite)
    if not suite.is_absolute() and not suite.is_file():  # an editable install: try the checkout's root
        suite = pathlib.Path(__file__).resolve().parents[1] / cfg.suite
    if not suite.is_file():
        raise ConfigError(f"prompt suite {cfg.suite} not found in the working directory or the checkout "
                          "(set suite= to a suite file)")
    report, joints = evaluate_suite(out / "decoder", out / "evaluator", suite, data_dir=data_dir, seed=cfg.seed,
                                    per_cell=cfg.suite_per_cell)
    with progress("contact sheets", unit="strip") as bar:
        write_suite_report(report, joints, out / "suite_report", progress=bar)
    return report["by_tag"]


def _stage_generate(cfg: DemoConfig, out: pathlib.Path) -> list[str]:

    records = generate(out / "decoder", list(cfg.prompts), out / "generated", seconds=5.0, seed=cfg.seed,
                       overwrite=True)  # a re-run of the demo replaces its own generations
    return [r["paths"].get("gif", "") for r in records]


def run_demo(
    cfg: DemoConfig,
    out_dir: str | pathlib.Path,
    *,
    progress_factory: ProgressFactory | None = None,
    report: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Runs every stage; returns a summary dict (also written to summary.json)."""

    progress = progress_factory or _no_progress
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    configs.save_json(cfg, out / "demo_config.json")
    report(f"[1/9] synthesising {cfg.num_sequences} motion-caption sequences -> {out / 'data'}")
    data_dir = _stage_data(cfg, out, progress)
    stats = dataset_statistics(load_dataset(data_dir))
    report("dataset statistics:\n" + json.dumps(stats, indent=2))
    report(f"[2/9] rendering {cfg.num_renders} samples -> {out / 'renders'}")
    renders = _stage_renders(data_dir, out, cfg.num_renders)
    report(f"[3/9] training the wavelet FSQ tokenizer ({cfg.tokenizer_preset}, {cfg.tokenizer_steps} steps)")
    tok_dir = _stage_tokenizer(cfg, data_dir, out, progress)
    report("[4/9] tokenizer reconstruction on the test split, side-by-side renders")
    metrics, recon = _stage_reconstructions(data_dir, tok_dir, out, cfg.num_renders)
    report(f"[5/9] pre-tokenizing into ArrayRecord shards -> {out / 'shards'}")
    shards = _stage_shards(cfg, data_dir, tok_dir, out, progress)
    report(f"[6/9] training the text-to-motion decoder ({cfg.decoder_preset}, {cfg.decoder_steps} steps)")
    decoder = _stage_decoder(cfg, tok_dir, out, progress)
    report(f"[7/9] generating {len(cfg.prompts)} prompts -> {out / 'generated'}")
    generated = _stage_generate(cfg, out)
    report(f"[8/9] evaluator ({cfg.evaluator_preset}, {cfg.evaluator_steps} steps) and the report "
           f"-> {out / 'eval_report.md'}")
    rows = _stage_evaluate(cfg, data_dir, out, progress)
    report((out / "eval_report.md").read_text())
    report(f"[9/9] scoring the prompt suite {cfg.suite} -> {out / 'suite_report.md'}")
    by_tag = _stage_suite(cfg, data_dir, out, progress)
    report((out / "suite_report.md").read_text().split("## By category")[0])
    summary = {"data": str(data_dir), "dataset": stats, "renders": renders + recon,
               "tokenizer": str(tok_dir), "tokenizer_test_metrics": metrics, "shards": shards,
               "decoder": decoder, "generated": generated, "eval_report": rows,
               "suite_by_tag": by_tag}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
