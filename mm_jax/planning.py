"""Memory planning of a decoder train step in a fresh process with fake CPU devices (stage: train, planning).

``mm_jax.model.plan.plan_memory`` needs a process with exactly as many
devices as the mesh. :func:`run_plan` starts one: a subprocess of this
module with ``JAX_PLATFORMS=cpu`` and
``XLA_FLAGS=--xla_force_host_platform_device_count=<data*fsdp*tensor>``, which
compiles the step on abstract shapes (nothing is allocated), applies
``plan.fits`` for the target device, and prints one JSON line that the parent
returns. An error in the child (an unknown preset, a batch that does not
divide the mesh) comes back as the same named error class.

    python -m mm_jax.planning '{"model_preset": "tiny", "mesh": {"data": 1, "fsdp": 2, "tensor": 1}, ...}'
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from typing import Any, Mapping

from mm_jax import errors
from mm_jax.errors import ConfigError, MmJaxError

log = logging.getLogger(__name__)

_RESULT = "PLAN_JSON "


def _mesh_sizes(mesh: Any) -> dict[str, int]:
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


def run_plan(model_preset: str, mesh: Any, batch: int, seq: int | None = None,
             device: str | float | None = None,
             *, optimizer: str = "adamw", headroom: float = 0.9, overrides: Mapping[str, Any] | None = None,
             timeout: float = 600.0) -> dict[str, Any]:
    """Plans one train step of ``model_preset`` on ``mesh`` in a subprocess.

    Args:
      model_preset: a ``mm_jax.model.PRESETS`` name (``tiny`` ... ``7b``).
      mesh: ``{"data": d, "fsdp": f, "tensor": t}`` or a ``MeshConfig`` with concrete sizes.
      batch: global batch size (divisible by data * fsdp).
      seq: decoder length T = S + N (default: the model's block size).
      device: a ``plan.DEVICE_GIB`` name (v5e, v4, v5p, h100) or GiB; adds ``fits``.
      optimizer: 'adamw' or 'sgd'.
      headroom: usable fraction of the device memory for ``fits``.
      overrides: ModelConfig field changes (e.g. ``{"remat": False}``).
      timeout: seconds before the child is killed.

    Returns:
      ``plan.plan_memory``'s dict (per-device bytes, FLOPs, timings) plus
      ``model_preset``, ``batch``, ``seq`` and, when ``device`` is given,
      ``device`` and ``fits`` (bool, ``plan.fits`` with ``headroom``).

    Raises:
      ConfigError / ShardingError: as raised in the child; MmJaxError if it dies.
    """
    sizes = _mesh_sizes(mesh)
    request = {"model_preset": model_preset, "mesh": sizes, "batch": batch, "seq": seq, "device": device,
               "optimizer": optimizer, "headroom": headroom, "overrides": dict(overrides or {})}
    n = math.prod(sizes.values())
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if "force_host_platform_device_count" not in f]
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": " ".join(flags + [f"--xla_force_host_platform_device_count={n}"])}
    try:
        proc = subprocess.run([sys.executable, "-m", "mm_jax.planning", json.dumps(request)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MmJaxError(f"planning {model_preset} on {sizes} took more than {timeout} s") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT)]
    if not lines:
        raise MmJaxError(f"the planning process exited with {proc.returncode}: {proc.stderr[-2000:]}")
    out = json.loads(lines[-1][len(_RESULT):])
    if "error" in out:
        cls = getattr(errors, out["error"], MmJaxError)
        raise (cls if isinstance(cls, type) and issubclass(cls, MmJaxError) else MmJaxError)(out["message"])
    return out


def _plan(request: dict[str, Any]) -> dict[str, Any]:
    """The child's work: plan_memory (+ fits) for one request."""
    import dataclasses

    from mm_jax.model import plan
    from mm_jax.model.config import preset
    from mm_jax.sharding import MeshConfig

    cfg = preset(request["model_preset"])
    if request["overrides"]:
        cfg = dataclasses.replace(cfg, **request["overrides"])
    result = plan.plan_memory(cfg, MeshConfig(**request["mesh"]), request["batch"], request["seq"],
                              optimizer=request["optimizer"])
    result.update(model_preset=request["model_preset"], batch=request["batch"],
                  seq=request["seq"] or cfg.block_size)
    if request["device"] is not None:
        fits = plan.fits(result, request["device"], request["headroom"])
        result.update(device=request["device"], fits=fits)
    return result


def main(argv: list[str]) -> int:
    """Child entry point: one JSON request in argv, one ``PLAN_JSON`` line out."""
    try:
        out = _plan(json.loads(argv[0]))
        code = 0
    except (MmJaxError, TypeError) as e:
        out, code = {"error": type(e).__name__, "message": str(e)}, 2
    sys.stdout.write(_RESULT + json.dumps(out) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
