"""PyTorch export parity: JAX decoder vs transformers' LlamaModel, JAX MiniLM vs BertModel, tokenizer decode.

The expected values come from two independent implementations: the JAX
forward pass (``mm_jax.model.llama``, ``mm_jax.text.encoder``,
``mm_jax.tokenizer.model``) and transformers' own ``LlamaModel`` /
``BertModel`` (plus the torch tokenizer port) loaded from the exported files.
Runs in ``make test`` (the ``[torch]`` extra); skipped where torch is absent.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mm_jax.errors import ExportError  # noqa: E402
from mm_jax.export import aux_maps, hf, verify  # noqa: E402
from mm_jax.export.importer import read_weights  # noqa: E402
from mm_jax.export.run import export_run, write_decoder  # noqa: E402
from mm_jax.model.config import ModelConfig, preset  # noqa: E402
from mm_jax.model.llama import forward, init_params  # noqa: E402
from mm_jax.torch_port.model import MotionLlama  # noqa: E402

TOL = 1e-4


def _params(cfg: ModelConfig, seed: int = 1) -> dict:
    return init_params(cfg, key=jax.random.key(seed))


def test_tiny_full_motion_length_logits_and_greedy(tmp_path):
    """Tiny preset (GQA 4/2), padded text, the full 269 motion positions; 60 greedy steps through both caches."""
    cfg = dataclasses.replace(preset("tiny"), init_std=0.1)  # larger weights: sharper attention than at init
    params = _params(cfg)
    write_decoder(tmp_path, cfg, params)
    parity = verify.check(tmp_path, cfg, params, greedy_steps=60)
    assert parity.positions == 269 + 2 * 269 // 3
    assert parity.max_logit_diff < TOL, parity.line()
    assert parity.greedy_equal, parity.line()


def test_gqa_scanned_prime_sizes(tmp_path):
    """H=6 query heads over K=2 kv heads (G=3), head dim 14, scanned layers, 3 layers, S=7."""
    cfg = ModelConfig(num_layers=3, num_heads=6, num_kv_heads=2, width=84, fsq_levels=(5, 7), text_dim=22,
                      max_text_tokens=7, max_motion_tokens=41, scan_layers=True, init_std=0.1, rope_theta=500.0)
    params = _params(cfg, seed=2)
    write_decoder(tmp_path, cfg, params)
    parity = verify.check(tmp_path, cfg, params, greedy_steps=40)
    assert parity.max_logit_diff < TOL and parity.greedy_equal, parity.line()


def test_config_is_a_llama_config_and_layout(tmp_path):
    from transformers import AutoConfig

    cfg = preset("tiny")
    write_decoder(tmp_path, cfg, _params(cfg))
    auto = AutoConfig.from_pretrained(str(tmp_path))
    assert auto.model_type == "llama" and auto.vocab_size == cfg.vocab_size == 1003
    assert (auto.head_dim, auto.num_key_value_heads, auto.rms_norm_eps) == (32, 2, 1e-5)
    assert auto.tie_word_embeddings is False and auto.rope_parameters["rope_theta"] == 10000.0
    tensors = read_weights(tmp_path)
    assert tensors["lm_head.weight"].shape == (1003, 128)  # padded vocab rows (to 1024) dropped
    gen = json.loads((tmp_path / "generation_config.json").read_text())
    assert (gen["bos_token_id"], gen["eos_token_id"], gen["pad_token_id"]) == (1000, 1001, 1002)


def test_sharded_bf16_and_unconsumed_leaf(tmp_path):
    cfg = preset("tiny")
    params = _params(cfg)
    (tmp_path / "a").mkdir()
    files = write_decoder(tmp_path / "a", cfg, params, dtype="bfloat16", max_shard_bytes=200_000)
    assert "model.safetensors.index.json" in files and sum(f.startswith("model-0") for f in files) > 2
    model = MotionLlama.from_export(tmp_path / "a")
    assert model.dtype == torch.bfloat16
    diff, _ = verify.logit_diff(cfg, params, model.float(), verify.jax_inputs(cfg, motion_len=20))
    assert diff < 0.05  # bf16 weights
    extra = {**params, "stray": np.zeros(3)}
    with pytest.raises(ExportError, match="stray"):
        hf.check_tree(cfg, extra)
    with pytest.raises(ExportError, match="block_0/attn/qkv"):
        block = {**params["block_0"], "attn": {"out": params["block_0"]["attn"]["out"]}}
        hf.check_tree(cfg, {**params, "block_0": block})


def test_text_encoder_matches_bert_model(tmp_path):
    """Random small MiniLM-shaped encoder (prime sizes): JAX encode vs BertModel's last hidden states."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    from mm_jax.export.writer import write_safetensors

    from mm_jax.text.config import TextConfig
    from mm_jax.text.encoder import encode, init_params as text_init

    tcfg = TextConfig(width=30, num_layers=2, num_heads=3, mlp_dim=46, vocab_size=211, max_positions=13,
                      max_tokens=11)
    params = jax.tree.map(np.asarray, text_init(tcfg, key=jax.random.key(3), std=0.2))
    write_safetensors(tmp_path, "model", aux_maps.text_tensors(tcfg, params))
    model = BertModel(BertConfig(**aux_maps.bert_config(tcfg)), add_pooling_layer=False).eval()
    model.load_state_dict(load_file(str(tmp_path / "model.safetensors")), strict=True)
    rng = np.random.default_rng(0)
    ids = rng.integers(103, 211, (2, 11)).astype(np.int32)
    mask = np.ones((2, 11), bool)
    mask[1, 6:] = False
    want = np.asarray(encode(params, ids, mask, ln_eps=tcfg.ln_eps)[0])
    with torch.no_grad():
        got = model(input_ids=torch.from_numpy(ids).long(),
                    attention_mask=torch.from_numpy(mask).long()).last_hidden_state
    assert np.abs(want - got.numpy())[mask].max() < 1e-5


def test_export_verify_import_roundtrip(decoder_run, tmp_path, capsys):
    """The CLI on a trained run: export --verify, tokenizer decode parity, import-torch gives the same logits."""
    from mm_jax.cli import main
    from mm_jax.export.importer import import_torch
    from mm_jax.generate import load_decoder

    out = tmp_path / "export"
    assert main(["export", "--checkpoint", str(decoder_run), "--out", str(out), "--verify"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("max |logit diff| ") and lines[-1].endswith("greedy tokens equal: yes")
    assert float(lines[-1].split()[3]) < TOL
    assert float(lines[-2].split()[-1]) < TOL  # motion tokenizer decode
    section = json.loads((out / "config.json").read_text())["mm_jax"]
    assert section["text_encoder"]["vocab"] is None  # the run used a fake vocabulary: no vocab.txt
    assert main(["export", "--checkpoint", str(decoder_run), "--out", str(out)]) == 2  # exists
    assert "already exists" in capsys.readouterr().err

    run = import_torch(out, tmp_path / "back")
    a, b = load_decoder(decoder_run), load_decoder(run)
    inputs = verify.jax_inputs(a.exp.model, motion_len=12)
    args = [inputs[k] for k in ("text", "text_mask", "motion", "motion_mask")]
    np.testing.assert_array_equal(np.asarray(forward(a.exp.model, a.params, *args)),
                                  np.asarray(forward(b.exp.model, b.params, *args)))
    v = a.exp.model.vocab_size
    np.testing.assert_array_equal(np.asarray(a.params["head"])[:v], np.asarray(b.params["head"])[:v])
    assert b.step == a.step and b.meta == a.meta


def test_tokenizer_encode_decode_and_joints(tiny_tokenizer, tmp_path):
    from mm_jax.export.run import _write_tokenizer
    from mm_jax.motion.features import joints_from_features
    from mm_jax.tokenizer import model as tmodel
    from mm_jax.tokenizer.artifact import load_tokenizer
    from mm_jax.torch_port.tokenizer import MotionTokenizer, joints_from_features as torch_joints

    tok = load_tokenizer(tiny_tokenizer)
    _write_tokenizer(tmp_path, tok)
    port = MotionTokenizer.from_export(tmp_path)
    x = np.random.default_rng(4).standard_normal((2, 4 * tok.cfg.frames_per_token, 272)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(tmodel.encode(tok.params, x, tok.cfg)),
                                  port.encode(torch.from_numpy(x)).numpy())
    assert verify.tokenizer_decode_diff(tmp_path, tok, tokens=9) < TOL
    feats = np.asarray(tok.normalizer.denormalize(x[0]), np.float32)
    np.testing.assert_allclose(torch_joints(torch.from_numpy(feats)).numpy(),
                               np.asarray(joints_from_features(feats)), atol=1e-4)


# The tokenizer design's options, shrunk (width 16) so each case compiles and runs in seconds.
_SMALL_SHRUNK = {"width": 16, "window": 16}
_TOKENIZER_DESIGNS = {
    # the `small` preset's architecture (CDF 5/3 level with its residual stacks, sigma-1 output filter),
    # plus a refinement head (perturbed below: its zero-initialised last conv would hide it)
    "small+refine": {"refine_width": 8},
    # the reference's latent and dilations on a 2-level CDF 5/3 with the patcher's gain and a wider filter
    "cdf53x2-reference-options": {"wavelet_levels": 2, "wavelet_gain": 0.5, "latent_kernel": 1,
                                  "encoder_dilations_descending": True, "output_smoothing_frames": 1.5,
                                  "refine_width": 8},
    # 2 Haar levels, no level stacks, an even latent kernel (Flax 'SAME' pads it asymmetrically), no filter
    "haar2-even-latent": {"wavelet_family": "haar", "wavelet_levels": 2, "wavelet_res_stacks": False,
                          "wavelet_gain": 2.0, "latent_kernel": 2, "output_smoothing_frames": 0.0},
}


def _random_tokenizer_params(cfg, rng: np.random.Generator) -> dict:
    """Random weights in the shapes of ``init_params(cfg)`` (traced, not compiled: seconds saved per config).

    Every leaf is random, the refinement head's zero-initialised last conv and the LayerNorms included,
    so each mapped tensor moves the output. Kernels [k, in, out] ~ N(0, 1 / (k * in)).
    """
    from mm_jax.tokenizer import model as tmodel

    shapes = jax.eval_shape(lambda key: tmodel.init_params(cfg, key=key), jax.random.key(0))

    def draw(path, leaf):
        name, shape = jax.tree_util.keystr(path), leaf.shape
        if name.endswith("['kernel']"):
            return (rng.standard_normal(shape) / np.sqrt(shape[0] * shape[1])).astype(np.float32)
        base = 1.0 if name.endswith("['scale']") else 0.0
        return (base + 0.1 * rng.standard_normal(shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.mark.parametrize("design", sorted(_TOKENIZER_DESIGNS))
def test_tokenizer_design_parity(design, tmp_path):
    """Each TokenizerConfig option through the export: encode codes equal, decode within TOL of JAX."""
    from mm_jax.export.run import _write_tokenizer
    from mm_jax.motion.normalize import Normalizer
    from mm_jax.tokenizer import PRESETS
    from mm_jax.tokenizer import model as tmodel
    from mm_jax.tokenizer.artifact import LoadedTokenizer
    from mm_jax.torch_port.tokenizer import MotionTokenizer

    cfg = dataclasses.replace(PRESETS["small"][0], **_SMALL_SHRUNK, **_TOKENIZER_DESIGNS[design])
    rng = np.random.default_rng(6)
    params = _random_tokenizer_params(cfg, rng)
    norm = Normalizer(mean=rng.standard_normal(272).astype(np.float32),
                      std=rng.uniform(0.5, 2, 272).astype(np.float32))
    tok = LoadedTokenizer(cfg=cfg, params=params, normalizer=norm, step=0)
    _write_tokenizer(tmp_path, tok)
    port = MotionTokenizer.from_export(tmp_path)
    assert port.cfg == {**dataclasses.asdict(cfg), "fsq_levels": list(cfg.fsq_levels)}
    x = rng.standard_normal((2, 5 * cfg.frames_per_token, 272)).astype(np.float32)
    want_ids = np.array(jax.jit(tmodel.encode, static_argnums=2)(params, x, cfg))
    np.testing.assert_array_equal(want_ids, port.encode(torch.from_numpy(x)).numpy())
    assert len(np.unique(want_ids)) > 3  # not a degenerate constant code
    diff = verify.tokenizer_decode_diff(tmp_path, tok, tokens=7)
    assert diff < TOL, f"{design}: max |decode diff| {diff:.3g}"
    if cfg.refine_width:  # the head's last conv (zero at init) is random here and moves the output
        ids = torch.from_numpy(want_ids)
        full = port.decode(ids)
        with torch.no_grad():
            port.refine.Conv_1.weight.zero_()
            port.refine.Conv_1.bias.zero_()
        assert (full - port.decode(ids)).abs().max() > 1e-2


def test_torch_tokenizer_refuses_unknown_config():
    from mm_jax.torch_port.tokenizer import MotionTokenizer

    base = {"feature_dim": 272, "width": 8, "depth": 1, "dilation_growth": 3, "down_t": 1, "wavelet_levels": 1,
            "fsq_levels": [5, 5]}
    assert MotionTokenizer(base).cfg["wavelet_family"] == "haar"  # an export made before the field existed
    with pytest.raises(ValueError, match="future"):
        MotionTokenizer({**base, "future": 1})
    with pytest.raises(ValueError, match="wavelet_family='db4'"):
        MotionTokenizer({**base, "wavelet_family": "db4"})


def test_unsupported_tokenizer_config_and_bad_runs(tmp_path):
    aux_maps.check_tokenizer_config({"width": 32, "refine_width": 16, "wavelet_family": "cdf53"})
    with pytest.raises(ExportError, match="unsupported tokenizer config: wavelet_family='db4'"):
        aux_maps.check_tokenizer_config({"width": 32, "wavelet_family": "db4"})
    with pytest.raises(ExportError, match="unsupported tokenizer config: field future"):
        aux_maps.check_tokenizer_config({"future": 1})
    with pytest.raises(ExportError, match="not an mm_jax decoder run"):
        export_run(tmp_path, tmp_path / "out")
    with pytest.raises(ExportError, match="dtype"):
        export_run(tmp_path, tmp_path / "out", dtype="float16")


def test_incomplete_checkpoint(decoder_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(decoder_run, run)
    for p in (run / "checkpoints").rglob("*"):
        if p.is_dir() and p.name == "params":
            shutil.rmtree(p)
    with pytest.raises(ExportError, match="cannot export"):
        export_run(run, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
