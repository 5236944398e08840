"""Tests of mm_jax.train / mm_jax.trainer: learning, accumulation, decay mask, exact resume after
kill -9 and after SIGINT/SIGTERM, a torn metrics line, a failed checkpoint save, config mismatch,
NaN handling, no tensorflow, configs and plots."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_fixtures as tfx

from mm_jax import configs, sharding
from mm_jax.train import loop
from mm_jax.checkpoint import Checkpointer
from mm_jax.errors import CheckpointError, ConfigError, NonFiniteError, StorageError
from mm_jax.tracking import read_metrics
from mm_jax.model.llama import init_params
from mm_jax.pipeline import build_pipeline
from mm_jax.text import encoder as text_encoder
from mm_jax.train import config as tconfig
from mm_jax.train import setup, step
from mm_jax.train.interrupt import StopRequest

WORKER = pathlib.Path(__file__).with_name("train_worker.py")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> pathlib.Path:
    return tfx.make_train_shards(tmp_path_factory.mktemp("train_shards"))


def _losses(workdir: pathlib.Path) -> dict[int, float]:
    return {r["step"]: r["train/loss"] for r in read_metrics(workdir) if "train/loss" in r}


def _final_state(exp, workdir: pathlib.Path, step_: int):
    mesh = sharding.make_mesh(exp.mesh)
    opt = step.make_optimizer(exp.train, init_params(exp.model, key=jax.random.key(0)))
    st_sh, abstract = setup.state_shardings(exp.model, opt, mesh)
    ckpt = Checkpointer(workdir / "checkpoints", async_save=False)
    try:
        target = sharding.abstract_with_shardings(abstract, st_sh).to_dict()
        got_step, tree, meta = ckpt.restore(target, step=step_)
    finally:
        ckpt.close()
    assert got_step == step_
    return tree, meta


@pytest.fixture(scope="module")
def ref_run(shards, tmp_path_factory) -> pathlib.Path:
    """An uninterrupted 20-step run (val and checkpoints at 10 and 20), shared by several tests."""
    workdir = tmp_path_factory.mktemp("ref_run")
    seen = []
    summary = loop.run(tfx.experiment(shards, steps=20), workdir, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 20) for i in range(1, 21)]
    assert summary["final_step"] == 20 and summary["checkpoint_step"] == 20
    return workdir


# ----------------------------------------------------------------------------- learning


def test_loss_falls_and_metrics_are_written(ref_run):
    losses = _losses(ref_run)
    assert sorted(losses) == list(range(1, 21))
    first, last = np.mean([losses[i] for i in (1, 2, 3)]), np.mean([losses[i] for i in (18, 19, 20)])
    assert first > 4.5 and last < first - 1.0, (first, last)  # ln(125) = 4.83 at init
    rows = read_metrics(ref_run)
    train_row = next(r for r in rows if "train/loss" in r)
    for key in ("train/accuracy", "train/lr", "train/grad_norm", "train/param_norm", "perf/tokens_per_s",
                "perf/step_time_s"):
        assert key in train_row and train_row[key] > 0, key
    val_rows = [r for r in rows if "val/loss" in r]
    assert [r["step"] for r in val_rows] == [10, 20] and val_rows[1]["val/loss"] < val_rows[0]["val/loss"]
    assert val_rows[1]["val/accuracy"] > 0.5
    assert list((ref_run / "tb").iterdir())
    saved = configs.load_json(tconfig.ExperimentConfig, ref_run / "config.json")
    assert saved == tfx.experiment(saved.shards_dir, steps=20)


def _batch_and_params(shards):
    exp = tfx.experiment(shards)
    local = next(build_pipeline(shards, exp.pipeline, process_index=0, process_count=1).iterator())
    batch = {k: jnp.asarray(local[k]) for k in step.BATCH_KEYS}
    params = init_params(exp.model, key=jax.random.key(1))
    text_params = text_encoder.init_params(exp.text, key=jax.random.key(2))
    return exp, batch, params, text_params


def test_gradient_accumulation_equals_big_batch(shards):
    exp, batch, params, text_params = _batch_and_params(shards)
    counts = np.asarray(batch["motion_mask"])[:, 1:].sum(1)
    # Unequal token counts per micro-batch: a plain mean of micro-batch losses would differ.
    assert len({counts[j::4].sum() for j in range(4)}) > 1
    key = jax.random.key(3)
    g1, m1 = jax.jit(lambda p: step.accumulated_grads(exp.model, p, text_params, batch, key, 1))(params)
    g4, m4 = jax.jit(lambda p: step.accumulated_grads(exp.model, p, text_params, batch, key, 4))(params)
    assert float(m1["tokens"]) == float(m4["tokens"]) == counts.sum()
    np.testing.assert_allclose(float(m4["loss"]), float(m1["loss"]), rtol=1e-6)
    np.testing.assert_allclose(float(m4["accuracy"]), float(m1["accuracy"]), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g4)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5, rtol=1e-5)
    # Two accumulation steps of two row branches each (TrainConfig.batch_branches): the same big batch.
    g22, m22 = jax.jit(lambda p: step.accumulated_grads(exp.model, p, text_params, batch, key, 2, 0, 2))(params)
    assert float(m22["tokens"]) == counts.sum()
    np.testing.assert_allclose(float(m22["loss"]), float(m1["loss"]), rtol=1e-6)
    np.testing.assert_allclose(float(m22["accuracy"]), float(m1["accuracy"]), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g22)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5, rtol=1e-5)
    # (train_step with A > 1 runs in test_non_finite_loss_stops_and_keeps_last_good_checkpoint.)


def test_weight_decay_mask_excludes_norms_and_embeddings():
    for cfg in (tfx.MODEL, dataclasses.replace(tfx.MODEL, scan_layers=True)):
        params = jax.eval_shape(lambda: init_params(cfg, key=jax.random.key(0)))
        leaves = jax.tree_util.tree_flatten_with_path(step.decay_mask(params))[0]
        flat = {jax.tree_util.keystr(p): v for p, v in leaves}
        no_decay = sorted(k for k, v in flat.items() if not v)
        assert all("norm" in k or k == "['embed']" for k in no_decay) and "['embed']" in no_decay
        assert sum("norm" in k for k in no_decay) == (2 * cfg.num_layers + 1 if not cfg.scan_layers else 3)
        assert flat["['head']"] and flat["['text_proj']"]
        assert all(v for k, v in flat.items() if "attn'][" in k or "mlp'][" in k)
    # A masked leaf is really not decayed: zero gradient, only the decay term moves it.
    params = init_params(tfx.MODEL, key=jax.random.key(0))
    tcfg = dataclasses.replace(tfx.TRAIN, weight_decay=0.5, warmup_steps=0, grad_clip=0.0)
    opt = step.make_optimizer(tcfg, params)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = jax.jit(opt.update)(zero, opt.init(params), params)
    assert float(jnp.abs(updates["embed"]).max()) == 0.0
    assert float(jnp.abs(updates["final_norm"]["scale"]).max()) == 0.0
    assert float(jnp.abs(updates["head"]).max()) > 0.0


def test_schedule_warmup_and_cosine():
    cfg = tconfig.TrainConfig(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    sched = step.lr_schedule(cfg)
    assert float(sched(0)) == pytest.approx(1e-4) and float(sched(4)) == pytest.approx(5e-4)
    assert float(sched(9)) == pytest.approx(1e-3) and float(sched(99)) == pytest.approx(1e-4)
    assert 1e-4 < float(sched(50)) < 1e-3


# ----------------------------------------------------------------------------- resume


def _worker(shards, workdir, steps, *extra) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(WORKER.parent), str(WORKER.parent.parent)])}
    return subprocess.Popen([sys.executable, str(WORKER), str(shards), str(workdir), str(steps), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _assert_same_run(ref_dir: pathlib.Path, run_dir: pathlib.Path, exp) -> None:
    """Per-step train losses, val rows and the final state (params + optimizer) bit for bit."""
    assert _losses(run_dir) == _losses(ref_dir) and len(_losses(ref_dir)) == 20
    vals = [[(r["step"], r["val/loss"]) for r in read_metrics(d) if "val/loss" in r]
            for d in (ref_dir, run_dir)]
    assert vals[0] == vals[1] and len(vals[0]) == 2
    ref_state, _ = _final_state(exp, ref_dir, 20)
    got_state, _ = _final_state(exp, run_dir, 20)
    flat_ref, flat_got = jax.tree_util.tree_leaves(ref_state), jax.tree_util.tree_leaves(got_state)
    assert len(flat_ref) == len(flat_got) > 10
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(flat_ref, flat_got))


@pytest.mark.slow  # ~40 s: a second process; the in-process exact-resume tests stay in the default suite
def test_exact_resume_in_a_new_process_without_tensorflow(shards, ref_run, tmp_path):
    """20 steps == 10 steps here + a resume to 20 in a fresh process (which never imports tensorflow)."""
    exp = tfx.experiment(shards, steps=20)
    assert loop.run(exp, tmp_path, until=10)["final_step"] == 10
    proc = _worker(shards, tmp_path, 20, "--resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "DONE 11" in out and "DONE 10" not in out and "TF_IMPORTED=False" in out
    assert json.loads(out.split("SUMMARY ", 1)[1])["start_step"] == 10
    _assert_same_run(ref_run, tmp_path, exp)


@pytest.mark.slow
def test_exact_resume_after_kill_9(shards, ref_run, tmp_path):
    """20 steps == 10 steps + SIGKILL mid-run (after step 10's checkpoint) + resume in a new process."""
    proc = _worker(shards, tmp_path, 20, "--slow-after", "10")
    deadline = time.time() + 180
    while not (tmp_path / "checkpoints" / "10").is_dir():  # orbax renames the tmp dir once complete
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and "DONE 20" not in out
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["10"]
    proc = _worker(shards, tmp_path, 20, "--resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "DONE 11" in out and "DONE 10" not in out and "TF_IMPORTED=False" in out
    _assert_same_run(ref_run, tmp_path, tfx.experiment(shards, steps=20))


def test_stop_request_saves_the_step_reached_and_resume_is_exact(shards, ref_run, tmp_path):
    """A StopRequest (what SIGINT/SIGTERM set) after step 7: step 8, the step under way, finishes and is
    saved; the run returns; resuming equals the uninterrupted run."""
    exp = tfx.experiment(shards, steps=20)
    stop = StopRequest()

    def progress(done, total):
        if done == 7:
            stop.signum = signal.SIGTERM  # what the handler of stop_on_signals does

    summary = loop.run(exp, tmp_path, progress=progress, stop=stop)
    assert stop.stopped_at == 8 and summary["final_step"] == 8 and summary["checkpoint_step"] == 8
    assert max(_losses(tmp_path)) == 8
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [8]  # ckpt_every=10: only the stop saved
    ckpt.close()
    assert loop.run(exp, tmp_path, resume=True)["start_step"] == 8
    _assert_same_run(ref_run, tmp_path, exp)


@pytest.mark.slow
def test_sigterm_then_sigint_stop_cleanly_and_resume_is_exact(shards, ref_run, tmp_path):
    """Real signals, as `mm-jax train` handles them: rc 0 / 130, one line, no traceback, exact resume."""
    for signum, after, code in ((signal.SIGTERM, 3, 0), (signal.SIGINT, 12, 130)):
        proc = _worker(shards, tmp_path, 20, "--signals", "--slow-after", "0", *(["--resume"] if after > 3 else []))
        while (line := proc.stdout.readline()) and line.strip() != f"DONE {after}":
            pass
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == code, err[-3000:]
        lines = [x for x in err.splitlines() if "stopped by" in x]
        assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
        reached = int(lines[0].split(" at step ")[1].split(";")[0])
        assert lines[0].startswith(f"mm-jax: train stopped by {signal.Signals(signum).name} at step ")
        assert after <= reached <= after + 1 and max(_losses(tmp_path)) == reached
    proc = _worker(shards, tmp_path, 20, "--resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    _assert_same_run(ref_run, tmp_path, tfx.experiment(shards, steps=20))


def test_resume_past_a_torn_last_metrics_line(shards, ref_run, tmp_path):
    """A power loss cut the last metrics row short: resume drops it (it raised JSONDecodeError before)."""
    run_dir = _copy_run(ref_run, tmp_path / "run")
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"perf/step_time_s": 0.01, "step": 21, "train/lo')
    summary = loop.run(tfx.experiment(shards, steps=20), run_dir, resume=True)
    assert summary["start_step"] == summary["final_step"] == 20
    assert (run_dir / "metrics.jsonl").read_bytes() == (ref_run / "metrics.jsonl").read_bytes()


def test_until_at_or_before_the_resumed_step_is_an_error(shards, ref_run, tmp_path):
    """--until 5 on a run already at step 20 trained nothing and exited 0; now a ConfigError, nothing written."""
    run_dir = _copy_run(ref_run, tmp_path / "run")
    before = (run_dir / "metrics.jsonl").read_bytes()
    with pytest.raises(ConfigError, match=r"--until 5: .* already at step 20"):
        loop.run(tfx.experiment(shards, steps=20), run_dir, resume=True, until=5)
    assert (run_dir / "metrics.jsonl").read_bytes() == before


def test_a_failed_checkpoint_save_stops_training_and_keeps_the_last_one(shards, tmp_path, monkeypatch):
    """ENOSPC in the background save of step 4: the run stops (StorageError naming the path and the
    space), not at step 12; step 2 stays restorable; the partial directory is gone."""
    import errno

    import orbax.checkpoint as ocp

    real_save = ocp.handlers.JsonCheckpointHandler._save_fn

    async def save_fn(self, x, directory):
        if int(str(directory.parent.name).split(".")[0]) >= 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(directory))
        return await real_save(self, x, directory)

    monkeypatch.setattr(ocp.handlers.JsonCheckpointHandler, "_save_fn", save_fn)
    exp = tfx.experiment(shards, steps=12, ckpt_every=2, val_every=0)
    with pytest.raises(StorageError, match=rf"cannot write {tmp_path}/checkpoints/4: \[Errno 28\] No space left "
                                           r"on device.*MB free there, about \d+\.\d MB needed; .* the last "
                                           r"complete one \(step 2\) is kept"):
        loop.run(exp, tmp_path)
    assert max(_losses(tmp_path)) <= 6  # stopped at the first failed save, not at step 12
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2"]
    monkeypatch.undo()
    state, _ = _final_state(exp, tmp_path, 2)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state["params"]))


def _copy_run(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    shutil.copytree(src, dst)
    return dst


def test_resume_of_another_model_tokenizer_or_text_encoder_fails(shards, ref_run, tmp_path):
    run_dir = _copy_run(ref_run, tmp_path / "run")
    exp = tfx.experiment(shards, steps=30)
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        loop.run(exp, run_dir)

    def resume(**changes):
        return loop.run(dataclasses.replace(exp, **changes), run_dir, resume=True)

    with pytest.raises(CheckpointError, match=r"another config: model\.num_layers: checkpoint has 2, "
                                              r"run has 3"):
        resume(model=dataclasses.replace(exp.model, num_layers=3))
    with pytest.raises(CheckpointError, match=r"text\.encoder\.num_layers: checkpoint has 1, run has 2"):
        resume(text=dataclasses.replace(exp.text, num_layers=2))
    with pytest.raises(CheckpointError, match=r"stream\.seed: checkpoint has 0, run has 1"):
        resume(pipeline=dataclasses.replace(exp.pipeline, seed=1))
    retok = tfx.make_train_shards(tmp_path / "retok", num=60, identity={**tfx.sf.FAKE_IDENTITY, "step": 8})
    with pytest.raises(CheckpointError, match=r"tokenizer\.step: checkpoint has 7, run has 8"):
        resume(shards_dir=str(retok))
    ckpt = Checkpointer(run_dir / "checkpoints")
    assert ckpt.all_steps() == [10, 20]  # nothing was re-initialised or overwritten
    ckpt.close()
    assert _losses(run_dir) == _losses(ref_run)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(shards, ref_run, tmp_path):
    run_dir = _copy_run(ref_run, tmp_path / "run")
    bad = tfx.experiment(shards, steps=30, ckpt_every=1, val_every=0, lr=1e30, grad_accum_steps=2)
    with pytest.raises(NonFiniteError, match=r"non-finite training at step 21: .*batch sample indices "
                                             r"\[\d+(, \d+){7}\].*last good checkpoint is step 20"):
        loop.run(bad, run_dir, resume=True)
    ckpt = Checkpointer(run_dir / "checkpoints")
    assert ckpt.all_steps() == [10, 20]
    ckpt.close()
    state, _ = _final_state(bad, run_dir, 20)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state["params"]))


# ----------------------------------------------------------------------------- configs


def test_presets_and_overrides():
    for name, cfg in tconfig.PRESETS.items():
        assert tconfig.preset(name) is cfg and cfg.model.text_dim == cfg.text.width
    ref = tconfig.preset("reference")
    got = (ref.train.lr, ref.model.dtype, ref.model.dropout, ref.pipeline.global_batch_size)
    assert got == (4e-4, "bfloat16", 0.1, 640)
    cfg = tconfig.apply_overrides(tconfig.preset("tiny"), ["train.lr=3e-4", "model.dropout=0.1",
                                                           "mesh.fsdp=2", "pipeline.max_motion_tokens=32",
                                                           "shards_dir=/x"])
    got = (cfg.train.lr, cfg.model.dropout, cfg.mesh.fsdp, cfg.pipeline.max_motion_tokens, cfg.shards_dir)
    assert got == (3e-4, 0.1, 2, 32, "/x")
    with pytest.raises(ConfigError, match="unknown section 'optim'"):
        tconfig.apply_overrides(cfg, ["optim.lr=1"])
    with pytest.raises(ConfigError, match="unknown TrainConfig key 'lrr'"):
        tconfig.apply_overrides(cfg, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="model.text_dim=384 != text.width=48"):
        tconfig.apply_overrides(cfg, ["text.width=48"])
    with pytest.raises(ConfigError, match="not divisible by train.grad_accum_steps=3"):
        tconfig.apply_overrides(cfg, ["train.grad_accum_steps=3"])
    with pytest.raises(ConfigError, match="grad_accum_steps=1 x train.batch_branches=3"):
        tconfig.apply_overrides(cfg, ["train.batch_branches=3"])
    with pytest.raises(ConfigError, match="batch_branches=0 must be a positive int"):
        tconfig.apply_overrides(cfg, ["train.batch_branches=0"])
    with pytest.raises(ConfigError, match="unknown experiment preset 'huge'"):
        tconfig.preset("huge")
    with pytest.raises(ConfigError, match="shards_dir is empty"):
        loop.run(tconfig.preset("tiny"), "/tmp/unused")


def test_config_require_ints_messages():
    """configs.require_ints, the count check the config classes share: exact messages; a bool passes as an int."""

    @dataclasses.dataclass
    class Counts:
        steps: object = 1
        seed: object = 0

    cases = ((0, "Counts.steps=0 must be a positive int", None),
             (-1, "Counts.steps=-1 must be a positive int", "Counts.seed=-1 must be an int >= 0"),
             (1.5, "Counts.steps=1.5 must be a positive int", "Counts.seed=1.5 must be an int >= 0"),
             ("3", "Counts.steps='3' must be a positive int", "Counts.seed='3' must be an int >= 0"))
    for value, positive, at_least_0 in cases:
        for minimum, name, expected in ((1, "steps", positive), (0, "seed", at_least_0)):
            cfg = Counts(**{name: value})
            if expected is None:
                configs.require_ints(cfg, (name,), minimum)
                continue
            with pytest.raises(ConfigError) as info:
                configs.require_ints(cfg, (name,), minimum)
            assert str(info.value) == expected
    configs.require_ints(Counts(steps=True, seed=False), ("steps", "seed"), 0)
    with pytest.raises(ConfigError, match=r"^TrainConfig\.seed=-1 must be an int >= 0$"):
        tconfig.TrainConfig(seed=-1)


def test_plot_run(ref_run, tmp_path):
    from mm_jax.plot import plot_run

    out = plot_run(ref_run, tmp_path / "curves.png")
    import matplotlib.image

    img = matplotlib.image.imread(out)
    assert img.shape[0] > 200 and img.shape[1] > 400 and img.std() > 0.01
