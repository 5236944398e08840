"""One long clip must not blow up encoding (issue 13, item 5).

``tokenizer encode`` and ``data tokenize`` used to pad every batch row to the
split's longest clip: one 100k-frame clip in a 32-clip split took 14.5 GB.
Encoding now buckets by length and cuts a clip longer than the batch budget
into overlapping windows whose codes are the whole clip's.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax.errors import ConfigError
from mm_jax.motion.normalize import Normalizer
from mm_jax.tokenizer import PRESETS
from mm_jax.tokenizer import data as tdata
from mm_jax.tokenizer import model as tmodel
from mm_jax.tokenizer.artifact import LoadedTokenizer, encode_sequences
from mm_jax.tokenizer.reconstruction import padded_length, reconstruct_batch

TINY_M, _ = PRESETS["tiny"]
F = 13  # a prime feature width


def _tokenizer(levels: int, down: int) -> LoadedTokenizer:
    cfg = dataclasses.replace(TINY_M, feature_dim=F, width=16, wavelet_levels=levels, down_t=down)
    rng = np.random.default_rng(1)
    norm = Normalizer(mean=rng.normal(size=F).astype(np.float32), std=(rng.random(F) + 0.5).astype(np.float32))

    # flax's initialisation drawn with numpy (flax init itself takes ~15 s on a loaded 2-core machine):
    # kernels [k, in, out] lecun-normal, LayerNorm scales 1, biases small.
    def draw(path, a):
        if a.ndim == 3:
            return (rng.normal(size=a.shape) / np.sqrt(a.shape[0] * a.shape[1])).astype(np.float32)
        base = 1.0 if path[-1].key == "scale" else 0.0
        return (base + 0.1 * rng.normal(size=a.shape)).astype(np.float32)

    shapes = jax.eval_shape(lambda: tmodel.init_params(cfg, key=jax.random.key(0)))
    return LoadedTokenizer(cfg, jax.tree_util.tree_map_with_path(draw, shapes), norm, 0)


def _whole_clip_codes(tok: LoadedTokenizer, clip: np.ndarray) -> np.ndarray:
    """The reference: the clip alone, edge-padded by its context, in one row."""
    pad = padded_length(len(clip), tok.cfg) - len(clip)
    x = np.concatenate([clip, np.repeat(clip[-1:], pad, 0)])[None]
    ids = reconstruct_batch(tok.params, jnp.asarray(tok.normalizer.normalize(x), jnp.float32), tok.cfg)[1]
    return np.asarray(ids[0, : -(-len(clip) // tok.cfg.frames_per_token)])


@pytest.mark.parametrize("levels,down", [(1, 1), (0, 2), (2, 0)])
def test_windowed_codes_equal_whole_clip_codes(levels, down):
    tok = _tokenizer(levels, down)
    rng = np.random.default_rng(0)
    clip = (np.cumsum(rng.normal(size=(601, F)), 0) * 0.1).astype(np.float32)
    want = _whole_clip_codes(tok, clip)
    assert len(np.unique(want)) > 10  # varied codes: a window that saw other frames would differ
    ctx = tmodel.context_frames(tok.cfg)
    fpt = tok.cfg.frames_per_token
    for budget in ((2 * ctx // fpt + 3) * fpt + 3, 3 * ctx + 5):  # 1 and ~ctx/2 kept tokens a window
        plan = tdata.plan_encode([len(clip)], frames_per_token=fpt, context=ctx, max_batch_frames=budget,
                                 max_rows=32)
        windows = sum(len(b.rows) for b in plan)
        assert windows > 2  # the budget does cut the clip
        got = encode_sequences(tok, [clip[:37], clip], max_batch_frames=budget)
        np.testing.assert_array_equal(got[1], want, err_msg=f"budget {budget}, {windows} windows")
        np.testing.assert_array_equal(got[0], _whole_clip_codes(tok, clip[:37]))


def test_plan_keeps_every_batch_within_the_budget_and_covers_every_token():
    fpt, ctx, budget = 4, 60, 4096
    lengths = [100_003, 5, 17, 300, 301, 2000, 4000, 4097] + [int(n) for n in np.random.default_rng(0).integers(
        8, 400, 57)]
    plan = tdata.plan_encode(lengths, frames_per_token=fpt, context=ctx, max_batch_frames=budget, max_rows=32)
    covered = [np.zeros(-(-n // fpt), int) for n in lengths]
    for batch in plan:
        assert batch.frames * batch.size <= budget and len(batch.rows) <= batch.size <= 32
        for row in batch.rows:
            assert row.start % fpt == 0 and row.skip + row.keep <= batch.frames // fpt
            covered[row.seq][row.dest:row.dest + row.keep] += 1
            # context on both sides of the kept tokens (the clip's own start excepted)
            assert row.start == 0 or row.skip * fpt >= ctx
            kept_end = min(row.start + (row.skip + row.keep) * fpt, lengths[row.seq])
            assert row.start + batch.frames - kept_end >= ctx
    assert all((c == 1).all() for c in covered)  # every token exactly once
    assert len({(b.frames, b.size) for b in plan}) <= 12  # few compiled shapes
    with pytest.raises(ConfigError, match="max_batch_frames=100 is below one window"):
        tdata.plan_encode([500], frames_per_token=fpt, context=ctx, max_batch_frames=100, max_rows=32)


_MEASURE = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    import shards_fake as sf
    from mm_jax.shards import ShardSource, write_shards
    from mm_jax.tokenizer.artifact import encode_dataset
    tok, data, out = sys.argv[1:4]
    encode_dataset(tok, data, out + "/tokens.npz")
    write_shards(data, tok, out + "/shards", split="train", num_shards=2, text_max_tokens=8,
                 text_tokenizer=sf.FakeTextTokenizer(8))
    rec = [r for r in (ShardSource(out + "/shards", "train").record(k) for k in range(32)) if r.id == "c07"][0]
    # VmHWM: this process's peak RSS (ru_maxrss would keep the forking pytest's size across exec)
    peak_mb = [int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0] / 1024
    print(json.dumps({{"peak_mb": peak_mb, "codes": rec.motion_codes[:64].tolist(),
                      "num_codes": int(rec.motion_codes.size)}}))
""")


def test_a_100k_frame_clip_in_a_32_clip_split_stays_under_2gb(tiny_tokenizer, tmp_path):
    """``tokenizer encode`` and ``data tokenize`` of 31 short clips and one of 100,000 frames.

    Measured peak RSS: before, every row was padded to the longest clip (1.8 GB
    with a 10k-frame clip, 3.1 GB with 20k, ~14 GB extrapolated to 100k; 14.5 GB
    reported); now 0.73 GB. ~30 s on 2 busy CPU cores.
    """
    from mm_jax.motion.synth import DatasetWriter

    rng = np.random.default_rng(0)
    w = DatasetWriter(tmp_path / "data")
    for i in range(32):
        n = 100_000 if i == 7 else int(rng.integers(40, 300))
        feats = np.cumsum(rng.normal(size=(n, 272)).astype(np.float32) * 0.05, axis=0)
        w.add({"id": f"c{i:02d}", "captions": [f"clip {i}"], "split": "train"}, feats)
    w.finish({"generator": "test"})
    script = _MEASURE.format(tests=str(pathlib.Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", script, str(tiny_tokenizer), str(tmp_path / "data"),
                           str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["peak_mb"] < 2048, got["peak_mb"]
    assert got["num_codes"] == 100_000 // 4
    with np.load(tmp_path / "tokens.npz") as z:  # the .npz and the shard agree on the long clip
        i = list(z["ids"]).index("c07")
        np.testing.assert_array_equal(z["tokens"][z["offsets"][i]:z["offsets"][i] + 64], got["codes"])
