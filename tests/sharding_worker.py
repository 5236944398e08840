"""Worker for tests/test_sharding.py: runs on 8 fake CPU devices in its own process.

XLA_FLAGS must be set before jax is imported, so this script sets it itself.
For each mesh it computes loss and gradients of a small decoder with
``jax.jit(value_and_grad, in_shardings, out_shardings)`` and compares them with
the single-device result; it records every parameter's actual sharding spec
and the replicated fraction; optionally it runs the memory planner. Results
go to a JSON file that the test checks against its golden specs.

Usage: python tests/sharding_worker.py --meshes 2x2x2,1x2x4 --plan tiny --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

_FLAG = "--xla_force_host_platform_device_count=8"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import linen as nn  # noqa: E402

from mm_jax import sharding  # noqa: E402
from mm_jax.configs import to_dict  # noqa: E402
from mm_jax.model import ModelConfig, abstract_params, forward_loss, init_params  # noqa: E402

# Prime/odd sizes where nothing is sharded (C=13, E=10, S=7, N=11); sharded dims divide 8.
CFG = ModelConfig(num_layers=2, num_heads=4, num_kv_heads=2, width=40, text_dim=13,
                  fsq_levels=(5, 3), vocab_multiple=8, mlp_hidden_override=56)
B, S, N = 8, 7, 11


def _batch(cfg: ModelConfig) -> tuple[np.ndarray, ...]:
    r = np.random.default_rng(0)
    text = r.standard_normal((B, S, cfg.text_dim)).astype(np.float32)
    motion = r.integers(0, cfg.codebook_size, (B, N)).astype(np.int32)
    tm = np.arange(S)[None] < r.integers(2, S + 1, (B, 1))
    mm = np.arange(N)[None] < r.integers(3, N + 1, (B, 1))
    motion[:, 0] = cfg.bos_id
    motion[~mm] = cfg.pad_id
    return text, tm, motion, mm


def _spec_json(spec: jax.sharding.PartitionSpec) -> list:
    return [list(e) if isinstance(e, tuple) else e for e in spec]


def _specs(tree) -> dict[str, list]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(k.key for k in path): _spec_json(leaf.sharding.spec) for path, leaf in flat}


def run_mesh(shape: tuple[int, int, int], params, batch, ref) -> dict:
    t0 = time.perf_counter()
    mesh = sharding.make_mesh(sharding.MeshConfig(data=shape[0], fsdp=shape[1], tensor=shape[2]))
    boxed = abstract_params(CFG)
    p_sh = sharding.param_shardings(boxed, mesh)
    b_sh = sharding.batch_sharding(mesh, B)
    rep = sharding.replicated(mesh)
    params_sh = jax.device_put(params, p_sh)
    batch_sh = jax.device_put(batch, b_sh)
    step = jax.jit(jax.value_and_grad(lambda p, b: forward_loss(CFG, p, *b)[0]),
                   in_shardings=(p_sh, b_sh), out_shardings=(rep, p_sh))
    with sharding.activation_rules(mesh):
        loss, grads = step(params_sh, batch_sh)
    ref_loss, ref_grads = ref
    grad_err = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                   for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)))
    return {
        "mesh": list(shape),
        "loss": float(loss), "ref_loss": float(ref_loss),
        "loss_err": abs(float(loss) - float(ref_loss)), "grad_err": grad_err,
        "param_specs": _specs(params_sh), "grad_specs": _specs(grads),
        "replicated_fraction": sharding.replicated_fraction(nn.meta.unbox(boxed), p_sh),
        "seconds": time.perf_counter() - t0,
    }


def run_plan(name: str) -> dict:
    from mm_jax.train.plan import fits, plan_memory, preset_experiment

    out = plan_memory(preset_experiment(name, {"data": 2, "fsdp": 4, "tensor": 1}, batch=8, seq=48))
    out["fits_h100"] = fits(out, "h100")
    out["fits_1kib"] = fits(out, 1 / 1024 ** 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--meshes", default="2x2x2")
    ap.add_argument("--plan", default="")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    assert jax.device_count() == 8, jax.devices()
    params = init_params(CFG, key=jax.random.key(0))
    batch = _batch(CFG)
    ref = jax.jit(jax.value_and_grad(lambda p, b: forward_loss(CFG, p, *b)[0]))(params, batch)
    result = {"config": to_dict(CFG), "meshes": [], "plan": None}
    for text in filter(None, args.meshes.split(",")):
        shape = tuple(int(v) for v in text.split("x"))
        result["meshes"].append(run_mesh(shape, params, batch, ref))
    if args.plan:
        result["plan"] = run_plan(args.plan)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
