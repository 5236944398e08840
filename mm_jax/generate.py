"""Text -> motion files, end to end (stage: sample, as a library function).

Inputs: a decoder run directory (``mm_jax.train.loop.run`` output: ``config.json``
and ``checkpoints/``), the tokenizer run it records (or an override; either is
identity-checked against the checkpoint, :mod:`mm_jax.decoder_tokenizer`), and
prompts. Outputs, in ``out_dir``, for prompt ``i`` and sample ``k``::

    {i:03d}_{slug}_{k}.npy          features [T, 272], denormalised, float32
    {i:03d}_{slug}_{k}_joints.npy   joint positions [T, 22, 3]
    {i:03d}_{slug}_{k}.bvh          the motion as BVH
    {i:03d}_{slug}_{k}.gif          a rendering titled with the prompt (``render=True``)
    generations.json                the options and one record per sample

Flow: tokenize and encode the prompts with the run's frozen text encoder
(pretrained MiniLM, or the run's random encoder when ``text_weights="random"``),
repeat each prompt ``num_samples`` times into one batch, sample motion codes
with classifier-free guidance against the empty caption under one key (EOS
held back until ``min_seconds`` of codes exist), then
decode each row's codes ``tokens[b, :lengths[b]]`` with the motion tokenizer,
denormalise, and write the files. A row that stopped before its first code
(length 0) is kept in the results with ``"empty": True`` and writes nothing.

Nothing is overwritten silently: an ``out_dir`` that already holds outputs
this call would write (or a ``generations.json``) is refused unless
``overwrite=True``, which first removes the files the previous
``generations.json`` lists. Slugs of prompts with non-ASCII characters (or cut
at 40 characters) end in a hash of the prompt, so distinct prompts get
distinct names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import pathlib
import re
import unicodedata
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from mm_jax import configs, decoder_tokenizer, sharding
from mm_jax.checkpoint import load_params
from mm_jax.errors import CheckpointError, ConfigError, DataError, NonFiniteError
from mm_jax.model.llama import abstract_params
from mm_jax.motion.bvh import write_motion_bvh
from mm_jax.motion.foot_lock import foot_lock
from mm_jax.motion.features import joints_from_features
from mm_jax.motion.render import render_motion
from mm_jax.sample import empty_text, max_tokens_for_seconds, min_tokens_for_seconds, sample, seed_key
from mm_jax.text import encoder
from mm_jax.text import weights as text_weights
from mm_jax.text.tokenize import CLS_ID, SEP_ID, UNK_ID, TextTokenizer
from mm_jax.tokenizer import model as tmodel
from mm_jax.train.config import ExperimentConfig

log = logging.getLogger(__name__)

_decode = jax.jit(tmodel.decode, static_argnums=2)  # codes [B, N] -> normalised features [B, T, F]


@dataclasses.dataclass(frozen=True)
class LoadedDecoder:
    """A trained decoder: its experiment config, plain params dict, checkpoint step and checkpoint meta."""

    exp: ExperimentConfig
    params: Any
    step: int
    meta: dict = dataclasses.field(default_factory=dict)  # meta["tokenizer"]: the tokenizer's identity


def load_decoder(run_dir: str | pathlib.Path, step: int | None = None) -> LoadedDecoder:
    """Restores a decoder run's params (the latest checkpoint unless ``step``).

    Only the checkpoint's ``params`` item is read (:func:`mm_jax.checkpoint.load_params`):
    no optimizer state is built. The params are placed as the training run
    placed them on a data-parallel mesh of the local devices, whatever mesh
    the run trained on.

    Raises:
      CheckpointError: no ``config.json`` or checkpoint, or a checkpoint of another model.
    """
    run_dir = pathlib.Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{run_dir} is not a decoder run: {cfg_path.name} is missing")
    exp = configs.load_json(ExperimentConfig, cfg_path)
    mesh = sharding.make_mesh(sharding.MeshConfig(data=-1))
    boxed = abstract_params(exp.model)
    target = sharding.abstract_with_shardings(nn.meta.unbox(boxed), sharding.param_shardings(boxed, mesh))
    got, params, meta = load_params(run_dir, target, step=step, expected_meta={"model": configs.to_dict(exp.model)})
    log.info("restored decoder %s at step %d", run_dir, got)
    return LoadedDecoder(exp, params, got, dict(meta))


def load_tokenizer_of(dec: LoadedDecoder, decoder_run: str | pathlib.Path,
                      tokenizer_run: str | pathlib.Path | None = None) -> tuple[Any, pathlib.Path]:
    """(``LoadedTokenizer``, its run) of a loaded decoder: :func:`mm_jax.decoder_tokenizer.load`."""

    return decoder_tokenizer.load(dec.exp, dec.meta, decoder_run=decoder_run, override=tokenizer_run)


def slug(prompt: str, max_len: int = 40) -> str:
    """A file-name-safe slug of a prompt: lower case, ``[a-z0-9]`` runs joined by ``_``.

    Accents are dropped (``café`` -> ``cafe``). A prompt with other non-ASCII
    characters, or one whose slug is cut at ``max_len``, gets ``_`` and 8 hex
    digits of its SHA-256 appended, so distinct prompts get distinct names.
    """
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode()
    full = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    s = full[:max_len].rstrip("_")
    if not prompt.isascii() or len(full) > max_len:
        return f"{s or 'prompt'}_{hashlib.sha256(prompt.encode('utf-8')).hexdigest()[:8]}"
    return s or "prompt"


def _check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str) or not len(prompts):
        raise DataError(f"prompts={prompts!r} must be a non-empty list of strings")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise DataError(f"prompt {i} is {p!r}: every prompt must be a non-empty string")
    return list(prompts)


def text_features(exp: ExperimentConfig, prompts: list[str], text_tokenizer: Any, *,
                  refuse_unknown: bool = False) -> tuple[Any, jax.Array, jax.Array]:
    """(text params, [P, S, C] features, [P, S] mask) of the prompts with the run's encoder.

    ``refuse_unknown``: a prompt whose word pieces are all [UNK] (no word the
    vocabulary knows: the model would read nothing of it) is a DataError.
    """

    if text_tokenizer is None:

        text_tokenizer = TextTokenizer.from_pretrained(max_tokens=exp.text.max_tokens)
    want = exp.text_vocab_identity
    if want is not None and text_tokenizer.vocab_identity() != want:
        raise CheckpointError(f"the decoder was trained on text of vocabulary {want!r}, but the text "
                              f"tokenizer's is {text_tokenizer.vocab_identity()!r}")
    batch = text_tokenizer.encode(prompts)
    if refuse_unknown:
        _refuse_all_unknown(prompts, batch, want or text_tokenizer.vocab_identity())
    text_params, ident = text_weights.frozen_params(exp.text, exp.text_weights, exp.train.seed)
    log.info("text encoder %s, S=%d", ident, batch.ids.shape[1])
    tokens_psc, _ = jax.jit(encoder.encode)(text_params, batch.ids, batch.mask)
    return text_params, tokens_psc, jnp.asarray(batch.mask)


def _refuse_all_unknown(prompts: list[str], batch: Any, vocab: str) -> None:

    for i, (ids_s, mask_s) in enumerate(zip(np.asarray(batch.ids), np.asarray(batch.mask))):
        pieces = ids_s[mask_s]
        pieces = pieces[(pieces != CLS_ID) & (pieces != SEP_ID)]
        if pieces.size and (pieces == UNK_ID).all():
            raise DataError(f"prompt {i} ({prompts[i]!r}) is all [UNK] in the text vocabulary {vocab!r}: the "
                            "model would read none of it; write it in words of that vocabulary (English)")


def sample_codes(dec: LoadedDecoder, text_params: Any, text_psc: jax.Array, mask_ps: jax.Array, *,
                 num_samples: int, max_new_tokens: int, options: dict[str, Any], seed: int,
                 min_new_tokens: int | Sequence[int] = 0) -> tuple[np.ndarray, np.ndarray]:
    """Codes [P*K, N] and lengths [P*K]; row ``i * K + k`` is prompt i's sample k.

    ``min_new_tokens``: the fewest codes before EOS may be drawn, one int for
    all prompts or [P] ints (one per prompt, shared by its K samples).
    """

    text_bsc = jnp.repeat(text_psc, num_samples, axis=0)
    mask_bs = jnp.repeat(mask_ps, num_samples, axis=0)
    min_p = np.asarray(min_new_tokens)
    min_b = min_p if min_p.ndim == 0 else np.repeat(min_p, num_samples)
    u_bsc, u_bs = empty_text(text_params, max_tokens=int(text_psc.shape[1]), batch=1)
    tokens_bn, lengths_b = sample(dec.exp.model, dec.params, text_bsc, mask_bs, key=seed_key(seed),
                                  max_new_tokens=max_new_tokens, min_new_tokens=min_b, uncond_text_bsc=u_bsc,
                                  uncond_text_mask_bs=u_bs, **options)
    return np.asarray(tokens_bn), np.asarray(lengths_b)


def decode_codes(tok: Any, codes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Denormalised features [len(c) * frames_per_token, 272] of each code list, decoded as one padded batch.

    With ``tok.cfg.foot_lock`` each row then goes through
    :func:`mm_jax.motion.foot_lock.foot_lock` (planted feet held still), after it
    is cut back to its own length: this is the one decode of generation and of
    every evaluation, so they all see the locked motion.

    Rows are padded to the longest list by repeating their last code (one
    compile per longest length) and each output is cut back to its own length.
    The conv decoder is not causal, so the frames within its receptive field of
    a row's end see that padding; decoding rows one by one (as :func:`generate`
    does) avoids it at one call (and one compile per length) per row.

    Raises:
      DataError: an empty code list (there is no motion to decode).
    """

    if not len(codes) or any(len(c) == 0 for c in codes):
        raise DataError("decode_codes needs at least one code list and no empty ones")
    n_max = max(len(c) for c in codes)
    ids = np.zeros((len(codes), n_max), np.int32)
    for i, c in enumerate(codes):
        ids[i, : len(c)], ids[i, len(c):] = c, c[-1]
    # the decoder never sees foot_lock (a post-step): one compile serves the lock on and off
    feats = np.asarray(_decode(tok.params, jnp.asarray(ids), dataclasses.replace(tok.cfg, foot_lock=False)))
    fpt = tok.cfg.frames_per_token
    out = [np.asarray(tok.normalizer.denormalize(f[: len(c) * fpt]), np.float32) for f, c in zip(feats, codes)]
    if not tok.cfg.foot_lock:
        return out
    # a non-finite row is left for the caller's own check (generate: NonFiniteError naming the prompt)
    return [foot_lock(f) if np.isfinite(f).all() else f for f in out]


def _write_sample(stem: pathlib.Path, features_tf: np.ndarray, prompt: str, render: bool) -> dict[str, Any]:
    """Writes one motion's features, joints, BVH (and GIF); returns their paths and frame count."""

    joints_tj3 = np.asarray(jax.jit(joints_from_features)(jnp.asarray(features_tf)))
    paths = {"features": f"{stem}.npy", "joints": f"{stem}_joints.npy", "bvh": f"{stem}.bvh"}
    np.save(paths["features"], features_tf)
    np.save(paths["joints"], joints_tj3)
    write_motion_bvh(paths["bvh"], features_tf)
    if render:

        paths["gif"] = f"{stem}.gif"
        render_motion(joints_tj3, paths["gif"], title=prompt)
    return {"frames": int(features_tf.shape[0]), "paths": paths}


OUTPUT_SUFFIXES = (".npy", "_joints.npy", ".bvh", ".gif")  # the files of one sample's stem


def _stems(out: pathlib.Path, prompts: list[str], num_samples: int) -> list[pathlib.Path]:
    return [out / f"{i:03d}_{slug(p)}_{k}" for i, p in enumerate(prompts) for k in range(num_samples)]


def _check_out_dir(out: pathlib.Path, prompts: list[str], num_samples: int, overwrite: bool) -> None:
    """Refuses (before any model is loaded) an ``out`` that is a file, or holds outputs this call would write."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out_dir {out} is an existing file; generate writes a directory (features, joints, "
                          "BVH, GIF per sample and generations.json): name a directory")
    if overwrite or not out.is_dir():
        return
    targets = [out / "generations.json"] + [pathlib.Path(f"{stem}{sfx}") for stem in _stems(out, prompts, num_samples)
                                            for sfx in OUTPUT_SUFFIXES]
    clash = [p.name for p in targets if p.exists()]
    if clash:
        more = f" and {len(clash) - 3} more" if len(clash) > 3 else ""
        raise ConfigError(f"out_dir {out} already holds generated files ({', '.join(clash[:3])}{more}); pass "
                          "overwrite=True (--overwrite) to replace them, or another out_dir")


def _remove_previous(out: pathlib.Path) -> None:
    """With ``overwrite``: removes the files an earlier ``generations.json`` in ``out`` lists (so runs never mix)."""
    path = out / "generations.json"
    try:
        samples = json.loads(path.read_text()).get("samples", [])
    except (OSError, ValueError, AttributeError):
        return
    for rec in samples:
        for p in (rec.get("paths") or {}).values() if isinstance(rec, dict) else ():
            f = out / pathlib.Path(p).name  # by name: the listing's paths may be relative to another cwd
            if f.is_file():
                f.unlink()
    path.unlink(missing_ok=True)


def _code_budget(seconds: float, frames_per_token: int, max_motion_tokens: int, decoder_run: Any
                 ) -> tuple[int, int]:
    """(codes for ``seconds``, ``max_new_tokens``); warns in one line when the model's length caps ``seconds``."""

    budget = max_tokens_for_seconds(seconds, frames_per_token=frames_per_token)
    max_new = min(budget + 1, max_motion_tokens - 1)  # + 1: room for EOS
    if budget > max_new:
        log.warning("seconds=%g asks for %d motion codes but decoder run %s holds at most %d "
                    "(max_motion_tokens=%d): motions are capped at %.2f s", seconds, budget, decoder_run,
                    max_new, max_motion_tokens, max_new * frames_per_token / 30.0)
    return budget, max_new


def _check_request(prompts: Sequence[str], num_samples: int, seconds: float, seed: int) -> list[str]:
    """The checked prompts; ConfigError on a bad count, length or seed (before any model is loaded)."""
    prompts = _check_prompts(prompts)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ConfigError(f"num_samples={num_samples!r} must be a positive int")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (math.isfinite(seconds)
                                                                                  and seconds > 0):
        raise ConfigError(f"seconds={seconds!r} must be a finite number > 0 (the longest motion)")
    seed_key(seed)  # ConfigError outside [0, 2**32)
    return prompts


def _write_samples(out: pathlib.Path, tok: Any, prompts: list[str], num_samples: int, tokens_bn: np.ndarray,
                   lengths_b: np.ndarray, *, render: bool, progress: Any) -> list[dict[str, Any]]:
    """Decodes each row on its own (no padding in the conv decoder's view) and writes its files."""
    results = []
    for b, (codes_n, n) in enumerate(zip(tokens_bn, lengths_b)):
        i, k = divmod(b, num_samples)
        rec = {"prompt": prompts[i], "prompt_index": i, "sample": k, "num_tokens": int(n),
               "codes": codes_n[:n].tolist(), "empty": int(n) == 0, "frames": 0, "paths": {}}
        if n > 0:
            (feats_tf,) = decode_codes(tok, [codes_n[:n]])
            if not np.isfinite(feats_tf).all():
                raise NonFiniteError(f"decoded features of prompt {i} ({prompts[i]!r}) sample {k} "
                                     "are not finite")
            rec.update(_write_sample(out / f"{i:03d}_{slug(prompts[i])}_{k}", feats_tf, prompts[i], render))
        else:
            log.warning("prompt %d (%r) sample %d: no motion codes before EOS; nothing written",
                        i, prompts[i], k)
        results.append(rec)
        if progress is not None:
            progress(b + 1, len(tokens_bn))
    return results


def generate(decoder_run: str | pathlib.Path, prompts: Sequence[str], out_dir: str | pathlib.Path, *,
             num_samples: int = 1, seconds: float = 4.0, min_seconds: float = 0.0, cfg_scale: float = 2.5,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 0.95, seed: int = 0, render: bool = True,
             tokenizer_run: str | pathlib.Path | None = None, text_tokenizer: Any = None,
             overwrite: bool = False, progress: Any = None) -> list[dict[str, Any]]:
    """Samples ``num_samples`` motions per prompt from a decoder run and writes them to ``out_dir``.

    Args:
      decoder_run: a ``mm_jax.train.loop.run`` work directory.
      prompts: P non-empty captions, each with at least one word the text vocabulary knows.
      out_dir: output directory (created); see the module docstring for its files.
      num_samples: K samples per prompt (one batch of P*K rows, one key).
      seconds: the longest motion to sample (fewer if the model emits EOS), finite
        and > 0; capped, with a one-line warning, by the model's ``max_motion_tokens``.
      min_seconds: the shortest motion: EOS is suppressed until
        ``ceil(min_seconds * 30 / frames_per_token)`` codes exist, in [0,
        ``seconds``]. The default 0 keeps the model's own EOS (a clip may stop
        at once), as the library always did; ``mm-jax generate`` defaults to
        ``seconds`` instead (its user asked for that length); ``min_seconds ==
        seconds`` gives exactly the budget's codes.
      cfg_scale, temperature, top_k, top_p: as in :func:`mm_jax.sample.sample`.
      seed: the sampling key ``key(seed)``, in [0, 2**32); the same seed gives the same motions.
      render: also render a GIF per motion.
      tokenizer_run: the motion tokenizer run; default the one the decoder run
        records. Either must have the identity the decoder's checkpoint records.
      text_tokenizer: an object with ``encode(prompts)`` and ``vocab_identity()``;
        default ``TextTokenizer.from_pretrained`` (tests pass a fake one).
      overwrite: replace the outputs of an earlier call in ``out_dir``.
      progress: ``progress(done, total)`` after each sample is written.

    Returns:
      One dict per sample, prompt-major: ``prompt``, ``prompt_index``, ``sample``,
      ``num_tokens``, ``frames``, ``empty``, ``paths`` (features, joints, bvh[, gif]).

    Raises:
      DataError: an empty prompt, or one that is all [UNK]. ConfigError: bad
        options (``seconds`` not finite and > 0, ``min_seconds`` outside [0,
        ``seconds``], a seed outside [0, 2**32)), an ``out_dir`` that is a file
        or holds earlier outputs (without ``overwrite``).
      CheckpointError: a decoder or tokenizer run that cannot be loaded or does
        not match (the tokenizer's identity is not the checkpoint's).
      NonFiniteError: decoded features with NaN/inf.
    """

    prompts = _check_request(prompts, num_samples, seconds, seed)
    out = pathlib.Path(out_dir)
    _check_out_dir(out, prompts, num_samples, overwrite)
    dec = load_decoder(decoder_run)
    tok, tok_run = load_tokenizer_of(dec, decoder_run, tokenizer_run)
    text_params, text_psc, mask_ps = text_features(dec.exp, prompts, text_tokenizer, refuse_unknown=True)
    budget, max_new = _code_budget(seconds, tok.cfg.frames_per_token, dec.exp.model.max_motion_tokens,
                                   decoder_run)
    min_new = min(min_tokens_for_seconds(min_seconds, seconds=seconds, frames_per_token=tok.cfg.frames_per_token),
                  max_new)
    options = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "cfg_scale": cfg_scale}
    tokens_bn, lengths_b = sample_codes(dec, text_params, text_psc, mask_ps, num_samples=num_samples,
                                        max_new_tokens=max_new, options=options, seed=seed,
                                        min_new_tokens=min_new)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        _remove_previous(out)
    results = _write_samples(out, tok, prompts, num_samples, tokens_bn, np.minimum(lengths_b, budget),
                             render=render, progress=progress)
    doc = {"decoder_run": str(decoder_run), "decoder_step": dec.step, "tokenizer_run": str(tok_run),
           "tokenizer_step": tok.step, "seed": seed, "num_samples": num_samples, "seconds": seconds,
           "min_seconds": min_seconds, "max_new_tokens": max_new, "min_new_tokens": min_new, **options,
           "samples": results}
    (out / "generations.json").write_text(json.dumps(doc, indent=2) + "\n")
    log.info("wrote %d samples of %d prompts to %s", len(results), len(prompts), out)
    return results
