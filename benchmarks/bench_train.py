"""Throughput of the decoder's compiled train step (what ``mm-jax train`` runs each step).

Usage::

    .venv/bin/python benchmarks/bench_train.py [--preset tiny] [--steps 20] [--text pretrained|random]
                                               [--set section.key=value ...]

Builds the experiment preset's placement on the local devices, compiles the
train step exactly as ``mm_jax.train.loop.run`` does (AOT, in/out shardings,
donated state, the frozen text encoder inside the step), then times
``--steps`` steps on random device-resident batches (real-looking masks:
captions of 8-20 tokens, motions of 20-N codes) after 3 warm-up steps.
Prints one JSON line: compile seconds, median/mean step time, tokens/s
(B * (S + N) positions per second), real target tokens/s and model TFLOP/s
(``flops_per_token(S + N)`` x positions / step time).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _random_batch(exp, rng: np.random.Generator) -> dict[str, np.ndarray]:
    b, s, n = exp.pipeline.global_batch_size, exp.pipeline.max_text_tokens, exp.pipeline.max_motion_tokens
    text_len = rng.integers(8, min(20, s) + 1, b)
    motion_len = rng.integers(min(20, n), n + 1, b)
    text_mask = np.arange(s)[None] < text_len[:, None]
    motion_mask = np.arange(n)[None] < motion_len[:, None]
    text_ids = np.where(text_mask, rng.integers(1000, 29000, (b, s)), 0).astype(np.int32)
    motion_ids = np.where(motion_mask, rng.integers(0, exp.model.codebook_size, (b, n)),
                          exp.model.pad_id).astype(np.int32)
    motion_ids[:, 0] = exp.model.bos_id
    return {"text_ids": text_ids, "text_mask": text_mask, "motion_ids": motion_ids,
            "motion_mask": motion_mask}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--text", default="pretrained", choices=("pretrained", "random"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    import jax

    from mm_jax import sharding
    from mm_jax.pipeline import global_batch
    from mm_jax.train import config as tconfig
    from mm_jax.train import setup

    exp = tconfig.apply_overrides(tconfig.preset(args.preset), args.overrides)
    mesh = sharding.make_mesh(exp.mesh)
    run = setup.fresh_run(exp, mesh, text_weights=args.text)
    placement, compiled, state, key, text = run.placement, run.compiled, run.state, run.key, run.text_params
    rng = np.random.default_rng(0)
    batches = [global_batch(_random_batch(exp, rng), mesh, placement.batch_sharding) for _ in range(4)]
    times, targets = [], []
    for i in range(3 + args.steps):
        t0 = time.perf_counter()
        state, metrics = compiled.train_step(state, batches[i % 4], key, text)
        loss = float(metrics["loss"])  # blocks: the step is done
        if i >= 3:
            times.append(time.perf_counter() - t0)
            targets.append(float(metrics["tokens"]))
    seq = exp.pipeline.max_text_tokens + exp.pipeline.max_motion_tokens
    positions = exp.pipeline.global_batch_size * seq
    median = statistics.median(times)
    flops = exp.model.flops_per_token(seq)
    print(json.dumps({
        "preset": args.preset, "devices": f"{jax.device_count()} x {jax.devices()[0].platform}",
        "device_kind": jax.devices()[0].device_kind, "mesh": dict(mesh.shape), "text": args.text,
        "global_batch": exp.pipeline.global_batch_size, "seq": seq, "compile_s": round(compiled.compile_s, 2),
        "step_s_median": round(median, 5), "step_s_mean": round(statistics.mean(times), 5),
        "tokens_per_s": round(positions / median, 1),
        "target_tokens_per_s": round(statistics.mean(targets) / median, 1),
        "model_tflops_per_s": round(flops * positions / median / 1e12, 4), "final_loss": loss}))


if __name__ == "__main__":
    main()
