"""The decoder's parameter tree <-> Hugging Face Llama tensor names (stage: export).

Input: a ``ModelConfig`` and its plain params dict (loop or scanned layers,
float32 master weights). Output: an ordered list of :class:`Tensor` specs, each
naming one ``LlamaForCausalLM``-style tensor, its shape, and how to read it
from the tree (one tensor at a time, so a writer streams them), plus the
``config.json`` that ``transformers.AutoConfig`` reads as a Llama config.

The name map (J = the JAX tree, torch Linear weights are [out, in] like ours,
so nothing is transposed; H = K * G heads in kv-head-major order)::

    text_proj                 [D, C]           -> text_proj.weight
    embed[:V]                 [V, D]           -> model.embed_tokens.weight  (padded rows dropped)
    block_i/attn_norm/scale   [D]              -> model.layers.i.input_layernorm.weight
    block_i/attn/qkv[:, :G]   [K, G, E, D]     -> model.layers.i.self_attn.q_proj.weight [H*E, D]
    block_i/attn/qkv[:, G]    [K, E, D]        -> ...k_proj.weight [K*E, D]
    block_i/attn/qkv[:, G+1]  [K, E, D]        -> ...v_proj.weight [K*E, D]
    block_i/attn/out          [D, H, E]        -> ...o_proj.weight [D, H*E]
    block_i/mlp_norm/scale    [D]              -> model.layers.i.post_attention_layernorm.weight
    block_i/mlp/gate_up[0|1]  [M, D]           -> ...mlp.gate_proj.weight / mlp.up_proj.weight
    block_i/mlp/down          [D, M]           -> ...mlp.down_proj.weight
    final_norm/scale          [D]              -> model.norm.weight
    head[:V]                  [V, D]           -> lm_head.weight               (padded rows dropped)

With scanned layers, ``blocks/...`` leaves carry a leading L axis and layer i
is ``leaf[i]``. No RoPE permutation is needed: the model already uses the
rotate-half layout. :func:`decoder_tensors` asserts every shape and that every
leaf of the tree is consumed; :func:`tree_from_tensors` is the inverse (import
back), with the padded vocabulary rows set to zero (they are never read: the
padded ids are never embedded and their logits are masked).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from mm_jax.errors import ExportError
from mm_jax.model.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One exported tensor: its name, shape, and a function reading it (a numpy array) from the tree."""

    name: str
    shape: tuple[int, ...]
    read: Callable[[Any], np.ndarray]
    leaves: tuple[str, ...]  # the tree leaves (slash paths) it is read from


def _leaf(tree: Any, path: str) -> Any:
    node = tree
    for part in path.split("/"):
        if not isinstance(node, dict) or part not in node:
            raise ExportError(f"the parameter tree has no leaf {path!r} (missing {part!r}); "
                              f"it is not a decoder of this config")
        node = node[part]
    return node


def tree_paths(tree: Any, prefix: str = "") -> list[str]:
    """Slash paths of every leaf of a nested dict."""
    if not isinstance(tree, dict):
        return [prefix.rstrip("/")]
    return [p for k in sorted(tree) for p in tree_paths(tree[k], f"{prefix}{k}/")]


def _layer_specs(cfg: ModelConfig, i: int) -> list[tuple[str, str, tuple[int, ...], Callable]]:
    """(torch name, JAX leaf suffix, shape, slice of the leaf) of layer i."""
    d, e, g, h, k, m = cfg.width, cfg.head_dim, cfg.queries_per_kv, cfg.num_heads, cfg.num_kv_heads, cfg.mlp_hidden
    p = f"model.layers.{i}."
    return [
        (p + "input_layernorm.weight", "attn_norm/scale", (d,), lambda w: w),
        (p + "self_attn.q_proj.weight", "attn/qkv", (h * e, d), lambda w: w[:, :g].reshape(h * e, d)),
        (p + "self_attn.k_proj.weight", "attn/qkv", (k * e, d), lambda w: w[:, g].reshape(k * e, d)),
        (p + "self_attn.v_proj.weight", "attn/qkv", (k * e, d), lambda w: w[:, g + 1].reshape(k * e, d)),
        (p + "self_attn.o_proj.weight", "attn/out", (d, h * e), lambda w: w.reshape(d, h * e)),
        (p + "post_attention_layernorm.weight", "mlp_norm/scale", (d,), lambda w: w),
        (p + "mlp.gate_proj.weight", "mlp/gate_up", (m, d), lambda w: w[0]),
        (p + "mlp.up_proj.weight", "mlp/gate_up", (m, d), lambda w: w[1]),
        (p + "mlp.down_proj.weight", "mlp/down", (d, m), lambda w: w),
    ]


def _reader(path: str, index: int | None, take: Callable, shape: tuple[int, ...]) -> Callable[[Any], np.ndarray]:
    def read(tree: Any) -> np.ndarray:
        leaf = _leaf(tree, path)
        if index is not None:
            leaf = leaf[index]
        out = np.asarray(take(np.asarray(leaf)))
        if tuple(out.shape) != shape:
            raise ExportError(f"leaf {path} gives a tensor of shape {tuple(out.shape)}, expected {shape}")
        return out
    return read


def decoder_tensors(cfg: ModelConfig) -> list[Tensor]:
    """The ordered export layout of ``cfg``'s decoder (see the module docstring)."""
    d, c, v = cfg.width, cfg.text_dim, cfg.vocab_size
    out = [Tensor("text_proj.weight", (d, c), _reader("text_proj", None, lambda w: w, (d, c)), ("text_proj",)),
           Tensor("model.embed_tokens.weight", (v, d), _reader("embed", None, lambda w: w[:v], (v, d)), ("embed",))]
    for i in range(cfg.num_layers):
        base, index = (("blocks/", i) if cfg.scan_layers else (f"block_{i}/", None))
        for name, suffix, shape, take in _layer_specs(cfg, i):
            out.append(Tensor(name, shape, _reader(base + suffix, index, take, shape), (base + suffix,)))
    out.append(Tensor("model.norm.weight", (d,), _reader("final_norm/scale", None, lambda w: w, (d,)),
                      ("final_norm/scale",)))
    out.append(Tensor("lm_head.weight", (v, d), _reader("head", None, lambda w: w[:v], (v, d)), ("head",)))
    return out


def check_tree(cfg: ModelConfig, tree: Any) -> list[Tensor]:
    """The layout, after checking that the tree's leaves are exactly the ones it reads, with the right shapes.

    Raises:
      ExportError: a leaf the layout does not consume, one it needs that is missing, or a wrong shape.
    """
    specs = decoder_tensors(cfg)
    have = set(tree_paths(tree))
    used = {leaf for t in specs for leaf in t.leaves}
    if have != used:
        raise ExportError(f"the parameter tree does not fit the export layout of this config: leaves not "
                          f"consumed {sorted(have - used)[:6]}, missing {sorted(used - have)[:6]}")
    want = _jax_shapes(cfg)
    for path in sorted(have):
        got = tuple(np.shape(_leaf(tree, path)))
        if got != want[path]:
            raise ExportError(f"leaf {path} has shape {got}, expected {want[path]} for this config")
    return specs


def _jax_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Leaf path -> shape of the JAX tree of ``cfg`` (llama.py's layout)."""
    d, e, g, h, k, m = cfg.width, cfg.head_dim, cfg.queries_per_kv, cfg.num_heads, cfg.num_kv_heads, cfg.mlp_hidden
    vp = cfg.padded_vocab_size
    block = {"attn_norm/scale": (d,), "attn/qkv": (k, g + 2, e, d), "attn/out": (d, h, e),
             "mlp_norm/scale": (d,), "mlp/gate_up": (2, m, d), "mlp/down": (d, m)}
    out = {"text_proj": (d, cfg.text_dim), "embed": (vp, d), "final_norm/scale": (d,), "head": (vp, d)}
    for suffix, shape in block.items():
        if cfg.scan_layers:
            out[f"blocks/{suffix}"] = (cfg.num_layers,) + shape
        else:
            out.update({f"block_{i}/{suffix}": shape for i in range(cfg.num_layers)})
    return out


def tree_from_tensors(cfg: ModelConfig, tensors: dict[str, np.ndarray]) -> dict:
    """Inverse of :func:`decoder_tensors`: exported tensors -> the JAX params tree (float32 numpy).

    Raises:
      ExportError: a missing, unknown or mis-shaped tensor.
    """
    specs = {t.name: t for t in decoder_tensors(cfg)}
    missing, unknown = sorted(set(specs) - set(tensors)), sorted(set(tensors) - set(specs))
    if missing or unknown:
        raise ExportError(f"the tensors do not fit this config: missing {missing[:6]}, unknown {unknown[:6]}")
    for name, t in specs.items():
        if tuple(tensors[name].shape) != t.shape:
            raise ExportError(f"tensor {name} has shape {tuple(tensors[name].shape)}, expected {t.shape}")
    f = {n: np.asarray(a, np.float32) for n, a in tensors.items()}
    d, e, k = cfg.width, cfg.head_dim, cfg.num_kv_heads
    g = cfg.queries_per_kv

    def padded(w: np.ndarray) -> np.ndarray:
        return np.concatenate([w, np.zeros((cfg.padded_vocab_size - cfg.vocab_size, d), np.float32)])

    blocks = []
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        q = f[p + "self_attn.q_proj.weight"].reshape(k, g, e, d)
        kk = f[p + "self_attn.k_proj.weight"].reshape(k, 1, e, d)
        vv = f[p + "self_attn.v_proj.weight"].reshape(k, 1, e, d)
        blocks.append({
            "attn_norm": {"scale": f[p + "input_layernorm.weight"]},
            "attn": {"qkv": np.concatenate([q, kk, vv], axis=1),
                     "out": f[p + "self_attn.o_proj.weight"].reshape(d, cfg.num_heads, e)},
            "mlp_norm": {"scale": f[p + "post_attention_layernorm.weight"]},
            "mlp": {"gate_up": np.stack([f[p + "mlp.gate_proj.weight"], f[p + "mlp.up_proj.weight"]]),
                    "down": f[p + "mlp.down_proj.weight"]},
        })
    tree = {"text_proj": f["text_proj.weight"], "embed": padded(f["model.embed_tokens.weight"]),
            "final_norm": {"scale": f["model.norm.weight"]}, "head": padded(f["lm_head.weight"])}
    if cfg.scan_layers:
        import jax

        tree["blocks"] = jax.tree.map(lambda *xs: np.stack(xs), *blocks)
    else:
        tree.update({f"block_{i}": b for i, b in enumerate(blocks)})
    return tree


def llama_config(cfg: ModelConfig, *, dtype: str, mm_jax: dict) -> dict:
    """``config.json``: a Llama config ``transformers.AutoConfig`` reads, plus the ``mm_jax`` section."""
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.width, "intermediate_size": cfg.mlp_hidden,
        "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim, "hidden_act": "silu",
        "max_position_embeddings": cfg.block_size, "rms_norm_eps": cfg.norm_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0,
        "bos_token_id": cfg.bos_id, "eos_token_id": cfg.eos_id, "pad_token_id": cfg.pad_id,
        "initializer_range": cfg.init_std, "use_cache": True, "dtype": dtype,
        "mm_jax": mm_jax,
    }


def generation_config(cfg: ModelConfig) -> dict:
    """``generation_config.json``: the motion special ids and the sampling defaults of ``mm-jax generate``."""
    return {"bos_token_id": cfg.bos_id, "eos_token_id": cfg.eos_id, "pad_token_id": cfg.pad_id,
            "do_sample": True, "temperature": 1.0, "top_p": 0.95, "top_k": 0,
            "max_new_tokens": cfg.max_motion_tokens - 1, "guidance_scale": 2.5}
