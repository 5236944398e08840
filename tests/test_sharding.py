"""Tests of mm_jax.sharding (and the memory planner): rules, golden specs, 8-device parity.

Device-free checks use ``AbstractMesh``; the numerical checks run
tests/sharding_worker.py in a subprocess with 8 fake CPU devices.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys

import jax
import pytest
from flax import linen as nn
from jax.sharding import PartitionSpec as P

from mm_jax import sharding
from mm_jax.configs import to_dict
from mm_jax.errors import ConfigError, ShardingError
from mm_jax.model import PRESETS, ModelConfig, abstract_params

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "sharding_worker.py"
# Must equal sharding_worker.CFG (checked below): D=40, H=4, K=2, E=10, M=56, Vp=24, C=13.
CFG = ModelConfig(num_layers=2, num_heads=4, num_kv_heads=2, width=40, text_dim=13,
                  fsq_levels=(5, 3), vocab_multiple=8, mlp_hidden_override=56)

# ----------------------------------------------------------------------------- golden specs

_F, _T = "fsdp", "tensor"
GOLDEN = {  # (data, fsdp, tensor) -> parameter kind -> spec; norms are always replicated.
    (8, 1, 1): {"text_proj": P(), "embed": P(), "head": P(), "qkv": P(), "out": P(),
                "gate_up": P(), "down": P()},
    (1, 8, 1): {"text_proj": P(_F), "embed": P(None, _F), "head": P(None, _F),
                "qkv": P(None, None, None, _F), "out": P(_F), "gate_up": P(None, None, _F),
                "down": P(_F)},
    (2, 2, 2): {"text_proj": P(_F), "embed": P(_T, _F), "head": P(_T, _F),
                "qkv": P(_T, None, None, _F), "out": P(_F, _T), "gate_up": P(None, _T, _F),
                "down": P(_F, _T)},
    # kv_heads = 2 does not divide tensor = 4: that dim falls back to replication.
    (1, 2, 4): {"text_proj": P(_F), "embed": P(_T, _F), "head": P(_T, _F),
                "qkv": P(None, None, None, _F), "out": P(_F, _T), "gate_up": P(None, _T, _F),
                "down": P(_F, _T)},
}


def golden_paths(mesh_shape) -> dict[str, P]:
    kinds = GOLDEN[mesh_shape]
    out = {k: kinds[k] for k in ("text_proj", "embed", "head")}
    out["final_norm/scale"] = P()
    for i in range(CFG.num_layers):
        out.update({f"block_{i}/attn/qkv": kinds["qkv"], f"block_{i}/attn/out": kinds["out"],
                    f"block_{i}/mlp/gate_up": kinds["gate_up"], f"block_{i}/mlp/down": kinds["down"],
                    f"block_{i}/attn_norm/scale": P(), f"block_{i}/mlp_norm/scale": P()})
    return out


def _as_json(spec: P) -> list:
    return [list(e) if isinstance(e, tuple) else e for e in spec]


def _resolved(mesh_shape, cfg=CFG) -> dict[str, P]:
    mesh = sharding.abstract_mesh(sharding.MeshConfig(data=mesh_shape[0], fsdp=mesh_shape[1],
                                                      tensor=mesh_shape[2]), 8)
    tree = sharding.param_shardings(abstract_params(cfg), mesh)
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(k.key for k in path): s.spec for path, s in flat}


@pytest.mark.parametrize("mesh_shape", sorted(GOLDEN))
def test_rules_give_golden_specs(mesh_shape):
    assert _resolved(mesh_shape) == golden_paths(mesh_shape)


def test_scanned_layers_axis_is_replicated():
    cfg = dataclasses.replace(CFG, scan_layers=True)
    specs = _resolved((2, 2, 2), cfg)
    assert specs["blocks/attn/qkv"] == P(None, _T, None, None, _F)
    assert specs["blocks/mlp/down"] == P(None, _F, _T)


def test_big_presets_are_sufficiently_sharded():
    for name, shape in (("1b", (1, 8, 1)), ("7b", (2, 8, 4))):
        mesh = sharding.abstract_mesh(sharding.MeshConfig(data=shape[0], fsdp=shape[1],
                                                          tensor=shape[2]), math.prod(shape))
        boxed = abstract_params(PRESETS[name])
        frac = sharding.assert_params_sufficiently_sharded(
            nn.meta.unbox(boxed), sharding.param_shardings(boxed, mesh), tolerance=0.01)
        assert 0.0 <= frac < 0.01, (name, frac)


def test_replication_tolerance_fails_for_fallbacks():
    mesh = sharding.abstract_mesh(sharding.MeshConfig(data=1, fsdp=2, tensor=4), 8)
    boxed = abstract_params(CFG)
    shapes, shards = nn.meta.unbox(boxed), sharding.param_shardings(boxed, mesh)
    frac = sharding.replicated_fraction(shapes, shards)
    assert 0.05 < frac < 0.5
    with pytest.raises(ShardingError, match="replicated"):
        sharding.assert_params_sufficiently_sharded(shapes, shards, tolerance=0.05)
    rep = jax.tree.map(lambda _: sharding.replicated(mesh), shapes)
    assert sharding.replicated_fraction(shapes, rep) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- errors and meshes


def test_mesh_config_resolution_and_errors():
    assert sharding.MeshConfig(data=-1, tensor=2).resolve(8) == (4, 1, 2)
    assert sharding.MeshConfig(data=2, fsdp=-1, tensor=2).resolve(8) == (2, 2, 2)
    with pytest.raises(ShardingError, match=r"3\*1\*1 = 3 .* 8"):
        sharding.MeshConfig(data=3).resolve(8)
    with pytest.raises(ShardingError, match="7 devices"):
        sharding.MeshConfig(data=-1, tensor=2).resolve(7)
    with pytest.raises(ConfigError, match="at most one -1"):
        sharding.MeshConfig(data=-1, fsdp=-1)
    with pytest.raises(ConfigError, match="'tensor': 0"):
        sharding.MeshConfig(tensor=0)
    with pytest.raises(ConfigError, match="'ring'.*dp, fsdp"):
        sharding.preset("ring")


def test_make_mesh_on_this_process():
    mesh = sharding.make_mesh(sharding.MeshConfig(data=-1))
    assert mesh.axis_names == sharding.MESH_AXES and mesh.size == jax.device_count()
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)
    with pytest.raises(ShardingError, match=f"does not equal the device count {jax.device_count()}"):
        sharding.make_mesh(sharding.MeshConfig(data=jax.device_count() + 1))


def test_spec_errors_and_batch_sharding():
    mesh = sharding.abstract_mesh(sharding.MeshConfig(data=2, fsdp=2, tensor=2), 8)
    with pytest.raises(ShardingError, match="'embd'"):
        sharding.resolve_spec(("embd",), (8,), mesh)
    with pytest.raises(ShardingError, match="rank"):
        sharding.resolve_spec(("embed", "mlp"), (8,), mesh)
    assert sharding.resolve_spec(("batch", "seq", "act_embed"), (12, 7, 40), mesh) == P(("data", _F))
    assert sharding.resolve_spec(("batch",), (6,), mesh) == P("data")  # 6 % 4 -> longest prefix
    assert sharding.resolve_spec(("embed", "vocab"), (40, 24), mesh) == P(_F, _T)
    assert sharding.resolve_spec(("mlp", "heads"), (8, 8), mesh) == P(_T)  # tensor used once
    assert sharding.batch_sharding(mesh, 12).spec == P(("data", "fsdp"))
    with pytest.raises(ShardingError, match="batch size 6 .* 4"):
        sharding.batch_sharding(mesh, 6)


def test_unannotated_param_is_an_error():
    mesh = sharding.abstract_mesh(sharding.MeshConfig(data=2, fsdp=2, tensor=2), 8)
    with pytest.raises(ShardingError, match="'w'"):
        sharding.param_shardings({"w": jax.ShapeDtypeStruct((4,), jax.numpy.float32)}, mesh)


# ----------------------------------------------------------------------------- 8 fake devices


def _run_worker(tmp_path, meshes: str, plan: str = "") -> dict:
    out = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, str(WORKER), "--meshes", meshes, "--out", str(out)]
    if plan:
        cmd += ["--plan", plan]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["config"] == to_dict(CFG)
    return result


def _check_mesh(m: dict) -> None:
    shape = tuple(m["mesh"])
    assert m["loss_err"] <= 1e-5 and m["grad_err"] <= 1e-5, m
    golden = {k: _as_json(v) for k, v in golden_paths(shape).items()}
    assert m["param_specs"] == golden
    assert m["grad_specs"] == golden


def test_8_devices_2x2x2_and_planner(tmp_path):
    result = _run_worker(tmp_path, "2x2x2", plan="tiny")
    (m,) = result["meshes"]
    _check_mesh(m)
    plan = result["plan"]
    tiny = PRESETS["tiny"]
    # data=2, fsdp=4: params sharded 4 ways (norms replicated), adamw = 2 moments + a count.
    assert tiny.num_params() * 4 / 4 <= plan["params_bytes"] < tiny.num_params() * 4 / 4 * 1.01
    assert plan["opt_state_bytes"] == 2 * plan["params_bytes"] + 8  # + the run optimizer's two int32 counters
    assert plan["temp_bytes"] > 0 and plan["total_bytes"] > plan["params_bytes"]
    assert plan["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1} and plan["num_devices"] == 8
    assert plan["fits_h100"] and not plan["fits_1kib"]


@pytest.mark.slow
def test_8_devices_other_meshes(tmp_path):
    result = _run_worker(tmp_path, "8x1x1,1x8x1,1x2x4")
    assert [tuple(m["mesh"]) for m in result["meshes"]] == [(8, 1, 1), (1, 8, 1), (1, 2, 4)]
    for m in result["meshes"]:
        _check_mesh(m)
