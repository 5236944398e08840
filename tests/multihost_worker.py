"""Subprocess entry point of tests/test_multihost.py (not a test module).

    multihost_worker.py dist SHARDS WORKDIR PORT RANK   one of 2 jax.distributed processes, 2 CPU devices each
    multihost_worker.py ref SHARDS WORKDIR              the single-process, single-device reference

``dist``: a (data 2, fsdp 2) mesh over the 4 devices of 2 processes; each
process feeds its own slice of the global batch (``build_pipeline`` with its
process index). It trains ``train.run`` to step 4 (checkpoints at 2 and 4),
then a second ``train.run(resume=True)`` restores step 4 (state + both
processes' Grain iterator states) and trains to 6.

``ref``: one device; the same global batches (process 0's local batch, then
process 1's, the row order of the global array) through the same compiled
train step; writes the per-step losses to ``WORKDIR/ref_losses.json`` and the
final state as a checkpoint in ``WORKDIR/checkpoints``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys

STEPS, SPLIT_AT = 6, 4


def _experiment(shards: str, mesh):
    import train_fixtures as tfx

    exp = tfx.experiment(shards, steps=STEPS, ckpt_every=2, val_every=3, val_batches=1)
    return dataclasses.replace(exp, mesh=mesh)


def dist(shards: str, workdir: str, port: str, rank: str) -> None:
    import jax

    jax.config.update("jax_num_cpu_devices", 2)  # an entry point: config updates are allowed here
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=int(rank))
    from mm_jax.train import loop
    from mm_jax.sharding import MeshConfig

    assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
    exp = _experiment(shards, MeshConfig(data=2, fsdp=2))
    first = loop.run(exp, workdir, until=SPLIT_AT)
    second = loop.run(exp, workdir, resume=True)
    assert first["final_step"] == SPLIT_AT
    assert second["start_step"] == SPLIT_AT and second["final_step"] == STEPS
    jax.distributed.shutdown()
    print("DIST_OK", flush=True)


def ref(shards: str, workdir: str) -> None:
    import jax
    import numpy as np

    from mm_jax.checkpoint import Checkpointer
    from mm_jax.pipeline import build_pipeline, global_batch
    from mm_jax.sharding import MeshConfig, make_mesh
    from mm_jax.train import setup
    from mm_jax.train.step import BATCH_KEYS

    exp = _experiment(shards, MeshConfig(data=1))
    mesh = make_mesh(exp.mesh, jax.devices()[:1])
    run = setup.fresh_run(exp, mesh)
    placement, compiled, state, key, text = run.placement, run.compiled, run.state, run.key, run.text_params
    its = [build_pipeline(shards, exp.pipeline, process_index=i, process_count=2).iterator()
           for i in range(2)]
    losses = {}
    for step in range(1, STEPS + 1):
        parts = [next(it) for it in its]
        local = {k: np.concatenate([p[k] for p in parts]) for k in BATCH_KEYS}
        batch = global_batch(local, mesh, placement.batch_sharding)
        state, metrics = compiled.train_step(state, batch, key, text)
        losses[step] = float(metrics["loss"])
    pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(workdir) / "ref_losses.json").write_text(json.dumps(losses))
    ckpt = Checkpointer(pathlib.Path(workdir) / "checkpoints", async_save=False)
    ckpt.save(STEPS, state.to_dict(), {"ref": True})
    ckpt.close()
    print("REF_OK", flush=True)


if __name__ == "__main__":
    {"dist": dist, "ref": ref}[sys.argv[1]](*sys.argv[2:])
