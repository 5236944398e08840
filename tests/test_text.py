"""Tests of mm_jax.text: tokenizer, weight loader and the frozen MiniLM encoder.

Reference values come from tests/fixtures/text_parity.npz, recorded ONCE by
tests/fixtures/record_text_parity.py in a separate venv (.venv-ref) with
torch 2.13.0+cpu, transformers 5.23.0 and sentence-transformers 6.2.0:
BertTokenizerFast ids (budget 32), BertModel last_hidden_state (first 12
sentences) and sentence-transformers embeddings (all 41). To re-record, follow
the commands at the top of that script, then run
``HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv-ref/bin/python tests/fixtures/record_text_parity.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax.errors import CheckpointError, ConfigError, DataError, ShapeError
from mm_jax.text import (PRESETS, TextConfig, TextTokenizer, encode, encode_captions, init_params,
                         load_params, params_from_hf)
from mm_jax.text import tokenize as tokenize_mod
from mm_jax.text import weights as weights_mod

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "text_parity.npz"
S = 32


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def tokenizer():
    return TextTokenizer.from_pretrained(max_tokens=S)


@pytest.fixture(scope="module")
def raw_tensors():
    from safetensors.numpy import load_file
    return load_file(str(weights_mod.checkpoint_path()))


@pytest.fixture(scope="module")
def params(raw_tensors):
    return params_from_hf(raw_tensors, TextConfig())


@pytest.fixture(scope="module")
def encoded(ref, tokenizer, params):
    batch = tokenizer.encode(list(ref["sentences"]))
    tokens_bsd, sentence_bd = jax.jit(encode)(params, batch.ids, batch.mask)
    return batch, np.asarray(tokens_bsd), np.asarray(sentence_bd)


def _cos(sentence_bd, sentences, a, b):
    index = {s: i for i, s in enumerate(sentences)}
    return float(sentence_bd[index[a]] @ sentence_bd[index[b]])


# ----------------------------------------------------------------------------- import / config

def test_importing_mm_jax_text_does_not_import_tensorflow():
    code = ("import sys, mm_jax.text, mm_jax.text.tokenize; "
            "bad = [m for m in ('tensorflow', 'tensorflow_text', 'torch') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_building_a_tokenizer_does_import_tensorflow(tokenizer):
    assert "tensorflow_text" in sys.modules  # the positive control of the test above


def test_config_presets_and_validation():
    cfg = PRESETS["minilm-l6"]
    assert (cfg.width, cfg.num_layers, cfg.num_heads, cfg.head_dim, cfg.max_tokens) == (384, 6, 12, 32, 32)
    assert cfg.identity() == "all-MiniLM-L6-v2/S32/D384"
    with pytest.raises(ConfigError, match="max_tokens=2"):
        TextConfig(max_tokens=2)
    with pytest.raises(ConfigError, match="max_tokens=600"):
        TextConfig(max_tokens=600)
    with pytest.raises(ConfigError, match="width=100"):
        TextConfig(width=100)
    with pytest.raises(ConfigError, match="max_tokens=1"):
        TextTokenizer(["[PAD]"], max_tokens=1)


# ----------------------------------------------------------------------------- tokenizer

def test_ids_match_huggingface_on_every_sentence(ref, encoded):
    batch, _, _ = encoded
    assert batch.ids.dtype == np.int32 and batch.ids.shape == (len(ref["sentences"]), S)
    bad = np.flatnonzero((batch.ids != ref["hf_ids"]).any(axis=1))
    assert bad.size == 0, [ref["sentences"][i] for i in bad]
    np.testing.assert_array_equal(batch.mask, ref["hf_mask"].astype(bool))


def test_truncation_keeps_sep_and_is_counted(ref, tokenizer, caplog):
    over = ref["hf_full_len"] > S
    assert over.sum() == 2  # the fixture holds two captions over budget
    with caplog.at_level(logging.WARNING, logger=tokenize_mod.__name__):
        batch = tokenizer.encode(list(ref["sentences"]))
    assert batch.num_truncated == 2
    assert "truncated 2 of 41" in caplog.text
    assert (batch.ids[over, -1] == tokenize_mod.SEP_ID).all() and batch.mask[over].all()
    short = tokenizer.encode(["a man walks forward"])
    assert short.num_truncated == 0 and short.lengths.tolist() == [6]


def test_unknown_words_map_to_unk_and_are_counted(ref, tokenizer):
    batch = tokenizer.encode(["a person does a cartwheel 🤸 next to a snowman ☃", "a man walks"])
    assert batch.num_unk == 2 == int((batch.ids[0] == tokenize_mod.UNK_ID).sum())
    assert tokenizer.encode(list(ref["sentences"])).num_unk == int((ref["hf_ids"] == 100).sum())
    # rare but spellable words become word pieces, not [UNK]
    assert "[UNK]" not in tokenizer.pieces("someone strolls ahead; the zombie shambles")
    assert tokenizer.pieces("Café") == ["cafe"]


@pytest.mark.parametrize("captions, index", [(["ok", ""], 1), (["   \t\n"], 0),
                                             (["a", "b", "\u200b"], 2), (["a", None], 1)])
def test_empty_or_non_text_caption_raises_naming_its_index(tokenizer, captions, index):
    with pytest.raises(DataError, match=f"caption {index} "):
        tokenizer.encode(captions)


def test_empty_batch_and_layout(tokenizer):
    empty = tokenizer.encode([])
    assert empty.ids.shape == (0, S) and empty.num_unk == 0
    batch = tokenizer(["A person walks forward, then waves with the left hand."])
    assert batch.ids[0, :14].tolist() == [101, 1037, 2711, 7365, 2830, 1010, 2059, 5975, 2007,
                                          1996, 2187, 2192, 1012, 102]
    assert (batch.ids[0, 14:] == 0).all() and batch.lengths.tolist() == [14]
    assert tokenizer.decode(batch.ids[0])[:3] == ["[CLS]", "a", "person"]


def test_vocab_identity_names_the_vocabulary(tokenizer, tmp_path):
    ident = tokenizer.vocab_identity()
    vocab_file = weights_mod.checkpoint_path().parent / "vocab.txt"
    file_digest = hashlib.sha256(vocab_file.read_bytes()).hexdigest()
    assert ident == f"all-MiniLM-L6-v2:bert-uncased:vocab30522:sha256={file_digest}"
    assert ident == TextTokenizer.from_pretrained(max_tokens=16).vocab_identity()
    vocab = tokenize_mod.read_vocab(weights_mod.checkpoint_path().parent / "vocab.txt")
    vocab[2000] = "zzzz"
    assert TextTokenizer(vocab).vocab_identity() != ident
    bad = tmp_path / "vocab.txt"
    bad.write_text("[PAD]\n[UNK]\n")
    with pytest.raises(DataError, match="id 100"):
        tokenize_mod.read_vocab(bad)


# ----------------------------------------------------------------------------- encoder parity

def test_token_states_match_transformers_bert(ref, encoded):
    batch, tokens_bsd, _ = encoded
    rows = ref["hidden_rows"]
    mask = batch.mask[rows]
    diff = np.abs(tokens_bsd[rows][mask] - ref["hf_hidden"][mask])
    assert diff.max() < 1e-4, diff.max()


def test_sentence_embeddings_match_sentence_transformers(ref, encoded):
    _, _, sentence_bd = encoded
    assert sentence_bd.shape == (len(ref["sentences"]), 384)
    np.testing.assert_allclose(np.linalg.norm(sentence_bd, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(sentence_bd, ref["st_sentence"], atol=1e-4)


def test_paraphrases_are_closer_than_unrelated_pairs(ref, encoded):
    sentence_bd, sentences = encoded[2], list(ref["sentences"])
    para = _cos(sentence_bd, sentences, "a man walks forward", "someone strolls ahead")
    para2 = _cos(sentence_bd, sentences, "a person runs in place", "someone jogs on the spot")
    unrelated = [
        _cos(sentence_bd, sentences, "a man walks forward", "the stock market fell sharply today"),
        _cos(sentence_bd, sentences, "someone strolls ahead", "a dog barks at the mailman"),
        _cos(sentence_bd, sentences, "a person runs in place", "a man is swimming breaststroke"),
    ]
    assert min(para, para2) > max(unrelated) + 0.2, (para, para2, unrelated)


def test_padding_never_changes_real_tokens(tokenizer, params):
    caption = "someone strolls ahead"
    alone = tokenizer.encode([caption])
    n = int(alone.lengths[0])
    tight_tokens, tight_sentence = encode(params, alone.ids[:, :n], alone.mask[:, :n])
    batch = tokenizer.encode(["a dog barks at the mailman", caption,
                              "A person jogs in a circle three times and then stops."])
    tokens_bsd, sentence_bd = jax.jit(encode)(params, batch.ids, batch.mask)
    np.testing.assert_allclose(tokens_bsd[1, :n], tight_tokens[0], atol=1e-5)
    np.testing.assert_allclose(sentence_bd[1], tight_sentence[0], atol=1e-6)
    # garbage in the padded slots must not leak either
    noisy = np.where(batch.mask, batch.ids, 7592)
    noisy_tokens, _ = jax.jit(encode)(params, noisy, batch.mask)
    np.testing.assert_allclose(noisy_tokens[batch.mask], tokens_bsd[batch.mask], atol=1e-5)


def test_tiny_prime_sized_encoder_masks_padding():
    cfg = TextConfig(width=35, num_heads=5, mlp_dim=11, num_layers=2, vocab_size=97,
                     max_positions=13, max_tokens=13)
    params = jax.jit(functools.partial(init_params, cfg))(key=jax.random.key(3))
    ids = jnp.array([[5, 17, 23, 2, 0, 0, 0], [5, 9, 11, 13, 31, 41, 2]], jnp.int32)
    mask = ids != 0
    tokens_bsd, sentence_bd = jax.jit(encode)(params, ids, mask)
    assert tokens_bsd.shape == (2, 7, 35) and sentence_bd.shape == (2, 35)
    tight, _ = encode(params, ids[:1, :4], mask[:1, :4])
    np.testing.assert_allclose(tokens_bsd[0, :4], tight[0], atol=1e-5)


def test_encode_rejects_bad_inputs(params):
    ids = np.ones((2, 5), np.int32)
    with pytest.raises(ShapeError, match=r"\(5,\)"):
        encode(params, ids[0], ids[0])
    with pytest.raises(ShapeError, match=r"\(2, 4\)"):
        encode(params, ids, ids[:, :4])
    with pytest.raises(ShapeError, match="S=513"):
        encode(params, np.ones((1, 513), np.int32), np.ones((1, 513), bool))
    with pytest.raises(DataError, match="float32"):
        encode(params, ids.astype(np.float32), ids)


def test_encode_captions_convenience(tokenizer, params, encoded):
    tokens_bsd, sentence_bd, mask_bs = encode_captions(params, tokenizer, ["a man walks forward"])
    assert tokens_bsd.shape == (1, S, 384) and mask_bs.sum() == 6
    assert float(sentence_bd[0] @ encoded[2][1]) > 0.9999


# ----------------------------------------------------------------------------- loader

def test_init_params_has_the_loaded_layout(params):
    abstract = jax.eval_shape(lambda k: init_params(TextConfig(), key=k), jax.random.key(0))
    assert jax.tree.structure(abstract) == jax.tree.structure(params)
    assert jax.tree.map(lambda a: a.shape, abstract) == jax.tree.map(lambda a: a.shape, params)
    assert params["layers"]["q_ldhk"].shape == (6, 384, 12, 32)


def test_loader_refuses_missing_unknown_and_misshaped_tensors(raw_tensors):
    missing = dict(raw_tensors)
    del missing["encoder.layer.3.output.dense.bias"]
    with pytest.raises(CheckpointError, match="encoder.layer.3.output.dense.bias"):
        params_from_hf(missing, TextConfig())
    extra = dict(raw_tensors, **{"encoder.layer.6.output.dense.bias": np.zeros(384, np.float32)})
    with pytest.raises(CheckpointError, match="unknown tensor.*layer.6"):
        params_from_hf(extra, TextConfig())
    shaped = dict(raw_tensors, **{"embeddings.LayerNorm.bias": np.zeros(383, np.float32)})
    with pytest.raises(CheckpointError, match=r"\(383,\), expected \(384,\)"):
        params_from_hf(shaped, TextConfig())
    with pytest.raises(CheckpointError, match="unknown tensor"):
        params_from_hf(raw_tensors, dataclasses.replace(TextConfig(), num_layers=5))


def test_load_params_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nothing.safetensors"):
        load_params(tmp_path / "nothing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_params(junk)
    assert weights_mod.weights_identity(junk).startswith("junk.safetensors:sha256=")
