"""mm_jax.sweep: spec, points, runs.jsonl, fits with planted exponents, plans; one slow end-to-end sweep."""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from mm_jax.errors import ConfigError, DataError
from mm_jax.sweep import fit as F
from mm_jax.sweep import record as R
from mm_jax.sweep.points import expand, select
from mm_jax.sweep.spec import LrRule, load_spec, spec_from_dict

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ fits on planted laws
def _planted(alpha=0.35, a=200.0, e=0.5, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)  # the test's own noise, independent of the code under test
    n = np.repeat(np.geomspace(1e5, 5e6, 7), 2)  # 7 sizes x 2 seeds
    return n, (e + a * n ** -alpha) * np.exp(rng.normal(0.0, noise, n.size)), (alpha, a, e)


def test_fit_recovers_a_planted_exponent_within_its_interval():
    n, y, (alpha, a, e) = _planted()
    fit = F.fit_power_law(n, y, num_bootstrap=150)
    lo, hi = fit["ci"]["alpha"]
    assert lo <= alpha <= hi and hi - lo < 0.15
    assert abs(fit["alpha"] - alpha) < 0.06
    assert fit["ci"]["E"][0] <= e <= fit["ci"]["E"][1]
    assert 0.003 < fit["rms_log_residual"] < 0.02  # about the planted 1% noise


def test_fit_exact_law_and_extrapolated_size_by_hand():
    n = np.geomspace(1e4, 1e7, 6)
    fit = F.fit_power_law(n, 2.0 + 100.0 * n ** -0.5, num_bootstrap=20)
    assert (fit["alpha"], fit["A"], fit["E"]) == pytest.approx((0.5, 100.0, 2.0), rel=1e-4)
    # 2 + 100 / sqrt(N) = 2.01  <=>  N = (100 / 0.01)^2 = 1e8
    pred = F.size_for(fit, 2.01)
    assert pred["n"] == pytest.approx(1e8, rel=1e-3) and pred["extrapolates"] and "caveat" in pred
    assert F.size_for(fit, 1.9)["n"] is None  # below E: never reached


def test_fit_refuses_too_few_sizes_and_non_positive_values():
    with pytest.raises(DataError, match=">= 3 distinct"):
        F.fit_power_law([1, 1, 2], [3, 2, 1])
    with pytest.raises(DataError, match="positive"):
        F.fit_power_law([1, 2, 3], [1, 0, -1])


def _rec(point, size, params, curve, fid=0.1, seed=0):
    return {"point": point, "size": size, "status": "finished", "total_params": params,
            "non_embedding_params": params // 2, "flops_per_token": 6.0 * params, "global_batch_size": 2,
            "seq_len": 5, "val_curve": curve, "final_val_loss": curve[-1][1], "tokenizer": "t", "data_fraction": 1.0,
            "seed": seed, "eval": {"fid": fid, "fid_above_floor": fid - 0.01}}


def test_compute_frontier_picks_the_best_run_per_budget():
    # FLOPs per step = 6 * params * 2 * 5: small 60 * 100 = 6e3 per step, big 6e4 per step.
    small = _rec("s", "s", 100, [[1, 3.0], [10, 2.0]])
    big = _rec("b", "b", 1000, [[1, 2.9], [10, 1.5]])
    front = F.compute_frontier([small, big], num_budgets=4)
    by_flops = {round(f["flops"]): f["point"] for f in front}
    assert by_flops[6000] == "s"  # only the small run has a validation at 6e3 FLOPs
    assert by_flops[600000] == "b"  # at the largest budget the big run is best (1.5 < 2.0)
    assert [f["flops"] for f in front] == sorted(f["flops"] for f in front)


# ------------------------------------------------------------------ the FID bootstrap interval
def test_fid_bootstrap_interval_covers_the_analytic_value():
    from mm_jax.eval.metrics import fid, fid_bootstrap

    rng = np.random.default_rng(1)
    delta = np.array([0.5, 0.0, 0.0, 0.0])  # N(0, I) vs N(delta, I): FID = |delta|^2 = 0.25 exactly
    a, b = rng.normal(size=(4000, 4)), rng.normal(size=(4000, 4)) + delta
    ci = fid_bootstrap(a, b, key=jax.random.key(0), num_samples=100)
    assert ci["lo"] <= 0.25 <= ci["hi"] and ci["lo"] <= fid(a, b) <= ci["hi"] and ci["hi"] - ci["lo"] < 0.1


# ------------------------------------------------------------------ runs.jsonl reading and merging
def test_read_runs_keeps_last_finished_line_and_skips_a_torn_tail(tmp_path):
    R.append(tmp_path / "a", {"point": "p1", "status": "finished", "v": 1})
    R.append(tmp_path / "a", {"point": "p1", "status": "finished", "v": 2})
    R.append(tmp_path / "b", {"point": "p2", "status": "finished", "v": 3})
    with open(tmp_path / "b" / R.RUNS, "a") as f:
        f.write('{"point": "p3", "sta')  # a writer killed mid-line
    runs = {r["point"]: r["v"] for r in R.read_runs([tmp_path / "a", tmp_path / "b" / R.RUNS])}
    assert runs == {"p1": 2, "p2": 3}
    assert R.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "m") == 2
    assert R.finished_points(tmp_path / "m") == {"p1", "p2"}


# ------------------------------------------------------------------ the sweep file and its points
def _manifest(shards: pathlib.Path, s=16, levels=(8, 5, 5, 5), max_codes=45, records=1000):
    shards.mkdir(parents=True)
    manifest = {"format": "mm_jax.shards", "version": 1, "text": {"max_tokens": s},
                "tokenizer": {"identity": {"fsq_levels": list(levels)}},
                "splits": {"train": {"num_records": records, "max_codes": max_codes}}}
    (shards / "manifest.json").write_text(json.dumps(manifest))


def _spec_dict(shards, **changes):
    raw = {"name": "t", "base_preset": "tiny", "overrides": ["pipeline.global_batch_size=4"],
           "tokenizers": [{"name": "c", "tokenizer_run": "TOK", "shards_dir": str(shards)}],
           "sizes": [{"name": "a", "layers": 1, "heads": 2, "width": 32},
                     {"name": "b", "layers": 2, "heads": 4, "width": 128, "seeds": [0, 1]}],
           "budget": {"tokens": 10000}, "lr_rule": {"base_lr": 1e-3, "base_width": 128, "exponent": 0.5}}
    return {**raw, **changes}


def test_points_resolve_steps_lr_and_warmup_by_hand(tmp_path):
    _manifest(tmp_path / "sh")
    points = expand(spec_from_dict(_spec_dict(tmp_path / "sh")), tmp_path / "out")
    assert [p.id for p in points] == ["a-c-f1-s0", "b-c-f1-s0", "b-c-f1-s1"]
    # S = 16, N = 45 + BOS + EOS = 47 -> 63 positions x batch 4 = 252 per step; ceil(10000 / 252) = 40 steps
    assert {p.steps for p in points} == {40}
    assert points[0].lr == pytest.approx(2e-3) and points[1].lr == pytest.approx(1e-3)  # 1e-3 * (128/32)^0.5
    assert points[0].warmup_steps == 20  # max(min_warmup 20, 5% of 40)
    assert "model.width=32" in points[0].overrides(spec_from_dict(_spec_dict(tmp_path / "sh")))
    assert [p.id for p in select(points, ["b"])] == ["b-c-f1-s0", "b-c-f1-s1"]
    with pytest.raises(ConfigError, match="not in the sweep"):
        select(points, ["zzz"])


def test_spec_errors_name_the_key(tmp_path):
    _manifest(tmp_path / "sh")
    with pytest.raises(ConfigError, match="unknown keys \\['colour'\\]"):
        spec_from_dict(_spec_dict(tmp_path / "sh", colour=1))
    with pytest.raises(ConfigError, match="exactly one of steps, tokens"):
        spec_from_dict(_spec_dict(tmp_path / "sh", budget={"steps": 3, "tokens": 4}))
    with pytest.raises(ConfigError, match="give a preset or all of layers"):
        spec_from_dict(_spec_dict(tmp_path / "sh", sizes=[{"name": "x", "width": 8}]))
    assert LrRule(base_lr=1e-3, base_width=64, exponent=1.0, max_lr=1.5e-3).lr(32) == 1.5e-3


def test_committed_sweep_files_parse_and_pod_plans_pin_meshes(tmp_path):
    from mm_jax.sweep.plan import plan_sweep

    files = sorted((ROOT / "experiments" / "sweeps").glob("*.yaml"))
    assert {f.stem for f in files} >= {"cpu_proof", "pod_1b", "pod_3b", "pod_7b"}
    for f in files:
        load_spec(f)
    rows = plan_sweep(load_spec(ROOT / "experiments/sweeps/pod_7b.yaml"), "gs://bucket/sweeps/7b", "pod_7b.yaml")
    row = rows[0]
    assert (row["layers"], row["heads"], row["width"]) == (36, 32, 4096)
    assert math.prod(row["mesh"].values()) == row["num_devices"]
    assert "--coordinator" in row["train_command"] and "--process-id $PROCESS_ID" in row["train_command"]
    assert "--mesh" not in row["train_command"] and "mesh.fsdp=" in row["train_command"]
    assert "model.num_layers=36" in row["train_command"]


# ------------------------------------------------------------------ end to end (slow)
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from mm_jax.cli import main; sys.exit(main())", *args]


@pytest.fixture(scope="module")
def micro_sweep(tiny_dataset, tiny_tokenizer, tmp_path_factory):
    """A 2-point sweep file over real shards of the tiny dataset and a 4-step tiny evaluator."""
    from mm_jax.eval.evaluator import preset
    from mm_jax.eval.train import train_evaluator
    from mm_jax.shards import write_shards

    from mm_jax.motion.synth import load_dataset

    class TestAsVal:  # the tiny set's val split holds 1 sequence: validate on its 6 test sequences
        def __init__(self, ds):
            self.ds = ds

        def ids(self, split):
            return self.ds.ids("test" if split == "val" else split)

        def record(self, key):
            return self.ds.record(key)

        def sequence(self, key):
            return self.ds.sequence(key)

    root = tmp_path_factory.mktemp("sweep")
    view = TestAsVal(load_dataset(tiny_dataset))
    for split in ("train", "val"):
        write_shards(view, tiny_tokenizer, root / "shards", split=split, num_shards=1, text_max_tokens=16)
    train_evaluator(preset("tiny"), tiny_dataset, root / "ev", steps=4)
    spec = {"name": "micro", "base_preset": "tiny",
            "overrides": ["pipeline.global_batch_size=4", "train.val_every=4", "train.val_batches=1",
                          "train.ckpt_every=4", "train.log_every=2", "train.async_checkpoint=false"],
            "tokenizers": [{"name": "tk", "tokenizer_run": str(tiny_tokenizer), "shards_dir": str(root / "shards")}],
            "data_dir": str(tiny_dataset), "evaluator_dir": str(root / "ev"),
            "sizes": [{"name": "a", "layers": 1, "heads": 2, "width": 16},
                      {"name": "b", "layers": 2, "heads": 2, "width": 32}],
            "budget": {"steps": 60}, "eval": {"split": "train", "max_sequences": 16, "bootstrap": 10}}
    path = root / "micro.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.slow
def test_micro_sweep_schema_resume_fit_and_plots(micro_sweep, tmp_path):
    from mm_jax.sweep.runner import run_sweep

    out = tmp_path / "out"
    ckpt_b = out / "points" / "b-tk-f1-s0" / "checkpoints" / "4"
    log_path = tmp_path / "first_run.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(_cli("sweep", "run", str(micro_sweep), "--out", str(out)), stdout=log_file,
                                stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.time() + 900
    while not ckpt_b.is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before point b's first checkpoint:\n" + log_path.read_text()[-3000:]
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: point a is recorded, point b is at step >= 4 of 60
    proc.wait()
    assert R.finished_points(out) == {"a-tk-f1-s0"}

    written = run_sweep(load_spec(micro_sweep), out)  # skips a, resumes b
    assert [r["point"] for r in written] == ["b-tk-f1-s0"]
    lines = (out / R.RUNS).read_text().splitlines()
    assert len(lines) == 2
    recs = {r["point"]: r for r in map(json.loads, lines)}
    b = recs["b-tk-f1-s0"]
    assert 4 <= b["resumed_from_step"] < 60 and recs["a-tk-f1-s0"]["resumed_from_step"] == 0
    for r in recs.values():
        assert set(R.REQUIRED) <= set(r), set(R.REQUIRED) - set(r)
        assert r["status"] == "finished" and r["steps"] == 60 and r["device_kind"] == "cpu"
        assert r["tokens_seen"] == 60 * 4 * r["seq_len"]
        assert r["training_flops"] == pytest.approx(r["flops_per_token"] * r["tokens_seen"])
        assert r["total_params"] == r["non_embedding_params"] + r["vocab_table_params"]
        assert r["causal_attention_halved"] is False and r["mfu"] is not None and r["mfu"] > 0
        ev = r["eval"]
        assert ev["fid_num_generated"] == 16 and ev["fid_ci_lo"] <= ev["fid_ci_hi"]
        assert ev["fid_above_floor"] == pytest.approx(ev["fid"] - ev["fid_floor"])
        assert r["best_val_loss"] <= r["final_val_loss"] and len(r["val_curve"]) == 15
    assert b["config"]["model"]["width"] == 32 and b["layers"] == 2

    # The fit and the plots on synthetic records with a planted exponent (templates: the real records).
    n, y, (alpha, _, _) = _planted()
    synth = tmp_path / "synth"
    for i, (ni, yi) in enumerate(zip(n, y)):
        rec = json.loads(json.dumps(recs["a-tk-f1-s0"]))
        rec.update(point=f"p{i}", size=f"n{ni:.0f}", total_params=float(ni), non_embedding_params=float(ni) / 2,
                   final_val_loss=float(yi), val_curve=[[30, float(yi) + 0.1], [60, float(yi)]])
        rec["eval"]["fid"] = float(yi) / 10
        R.append(synth, rec)
    assert subprocess.run(_cli("sweep", "fit", str(synth), "--bootstrap", "100"), cwd=ROOT).returncode == 0
    fits = json.loads((synth / "scaling_fit.json").read_text())["fits"]
    lo, hi = fits["loss_vs_total_params"]["ci"]["alpha"]
    assert lo <= alpha <= hi
    assert subprocess.run(_cli("sweep", "plot", str(synth), "--bootstrap", "20"), cwd=ROOT).returncode == 0
    for name in ("fid_vs_params.png", "loss_vs_params.png", "loss_vs_compute.png", "metrics_vs_params.png"):
        assert (synth / name).stat().st_size > 10_000
