"""Layering: inference imports no optimizer and no trainer code; the tokenizer artifact does not import its trainer.

Each check imports in a fresh interpreter, so modules other tests imported do not hide a dependency.
"""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import mm_jax

TRAINING = ("optax", "mm_jax.train.step", "mm_jax.train.setup", "mm_jax.train.loop", "mm_jax.tokenizer.train",
            "mm_jax.eval.train")


def _loaded_after(code: str) -> set[str]:
    """The training modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {TRAINING!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_generation_and_sampling_import_no_optimizer():
    assert _loaded_after("import mm_jax.generate, mm_jax.sample, mm_jax.decoder_tokenizer") == set()


def test_loading_weights_for_generation_builds_no_optimizer(decoder_run, tiny_tokenizer):
    code = (f"from mm_jax import generate\n"
            f"dec = generate.load_decoder({str(decoder_run)!r})\n"
            f"tok, _ = generate.load_tokenizer_of(dec, {str(decoder_run)!r}, {str(tiny_tokenizer)!r})\n"
            f"assert dec.params and tok.params")
    assert _loaded_after(code) == set()


def test_text_encoder_weights_for_generation_build_no_optimizer(decoder_run):
    """The frozen text encoder's params (what text_features loads) need no trainer code either."""
    code = (f"from mm_jax import generate\n"
            f"from mm_jax.text import weights\n"
            f"dec = generate.load_decoder({str(decoder_run)!r})\n"
            f"params, ident = weights.frozen_params(dec.exp.text, dec.exp.text_weights, dec.exp.train.seed)\n"
            f"assert params and ident")
    assert _loaded_after(code) == set()
    tree = ast.parse((pathlib.Path(mm_jax.__file__).parent / "generate.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    trainer = ("mm_jax.train.step", "mm_jax.train.setup", "mm_jax.train.loop")
    assert not {m for m in imported if m and m.startswith(trainer)}


def test_tokenizer_artifact_does_not_import_its_trainer():
    assert _loaded_after("import mm_jax.tokenizer.artifact") == set()
    tree = ast.parse((pathlib.Path(mm_jax.__file__).parent / "tokenizer" / "artifact.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and (m.startswith("mm_jax.tokenizer.train") or m.startswith("optax"))}
