"""Tests of mm_jax.planning: the memory plan of a train step, computed in a subprocess with fake devices."""

from __future__ import annotations

import pytest

from mm_jax.errors import ConfigError, ShardingError
from mm_jax.planning import run_plan
from mm_jax.sharding import MeshConfig


def test_tiny_plan_on_two_fake_devices():
    plan = run_plan("tiny", {"data": 1, "fsdp": 2, "tensor": 1}, batch=4, seq=96, device="v5e")
    assert plan["num_devices"] == 2 and plan["mesh"] == {"data": 1, "fsdp": 2, "tensor": 1}
    assert plan["fits"] is True and plan["seq"] == 96 and plan["model_preset"] == "tiny"
    # fsdp 2 about halves the float32 params (weights shard over 'embed'; norm scales stay replicated).
    assert 0.5 < plan["params_bytes"] / (plan["num_params"] * 4) < 0.51
    assert plan["total_bytes"] > plan["params_bytes"] + plan["opt_state_bytes"]


def test_plan_errors_come_back_named():
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        run_plan("huge", MeshConfig(data=1, fsdp=2, tensor=1), batch=4)
    with pytest.raises(ShardingError, match="batch size 3 is not divisible"):
        run_plan("tiny", {"data": 1, "fsdp": 2}, batch=3, seq=96)
    with pytest.raises(ConfigError, match="no -1"):
        run_plan("tiny", MeshConfig(data=-1), batch=4)


@pytest.mark.slow
def test_1b_plan_on_eight_fake_devices():
    mesh = {"data": 1, "fsdp": 8, "tensor": 1}
    big = run_plan("1b", mesh, batch=128, device="v5p")
    assert big["num_devices"] == 8 and big["num_params"] > 1.0e9
    assert big["fits"] is True
    assert run_plan("1b", mesh, batch=128, device=0.5)["fits"] is False
