"""Where in the temporal spectrum the tokenizer's reconstruction error sits, per wavelet level count.

Run after the ablation (the command in ``experiments/results/tokenizer_ablation.md``):

    .venv/bin/python experiments/tokenizer_error_spectrum.py --data runs/data2k --runs runs/ablation

(or ``--runs runs/variants --out experiments/results/tokenizer_variants/error_spectrum.json`` for the
variant sweep).

For up to 64 test sequences of >= 128 frames (first 128 frames each), it
reconstructs normalised features with each run, takes the FFT of the error
along time and reports the share of error energy at >= 7.5 Hz and at 15 Hz
(the Nyquist frequency: errors alternating sign frame to frame). Writes
experiments/results/tokenizer_error_spectrum.json.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from mm_jax.tokenizer import data as tdata
from mm_jax.tokenizer.artifact import load_tokenizer, open_motion_data
from mm_jax.tokenizer.reconstruction import reconstruct_batch

FRAMES = 128


def spectrum_row(run: pathlib.Path, x: np.ndarray) -> dict:
    tok = load_tokenizer(run)
    err = np.asarray(reconstruct_batch(tok.params, x, tok.cfg)[0]) - x
    energy = (np.abs(np.fft.rfft(err, axis=1)) ** 2).sum((0, 2))
    freq = np.fft.rfftfreq(FRAMES, d=1 / 30)
    return {"run": str(run), "wavelet_levels": tok.cfg.wavelet_levels, "down_t": tok.cfg.down_t,
            "wavelet_family": tok.cfg.wavelet_family, "wavelet_res_stacks": tok.cfg.wavelet_res_stacks,
            "error_mse": float(np.mean(err**2)),
            "share_at_or_above_7p5hz": float(energy[freq >= 7.5].sum() / energy.sum()),
            "share_at_15hz": float(energy[-1] / energy.sum())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--runs", required=True, help="directory holding one tokenizer run per variant")
    p.add_argument("--out", default="experiments/results/tokenizer_error_spectrum.json")
    args = p.parse_args()
    data = open_motion_data(args.data)
    offsets, lengths = data.spans("test")
    keep = lengths >= FRAMES
    n = min(64, int(keep.sum()))
    x, _ = tdata.padded_batch(data.features, offsets[keep][:n], np.full(n, FRAMES), multiple=8,
                              normalizer=data.normalizer, pad_to=FRAMES)
    rows = [spectrum_row(run, x) for run in sorted(pathlib.Path(args.runs).iterdir())
            if (run / "tokenizer.json").exists()]
    pathlib.Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    for r in rows:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "run"}))


if __name__ == "__main__":
    main()
