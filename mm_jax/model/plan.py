"""Abstract-shape memory planner: will a train step of this model fit on this mesh?

Stage: model (planning; no CLI here). Inputs: a ``ModelConfig``, a
``MeshConfig``, the global batch size and the sequence length T = S + N.
Output: a flat dict of per-device bytes (params, optimizer state, batch,
compiler temporaries), compile timings and FLOPs, from a train step
(``value_and_grad`` of the next-token loss + an optax update) that is lowered
and compiled with ``jax.jit(in_shardings=..., out_shardings=...)`` on
``jax.ShapeDtypeStruct`` inputs: nothing is materialised, so it plans a 7B
model on a laptop. The compiled program is XLA's for the *local* backend
(fake CPU devices when planning for TPU/GPU), so temporaries are an estimate.

The process must have exactly as many devices as the mesh (the CLI starts a
subprocess with ``--xla_force_host_platform_device_count``).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from mm_jax import sharding
from mm_jax.errors import ConfigError
from mm_jax.model.config import ModelConfig
from mm_jax.model.llama import abstract_params
from mm_jax.model.loss import forward_loss

logger = logging.getLogger(__name__)

DEVICE_GIB = {"v5e": 16.0, "v4": 32.0, "v5p": 95.0, "h100": 80.0}
OPTIMIZERS = ("adamw", "sgd")
GIB = 1024 ** 3


def _optimizer(name: str) -> optax.GradientTransformation:
    if name == "adamw":
        return optax.adamw(4e-4, weight_decay=0.1)
    if name == "sgd":
        return optax.sgd(1e-3)
    raise ConfigError(f"optimizer {name!r} is not one of {list(OPTIMIZERS)}")


def _nbytes(tree: Any, shardings: Any) -> int:
    """Per-device bytes of a tree of ShapeDtypeStructs under their shardings."""
    leaves = jax.tree.leaves(tree)
    shards = jax.tree.leaves(shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
    return sum(math.prod(s.shard_shape(a.shape)) * np.dtype(a.dtype).itemsize
               for a, s in zip(leaves, shards))


def _batch_specs(cfg: ModelConfig, batch: int, seq: int, mesh) -> tuple:
    s = cfg.max_text_tokens
    n = seq - s
    if n < 2:
        raise ConfigError(f"seq={seq} leaves {n} motion tokens after max_text_tokens={s}; need >= 2")
    bsh = sharding.batch_sharding(mesh, batch)
    shapes = [((batch, s, cfg.text_dim), jnp.float32), ((batch, s), jnp.bool_),
              ((batch, n), jnp.int32), ((batch, n), jnp.bool_)]
    return tuple(jax.ShapeDtypeStruct(shp, dt, sharding=bsh) for shp, dt in shapes)


def _train_step(cfg: ModelConfig, opt: optax.GradientTransformation):
    def step(params, opt_state, batch, key):
        def loss_fn(p):
            return forward_loss(cfg, p, *batch, key=key if cfg.dropout > 0 else None)
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss
    return step


def plan_memory(model_cfg: ModelConfig, mesh_cfg: sharding.MeshConfig, batch: int,
                seq: int | None = None, optimizer: str = "adamw",
                devices: list | None = None) -> dict[str, Any]:
    """Per-device memory of one train step, from abstract shapes only.

    Args:
      model_cfg: the decoder config (its ``dtype``/``remat``/``scan_layers`` apply).
      mesh_cfg: mesh sizes; their product must equal the device count.
      batch: global batch size (must divide data * fsdp).
      seq: decoder length T = S + N with S = ``max_text_tokens``; default ``block_size``.
      optimizer: 'adamw' or 'sgd'.
      devices: default ``jax.devices()``.

    Returns:
      A flat dict: ``params_bytes``, ``opt_state_bytes``, ``batch_bytes``,
      ``temp_bytes`` (compiler temporaries: activations, gradients, buffers),
      ``argument_bytes``, ``output_bytes``, ``alias_bytes``, ``total_bytes``
      (arguments + outputs - aliased + temporaries), ``num_params``,
      ``num_devices``, ``mesh`` (sizes), ``flops_per_device`` (XLA cost
      analysis of the compiled step; -1 when unavailable; a scanned loop body
      is counted once, so it undercounts with ``scan_layers``),
      ``model_flops_per_device`` (``flops_per_token`` * batch * seq / devices),
      ``lower_s`` and ``compile_s``.
    """
    seq = model_cfg.block_size if seq is None else seq
    opt = _optimizer(optimizer)
    mesh = sharding.make_mesh(mesh_cfg, devices)
    boxed = abstract_params(model_cfg)
    abstract = nn.meta.unbox(boxed)
    p_sh = sharding.param_shardings(boxed, mesh)
    rep = sharding.replicated(mesh)
    o_abs = jax.eval_shape(opt.init, abstract)
    o_sh = optax.tree_map_params(opt, lambda _, s: s, o_abs, p_sh, transform_non_params=lambda _: rep)
    batch_sds = _batch_specs(model_cfg, batch, seq, mesh)
    key_sds = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=rep)
    jitted = jax.jit(_train_step(model_cfg, opt),
                     in_shardings=(p_sh, o_sh, tuple(s.sharding for s in batch_sds), rep),
                     out_shardings=(p_sh, o_sh, rep), donate_argnums=(0, 1))
    t0 = time.perf_counter()
    with sharding.activation_rules(mesh):
        lowered = jitted.lower(sharding.abstract_with_shardings(abstract, p_sh),
                               sharding.abstract_with_shardings(o_abs, o_sh), batch_sds, key_sds)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    mem = compiled.memory_analysis()
    result = {
        "params_bytes": _nbytes(abstract, p_sh),
        "opt_state_bytes": _nbytes(o_abs, o_sh),
        "batch_bytes": _nbytes(batch_sds, [s.sharding for s in batch_sds]),
        "temp_bytes": int(mem.temp_size_in_bytes),
        "argument_bytes": int(mem.argument_size_in_bytes),
        "output_bytes": int(mem.output_size_in_bytes),
        "alias_bytes": int(mem.alias_size_in_bytes),
        "num_params": model_cfg.num_params(),
        "num_devices": mesh.size,
        "mesh": dict(mesh.shape),
        "flops_per_device": _flops(compiled),
        "model_flops_per_device": model_cfg.flops_per_token(seq) * batch * seq / mesh.size,
        "lower_s": t1 - t0,
        "compile_s": t2 - t1,
    }
    result["total_bytes"] = (result["argument_bytes"] + result["output_bytes"]
                             - result["alias_bytes"] + result["temp_bytes"])
    logger.info("memory plan: %s", {k: v for k, v in result.items() if k != "mesh"})
    return result


def _flops(compiled) -> float:
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost.get("flops", -1.0))
    except Exception:  # noqa: BLE001 - cost analysis is optional per backend
        return -1.0


def fits(plan: dict[str, Any], device: str | float, headroom: float = 0.9) -> bool:
    """Whether ``plan['total_bytes']`` fits ``headroom`` of a device's memory.

    Args:
      plan: from :func:`plan_memory`.
      device: a name in ``DEVICE_GIB`` (v5e 16, v4 32, v5p 95, h100 80 GiB) or GiB as a number.
      headroom: usable fraction of the memory (runtime, fragmentation).
    """
    if isinstance(device, str):
        if device not in DEVICE_GIB:
            raise ConfigError(f"unknown device {device!r}; known: {sorted(DEVICE_GIB)} or a GiB number")
        gib = DEVICE_GIB[device]
    else:
        gib = float(device)
    return plan["total_bytes"] <= headroom * gib * GIB
