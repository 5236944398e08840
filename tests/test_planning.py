"""Tests of mm_jax.train.plan: the memory plan of the train step `mm-jax train` runs, in a child process."""

from __future__ import annotations

import dataclasses

import jax
import pytest
import train_fixtures as tf_

from mm_jax import sharding
from mm_jax.errors import ConfigError, ShardingError
from mm_jax.sharding import MeshConfig
from mm_jax.shards.manifest import read_manifest
from mm_jax.train import setup
from mm_jax.train.plan import preset_experiment, run_plan
from mm_jax.train.sizes import bind_to_data


def test_tiny_plan_on_two_fake_devices():
    exp = preset_experiment("tiny", {"data": 1, "fsdp": 2, "tensor": 1}, batch=4, seq=96)
    plan = run_plan(exp, device="v5e")
    assert plan["num_devices"] == 2 and plan["mesh"] == {"data": 1, "fsdp": 2, "tensor": 1}
    assert plan["fits"] is True and plan["seq"] == 96 and plan["batch"] == 4
    # fsdp 2 about halves the float32 params (weights shard over 'embed'; norm scales stay replicated).
    assert 0.5 < plan["params_bytes"] / (plan["num_params"] * 4) < 0.51
    assert plan["total_bytes"] > plan["params_bytes"] + plan["opt_state_bytes"]


def test_the_plan_is_the_compiled_memory_of_the_step_train_runs(tmp_path):
    """The child's plan of a bound experiment vs the memory XLA reports for ``setup.fresh_run``'s step here."""
    shards = tf_.make_train_shards(tmp_path / "shards", num=24)
    exp = bind_to_data(tf_.experiment(shards, grad_accum_steps=2), read_manifest(shards))
    exp = dataclasses.replace(exp, mesh=MeshConfig(data=1, fsdp=1, tensor=1))
    plan = run_plan(exp)
    fresh = setup.fresh_run(exp, sharding.make_mesh(exp.mesh, jax.devices()[:1]))
    mem = fresh.compiled.train_step.memory_analysis()
    actual = (mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
              + mem.temp_size_in_bytes)
    assert abs(plan["total_bytes"] - actual) <= 0.05 * actual, (plan["total_bytes"], actual)
    # AdamW: two moments per param plus int32 step counters.
    assert plan["temp_bytes"] > 0 and 0 <= plan["opt_state_bytes"] - 2 * plan["params_bytes"] < 64


def test_plan_errors_come_back_named():
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        preset_experiment("huge", MeshConfig(data=1, fsdp=2, tensor=1), batch=4)
    with pytest.raises(ConfigError, match="not divisible"):
        run_plan(preset_experiment("tiny", {"data": 1, "fsdp": 2}, batch=3, seq=96))
    with pytest.raises(ConfigError, match="no -1"):
        preset_experiment("tiny", MeshConfig(data=-1), batch=4)


@pytest.mark.slow
def test_1b_plan_on_eight_fake_devices():
    exp = preset_experiment("1b", {"data": 1, "fsdp": 8, "tensor": 1}, batch=128)
    big = run_plan(exp, device="v5p")
    assert big["num_devices"] == 8 and big["num_params"] > 1.0e9
    assert big["fits"] is True
    assert run_plan(exp, device=0.5)["fits"] is False


def test_train_refuses_a_mesh_that_leaves_too_much_replicated():
    """fsdp=2 shards every weight but the RMSNorm scales; a tolerance of 0 refuses even those."""
    exp = preset_experiment("tiny", MeshConfig(data=1, fsdp=2, tensor=1, max_replicated=0.0), batch=4, seq=96)
    with pytest.raises(ShardingError, match=r"replicated .*mesh\.max_replicated"):
        run_plan(exp)
