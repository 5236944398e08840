"""Throughput of the shard writer, the motion tokenizer's encoder, the Grain loader,
and the cost of the frozen text encoder beside a decoder train step.

Usage (CPU; each part prints one table)::

    .venv/bin/python benchmarks/bench_pipeline.py loader  [--records 4096] [--batch 32] [--seconds 5]
    .venv/bin/python benchmarks/bench_pipeline.py writer  [--records 2048] [--data DATA_DIR]
    .venv/bin/python benchmarks/bench_pipeline.py encode  [--presets tiny,small,base] [--seconds 10]
    .venv/bin/python benchmarks/bench_pipeline.py text    [--models tiny,small] [--batch 32]
    .venv/bin/python benchmarks/bench_pipeline.py e2e     --data DATA_DIR --tokenizer RUN

loader: writes synthetic token records (lengths 30-150 codes, 20 paraphrases
of ~12 WordPiece ids) into a temporary shard directory unless ``--shards`` is
given, then times batches/s and tokens/s (B * (S + N) per batch) with 0 and 2
``mp_prefetch`` workers, after the first batch (start-up excluded, reported
apart). writer: records/s of ``write_shards`` with the real tensorflow-text
tokenizer and a stand-in motion encoder (so the motion encoder is excluded);
with ``--data`` it reads a real dataset directory. encode: sequences/s of
``encode_sequences`` with a randomly initialised tokenizer of each preset
(the speed does not depend on the weights) on 60-300-frame sequences padded
to 300; extrapolates hours for 2M sequences. text: jitted text encoder on
[B, 32] vs one jitted AdamW train step of the decoder on the same batch.
e2e: ``write_shards`` of the train split with a trained tokenizer run (compile
included), a re-run over the finished shards, and the padded fraction of
motion positions at N = 269 and 64.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mm_jax.pipeline import PipelineConfig, build_pipeline  # noqa: E402
from mm_jax.shards import write_shards  # noqa: E402

WORDS = ("a person walks forward then waves with the left hand slowly turns around and jumps "
         "twice sits down on chair kicks right leg high runs in circle").split()
IDENTITY = {"feature_dim": 272, "fsq_levels": [8, 8, 8, 5, 5, 5], "frames_per_token": 4,
            "wavelet_levels": 1, "step": 0}


class SyntheticDataset:
    """Records of 120-600 frames (30-150 codes at 4 frames/code) with 20 paraphrases each."""

    def __init__(self, num: int, seed: int = 0, paraphrases: int = 20):
        rng = np.random.default_rng(seed)
        self._len = rng.integers(120, 601, num)
        self._caps = [[" ".join(rng.choice(WORDS, int(rng.integers(6, 14)))) for _ in range(paraphrases)]
                      for _ in range(num)]

    def ids(self, split: str) -> list[str]:
        return [f"syn{i:07d}" for i in range(len(self._len))] if split == "train" else []

    def record(self, sid: str) -> dict:
        i = int(sid[3:])
        return {"id": sid, "offset": 0, "length": int(self._len[i]), "captions": self._caps[i],
                "split": "train"}

    def sequence(self, sid: str) -> np.ndarray:
        return np.zeros((int(self._len[int(sid[3:])]), 1), np.float32)


def random_codes(seqs):
    rng = np.random.default_rng(len(seqs))
    return [rng.integers(0, 64000, -(-len(s) // 4)).astype(np.int32) for s in seqs]


def make_shards(out: pathlib.Path, records: int, num_shards: int, dataset=None) -> float:
    """Writes synthetic shards; returns records/s of the writer."""
    t0 = time.perf_counter()
    write_shards(dataset or SyntheticDataset(records), None, out, split="train", num_shards=num_shards,
                 encode_fn=random_codes, tokenizer_identity=IDENTITY)
    return records / (time.perf_counter() - t0)


def _time_loader(shards: pathlib.Path, cfg: PipelineConfig, seconds: float) -> dict:
    t0 = time.perf_counter()
    it = build_pipeline(shards, cfg, process_index=0, process_count=1).iterator()
    next(it)
    startup = time.perf_counter() - t0
    n, t1 = 0, time.perf_counter()
    while time.perf_counter() - t1 < seconds:
        next(it)
        n += 1
    dt = time.perf_counter() - t1
    tokens = cfg.global_batch_size * (cfg.max_text_tokens + cfg.max_motion_tokens)
    return {"startup_s": startup, "batches_s": n / dt, "tokens_s": n * tokens / dt}


def bench_loader(args: argparse.Namespace) -> None:
    from absl import flags

    flags.FLAGS.mark_as_parsed()
    with tempfile.TemporaryDirectory() as tmp:
        shards = pathlib.Path(args.shards) if args.shards else pathlib.Path(tmp)
        if not args.shards:
            rate = make_shards(shards, args.records, num_shards=8)
            print(f"wrote {args.records} synthetic records ({rate:.0f} records/s)")
        print(f"{'workers':>7} {'threads':>7} {'batch':>5} {'startup s':>9} {'batches/s':>9} "
              f"{'tokens/s':>10}")
        loader_tokens_s = 0.0
        from mm_jax.shards import read_manifest

        budget = max(32, int(read_manifest(shards)["text"]["max_tokens"]))
        for workers in (0, 2):
            cfg = PipelineConfig(global_batch_size=args.batch, max_motion_tokens=269, worker_count=workers,
                                 read_threads=args.threads, max_text_tokens=budget)
            r = _time_loader(shards, cfg, args.seconds)
            print(f"{workers:>7} {args.threads:>7} {args.batch:>5} {r['startup_s']:>9.2f} "
                  f"{r['batches_s']:>9.1f} {r['tokens_s']:>10.0f}")
            loader_tokens_s = max(loader_tokens_s, r["tokens_s"])
    if args.train_preset:
        step = _train_step_rate(args.train_preset, args.batch)
        print(f"train step ({args.train_preset}, batch {args.batch} x 301, same run): "
              f"{step['step_s_median']:.3f} s/step = {step['tokens_per_s']:.0f} tokens/s consumed; "
              f"the loader delivers {loader_tokens_s / step['tokens_per_s']:.0f}x that")


def _train_step_rate(preset: str, batch: int) -> dict:
    """The decoder train step's consumption rate, from benchmarks/bench_train.py in a subprocess."""
    import json
    import subprocess

    cmd = [sys.executable, str(pathlib.Path(__file__).with_name("bench_train.py")), "--preset", preset,
           "--steps", "5", "--set", f"pipeline.global_batch_size={batch}",
           "--set", "pipeline.max_text_tokens=32", "--set", "pipeline.max_motion_tokens=269",
           "--set", "model.max_text_tokens=32", "--set", "model.max_motion_tokens=269"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_writer(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            from mm_jax.motion.synth import load_dataset

            dataset = load_dataset(args.data)
            records = len(dataset.ids("train"))
        else:
            dataset, records = SyntheticDataset(args.records), args.records
        make_shards(pathlib.Path(tmp) / "warm", min(records, 64), 1, dataset=SyntheticDataset(64))
        rate = make_shards(pathlib.Path(tmp) / "s", records, num_shards=4, dataset=dataset)
        size = sum(p.stat().st_size for p in (pathlib.Path(tmp) / "s").glob("*.array_record"))
        print(f"{'records':>8} {'records/s':>9} {'bytes/record':>12} {'hours for 2M':>12}")
        print(f"{records:>8} {rate:>9.0f} {size / records:>12.0f} {2e6 / rate / 3600:>12.2f}")


def bench_encode(args: argparse.Namespace) -> None:
    import jax

    from mm_jax.motion.normalize import Normalizer
    from mm_jax.tokenizer.artifact import LoadedTokenizer, encode_sequences
    from mm_jax.tokenizer.config import PRESETS
    from mm_jax.tokenizer.model import init_params

    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((int(n), 272)).astype(np.float32) for n in rng.integers(60, 301, 256)]
    norm = Normalizer(mean=np.zeros(272, np.float32), std=np.ones(272, np.float32))
    print(f"{'preset':>7} {'width':>5} {'seq/s':>8} {'frames/s':>9} {'hours for 2M':>12}")
    for name in args.presets.split(","):
        cfg = PRESETS[name][0]
        tok = LoadedTokenizer(cfg, init_params(cfg, key=jax.random.key(0)), norm, 0)
        encode_sequences(tok, seqs[:32], pad_to=300)  # compile
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            encode_sequences(tok, seqs[n % 256:n % 256 + 64], pad_to=300)
            n += 64
        rate = n / (time.perf_counter() - t0)
        frames = rate * float(np.mean([len(s) for s in seqs]))
        print(f"{name:>7} {cfg.width:>5} {rate:>8.1f} {frames:>9.0f} {2e6 / rate / 3600:>12.1f}")


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_text(args: argparse.Namespace) -> None:
    import jax
    import jax.numpy as jnp
    import optax

    from mm_jax.model.config import preset as model_preset
    from mm_jax.model.llama import init_params as model_init
    from mm_jax.model.loss import forward_loss
    from mm_jax.text import TextConfig, encode, init_params as text_init

    b, s = args.batch, 32
    text_params = text_init(TextConfig(), key=jax.random.key(0))  # speed does not depend on weights
    ids = jnp.asarray(np.random.default_rng(0).integers(1000, 30000, (b, s)), jnp.int32)
    mask = jnp.arange(s)[None, :] < jnp.asarray(np.random.default_rng(1).integers(4, 20, (b, 1)))
    enc = jax.jit(encode)
    t_text = _median_time(lambda: jax.block_until_ready(enc(text_params, ids, mask)), args.repeats)
    print(f"text encoder [B={b}, S={s}]: {t_text * 1e3:.1f} ms/batch")
    print(f"{'model':>6} {'N':>4} {'step ms':>8} {'text/step':>9}")
    for name in args.models.split(","):
        cfg = dataclasses.replace(model_preset(name), max_motion_tokens=args.motion_tokens)
        params = model_init(cfg, key=jax.random.key(1))
        opt = optax.adamw(1e-4)
        state = (params, opt.init(params))
        n = cfg.max_motion_tokens
        motion = jnp.asarray(np.random.default_rng(2).integers(0, cfg.codebook_size, (b, n)))
        mmask = jnp.ones((b, cfg.max_motion_tokens), bool)
        text_bsc = jnp.zeros((b, s, cfg.text_dim))

        @jax.jit
        def step(state, text_bsc):
            p, o = state
            grads = jax.grad(lambda q: forward_loss(cfg, q, text_bsc, mask, motion, mmask)[0])(p)
            upd, o = opt.update(grads, o, p)
            return optax.apply_updates(p, upd), o

        t_step = _median_time(lambda: jax.block_until_ready(step(state, text_bsc)), args.repeats)
        print(f"{name:>6} {cfg.max_motion_tokens:>4} {t_step * 1e3:>8.1f} {t_text / t_step:>9.2f}")


def bench_e2e(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        manifest = write_shards(args.data, args.tokenizer, tmp, split="train", num_shards=4)
        dt = time.perf_counter() - t0
        e = manifest["splits"]["train"]
        t1 = time.perf_counter()
        write_shards(args.data, args.tokenizer, tmp, split="train", num_shards=4)
        rerun = time.perf_counter() - t1
        n = e["num_records"]
        print(f"{'records':>7} {'seconds':>7} {'records/s':>9} {'codes/rec':>9} {'bytes/rec':>9} "
              f"{'truncated':>9} {'rerun s':>7}")
        print(f"{n:>7} {dt:>7.1f} {n / dt:>9.1f} {e['num_motion_tokens'] / n:>9.1f} "
              f"{sum(s['bytes'] for s in e['shards']) / n:>9.0f} {e['num_truncated']:>9} {rerun:>7.2f}")
        for tokens in (269, 64):
            cfg = PipelineConfig(global_batch_size=32, max_motion_tokens=tokens, num_epochs=1)
            real = [b["motion_mask"].sum() for b in build_pipeline(tmp, cfg, process_index=0,
                                                                   process_count=1).iterator()]
            print(f"N={tokens}: padded fraction {1 - np.sum(real) / (len(real) * 32 * tokens):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("loader", "writer", "encode", "text", "e2e"))
    p.add_argument("--records", type=int, default=4096)
    p.add_argument("--shards", default=None, help="existing shard directory (loader)")
    p.add_argument("--data", default=None, help="dataset directory (writer, e2e)")
    p.add_argument("--tokenizer", default=None, help="trained tokenizer run (e2e)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--presets", default="tiny,small,base")
    p.add_argument("--models", default="tiny,small")
    p.add_argument("--motion-tokens", type=int, default=269)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--train-preset", default="tiny", help="loader: also time this decoder preset's step ('' = skip)")
    args = p.parse_args()
    parts = {"loader": bench_loader, "writer": bench_writer, "encode": bench_encode, "text": bench_text,
             "e2e": bench_e2e}
    parts[args.what](args)


if __name__ == "__main__":
    main()
