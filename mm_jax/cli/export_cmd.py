"""``mm-jax export`` / ``mm-jax import-torch``: a decoder run <-> a PyTorch / Hugging Face directory."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a decoder run (+ its tokenizer and text encoder) for PyTorch",
                       description="Writes a transformers Llama config + safetensors, the text encoder as a "
                                   "BertModel and the motion tokenizer; load it with mm_jax.torch_port.")
    p.add_argument("--checkpoint", required=True, metavar="RUN", help="decoder run directory (mm-jax train)")
    p.add_argument("--out", required=True, metavar="DIR", help="export directory (must not exist)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="decoder weight dtype")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--verify", action="store_true", help="check logit and greedy parity after writing (needs torch)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    p.set_defaults(handler=_export)

    p = sub.add_parser("import-torch", help="turn an export directory back into a JAX decoder run")
    p.add_argument("export_dir", metavar="DIR")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to write (must not exist)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing RUN")
    p.set_defaults(handler=_import)


def _export(args: argparse.Namespace) -> int:
    from mm_jax.export.run import export_run

    res = export_run(args.checkpoint, args.out, dtype=args.dtype, step=args.step, overwrite=args.overwrite,
                     verify=args.verify)
    print(f"exported step {res.step} to {res.out_dir} in {res.seconds:.1f} s: {', '.join(res.files)}")
    if res.parity is not None:
        print(f"motion tokenizer: max |decode diff| {res.tokenizer_diff:.3g}")
        print(res.parity.line())
        return 0 if res.parity.greedy_equal else 1
    return 0


def _import(args: argparse.Namespace) -> int:
    from mm_jax.export.importer import import_torch

    run = import_torch(args.export_dir, args.out, overwrite=args.overwrite)
    print(f"wrote decoder run {run} (generate from it with mm-jax generate TEXT --checkpoint {run} --out DIR)")
    return 0
