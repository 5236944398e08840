"""Subprocess entry point of the multi-process pipeline tests (not a test module).

    pipeline_worker.py mp SHARDS                     mp_prefetch(2 workers): exact resume
    pipeline_worker.py dist SHARDS PORT RANK OUT.npy  one of 2 jax.distributed processes
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np


def _same(a, b) -> bool:
    return all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x) and len(a) == len(b)


def mp_resume(shards: str) -> None:
    from absl import flags

    from mm_jax.pipeline import PipelineConfig, build_pipeline

    flags.FLAGS.mark_as_parsed()
    cfg = PipelineConfig(global_batch_size=4, max_text_tokens=8, max_motion_tokens=13, seed=5, worker_count=2)
    pipe = build_pipeline(shards, cfg, process_index=0, process_count=1)
    it = pipe.iterator()
    [next(it) for _ in range(3)]
    state = it.get_state()
    expected = [next(it) for _ in range(7)]
    fresh = build_pipeline(shards, cfg, process_index=0, process_count=1).iterator()
    fresh.set_state(state)
    got = [next(fresh) for _ in range(7)]
    assert _same(got, expected), "mp_prefetch resume differs"
    single = build_pipeline(shards, dataclasses.replace(cfg, worker_count=0, num_epochs=1),
                            process_index=0, process_count=1)
    assert pipe.samples is not None and single.batches_per_epoch == 8
    print("MP_OK", flush=True)


def dist(shards: str, port: str, rank: str, out: str) -> None:
    import jax
    from jax.sharding import PartitionSpec

    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=int(rank))
    from mm_jax.pipeline import PipelineConfig, build_pipeline, global_batch

    cfg = PipelineConfig(global_batch_size=4, max_text_tokens=8, max_motion_tokens=13, num_epochs=1)
    pipe = build_pipeline(shards, cfg)
    assert pipe.local_batch_size == 2 and jax.process_count() == 2
    mesh = jax.make_mesh((2,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    keys = []
    for local in pipe.iterator():
        batch = global_batch(local, mesh, PartitionSpec("data"))
        assert batch["motion_ids"].shape == (4, 13), batch["motion_ids"].shape
        (shard,) = batch["sample_index"].addressable_shards
        assert np.array_equal(np.asarray(shard.data), local["sample_index"])
        keys += local["sample_index"].tolist()
    np.save(out, np.asarray(keys))
    jax.distributed.shutdown()
    print("DIST_OK", flush=True)


if __name__ == "__main__":
    {"mp": mp_resume, "dist": dist}[sys.argv[1]](*sys.argv[2:])
