"""A/B of the decoder's train step between git revisions of ``mm_jax``, interleaved in one process.

Usage::

    .venv/bin/python benchmarks/bench_train_step_ab.py [--preset tiny] [--revs HEAD~1,worktree]
        [--rounds 8] [--steps 6] [--xla NAME=KEY:VALUE ...] [--host-malloc auto|reuse|system]

Each revision's ``mm_jax/`` is exported (``git archive``) into a temporary
directory as a package of its own (``mm_rev0``, ``mm_rev1``, ...; imports
renamed), so the old and the new model code are compiled and timed in the
same process; ``worktree`` is the checkout as it is. A spec ``REV+NAME``
compiles that revision's step with the XLA compiler options named ``NAME``
(``--xla NAME=xla_cpu_...:VALUE``, repeatable), e.g.
``--revs worktree,worktree+conc --xla conc=xla_cpu_enable_concurrency_optimized_scheduler:true``.

The step is the one ``bench_train_step.py`` times: ``value_and_grad`` of
:func:`mm_jax.model.loss.forward_loss` + ``optax.adamw``, jitted with the
state donated, B = 8 x (32 + 128) positions, fp32. Before timing, each
revision's loss, accuracy and gradients are compared with the first spec's.

On this shared 2-core machine the wall time of one step varies by +-50% with
the other jobs' load, so every round times every spec once (``--steps``
steps each, after one warm-up) and the report gives, per spec, the median,
the 10th percentile and the minimum of all its steps' wall times, the median
process CPU time per step (less sensitive to waiting for a core), each as a
speed ratio against the first spec, and the 1-minute load average per round.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_train_step import random_batch  # noqa: E402  (beside this script)
from mm_jax import hostmem  # noqa: E402  (on the path bench_train_step sets)


def export_revision(rev: str, name: str, dest: pathlib.Path) -> str:
    """Writes ``mm_jax/`` of ``rev`` to ``dest/name`` with its imports renamed; returns the package name."""
    pkg = dest / name
    if rev == "worktree":
        src = ROOT / "mm_jax"
        files = [p for p in src.rglob("*.py")]
        for p in files:
            out = pkg / p.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(p.read_text())
    else:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "mm_jax"], check=True,
                                 capture_output=True).stdout
        tmp = dest / f"{name}_tar"
        tmp.mkdir()
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        (tmp / "mm_jax").rename(pkg)
    for p in pkg.rglob("*.py"):
        p.write_text(re.sub(r"\bmm_jax\b", name, p.read_text()))
    return name


def build(pkg: str, preset: str, options: dict, branches: int = 1):
    """(blocking step(), (loss, accuracy, grads)) of one package's step."""
    import jax
    import optax

    config = importlib.import_module(f"{pkg}.model.config")
    llama = importlib.import_module(f"{pkg}.model.llama")
    loss = importlib.import_module(f"{pkg}.model.loss")
    cfg = config.preset(preset)
    params = llama.init_params(cfg, key=jax.random.key(0))
    opt = optax.adamw(3e-4, weight_decay=0.1)
    batch = tuple(jax.device_put(x) for x in random_batch(cfg, 8, 32, 128))

    def loss_fn(p):
        return loss.forward_loss(cfg, p, *batch, **({"branches": branches} if branches > 1 else {}))

    def step(state, batch):
        p, o = state
        (_, m), g = jax.value_and_grad(loss_fn, has_aux=True)(p)
        u, o = opt.update(g, o, p)
        return (optax.apply_updates(p, u), o), m

    (value, metrics), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
    compiled = jax.jit(step, donate_argnums=0).lower((params, opt.init(params)), batch).compile(
        compiler_options=options or None)
    box = [(params, opt.init(params))]

    def run():
        box[0], m = compiled(box[0], batch)
        jax.block_until_ready(m)

    return run, (float(value), float(metrics["accuracy"]), jax.device_get(grads))


def parse_xla(items: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in items:
        name, kv = item.split("=", 1)
        key, value = kv.split(":", 1)
        out.setdefault(name, {})[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--revs", default="HEAD,worktree", help="comma list of git revisions / 'worktree' [+XLA]")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--xla", action="append", default=[], metavar="NAME=KEY:VALUE")
    parser.add_argument("--host-malloc", default="auto", choices=hostmem.MODES,
                        help="this process's allocator (mm_jax.hostmem), as the mm-jax console script sets it")
    args = parser.parse_args()
    print("host allocator:", hostmem.configure(args.host_malloc))
    import jax
    import numpy as np

    xla = parse_xla(args.xla)
    specs = args.revs.split(",")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ab_"))
    sys.path.insert(0, str(tmp))
    pkgs: dict[str, str] = {}
    impls = {}
    for spec in specs:
        rev, _, nb = spec.partition(":b")
        rev, *opts = rev.split("+")
        if rev not in pkgs:
            pkgs[rev] = export_revision(rev, f"mm_rev{len(pkgs)}", tmp)
        options = {k: v for o in opts for k, v in xla[o].items()}
        impls[spec] = build(pkgs[rev], args.preset, options, int(nb or 1))
    ref = impls[specs[0]][1]
    for spec, (_, (value, acc, grads)) in impls.items():
        diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                   for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref[2])))
        print(f"{spec}: loss {value:.7f} (diff {value - ref[0]:.1e}) accuracy {acc:.5f} max |grad diff| {diff:.1e}")
    wall = {s: [] for s in specs}
    cpu = {s: [] for s in specs}
    loads = []
    for _ in range(args.rounds):
        for spec in specs:
            fn = impls[spec][0]
            fn()
            for _ in range(args.steps):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall[spec].append((time.perf_counter() - t0) * 1e3)
                cpu[spec].append((time.process_time() - c0) * 1e3)
        loads.append(round(os.getloadavg()[0], 2))
    print(f"preset {args.preset}, {args.rounds} rounds x {args.steps} steps; 1-min load per round {loads}")
    print(f"{'spec':28} {'median ms':>9} {'p10 ms':>7} {'min ms':>7} {'CPU ms':>7}   speed vs {specs[0]}: "
          "median / p10 / min / CPU")

    def q(xs, f):
        return sorted(xs)[int(f * (len(xs) - 1))]

    base = specs[0]
    for spec in specs:
        w, c = wall[spec], cpu[spec]
        ratios = [q(wall[base], f) / q(w, f) for f in (0.5, 0.1, 0.0)] + [statistics.median(cpu[base])
                                                                          / statistics.median(c)]
        print(f"{spec:28} {q(w, .5):9.1f} {q(w, .1):7.1f} {q(w, 0):7.1f} {statistics.median(c):7.1f}   "
              + " / ".join(f"{r:.3f}x" for r in ratios))


if __name__ == "__main__":
    main()
