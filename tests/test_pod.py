"""Pod readiness (issue 18): MFU fields of the log rows, the profile window, config files, evaluation and
export during training, a crash during an async save, and the loss's speed levers against the plain loss."""

from __future__ import annotations

import dataclasses
import gzip
import json
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import train_fixtures as tfx

from mm_jax import cli
from mm_jax.tracking import read_metrics
from mm_jax.train import loop

# Hand count for train_fixtures.MODEL (L=2, H=4, K=2, D=64, E=16, MLP M=256, codebook 5^3 -> V = 128
# = Vp) at T = S + N = 8 + 32 = 40, under PaLM's convention (6 N + 12 L H E T, causal not halved):
#   per layer matmul weights: qkv (H + 2K) E D = 8*16*64 = 8192, out D H E = 4096, MLP 3 M D = 49152
#   N = 2 * 61440 + head 128 * 64 = 131072;  6 N = 786432;  12 * 2 * 4 * 16 * 40 = 61440
FLOPS_PER_TOKEN = 847_872
POSITIONS_PER_STEP = 8 * 40
# params: text proj 64*32 + embed 128*64 + head 128*64 + final norm 64 + 2 * (8192 + 4096 + 49152 + 2*64)
PARAMS_TOTAL = 2048 + 8192 + 8192 + 64 + 2 * 61568
CPU_PEAK_FLOPS = 151e9  # mm_jax/perf.py's measured entry for device_kind "cpu", copied by hand


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> pathlib.Path:
    return tfx.make_train_shards(tmp_path_factory.mktemp("pod_shards"))


@pytest.fixture(scope="module")
def profiled_run(shards, tmp_path_factory):
    """5 steps, a row every 2, the profile window 2..3."""
    exp = tfx.experiment(shards, steps=5, log_every=2, val_every=0, ckpt_every=5)
    workdir = tmp_path_factory.mktemp("pod_run")
    return workdir, loop.run(exp, workdir, profile=(2, 3))


def test_log_rows_carry_throughput_flops_and_mfu(profiled_run):
    workdir, summary = profiled_run
    rows = [r for r in read_metrics(workdir) if "train/loss" in r]
    assert [r["step"] for r in rows] == [2, 4, 5]
    n_dev = jax.device_count()
    for r in rows:
        tok_s = r["perf/tokens_per_s"]
        assert r["perf/tflops_per_device"] == pytest.approx(tok_s * FLOPS_PER_TOKEN / n_dev / 1e12, rel=1e-6)
        assert jax.devices()[0].device_kind == "cpu"
        assert r["perf/mfu"] == pytest.approx(tok_s * FLOPS_PER_TOKEN / (CPU_PEAK_FLOPS * n_dev), rel=1e-6)
        assert 0 < r["perf/mfu"] < 1
        assert r["perf/tokens_total"] == r["step"] * POSITIONS_PER_STEP
        assert r["perf/flops_total"] == pytest.approx(r["step"] * POSITIONS_PER_STEP * FLOPS_PER_TOKEN)
    assert summary["params/total"] == PARAMS_TOTAL
    assert summary["params/non_embedding"] == PARAMS_TOTAL - 2 * 128 * 64
    assert summary["params/matmul_per_token"] == 131_072
    assert summary["perf/mfu"] > 0


def test_profile_window_writes_a_trace_of_the_train_step(profiled_run):
    workdir, _ = profiled_run
    xplanes = list((workdir / "profile").glob("plugins/profile/*/*.xplane.pb"))
    traces = list((workdir / "profile").glob("plugins/profile/*/*.trace.json.gz")) + \
        list((workdir / "profile").glob("plugins/profile/*/perfetto_trace.json.gz"))
    assert len(xplanes) == 1 and xplanes[0].stat().st_size > 0
    assert traces, list((workdir / "profile").rglob("*"))
    events = json.loads(gzip.decompress(traces[0].read_bytes()))
    events = events["traceEvents"] if isinstance(events, dict) else events
    names = {e.get("name", "") for e in events}
    # The jitted step's executions: jax names the module after the function (jit_train_step).
    runs = [n for n in names if "train_step" in n]
    assert runs, sorted(names)[:50]


# --- config files ------------------------------------------------------------------------------


def _show(capsys, *argv: str) -> dict:
    assert cli.main(["config", "show", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_config_file_yaml_and_json_with_set_on_top(tmp_path, capsys):
    yml = tmp_path / "run.yaml"
    yml.write_text("train:\n  lr: 3e-4\n  steps: 50\nmodel:\n  remat: true\n  fsq_levels: [8, 5, 5]\n")
    js = tmp_path / "later.json"
    js.write_text(json.dumps({"train": {"steps": 60, "warmup_steps": 5}}))
    # --set given *before* the files still wins; the later file wins over the earlier one.
    got = _show(capsys, "train", "--preset", "tiny", "--set", "train.warmup_steps=7", "--config", str(yml),
                "--config", str(js))
    assert got["train"]["lr"] == 3e-4 and got["train"]["steps"] == 60 and got["train"]["warmup_steps"] == 7
    assert got["model"]["remat"] is True and got["model"]["fsq_levels"] == [8, 5, 5]
    plain = _show(capsys, "train", "--preset", "tiny")
    assert plain["train"]["steps"] == 300 and plain["model"]["remat"] is False


@pytest.mark.parametrize("doc, message", [
    ({"train": {"stepz": 3}}, "unknown TrainConfig key 'stepz' (train.stepz)"),
    ({"train": {"steps": 2.5}}, "train.steps='2.5' is not a valid int"),
    ({"model": {"remat": 3}}, "model.remat='3' is not a boolean"),
    ({"train": {"lr": [1, 2]}}, "train.lr='1,2' is not a valid float"),
    ({"trian": {"lr": 1.0}}, "unknown section 'trian'"),
])
def test_config_file_errors_name_the_key(tmp_path, capsys, doc, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    assert cli.main(["config", "show", "train", "--config", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_config_file_for_a_flat_command_and_bad_files(tmp_path, capsys):
    path = tmp_path / "tok.yml"
    path.write_text("width: 96\n")
    assert _show(capsys, "tokenizer", "--config", str(path))["model"]["width"] == 96
    for name, text in (("x.toml", "a = 1"), ("y.json", "[1, 2]"), ("z.yaml", "a: [b")):
        (tmp_path / name).write_text(text)
        with pytest.raises(SystemExit) as e:
            cli.main(["config", "show", "train", "--config", str(tmp_path / name)])
        assert e.value.code == 2
        assert name in capsys.readouterr().err


def test_tokenizer_config_file_takes_model_and_train_sections(tmp_path, capsys):
    from mm_jax.cli.tokenizer_cmd import _configs

    path = tmp_path / "tok.yaml"
    path.write_text("model:\n  width: 48\n  fsq_levels: [8, 5, 5]\ntrain:\n  lr: 2.0e-3\n  steps: 40\n")
    got = _show(capsys, "tokenizer", "--preset", "tiny", "--config", str(path), "--set", "train.steps=41")
    assert got["model"]["width"] == 48 and got["model"]["fsq_levels"] == [8, 5, 5]
    assert got["train"]["lr"] == 2e-3 and got["train"]["steps"] == 41
    # The command itself resolves the same file the same way (--steps wins over the file); a bare key is a
    # model field.
    args = cli.build_parser().parse_args(["tokenizer", "train", "--data", "D", "--out", "O", "--preset", "tiny",
                                          "--config", str(path), "--set", "train.batch_size=3", "--steps", "9"])
    mcfg, tcfg = _configs(args)
    assert (mcfg.width, mcfg.fsq_levels, tcfg.lr, tcfg.batch_size, tcfg.steps) == (48, (8, 5, 5), 2e-3, 3, 9)
    with pytest.raises(Exception, match="unknown TokenizerConfig key 'batch_size'"):
        _configs(cli.build_parser().parse_args(["tokenizer", "train", "--data", "D", "--out", "O",
                                                "--set", "batch_size=3"]))


@pytest.mark.parametrize("doc, message", [
    ({"train": {"lrr": 1e-3}}, "unknown TokenizerTrainConfig key 'lrr' (train.lrr)"),
    ({"train": {"steps": 2.5}}, "train.steps='2.5' is not a valid int"),
    ({"train": {"lr": "fast"}}, "train.lr='fast' is not a valid float"),
    ({"model": {"widht": 3}}, "unknown TokenizerConfig key 'widht' (model.widht)"),
    ({"optim": {"lr": 1.0}}, "unknown section 'optim'"),
])
def test_tokenizer_config_file_errors_name_the_key(tmp_path, capsys, doc, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    assert cli.main(["config", "show", "tokenizer", "--config", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert cli.main(["tokenizer", "train", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--config", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_train_command_takes_a_config_file():
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--shards", "S", "--workdir", "W", "--set", "train.lr=1e-3",
                              "--config", str(pathlib.Path(__file__).parent / "fixtures" / "pod_config.json"),
                              "--profile-steps", "3:4"])
    assert args.overrides == ["train.log_every=5", "train.lr=1e-3"] and args.profile_steps == "3:4"


# --- a crash during a save ----------------------------------------------------------------------


CRASH = textwrap.dedent("""
    import os, sys
    import numpy as np
    from mm_jax.checkpoint import Checkpointer
    ckpt = Checkpointer(sys.argv[1], async_save=True)
    ckpt.save(1, {"params": {"w": np.full((8, 8), 1.0, np.float32)}, "step": np.int32(1)}, {"run": "a"})
    ckpt.wait()
    big = {"params": {"w": np.full((4096, 8192), 2.0, np.float32)}, "step": np.int32(2)}  # 128 MiB
    ckpt.save(2, big, {"run": "a"})
    os._exit(3)  # killed while step 2 is being written
""")


def test_a_crash_during_an_async_save_leaves_the_previous_checkpoint_restorable(tmp_path):
    from mm_jax.checkpoint import Checkpointer

    proc = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path / "ck")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stderr
    ckpt = Checkpointer(tmp_path / "ck", async_save=False)
    try:
        assert ckpt.latest_step() == 1 and ckpt.all_steps() == [1]
        target = {"params": {"w": jax.ShapeDtypeStruct((8, 8), jnp.float32)},
                  "step": jax.ShapeDtypeStruct((), jnp.int32)}
        step, tree, meta = ckpt.restore(target, expected_meta={"run": "a"})
    finally:
        ckpt.close()
    assert step == 1 and int(tree["step"]) == 1
    np.testing.assert_array_equal(np.asarray(tree["params"]["w"]), np.ones((8, 8), np.float32))


# --- evaluation and export during training ------------------------------------------------------


class _HashText:
    """A stand-in for the evaluator's MiniLM: a unit vector seeded by each caption's hash."""

    def sentences(self, captions):
        import hashlib

        from mm_jax.eval.evaluator import TEXT_WIDTH

        rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(c.encode()).digest()[:4], "little"))
                .normal(size=TEXT_WIDTH) for c in captions]
        return np.asarray([r / np.linalg.norm(r) for r in rows], np.float32)


@pytest.fixture(scope="module")
def eval_run(tiny_tokenizer, tiny_dataset, tmp_path_factory):
    """4 steps on shards of the tiny tokenizer's codebook: an evaluation of 3 prompts and an export at step 4.

    The evaluation has an evaluator (random 'tiny' weights, hashed captions: :class:`_HashText`), so it
    logs FID and R-precision too. Returns (workdir, summary, embeddings): the evaluator's embeddings of
    the real and of the generated motions, recorded by a spy around ``periodic.embed_motion`` as the
    evaluation computed them.
    """
    from mm_jax.eval import evaluator as E
    from mm_jax.motion.synth import load_dataset
    from mm_jax.tokenizer.artifact import load_tokenizer
    from mm_jax.train import periodic, setup

    ev = E.Evaluator(E.PRESETS["tiny"], E.init_params(E.PRESETS["tiny"], key=jax.random.key(0)),
                     load_dataset(tiny_dataset).normalizer, "test-evaluator", _HashText())
    embeddings = []

    def spy(evaluator, feats):
        embeddings.append(np.asarray(E.embed_motion(evaluator, feats)))
        return embeddings[-1]

    levels = tuple(load_tokenizer(tiny_tokenizer).cfg.fsq_levels)
    exp = tfx.experiment("", steps=4, warmup_steps=1, val_every=0, ckpt_every=2, log_every=2, eval_every=4,
                         eval_prompts=3, export_every=4, evaluator_dir="EV")
    exp = dataclasses.replace(exp, model=dataclasses.replace(exp.model, fsq_levels=levels),
                              tokenizer_run=str(tiny_tokenizer))
    shards = tfx.make_train_shards(tmp_path_factory.mktemp("eval_shards"), num=40,
                                   identity=setup.tokenizer_identity(exp))
    exp = dataclasses.replace(exp, shards_dir=str(shards))
    workdir = tmp_path_factory.mktemp("eval_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(periodic, "load_evaluator", lambda path: ev if path == "EV" else pytest.fail(path))
        mp.setattr(periodic, "embed_motion", spy)
        summary = loop.run(exp, workdir)
    return workdir, summary, embeddings


def test_evaluation_during_training_logs_quality_figures(eval_run):
    workdir, summary, _ = eval_run
    rows = [r for r in read_metrics(workdir) if "eval/jerk" in r]
    assert [r["step"] for r in rows] == [4]
    for r in rows:
        for key in ("eval/jerk", "eval/foot_skating", "eval/real_jerk", "eval/real_foot_skating",
                    "eval/length_codes"):
            assert np.isfinite(r[key]) and r[key] >= 0, key
        assert 0 <= r["eval/foot_skating"] <= 1
        assert 1 <= r["eval/length_codes"] <= 31
    assert summary["eval/jerk"] == rows[0]["eval/jerk"]


def _reference_fid(real_bd: np.ndarray, gen_bd: np.ndarray) -> float:
    """FID as pytorch-fid computes it: |mu1 - mu2|^2 + tr(C1 + C2 - 2 sqrtm(C1 C2)), scipy's sqrtm, real part."""
    import scipy.linalg

    mu1, mu2 = real_bd.mean(0), gen_bd.mean(0)
    c1, c2 = np.cov(real_bd.astype(np.float64), rowvar=False), np.cov(gen_bd.astype(np.float64), rowvar=False)
    covmean = scipy.linalg.sqrtm(c1 @ c2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean.real))


def test_evaluation_with_an_evaluator_logs_fid_and_r_precision(eval_run):
    workdir, summary, (real_emb, gen_emb) = eval_run
    rows = [r for r in read_metrics(workdir) if "eval/fid" in r]
    assert [r["step"] for r in rows] == [4]
    row = rows[0]
    assert real_emb.shape == gen_emb.shape and real_emb.shape[0] == 3 and not np.allclose(real_emb, gen_emb)
    # The logged FID against an independent computation from the same embeddings.
    assert row["eval/fid"] == pytest.approx(_reference_fid(real_emb, gen_emb), rel=1e-4, abs=1e-6)
    assert row["eval/fid"] > 0 and summary["eval/fid"] == row["eval/fid"]
    # 3 prompts = one R-precision batch of 3 captions: the true one is always among the top 3.
    assert row["eval/r_precision_top3"] == 1.0
    assert 0.0 <= row["eval/r_precision_top1"] <= row["eval/r_precision_top2"] <= 1.0
    assert np.isfinite(row["eval/mm_dist"]) and row["eval/mm_dist"] > 0


def test_export_during_training_is_logged(eval_run):
    workdir, _, _ = eval_run
    rows = [r for r in read_metrics(workdir) if "export/ok" in r]
    assert [r["step"] for r in rows] == [4]


def test_export_during_training_writes_the_checkpoint_of_that_step(eval_run):
    workdir, _, _ = eval_run
    out = workdir / "export" / "step_4"
    doc = json.loads((out / "config.json").read_text())
    assert doc["num_hidden_layers"] == tfx.MODEL.num_layers and doc["hidden_size"] == tfx.MODEL.width
    assert (out / "model.safetensors").stat().st_size > 0
    assert [r["step"] for r in read_metrics(workdir) if r.get("export/ok") == 1.0] == [4]


def test_eval_every_without_a_tokenizer_run_is_a_config_error(shards, tmp_path):
    from mm_jax.errors import ConfigError

    exp = tfx.experiment(shards, steps=2, eval_every=1, val_every=0)
    with pytest.raises(ConfigError, match="train.eval_every is set but the run has no tokenizer_run"):
        loop.run(exp, tmp_path / "w")


def test_export_every_must_land_on_checkpoints():
    from mm_jax.errors import ConfigError

    with pytest.raises(ConfigError, match="export_every=3 must be a multiple of train.ckpt_every=2"):
        tfx.experiment("x", ckpt_every=2, export_every=3)


# --- the loss's speed levers equal the plain loss -------------------------------------------------


def _loss_case(dtype: str = "float32"):
    """A prime-sized decoder (codebook 7*5*5 = 175 -> V 178, Vp 256) and a batch whose row 0 follows the
    model's own greedy choices (so accuracy is not 0) with an EOS, PAD tails and text of 3 lengths."""
    from mm_jax.model import ModelConfig, forward, init_params

    cfg = ModelConfig(num_layers=2, num_heads=4, num_kv_heads=2, width=64, fsq_levels=(7, 5, 5), text_dim=24,
                      max_text_tokens=7, max_motion_tokens=13, dtype=dtype)
    params = init_params(cfg, key=jax.random.key(3))
    rng = np.random.default_rng(0)
    b, s, n = 3, 7, 13
    text = rng.standard_normal((b, s, 24)).astype(np.float32)
    text_mask = np.arange(s)[None] < np.array([7, 5, 2])[:, None]
    motion_mask = np.arange(n)[None] < np.array([13, 9, 4])[:, None]
    motion = np.where(motion_mask, rng.integers(0, cfg.codebook_size, (b, n)), cfg.pad_id).astype(np.int32)
    motion[:, 0] = cfg.bos_id
    motion[1, 8] = cfg.eos_id
    fwd = jax.jit(lambda m: forward(cfg, params, text, text_mask, m, motion_mask))
    for i in range(6):  # row 0: tokens 1..6 are the argmax of the position before (teacher-forced greedy)
        motion[0, i + 1] = int(jnp.argmax(fwd(motion)[0, i, :cfg.codebook_size]))
    return cfg, params, (text, text_mask, motion, motion_mask)


@pytest.fixture(scope="module")
def loss_reference():
    """The case of :func:`_loss_case` and its loss, metrics and gradient through the full logits."""
    from mm_jax.model import forward, motion_loss

    cfg, params, batch = _loss_case()
    ref = jax.jit(jax.value_and_grad(lambda p: motion_loss(forward(cfg, p, *batch), batch[2], batch[3]),
                                     has_aux=True))
    return cfg, params, batch, ref(params)


@pytest.mark.parametrize("ce_chunk,branches", [(0, 1), (256, 1), (100, 1), (7, 1), (0, 3), (7, 3)])
def test_loss_only_head_and_chunked_cross_entropy_equal_the_full_logits_loss(loss_reference, ce_chunk, branches):
    """forward_loss (the loss-only head, chunked or not, rows in one branch or three) vs the full logits."""
    from mm_jax.model import forward_loss

    cfg, params, batch, ((l0, m0), g0) = loss_reference
    new = jax.jit(jax.value_and_grad(lambda p: forward_loss(cfg, p, *batch, ce_chunk=ce_chunk, branches=branches),
                                     has_aux=True))
    (l1, m1), g1 = new(params)
    assert float(m0["accuracy"]) > 6 / 23 - 1e-6  # the greedy row scores
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-6)
    assert float(m1["accuracy"]) == float(m0["accuracy"]) and float(m1["tokens"]) == float(m0["tokens"]) == 23
    for path, a in jax.tree_util.tree_leaves_with_path(g0):
        b_ = g1
        for k in path:
            b_ = b_[k.key]
        np.testing.assert_allclose(np.asarray(b_), np.asarray(a), atol=2e-7, rtol=1e-5, err_msg=str(path))
    head = np.asarray(g1["head"])
    assert not head[cfg.vocab_size:].any()  # padded vocabulary rows get no gradient


def test_full_vocab_nll_and_accuracy_match_the_textbook_formulas_with_ties():
    """loss._nll_full (pick_target's gather/one-hot VJP, the float first-maximum) against autodiff of
    -log_softmax[target] via take_along_axis and jnp.argmax, on logits with exact ties and padded columns."""
    from mm_jax.model import loss

    rng = np.random.default_rng(5)
    v, vocab = 12, 10  # columns 10, 11 are padding
    x = jnp.asarray(rng.standard_normal((2, 5, 4)), jnp.float32)
    w = rng.standard_normal((v, 4)).astype(np.float32)
    w[7] = w[3]  # columns 3 and 7 always tie; argmax picks 3 where they hold the maximum
    x = x.at[0, :2].set(jnp.asarray(w[3]) * 5.0)  # rows (0, 0) and (0, 1): the tie at 3 / 7 is the maximum
    w = jnp.asarray(w)
    target = jnp.asarray(rng.integers(0, vocab, (2, 5)), jnp.int32).at[0, 0].set(7).at[0, 1].set(3)

    def textbook(x, w):
        logits = jnp.einsum("bmd,vd->bmv", x, w)
        logits = jnp.where(jnp.arange(v) < vocab, logits, -jnp.inf)
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), target[..., None], axis=-1)[..., 0]
        return nll, (jnp.argmax(logits, axis=-1) == target).astype(jnp.float32)

    nll, correct = loss._nll_full(x, w, target, vocab)
    nll_ref, correct_ref = textbook(x, w)
    np.testing.assert_allclose(np.asarray(nll), np.asarray(nll_ref), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(correct), np.asarray(correct_ref))
    assert int(jnp.argmax(jnp.einsum("d,vd->v", x[0, 0], w)[:vocab])) == 3
    assert (float(correct[0, 0]), float(correct[0, 1])) == (0.0, 1.0)  # target 7 loses the tie, 3 wins it
    weights = jnp.asarray(rng.standard_normal((2, 5)), jnp.float32)
    ours = jax.grad(lambda x, w: jnp.sum(loss._nll_full(x, w, target, vocab)[0] * weights), argnums=(0, 1))(x, w)
    ref = jax.grad(lambda x, w: jnp.sum(textbook(x, w)[0] * weights), argnums=(0, 1))(x, w)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_branches_that_do_not_divide_the_batch_are_a_shape_error(loss_reference):
    from mm_jax.errors import ShapeError
    from mm_jax.model import forward_loss

    cfg, params, batch, _ = loss_reference
    with pytest.raises(ShapeError, match="branches=2 must be a positive int dividing the batch of 3 rows"):
        forward_loss(cfg, params, *batch, branches=2)


@pytest.mark.slow
def test_chunked_cross_entropy_in_bfloat16_stays_close():
    from mm_jax.model import forward_loss

    cfg, params, batch = _loss_case("bfloat16")
    plain = forward_loss(cfg, params, *batch)[0]
    chunked = forward_loss(cfg, params, *batch, ce_chunk=64)[0]
    np.testing.assert_allclose(float(chunked), float(plain), rtol=2e-2)


@pytest.mark.slow
def test_train_step_with_a_chunked_loss_matches_the_plain_step(shards):
    """One optimizer step of the run's compiled step, ce_chunk 0 vs 48 (V = 128: 3 chunks, the last padded);
    AdamW's m / sqrt(v) turns float-order differences of near-zero gradients into ~1e-6 of the params."""
    from mm_jax import sharding
    from mm_jax.train import setup

    out = []
    for chunk in (0, 48):
        exp = tfx.experiment(shards, ce_chunk=chunk)
        run = setup.fresh_run(exp, sharding.make_mesh(exp.mesh))
        batch = _fixed_batch(exp, run.placement)
        state, metrics = run.compiled.train_step(run.state, batch, run.key, run.text_params)
        out.append((jax.device_get(metrics), jax.device_get(state.params)))
    (m0, p0), (m1, p1) = out
    np.testing.assert_allclose(m1["loss"], m0["loss"], rtol=1e-6)
    np.testing.assert_allclose(m1["grad_norm"], m0["grad_norm"], rtol=1e-5)
    for a, b_ in zip(jax.tree.leaves(p0), jax.tree.leaves(p1)):
        np.testing.assert_allclose(b_, a, atol=1e-5)


def _fixed_batch(exp, placement):
    from mm_jax.pipeline import build_pipeline, global_batch
    from mm_jax.train.step import BATCH_KEYS

    local = next(build_pipeline(exp.shards_dir, exp.pipeline, split="train").iterator())
    return global_batch({k: local[k] for k in BATCH_KEYS}, placement.mesh, placement.batch_sharding)
