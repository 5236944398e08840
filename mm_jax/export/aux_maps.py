"""Name maps of the exported text encoder and motion tokenizer (stage: export).

Text encoder: the inverse of :mod:`mm_jax.text.weights` (its EMBED_MAP and
LAYER_MAP), from the encoder's params pytree back to ``transformers.BertModel``
names; the result loads into ``BertModel`` with ``strict=True``. The CLS
pooler is not part of the decoder's text features and is not exported.

Motion tokenizer: Flax ``Conv`` kernels are [k, in, out] and torch ``Conv1d``
wants [out, in, k] (transposed (2, 1, 0)); ``LayerNorm`` scale -> weight. The
torch module (:mod:`mm_jax.torch_port.tokenizer`) keeps the Flax module names
(``decoder.ResStack_0.ResBlock_1.Conv_0.weight``), so the map is mechanical;
the options' modules keep their Flax names too (``encoder.wavelet_stack_0``,
``refine.ResBlock_1``). Every leaf must be consumed and every config field
must be one the port implements, at a value it implements (anything else is
an ``ExportError`` naming the field, never an export with wrong numbers).
The port implements all of ``TokenizerConfig``: both wavelet families at any
number of levels, ``wavelet_gain``, ``wavelet_res_stacks``, ``refine_width``,
``latent_kernel`` (any size, Flax 'SAME' padding), ``encoder_dilations_descending``,
``output_smoothing_frames`` and ``foot_lock`` (the decode-time post-step, in numpy:
:mod:`mm_jax.motion.foot_lock`, applied by the torch pipeline after denormalising).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from mm_jax.errors import ExportError
from mm_jax.text.config import TextConfig
from mm_jax.text.weights import EMBED_MAP, LAYER_MAP, hf_shapes

Item = tuple[str, tuple[int, ...], Callable[[], np.ndarray]]

# TokenizerConfig fields the torch port (mm_jax.torch_port.tokenizer) implements, and the values it implements
# where that is not every value the config accepts.
TOKENIZER_PORTED = ("feature_dim", "width", "depth", "dilation_growth", "down_t", "wavelet_levels", "fsq_levels",
                    "window", "wavelet_family", "wavelet_gain", "wavelet_res_stacks", "refine_width",
                    "latent_kernel", "encoder_dilations_descending", "output_smoothing_frames", "foot_lock")
TOKENIZER_VALUES = {"wavelet_family": ("haar", "cdf53")}


def _untransform(x: np.ndarray, how: str, cfg: TextConfig) -> np.ndarray:
    """Inverse of ``mm_jax.text.weights._transform``."""
    if how == "copy":
        return x
    if how == "in_heads":  # [D, H, K] -> [H*K, D]
        return x.reshape(x.shape[0], -1).T
    if how == "head_bias":  # [H, K] -> [H*K]
        return x.reshape(-1)
    if how == "out_heads":  # [H, K, D] -> [D, H*K]
        return x.reshape(-1, x.shape[-1]).T
    if how == "linear":
        return x.T
    raise AssertionError(f"unknown transform {how!r}")  # internal invariant


def text_tensors(cfg: TextConfig, params: dict) -> list[Item]:
    """(BertModel name, shape, read) of every text-encoder tensor, shapes from ``hf_shapes(cfg)``."""
    shapes = hf_shapes(cfg)
    items: list[Item] = []

    def add(name: str, leaf: np.ndarray, how: str) -> None:
        def read(leaf=leaf, how=how, name=name) -> np.ndarray:
            out = np.asarray(_untransform(np.asarray(leaf, np.float32), how, cfg))
            if tuple(out.shape) != shapes[name]:
                raise ExportError(f"text tensor {name} has shape {out.shape}, expected {shapes[name]}")
            return out
        items.append((name, shapes[name], read))

    for name, (leaf, how) in EMBED_MAP.items():
        add(name, params["embed"][leaf], how)
    for i in range(cfg.num_layers):
        for suffix, (leaf, how) in LAYER_MAP.items():
            add(f"encoder.layer.{i}.{suffix}", params["layers"][leaf][i], how)
    if {n for n, _, _ in items} != set(shapes):
        raise ExportError("the text encoder map does not cover BertModel's tensors")  # internal invariant
    return items


def bert_config(cfg: TextConfig) -> dict:
    """``text_encoder/config.json`` for ``transformers.BertModel``."""
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.width, "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
            "intermediate_size": cfg.mlp_dim, "hidden_act": "gelu", "max_position_embeddings": cfg.max_positions,
            "type_vocab_size": cfg.type_vocab_size, "layer_norm_eps": cfg.ln_eps, "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0, "pad_token_id": 0, "add_pooling_layer": False}


def check_tokenizer_config(cfg_dict: dict[str, Any]) -> None:
    """Raises ExportError for a tokenizer config field the torch port does not implement."""
    for name, value in cfg_dict.items():
        if name not in TOKENIZER_PORTED:
            raise ExportError(f"unsupported tokenizer config: field {name}={value!r} is not implemented by the "
                              f"torch port (it implements {list(TOKENIZER_PORTED)})")
        if name in TOKENIZER_VALUES and value not in TOKENIZER_VALUES[name]:
            raise ExportError(f"unsupported tokenizer config: {name}={value!r}; the torch port implements "
                              f"{name} in {TOKENIZER_VALUES[name]}")


def _flat(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out = {}
    for k in sorted(tree):
        out.update(_flat(tree[k], f"{prefix}.{k}" if prefix else k))
    return out


def tokenizer_tensors(cfg: Any, params: dict, mean: np.ndarray, std: np.ndarray) -> list[Item]:
    """(torch name, shape, read) of the tokenizer's weights and its normaliser's mean/std.

    Raises:
      ExportError: a config field the port lacks, or a leaf that is neither a conv kernel/bias nor a
        LayerNorm scale/bias (a module the port does not know).
    """
    cfg_dict = dataclasses.asdict(cfg)
    check_tokenizer_config(cfg_dict)
    items: list[Item] = []
    for path, leaf in _flat(params).items():
        module, kind = path.rsplit(".", 1)
        arr = np.asarray(leaf)
        last = module.rsplit(".", 1)[-1]
        if last.startswith("Conv_") and kind == "kernel" and arr.ndim == 3:
            items.append((f"{module}.weight", tuple(arr.shape[::-1]), lambda a=arr: a.transpose(2, 1, 0)))
        elif last.startswith(("Conv_", "LayerNorm_")) and kind == "bias" and arr.ndim == 1:
            items.append((f"{module}.bias", arr.shape, lambda a=arr: a))
        elif last.startswith("LayerNorm_") and kind == "scale" and arr.ndim == 1:
            items.append((f"{module}.weight", arr.shape, lambda a=arr: a))
        else:
            raise ExportError(f"unsupported tokenizer config: parameter {path} {arr.shape} is not a module "
                              "the torch port implements")
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    items.append(("normalizer.mean", mean.shape, lambda: mean))
    items.append(("normalizer.std", std.shape, lambda: std))
    return items
