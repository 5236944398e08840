"""Memory plan of the decoder's train step: will the step ``mm-jax train`` runs fit this mesh?

Stage: train (planning). Input: an :class:`ExperimentConfig` (model, train,
pipeline, text encoder, mesh with concrete sizes) or a model preset name with
a global batch and a sequence length. Output: a flat dict of per-device bytes
(params, optimizer state, batch, frozen text encoder, compiler temporaries),
the compile time and FLOPs.

The plan compiles *the* train step: :func:`mm_jax.train.setup.place` and
:func:`mm_jax.train.setup.compile_steps`, the functions :func:`loop.run
<mm_jax.train.loop.run>` calls, with the run's optimizer (clipping, AdamW,
its weight-decay mask), gradient accumulation, the frozen text encoder inside
the step, donation and the state shardings, lowered on
``jax.ShapeDtypeStruct`` inputs: nothing is materialised, so it plans a 7B
model on a laptop. The compiled program is XLA's for the *local* backend
(fake CPU devices when planning for TPU/GPU), so temporaries are an estimate.

A process has as many devices as it has; :func:`run_plan` starts a child
(``python -m mm_jax.train.plan REQUEST``) with ``JAX_PLATFORMS=cpu`` and
``--xla_force_host_platform_device_count=<data*fsdp*tensor>``, which prints
one JSON line the parent returns; an error in the child comes back as the
same named error class.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import subprocess
import sys
from typing import Any, Mapping

import jax
import numpy as np

from mm_jax import configs, errors, sharding
from mm_jax.errors import ConfigError, MmJaxError
from mm_jax.model.config import preset as model_preset
from mm_jax.text import encoder as text_encoder
from mm_jax.train import config as train_config
from mm_jax.train import setup
from mm_jax.train.config import ExperimentConfig

log = logging.getLogger(__name__)

DEVICE_GIB = {"v5e": 16.0, "v4": 32.0, "v5p": 95.0, "h100": 80.0}
GIB = 1024 ** 3
_RESULT = "PLAN_JSON "


def _nbytes(tree: Any, shardings: Any) -> int:
    """Per-device bytes of a tree of ShapeDtypeStructs under their shardings."""
    leaves = jax.tree.leaves(tree)
    shards = jax.tree.leaves(shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
    return sum(math.prod(s.shard_shape(a.shape)) * np.dtype(a.dtype).itemsize for a, s in zip(leaves, shards))


def _flops(compiled: Any) -> float:
    """XLA's cost-analysis FLOPs of the compiled step (-1 where the backend gives none)."""
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost.get("flops", -1.0))
    except Exception:  # noqa: BLE001 - cost analysis is optional per backend
        return -1.0


def plan_memory(exp: ExperimentConfig, devices: list | None = None) -> dict[str, Any]:
    """Per-device memory of one step of ``exp``'s training, from abstract shapes only.

    Returns:
      ``params_bytes``, ``opt_state_bytes``, ``batch_bytes``, ``text_bytes``
      (the frozen encoder, replicated), ``temp_bytes`` (compiler temporaries:
      activations, gradients, buffers), ``argument_bytes``, ``output_bytes``,
      ``alias_bytes``, ``total_bytes`` (arguments + outputs - aliased +
      temporaries), ``num_params`` (total), ``non_vocab_params`` (all but the
      two vocabulary tables), ``vocab_table_params``, ``num_devices``, ``mesh``,
      ``flops_per_device`` (XLA cost analysis; a scanned loop body is counted
      once, so it undercounts with ``scan_layers``), ``model_flops_per_device``
      (``flops_per_token`` x tokens / devices) and ``compile_s``.
    """
    mesh = sharding.make_mesh(exp.mesh, devices)
    placement = setup.place(exp.model, exp.train, exp.pipeline, mesh, max_replicated=exp.mesh.max_replicated)
    text_abstract = jax.eval_shape(lambda k: text_encoder.init_params(exp.text, key=k), jax.random.key(0))
    compiled = setup.compile_steps(exp.model, exp.train, exp.pipeline, placement, text_abstract, with_eval=False)
    mem = compiled.train_step.memory_analysis()
    st_sh, abstract = placement.state_shardings, placement.abstract_state
    batch = setup.batch_specs(exp.pipeline, placement.batch_sharding)
    rep = sharding.replicated(mesh)
    seq = exp.pipeline.max_text_tokens + exp.pipeline.max_motion_tokens
    result = {
        "params_bytes": _nbytes(abstract.params, st_sh.params),
        "opt_state_bytes": _nbytes(abstract.opt_state, st_sh.opt_state),
        "batch_bytes": _nbytes(list(batch.values()), [placement.batch_sharding] * len(batch)),
        "text_bytes": _nbytes(text_abstract, jax.tree.map(lambda _: rep, text_abstract)),
        "temp_bytes": int(mem.temp_size_in_bytes),
        "argument_bytes": int(mem.argument_size_in_bytes),
        "output_bytes": int(mem.output_size_in_bytes),
        "alias_bytes": int(mem.alias_size_in_bytes),
        "num_params": exp.model.num_params(),
        "non_vocab_params": exp.model.non_vocab_params(),
        "vocab_table_params": exp.model.vocab_table_params(),
        "num_devices": mesh.size,
        "mesh": dict(mesh.shape),
        "flops_per_device": _flops(compiled.train_step),
        "model_flops_per_device": exp.model.flops_per_token(seq) * exp.pipeline.global_batch_size * seq / mesh.size,
        "compile_s": compiled.compile_s,
    }
    result["total_bytes"] = (result["argument_bytes"] + result["output_bytes"]
                             - result["alias_bytes"] + result["temp_bytes"])
    log.info("memory plan: %s", {k: v for k, v in result.items() if k != "mesh"})
    return result


def fits(plan: Mapping[str, Any], device: str | float, headroom: float = 0.9) -> bool:
    """Whether ``plan['total_bytes']`` fits ``headroom`` of a device's memory.

    ``device``: a name in ``DEVICE_GIB`` (v5e 16, v4 32, v5p 95, h100 80 GiB) or GiB as a number.
    """
    if isinstance(device, str):
        if device not in DEVICE_GIB:
            raise ConfigError(f"unknown device {device!r}; known: {sorted(DEVICE_GIB)} or a GiB number")
        gib = DEVICE_GIB[device]
    else:
        gib = float(device)
    return plan["total_bytes"] <= headroom * gib * GIB


def mesh_sizes(mesh: Any) -> dict[str, int]:
    """{"data", "fsdp", "tensor"} from a MeshConfig or a dict; every size must be concrete (>= 1)."""
    if not isinstance(mesh, Mapping):
        mesh = {"data": mesh.data, "fsdp": mesh.fsdp, "tensor": mesh.tensor}
    unknown = sorted(set(mesh) - {"data", "fsdp", "tensor"})
    if unknown:
        raise ConfigError(f"mesh keys {unknown} are unknown; valid keys: data, fsdp, tensor")
    sizes = {k: int(mesh.get(k, 1)) for k in ("data", "fsdp", "tensor")}
    if any(v < 1 for v in sizes.values()):
        raise ConfigError(f"mesh {sizes}: planning needs concrete sizes >= 1 (no -1)")
    return sizes


def preset_experiment(model: str, mesh: Any, batch: int, seq: int | None = None, *,
                      train_preset: str = "reference", overrides: Mapping[str, Any] | None = None
                      ) -> ExperimentConfig:
    """The experiment ``mm-jax train`` would run for model preset ``model`` at global ``batch`` and length ``seq``.

    Optimisation, text encoder and pipeline settings come from the experiment
    preset ``train_preset``; S is the text encoder's budget and N = ``seq`` - S
    (default: the model's block size), set on every copy as data binding would.
    """
    exp = train_config.preset(train_preset)
    m = model_preset(model)
    if overrides:
        m = dataclasses.replace(m, **overrides)
    s = exp.text.max_tokens
    n = (m.block_size if seq is None else seq) - s
    if n < 3:
        raise ConfigError(f"seq={seq} leaves {n} motion tokens after the text budget S={s}; need >= 3")
    m = dataclasses.replace(m, max_text_tokens=s, max_motion_tokens=n, text_dim=exp.text.width)
    pipe = dataclasses.replace(exp.pipeline, global_batch_size=batch, max_text_tokens=s, max_motion_tokens=n)
    mesh_cfg = mesh if isinstance(mesh, sharding.MeshConfig) else exp.mesh
    return dataclasses.replace(exp, model=m, pipeline=pipe, mesh=dataclasses.replace(mesh_cfg, **mesh_sizes(mesh)))


def run_plan(exp: ExperimentConfig, device: str | float | None = None, *, headroom: float = 0.9,
             timeout: float = 600.0) -> dict[str, Any]:
    """Plans one train step of ``exp`` in a child process with as many fake CPU devices as its mesh.

    Returns :func:`plan_memory`'s dict plus ``batch``, ``seq`` and, when
    ``device`` is given, ``device`` and ``fits`` (:func:`fits` with ``headroom``).

    Raises:
      ConfigError / ShardingError: as raised in the child; MmJaxError if it dies.
    """
    sizes = mesh_sizes(exp.mesh)
    request = {"experiment": configs.to_dict(exp), "device": device, "headroom": headroom}
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": " ".join(flags + [f"--xla_force_host_platform_device_count={math.prod(sizes.values())}"])}
    try:
        proc = subprocess.run([sys.executable, "-m", "mm_jax.train.plan", json.dumps(request)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MmJaxError(f"planning on {sizes} took more than {timeout} s") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT)]
    if not lines:
        raise MmJaxError(f"the planning process exited with {proc.returncode}: {proc.stderr[-2000:]}")
    out = json.loads(lines[-1][len(_RESULT):])
    if "error" in out:
        cls = getattr(errors, out["error"], MmJaxError)
        raise (cls if isinstance(cls, type) and issubclass(cls, MmJaxError) else MmJaxError)(out["message"])
    return out


def _child(request: Mapping[str, Any]) -> dict[str, Any]:
    exp = configs.from_dict(ExperimentConfig, request["experiment"])
    result = plan_memory(exp)
    result.update(batch=exp.pipeline.global_batch_size,
                  seq=exp.pipeline.max_text_tokens + exp.pipeline.max_motion_tokens)
    if request["device"] is not None:
        result.update(device=request["device"], fits=fits(result, request["device"], request["headroom"]))
    return result


def main(argv: list[str]) -> int:
    """Child entry point: one JSON request in argv, one ``PLAN_JSON`` line out."""
    try:
        out, code = _child(json.loads(argv[0])), 0
    except (MmJaxError, TypeError) as e:
        out, code = {"error": type(e).__name__, "message": str(e)}, 2
    sys.stdout.write(_RESULT + json.dumps(out) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
