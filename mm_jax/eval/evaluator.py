"""A contrastive text/motion evaluator, TMR-style (stage: eval).

Motion side: normalised features ``[B, T, F]`` + frame mask ``[B, T]`` ->
patches of ``patch`` frames -> a small pre-LN transformer -> masked mean
pool -> projection to ``E = embed_dim``, L2-normalised. Text side: the frozen
MiniLM sentence embedding ``[B, 384]`` -> MLP -> ``[B, E]``, L2-normalised.
Trained with a symmetric InfoNCE loss at a fixed temperature; in-batch
negatives whose captions' MiniLM cosine similarity exceeds
``negative_filter`` are masked out (TMR), since the synthetic captions
repeat.

Run directory::

    OUT/evaluator.json   config, EVALUATOR_VERSION, identity, step, val metrics
    OUT/stats.npz        the normaliser of the training data
    OUT/checkpoints/     orbax (params only; meta carries the identity)
    OUT/metrics.jsonl    training/validation metrics

Training draws, per step and sample, a random train sequence, a random
paraphrase and a random crop of at most ``max_frames`` frames (NumPy
generator seeded by ``(seed, step)``); evaluation embeds the first
``max_frames`` frames of each sequence.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import pathlib
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mm_jax import text
from mm_jax.checkpoint import Checkpointer, load_params
from mm_jax.errors import CheckpointError, ConfigError, DataError, ShapeError
from mm_jax.motion.features import FEATURE_DIM
from mm_jax.motion.normalize import Normalizer

log = logging.getLogger(__name__)

EVALUATOR_VERSION = "mm_jax-tmr-evaluator/1"
TEXT_WIDTH = 384
TEXT_MAX_TOKENS = 64
TEXT_CHUNK = 128
EMBED_CHUNK = 64


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluatorConfig:
    """Architecture and training of the evaluator.

    Attributes:
      width, num_layers, num_heads, mlp_ratio: the motion transformer (D, L, H).
      patch: frames per motion token; ``max_frames`` must divide by it.
      max_frames: crop length T (training) and evaluation window.
      embed_dim: E, the joint embedding width.
      text_hidden: hidden width of the text MLP.
      temperature: InfoNCE temperature.
      negative_filter: mask in-batch negatives with caption similarity above this.
      batch_size, learning_rate, weight_decay, seed: training.
      val_every: steps between validations (and at the end).
    """

    name: str = "small"
    width: int = 128
    num_layers: int = 3
    num_heads: int = 4
    mlp_ratio: int = 4
    patch: int = 4
    max_frames: int = 240
    embed_dim: int = 256
    text_hidden: int = 512
    temperature: float = 0.1
    negative_filter: float = 0.9
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_every: int = 100

    def __post_init__(self) -> None:
        for f in ("width", "num_layers", "num_heads", "patch", "max_frames", "embed_dim",
                  "text_hidden", "batch_size", "val_every", "mlp_ratio"):
            if getattr(self, f) < 1:
                raise ConfigError(f"EvaluatorConfig.{f}={getattr(self, f)!r} must be >= 1")
        if self.width % self.num_heads:
            raise ConfigError(f"width={self.width} must divide by num_heads={self.num_heads}")
        if self.max_frames % self.patch:
            raise ConfigError(f"max_frames={self.max_frames} must divide by patch={self.patch}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature={self.temperature!r} must be > 0")
        if not self.learning_rate > 0:  # NaN fails too
            raise ConfigError(f"EvaluatorConfig.learning_rate={self.learning_rate!r} must be > 0")
        if not self.weight_decay >= 0:
            raise ConfigError(f"EvaluatorConfig.weight_decay={self.weight_decay!r} must be >= 0")
        if not self.negative_filter > -1:
            raise ConfigError(f"EvaluatorConfig.negative_filter={self.negative_filter!r} must be > -1 "
                              "(a caption similarity; -1 or less would mask every negative)")
        if self.seed < 0:
            raise ConfigError(f"EvaluatorConfig.seed={self.seed!r} must be >= 0")


PRESETS: dict[str, EvaluatorConfig] = {
    "tiny": EvaluatorConfig(name="tiny", width=32, num_layers=1, num_heads=2, patch=8, max_frames=128,
                            embed_dim=32, text_hidden=64, batch_size=16, learning_rate=2e-3, val_every=20),
    "small": EvaluatorConfig(),
}


def preset(name: str) -> EvaluatorConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown evaluator preset {name!r}; choices: {', '.join(PRESETS)}")
    return PRESETS[name]


# --- model -----------------------------------------------------------------------


class MotionEncoder(nn.Module):
    cfg: EvaluatorConfig

    @nn.compact
    def __call__(self, x_btf: jax.Array, mask_bt: jax.Array) -> jax.Array:
        c = self.cfg
        b, t, f = x_btf.shape
        n = t // c.patch
        x_bnd = nn.Dense(c.width)(x_btf.reshape(b, n, c.patch * f))
        mask_bn = mask_bt.reshape(b, n, c.patch).any(-1)
        pos = self.param("pos", nn.initializers.normal(0.02), (c.max_frames // c.patch, c.width))
        x_bnd = x_bnd + pos[:n]
        attn_mask = nn.make_attention_mask(mask_bn, mask_bn)
        for _ in range(c.num_layers):
            h = nn.LayerNorm()(x_bnd)
            x_bnd = x_bnd + nn.MultiHeadDotProductAttention(num_heads=c.num_heads)(h, h, mask=attn_mask)
            h = nn.gelu(nn.Dense(c.mlp_ratio * c.width)(nn.LayerNorm()(x_bnd)))
            x_bnd = x_bnd + nn.Dense(c.width)(h)
        m_bn1 = mask_bn[..., None].astype(x_bnd.dtype)
        pooled_bd = (nn.LayerNorm()(x_bnd) * m_bn1).sum(1) / jnp.maximum(m_bn1.sum(1), 1.0)
        return _l2(nn.Dense(c.embed_dim)(pooled_bd))


class TextHead(nn.Module):
    cfg: EvaluatorConfig

    @nn.compact
    def __call__(self, s_bd: jax.Array) -> jax.Array:
        h = nn.gelu(nn.Dense(self.cfg.text_hidden)(s_bd))
        return _l2(nn.Dense(self.cfg.embed_dim)(h))


def _l2(x: jax.Array) -> jax.Array:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def init_params(cfg: EvaluatorConfig, *, key: jax.Array) -> dict[str, Any]:
    """Parameters ``{"motion": ..., "text": ...}``."""
    k_m, k_t = jax.random.split(key)
    x = jnp.zeros((1, cfg.max_frames, FEATURE_DIM))
    return {
        "motion": MotionEncoder(cfg).init(k_m, x, jnp.ones((1, cfg.max_frames), bool))["params"],
        "text": TextHead(cfg).init(k_t, jnp.zeros((1, TEXT_WIDTH)))["params"],
    }


def infonce_loss(cfg: EvaluatorConfig, params, x_btf, mask_bt, s_bd) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Symmetric InfoNCE of a batch of matched (motion, sentence embedding) pairs."""
    m_be = MotionEncoder(cfg).apply({"params": params["motion"]}, x_btf, mask_bt)
    t_be = TextHead(cfg).apply({"params": params["text"]}, s_bd)
    logits_bb = t_be @ m_be.T / cfg.temperature
    b = logits_bb.shape[0]
    eye = jnp.eye(b, dtype=bool)
    similar = (s_bd @ s_bd.T > cfg.negative_filter) & ~eye
    logits_bb = jnp.where(similar, -1e9, logits_bb)
    labels = jnp.arange(b)
    loss = 0.5 * (optax.softmax_cross_entropy_with_integer_labels(logits_bb, labels).mean()
                  + optax.softmax_cross_entropy_with_integer_labels(logits_bb.T, labels).mean())
    acc = (jnp.argmax(logits_bb, axis=1) == labels).mean()
    return loss, {"train/loss": loss, "train/batch_top1": acc}


# --- text --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TextEncoder:
    """The frozen MiniLM (tokenizer + params) that feeds the text head."""

    tokenizer: Any
    params: Any

    @classmethod
    def load(cls) -> "TextEncoder":

        return cls(text.TextTokenizer.from_pretrained(max_tokens=TEXT_MAX_TOKENS), text.load_params())

    def identity(self) -> str:

        return f"{self.tokenizer.vocab_identity()}|{text.weights_identity()}"

    def sentences(self, captions: Sequence[str]) -> np.ndarray:
        """Unit-norm MiniLM sentence embeddings [B, 384]; captions bucketed by length."""

        captions = list(captions)
        if not captions:
            raise DataError("no captions to encode")
        tok = self.tokenizer.encode(captions)
        lengths = tok.mask.sum(1)
        order = np.argsort(lengths, kind="stable")
        out = np.zeros((len(captions), TEXT_WIDTH), np.float32)
        enc = jax.jit(text.encode)
        for lo in range(0, len(order), TEXT_CHUNK):
            idx = order[lo : lo + TEXT_CHUNK]
            s = int(-(-lengths[idx].max() // 16) * 16)  # pad S to a multiple of 16: few compiles
            ids = np.zeros((TEXT_CHUNK, s), np.int32)
            mask = np.zeros((TEXT_CHUNK, s), bool)
            ids[: len(idx)], mask[: len(idx)] = tok.ids[idx, :s], tok.mask[idx, :s]
            mask[len(idx):, 0] = True
            out[idx] = np.asarray(enc(self.params, ids, mask)[1])[: len(idx)]
        return out


# --- the trained evaluator -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Evaluator:
    """A trained evaluator: config, params, the data normaliser and (optionally) the text encoder."""

    cfg: EvaluatorConfig
    params: Any
    normalizer: Normalizer
    identity: str
    text: TextEncoder | None = None


def identity_of(cfg: EvaluatorConfig, text_identity: str) -> str:
    blob = json.dumps({"version": EVALUATOR_VERSION, "config": dataclasses.asdict(cfg),
                       "text": text_identity}, sort_keys=True)
    return f"{EVALUATOR_VERSION}:{cfg.name}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


@functools.partial(jax.jit, static_argnums=0)
def _motion_apply(cfg, params, x_btf, mask_bt):
    return MotionEncoder(cfg).apply({"params": params}, x_btf, mask_bt)


@functools.partial(jax.jit, static_argnums=0)
def _text_apply(cfg, params, s_bd):
    return TextHead(cfg).apply({"params": params}, s_bd)


def _window_batch(seqs: Sequence[np.ndarray], max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """First ``max_frames`` frames of each (already normalised) clip, edge-padded: [B, T, F], [B, T]."""
    x = np.zeros((len(seqs), max_frames, FEATURE_DIM), np.float32)
    mask = np.zeros((len(seqs), max_frames), bool)
    for i, s in enumerate(seqs):
        n = min(len(s), max_frames)
        x[i, :n], x[i, n:], mask[i, :n] = s[:n], s[n - 1], True
    return x, mask


def embed_motion(ev: Evaluator, features_list: Sequence[np.ndarray]) -> np.ndarray:
    """Embeddings [B, E] of B clips of raw (unnormalised) features, each [T, 272].

    Raises:
      ShapeError: a clip that is not [T, 272]. DataError: no clips, an empty
      clip, or NaN/inf values.
    """
    seqs = []
    for i, f in enumerate(features_list):
        f = np.asarray(f, np.float32)
        if f.ndim != 2 or f.shape[1] != FEATURE_DIM:
            raise ShapeError(f"clip {i}: features must be [T, {FEATURE_DIM}]; got shape {f.shape}")
        if f.shape[0] == 0 or not np.isfinite(f).all():
            raise DataError(f"clip {i}: empty or non-finite features (shape {f.shape})")
        seqs.append(np.asarray(ev.normalizer.normalize(f), np.float32))
    if not seqs:
        raise DataError("embed_motion needs at least one clip")
    out = []
    for lo in range(0, len(seqs), EMBED_CHUNK):
        chunk = seqs[lo : lo + EMBED_CHUNK]
        x, mask = _window_batch(chunk + [chunk[-1]] * (EMBED_CHUNK - len(chunk)), ev.cfg.max_frames)
        out.append(np.asarray(_motion_apply(ev.cfg, ev.params["motion"], x, mask))[: len(chunk)])
    return np.concatenate(out)


def embed_sentences(ev: Evaluator, s_bd: np.ndarray) -> np.ndarray:
    """Text embeddings [B, E] from precomputed MiniLM sentence embeddings [B, 384]."""
    s_bd = np.asarray(s_bd, np.float32)
    if s_bd.ndim != 2 or s_bd.shape[1] != TEXT_WIDTH:
        raise ShapeError(f"sentence embeddings must be [B, {TEXT_WIDTH}]; got shape {s_bd.shape}")
    return np.asarray(_text_apply(ev.cfg, ev.params["text"], s_bd))


def embed_text(ev: Evaluator, captions: Sequence[str]) -> np.ndarray:
    """Text embeddings [B, E] of B captions (DataError on empty captions)."""
    if ev.text is None:
        raise ConfigError("this Evaluator was loaded without its text encoder (load_evaluator(..., text=True))")
    return embed_sentences(ev, ev.text.sentences(captions))


# --- artefact ------------------------------------------------------------------------


def save_evaluator(ev: Evaluator, out_dir: pathlib.Path, *, step: int, extra: dict | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = Checkpointer(out_dir / "checkpoints", max_to_keep=1, async_save=False)
    ckpt.save(step, {"params": ev.params}, {"identity": ev.identity})
    ckpt.close()
    ev.normalizer.save(out_dir / "stats.npz")
    doc = {"version": EVALUATOR_VERSION, "identity": ev.identity, "step": step,
           "config": dataclasses.asdict(ev.cfg), **(extra or {})}
    (out_dir / "evaluator.json").write_text(json.dumps(doc, indent=1, sort_keys=True))


def load_evaluator(run_dir: str | pathlib.Path, *, text: bool = True) -> Evaluator:
    """Restores a saved evaluator (``text=False`` skips loading MiniLM; then only embed_sentences/motion).

    Raises:
      CheckpointError: missing files, another EVALUATOR_VERSION or an identity mismatch.
    """
    run_dir = pathlib.Path(run_dir)
    path = run_dir / "evaluator.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; not an evaluator run directory")
    doc = json.loads(path.read_text())
    if doc.get("version") != EVALUATOR_VERSION:
        raise CheckpointError(f"{path}: version {doc.get('version')!r}; this code reads {EVALUATOR_VERSION}")
    try:
        cfg = EvaluatorConfig(**doc["config"])
    except (TypeError, ConfigError) as e:
        raise CheckpointError(f"{path}: bad config ({e})") from None
    abstract = jax.eval_shape(lambda: init_params(cfg, key=jax.random.key(0)))
    _, params, _ = load_params(run_dir, abstract, expected_meta={"identity": doc["identity"]})
    enc = TextEncoder.load() if text else None
    if enc is not None and identity_of(cfg, enc.identity()) != doc["identity"]:
        raise CheckpointError(f"{path}: trained with another text encoder than the installed MiniLM")
    return Evaluator(cfg, params, Normalizer.load(run_dir / "stats.npz"), doc["identity"], enc)
