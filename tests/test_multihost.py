"""Multi-host training on CPU: 2 jax.distributed processes x 2 devices vs one process, one device.

Each process of the pair feeds its own slice of the global batch from the
Grain pipeline, trains with ``train.run`` (mesh data 2 x fsdp 2), saves orbax
checkpoints, restores one (state + every process's iterator) in a second
``train.run(resume=True)`` and finishes the run. The losses must equal the
single-process reference over the same global batches (to ~1e-6), and the
final checkpoint, restored here on one device (another topology), must
match the reference's parameters.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import train_fixtures as tfx

from mm_jax import sharding
from mm_jax.checkpoint import Checkpointer
from mm_jax.tracking import read_metrics
from mm_jax.model.llama import init_params
from mm_jax.train import setup, step

WORKER = pathlib.Path(__file__).with_name("multihost_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(WORKER.parent), str(WORKER.parent.parent)])}
    env.pop("XLA_FLAGS", None)
    return subprocess.Popen([sys.executable, str(WORKER), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _params(workdir: pathlib.Path, exp) -> list[np.ndarray]:
    mesh = sharding.make_mesh(sharding.MeshConfig(data=1), jax.devices()[:1])
    opt = step.make_optimizer(exp.train, init_params(exp.model, key=jax.random.key(0)))
    st_sh, abstract = setup.state_shardings(exp.model, opt, mesh)
    ckpt = Checkpointer(workdir / "checkpoints", async_save=False)
    try:
        _, tree, _ = ckpt.restore(sharding.abstract_with_shardings(abstract, st_sh).to_dict(), step=6)
    finally:
        ckpt.close()
    return [np.asarray(x) for x in jax.tree.leaves(tree["params"])]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    shards = tfx.make_train_shards(tmp_path / "shards")
    dist_dir, ref_dir = tmp_path / "dist", tmp_path / "ref"
    port = _free_port()
    procs = [_spawn("dist", str(shards), str(dist_dir), str(port), str(i)) for i in range(2)]
    procs.append(_spawn("ref", str(shards), str(ref_dir)))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-4000:]
    assert all("DIST_OK" in out for out, _ in outs[:2]) and "REF_OK" in outs[2][0]

    rows = read_metrics(dist_dir)
    got = {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}
    ref = {int(k): v for k, v in json.loads((ref_dir / "ref_losses.json").read_text()).items()}
    assert sorted(got) == list(range(1, 7)) and sorted(ref) == list(range(1, 7))
    np.testing.assert_allclose([got[i] for i in range(1, 7)], [ref[i] for i in range(1, 7)],
                               rtol=1e-6, atol=1e-6)
    assert ref[6] < ref[1]
    assert [r["step"] for r in rows if "val/loss" in r] == [3, 6]
    # Both processes' iterator states were saved with each checkpoint.
    iter_files = sorted(p.name for p in (dist_dir / "checkpoints" / "4" / "data_iter").glob("process_*"))
    assert iter_files == ["process_0-of-2.json", "process_1-of-2.json"], iter_files
    exp = tfx.experiment(shards, steps=6)
    for a, b in zip(_params(dist_dir, exp), _params(ref_dir, exp)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
