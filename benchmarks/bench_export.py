"""Export benchmark: orbax params -> safetensors time and peak host memory, then torch vs JAX generation speed.

    .venv/bin/python benchmarks/bench_export.py [--preset 70m] [--tokens 100]

The preset (default ``70m``: 8 layers, width 512, the 64k FSQ vocabulary, about
91M parameters) is initialised in float32, saved as an orbax params checkpoint,
then a child process restores it params-only (``mm_jax.checkpoint.load_params``)
and streams it to safetensors (``mm_jax.export.run.write_decoder``); its peak RSS
is the export's host memory. Generation: greedy, batch 1, KV cache, no guidance,
the same weights in JAX (``mm_jax.sample.sample``, jitted while loop) and in
torch (``mm_jax.torch_port.sample``, transformers LlamaModel), on the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def _child_export(ckpt_run: str, out: str, preset: str) -> None:
    """Restore params-only and write the decoder's safetensors; prints seconds and peak RSS as JSON."""
    import jax

    from mm_jax.checkpoint import load_params
    from mm_jax.export.run import write_decoder
    from mm_jax.model.llama import abstract_params

    cfg = _cfg(preset)
    t0 = time.perf_counter()
    abstract = jax.tree.map(lambda b: b.value, abstract_params(cfg), is_leaf=lambda x: hasattr(x, "value"))
    _, params, _ = load_params(ckpt_run, abstract)
    t1 = time.perf_counter()
    pathlib.Path(out).mkdir()
    write_decoder(pathlib.Path(out), cfg, params)
    t2 = time.perf_counter()
    print(json.dumps({"restore_s": t1 - t0, "write_s": t2 - t1,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _cfg(preset: str):
    from mm_jax.model.config import preset as get

    return dataclasses.replace(get(preset), dtype="float32", remat=False, dropout=0.0)


def _tokens_per_s(fn, tokens: int) -> float:
    fn()  # compile / warm up
    t0 = time.perf_counter()
    fn()
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="70m")
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--child-export", nargs=2, metavar=("RUN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_export:
        _child_export(*args.child_export, args.preset)
        return

    import jax
    import jax.numpy as jnp
    import torch

    from mm_jax.checkpoint import Checkpointer
    from mm_jax.model.llama import init_params
    from mm_jax.sample import sample, seed_key
    from mm_jax.torch_port.model import MotionLlama
    from mm_jax.torch_port.sampler import sample as torch_sample

    cfg = _cfg(args.preset)
    print(f"preset {args.preset}: {cfg.num_params() / 1e6:.1f}M params ({cfg.num_params() * 4 / 1e6:.0f} MB float32), "
          f"L={cfg.num_layers} D={cfg.width} V={cfg.vocab_size}; torch {torch.__version__}, jax {jax.__version__}")
    tmp = pathlib.Path(tempfile.mkdtemp())
    params = init_params(cfg, key=jax.random.key(0))
    with Checkpointer(tmp / "run" / "checkpoints", async_save=False) as ck:
        ck.save(1, {"params": params}, {})
    out = subprocess.run([sys.executable, __file__, "--preset", args.preset, "--child-export",
                          str(tmp / "run"), str(tmp / "export")], capture_output=True, text=True, check=True)
    rep = json.loads(out.stdout.strip().splitlines()[-1])
    size = sum(p.stat().st_size for p in (tmp / "export").iterdir()) / 1e6
    print(f"export: restore {rep['restore_s']:.1f} s + write {rep['write_s']:.1f} s, {size:.0f} MB written, "
          f"peak RSS of the export process {rep['peak_rss_mb']:.0f} MB")

    n = args.tokens
    text = np.random.default_rng(0).standard_normal((1, cfg.max_text_tokens, cfg.text_dim)).astype(np.float32)
    mask = np.ones((1, cfg.max_text_tokens), bool)
    mask[0, 12:] = False

    def run_jax():
        toks, _ = sample(cfg, params, jnp.asarray(text), jnp.asarray(mask), key=seed_key(0), max_new_tokens=n,
                         temperature=0.0, min_new_tokens=n)
        return np.asarray(toks)

    model = MotionLlama.from_export(tmp / "export")

    def run_torch():
        return torch_sample(model, torch.from_numpy(text), torch.from_numpy(mask), max_new_tokens=n,
                            codebook_size=cfg.codebook_size, bos_id=cfg.bos_id, eos_id=cfg.eos_id,
                            pad_id=cfg.pad_id, temperature=0.0, min_new_tokens=n)[0].numpy()

    jax_tps, torch_tps = _tokens_per_s(run_jax, n), _tokens_per_s(run_torch, n)
    same = bool(np.array_equal(run_jax(), run_torch()))
    print(f"generation, batch 1, {n} greedy tokens, KV cache: JAX {jax_tps:.0f} tokens/s, "
          f"torch {torch_tps:.0f} tokens/s (threads {torch.get_num_threads()}); same tokens: {same}")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
          f"{os.cpu_count()} cores")


if __name__ == "__main__":
    main()
