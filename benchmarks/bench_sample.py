"""Generation speed of mm_jax.sample: tokens/s with and without the KV cache.

Usage::

    .venv/bin/python benchmarks/bench_sample.py [--preset tiny] [--batches 1,32]
        [--tokens 200] [--text-tokens 32] [--repeats 3] [--temperature 1.0] [--cfg 0,2.5] [--json]

Random-init parameters of the preset, edited so EOS can never win (the fed
token's embedding gets +100 on dim 0 and the EOS head row -1000 on dim 0; the
compute is unchanged), so every row runs exactly ``--tokens`` steps. Random
text features [B, S, C], all real. For each batch size and path, one warm-up
call (compile, timed separately) then the median of ``--repeats`` timed calls
(each ends in ``block_until_ready``). tokens/s = B * tokens / seconds.
``--cfg`` lists guidance scales: 0 samples without guidance; a scale G runs
classifier-free guidance as ``mm-jax generate`` does (each prompt's row beside
an unconditional row, so 2B rows are computed for B prompts' tokens).
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


def _no_eos_params(cfg, params):
    import jax.numpy as jnp
    embed = np.asarray(params["embed"]).copy()
    embed[:, 0] = 100.0
    head = np.asarray(params["head"]).copy()
    head[cfg.eos_id] = 0.0
    head[cfg.eos_id, 0] = -1000.0
    return {**params, "embed": jnp.asarray(embed), "head": jnp.asarray(head)}


def run(args: argparse.Namespace) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from mm_jax.model import init_params, preset
    from mm_jax.sample import sample

    cfg = preset(args.preset)
    params = _no_eos_params(cfg, init_params(cfg, key=jax.random.key(0)))
    rows = []
    for b in [int(x) for x in args.batches.split(",")]:
        text = jax.random.normal(jax.random.key(1), (b, args.text_tokens, cfg.text_dim))
        mask = jnp.ones((b, args.text_tokens), bool)
        uncond = jax.random.normal(jax.random.key(2), (1, 4, cfg.text_dim))
        for guidance, use_cache in [(g, c) for g in [float(x) for x in args.cfg.split(",")] for c in (True, False)]:
            guide = dict(cfg_scale=guidance, uncond_text_bsc=uncond,
                         uncond_text_mask_bs=jnp.ones((1, 4), bool)) if guidance else {}

            def call(i):
                tok, lengths = sample(cfg, params, text, mask, key=jax.random.key(i),
                                      max_new_tokens=args.tokens, temperature=args.temperature,
                                      use_cache=use_cache, **guide)
                jax.block_until_ready(tok)
                return lengths
            t0 = time.perf_counter()
            lengths = call(0)
            first = time.perf_counter() - t0
            assert int(np.min(np.asarray(lengths))) == args.tokens, "EOS was sampled"
            times = []
            for i in range(args.repeats):
                t0 = time.perf_counter()
                call(i + 1)
                times.append(time.perf_counter() - t0)
            sec = statistics.median(times)
            rows.append({"preset": args.preset, "batch": b, "cfg": guidance, "cache": use_cache, "tokens": args.tokens,
                         "seconds": sec, "tokens_per_s": b * args.tokens / sec,
                         "first_call_s": first, "device": str(jax.devices()[0].platform)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--text-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--cfg", default="0,2.5", help="comma list of guidance scales (0: none)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = run(args)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'preset':>7} {'B':>4} {'cfg':>4} {'cache':>6} {'N':>5} {'sec':>8} {'tok/s':>10} {'compile+1st s':>14} dev")
    for r in rows:
        print(f"{r['preset']:>7} {r['batch']:>4} {r['cfg']:>4} {str(r['cache']):>6} {r['tokens']:>5} "
              f"{r['seconds']:8.3f} {r['tokens_per_s']:10.1f} {r['first_call_s']:14.2f} {r['device']}")


if __name__ == "__main__":
    main()
