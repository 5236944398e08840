"""``mm-jax import-torch``: an export directory -> a decoder run the JAX code generates from (stage: export).

Input: a directory written by :func:`mm_jax.export.run.export_run` (possibly
fine-tuned in PyTorch since: only the tensor values may change). Output: a
run directory with the original run's ``config.json`` (from the export's
``mm_jax.experiment``) and an orbax checkpoint at the exported step whose
``params`` item is the inverse of :mod:`mm_jax.export.hf`'s map and whose meta
is the original checkpoint's (so ``generate`` finds and identity-checks the
same tokenizer run). A float32 export round-trips exactly on every real
tensor entry; the JAX model's padded vocabulary rows come back as zeros (they
are never read). Tensors are read with a small safetensors reader (no torch).
"""

from __future__ import annotations

import json
import logging
import pathlib
import shutil
import struct

import ml_dtypes
import numpy as np

from mm_jax import configs
from mm_jax.checkpoint import Checkpointer
from mm_jax.errors import ExportError
from mm_jax.export import hf
from mm_jax.model.config import ModelConfig

log = logging.getLogger(__name__)

_DTYPES = {"F32": np.float32, "BF16": ml_dtypes.bfloat16, "F16": np.float16}


def read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
    """All tensors of one safetensors file as numpy arrays (float32, bfloat16 or float16)."""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
        base = 8 + size
        out = {}
        for name, spec in header.items():
            if name == "__metadata__":
                continue
            if spec["dtype"] not in _DTYPES:
                raise ExportError(f"{path}: tensor {name} has dtype {spec['dtype']}; expected one of {list(_DTYPES)}")
            begin, end = spec["data_offsets"]
            fh.seek(base + begin)
            out[name] = np.frombuffer(fh.read(end - begin), _DTYPES[spec["dtype"]]).reshape(spec["shape"])
    return out


def read_weights(export_dir: pathlib.Path, prefix: str = "model") -> dict[str, np.ndarray]:
    """The tensors of ``PREFIX.safetensors`` or of its shards (through the index)."""
    index = export_dir / f"{prefix}.safetensors.index.json"
    if index.is_file():
        tensors = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            tensors.update(read_safetensors(export_dir / shard))
        return tensors
    single = export_dir / f"{prefix}.safetensors"
    if not single.is_file():
        raise ExportError(f"{export_dir} holds neither {single.name} nor {index.name}")
    return read_safetensors(single)


def import_torch(export_dir: str | pathlib.Path, out_run: str | pathlib.Path, *, overwrite: bool = False
                 ) -> pathlib.Path:
    """Writes a decoder run from an export; returns the run directory.

    Raises:
      ExportError: not an mm_jax export, tensors that do not fit its config, or an existing ``out_run``
        without ``overwrite``.
    """

    export_dir, out = pathlib.Path(export_dir), pathlib.Path(out_run)
    cfg_path = export_dir / "config.json"
    if not cfg_path.is_file():
        raise ExportError(f"{export_dir} is not an mm_jax export: config.json is missing")
    section = json.loads(cfg_path.read_text()).get("mm_jax")
    if not isinstance(section, dict) or "experiment" not in section:
        raise ExportError(f"{cfg_path} has no mm_jax.experiment section: not written by `mm-jax export`")
    if out.exists() and not overwrite:
        raise ExportError(f"import target {out} already exists; pass --overwrite to replace it")
    model_cfg = configs.from_dict(ModelConfig, section["experiment"]["model"])
    params = hf.tree_from_tensors(model_cfg, read_weights(export_dir))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(section["experiment"], indent=2))
    with Checkpointer(out / "checkpoints", async_save=False) as ckpt:
        ckpt.save(int(section["step"]), {"params": params}, section.get("checkpoint_meta") or {})
    log.info("imported %s into run %s at step %d", export_dir, out, section["step"])
    return out
