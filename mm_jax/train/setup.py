"""Placement and compilation of a decoder run: shardings, initial state, jitted steps, identities.

Stage: train. Inputs: the stage configs and a ``jax.sharding.Mesh``.
Outputs: the train state's ``NamedSharding`` tree (params per
``sharding.param_shardings``, optimizer moments like their params, counters
replicated), the initial state created directly in place, the steps jitted
once with in/out shardings (``donate_argnums=0`` for the train step) and
compiled ahead of time inside ``sharding.activation_rules(mesh)``, the frozen
text encoder's params replicated on every device, and the identities that
shards (``build_pipeline``) and checkpoints (``Checkpointer.restore``) are
checked against. Only this module and :mod:`mm_jax.train` apply ``jax.jit``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from mm_jax import configs, sharding
from mm_jax.errors import CheckpointError, ConfigError
from mm_jax.model.config import ModelConfig
from mm_jax.model.llama import abstract_params, init_params
from mm_jax.pipeline import PipelineConfig
from mm_jax.text import weights as text_weights_module
from mm_jax.text.config import model_dir, TextConfig
from mm_jax.text.tokenize import read_vocab
from mm_jax.tokenizer.config import TokenizerConfig
from mm_jax.train.config import ExperimentConfig, TrainConfig
from mm_jax.train.recipe import TrainState
from mm_jax.train.step import BATCH_KEYS, make_eval_step, make_optimizer, make_train_step

log = logging.getLogger(__name__)

# Pipeline fields that decide the batch stream; a resume must not change them.
STREAM_FIELDS = ("global_batch_size", "max_text_tokens", "max_motion_tokens", "text_dropout", "seed",
                 "worker_count")


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a run's state and batches live (cheap: abstract shapes only, nothing compiled)."""

    mesh: Any
    opt: optax.GradientTransformation
    state_shardings: Any  # TrainState of NamedShardings
    abstract_state: Any  # TrainState of ShapeDtypeStructs with shardings: the init/restore target
    batch_sharding: Any


@dataclasses.dataclass(frozen=True)
class Compiled:
    """The steps, jitted once with in/out shardings and compiled ahead of time."""

    train_step: Any  # (state, batch, key, text_params) -> (state, metrics); donates state
    eval_step: Any  # (params, batch, text_params) -> {"nll", "correct", "tokens"} sums; None if unused
    compile_s: float


def batch_specs(pipe_cfg: PipelineConfig, batch_sh: Any) -> dict[str, jax.ShapeDtypeStruct]:
    """Abstract global batch arrays [B, S] / [B, N] with the batch sharding."""
    b, s, n = pipe_cfg.global_batch_size, pipe_cfg.max_text_tokens, pipe_cfg.max_motion_tokens
    shapes = {"text_ids": ((b, s), jnp.int32), "text_mask": ((b, s), jnp.bool_),
              "motion_ids": ((b, n), jnp.int32), "motion_mask": ((b, n), jnp.bool_)}
    return {k: jax.ShapeDtypeStruct(shp, dt, sharding=batch_sh) for k, (shp, dt) in shapes.items()}


def state_shardings(model_cfg: ModelConfig, opt: optax.GradientTransformation, mesh: Any
                    ) -> tuple[Any, TrainState]:
    """(NamedSharding tree, abstract state) of a TrainState on ``mesh``."""
    boxed = abstract_params(model_cfg)
    p_sh = sharding.param_shardings(boxed, mesh)
    abstract_p = nn.meta.unbox(boxed)
    rep = sharding.replicated(mesh)
    o_abs = jax.eval_shape(opt.init, abstract_p)
    o_sh = optax.tree_map_params(opt, lambda _, s: s, o_abs, p_sh, transform_non_params=lambda _: rep)
    abstract = TrainState(jax.ShapeDtypeStruct((), jnp.int32), abstract_p, o_abs)
    return TrainState(rep, p_sh, o_sh), abstract


def check_batch_divides(pipe_cfg: PipelineConfig, train_cfg: TrainConfig, mesh: Any) -> None:
    """ConfigError unless the (micro-)batch divides the mesh's data * fsdp ways times ``batch_branches``.

    Each device's rows are dealt into the branches, so they must divide by ``batch_branches`` too.
    """
    ways = mesh.shape["data"] * mesh.shape["fsdp"]
    micro = pipe_cfg.global_batch_size // train_cfg.grad_accum_steps
    if micro % (ways * train_cfg.batch_branches):
        raise ConfigError(f"micro-batch {micro} (global_batch_size {pipe_cfg.global_batch_size} / "
                          f"grad_accum_steps {train_cfg.grad_accum_steps}) is not divisible by the mesh's "
                          f"data*fsdp = {ways} x batch_branches = {train_cfg.batch_branches}")


def place(model_cfg: ModelConfig, train_cfg: TrainConfig, pipe_cfg: PipelineConfig, mesh: Any, *,
          max_replicated: float = 1.0) -> Placement:
    """The optimizer and the state/batch shardings of a run on ``mesh``.

    ShardingError when more than ``max_replicated`` of the params would be
    replicated (:func:`mm_jax.sharding.assert_params_sufficiently_sharded`).
    """
    check_batch_divides(pipe_cfg, train_cfg, mesh)
    opt = make_optimizer(train_cfg, nn.meta.unbox(abstract_params(model_cfg)))
    st_sh, abstract = state_shardings(model_cfg, opt, mesh)
    frac = sharding.assert_params_sufficiently_sharded(abstract.params, st_sh.params, max_replicated)
    log.info("params %.2f%% replicated beyond the data axis (tolerance %.0f%%)", 100 * frac, 100 * max_replicated)
    return Placement(mesh=mesh, opt=opt, state_shardings=st_sh,
                     abstract_state=sharding.abstract_with_shardings(abstract, st_sh),
                     batch_sharding=sharding.batch_sharding(mesh, pipe_cfg.global_batch_size))


def compile_steps(model_cfg: ModelConfig, train_cfg: TrainConfig, pipe_cfg: PipelineConfig,
                  placement: Placement, text_abstract: Any, *, with_eval: bool = True) -> Compiled:
    """Jits the train step (donating the state) and the eval step once and compiles them (AOT)."""
    mesh, st_sh, batch_sh = placement.mesh, placement.state_shardings, placement.batch_sharding
    rep = sharding.replicated(mesh)
    text_sh = jax.tree.map(lambda _: rep, text_abstract)
    batch_in = {k: batch_sh for k in BATCH_KEYS}
    batch = batch_specs(pipe_cfg, batch_sh)
    key_sds = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=rep)
    text_sds = sharding.abstract_with_shardings(text_abstract, text_sh)
    train_jit = jax.jit(make_train_step(model_cfg, train_cfg, placement.opt),
                        in_shardings=(st_sh, batch_in, rep, text_sh), out_shardings=(st_sh, rep),
                        donate_argnums=0)
    eval_jit = jax.jit(make_eval_step(model_cfg), in_shardings=(st_sh.params, batch_in, text_sh),
                       out_shardings=rep)
    t0 = time.perf_counter()
    with sharding.activation_rules(mesh):
        train_c = train_jit.lower(placement.abstract_state, batch, key_sds, text_sds).compile()
        eval_c = (eval_jit.lower(placement.abstract_state.params, batch, text_sds).compile()
                  if with_eval else None)
    compile_s = time.perf_counter() - t0
    log.info("compiled the train and eval steps in %.1f s", compile_s)
    return Compiled(train_step=train_c, eval_step=eval_c, compile_s=compile_s)


def init_key(seed: int) -> jax.Array:
    """The parameter-init key ``fold_in(key(seed), 0)`` (the dropout root is :func:`replicated_key`)."""
    return jax.random.fold_in(jax.random.key(seed), 0)


def init_state(model_cfg: ModelConfig, placement: Placement, *, key: jax.Array) -> TrainState:
    """Fresh params and optimizer state, created in place with their shardings."""
    def init(k: jax.Array) -> TrainState:
        params = init_params(model_cfg, key=k)
        return TrainState(jnp.int32(0), params, placement.opt.init(params))

    return jax.jit(init, out_shardings=placement.state_shardings)(key)


def replicate(tree: Any, mesh: Any) -> Any:
    """Host (numpy) leaves -> global arrays replicated on every device of ``mesh`` (multi-process safe)."""
    rep = sharding.replicated(mesh)

    def one(x: Any) -> jax.Array:
        arr = np.asarray(x)
        return jax.make_array_from_callback(arr.shape, rep, lambda idx: arr[idx])

    return jax.tree.map(one, tree)


def replicated_key(seed: int, mesh: Any) -> jax.Array:
    """The run's dropout root key ``fold_in(key(seed), 1)``, replicated (a typed key array).

    Subkeys of ``key(seed)``: 0 initialises the params (:func:`init_key`), 1 is
    the dropout root from which each step folds in its step number.
    """
    root = jax.random.fold_in(jax.random.key(seed), 1)
    return jax.random.wrap_key_data(replicate(np.asarray(jax.random.key_data(root)), mesh))


def vocab_identity(text_cfg: TextConfig) -> str:
    """The pretrained vocabulary's identity, as ``TextTokenizer.vocab_identity()`` computes it.

    Computed here from vocab.txt so the training process never imports
    tensorflow (building a ``TextTokenizer`` does).
    """

    vocab = read_vocab(model_dir() / "vocab.txt")
    digest = hashlib.sha256("".join(t + "\n" for t in vocab).encode("utf-8")).hexdigest()
    return f"{text_cfg.name}:bert-uncased:vocab{len(vocab)}:sha256={digest}"


def tokenizer_identity(exp: ExperimentConfig) -> dict[str, Any]:
    """What the shards' tokenizer must be: its run's config + step, or just the codebook."""
    ident: dict[str, Any] = {"fsq_levels": list(exp.model.fsq_levels)}
    if exp.tokenizer_run is None:
        return ident
    path = pathlib.Path(exp.tokenizer_run) / "tokenizer.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{exp.tokenizer_run} is not a tokenizer run: "
                              f"cannot read {path}: {e}") from None

    tok = configs.from_dict(TokenizerConfig, saved["config"])
    if list(tok.fsq_levels) != ident["fsq_levels"]:
        raise ConfigError(f"tokenizer run {exp.tokenizer_run} has fsq_levels {list(tok.fsq_levels)} but "
                          f"model.fsq_levels is {ident['fsq_levels']}")
    return {**tok.identity(), "step": int(saved.get("trained_steps", 0))}


def run_meta(exp: ExperimentConfig, manifest: dict[str, Any], text_ident: dict[str, Any]) -> dict[str, Any]:
    """The JSON saved with every checkpoint; ``checked_meta`` keys must match on resume."""
    return {"model": configs.to_dict(exp.model), "tokenizer": manifest["tokenizer"]["identity"],
            "text": text_ident, "stream": {k: getattr(exp.pipeline, k) for k in STREAM_FIELDS},
            "train": configs.to_dict(exp.train), "pipeline": configs.to_dict(exp.pipeline)}


def checked_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The part of :func:`run_meta` a resumed run must share: model, tokenizer, text encoder, data stream."""
    return {k: meta[k] for k in ("model", "tokenizer", "text", "stream")}


@dataclasses.dataclass(frozen=True)
class FreshRun:
    """A compiled train step with a freshly initialised state (benchmarks, multi-host checks)."""

    placement: Placement
    compiled: Compiled
    state: TrainState
    key: jax.Array
    text_params: Any


def fresh_run(exp: ExperimentConfig, mesh: Any, *, text_weights: str | None = None) -> FreshRun:
    """Places, compiles (train step only) and initialises ``exp`` on ``mesh``; no checkpoint is read.

    ``text_weights`` overrides ``exp.text_weights`` ("pretrained" or "random").
    """
    placement = place(exp.model, exp.train, exp.pipeline, mesh, max_replicated=exp.mesh.max_replicated)
    text_host, _ = text_weights_module.frozen_params(exp.text, text_weights or exp.text_weights, exp.train.seed)
    text_abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), text_host)
    compiled = compile_steps(exp.model, exp.train, exp.pipeline, placement, text_abstract, with_eval=False)
    state = init_state(exp.model, placement, key=init_key(exp.train.seed))
    return FreshRun(placement, compiled, state, replicated_key(exp.train.seed, mesh), replicate(text_host, mesh))
