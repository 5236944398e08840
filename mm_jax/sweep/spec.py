"""The sweep file: a declarative grid of decoder runs (stage: sweep).

Input: a YAML or JSON file under ``experiments/sweeps/`` (YAML is a superset
of JSON; both are read with ``yaml.safe_load``). Output: a frozen
:class:`SweepSpec`; :mod:`mm_jax.sweep.points` expands it into points.

Schema (every key but ``name``, ``sizes`` and ``tokenizers`` is optional)::

    name: cpu_proof
    base_preset: tiny              # experiment preset every point starts from
    overrides: [pipeline.global_batch_size=16, train.val_every=100]  # for every point
    tokenizers:                    # the codebook axis: one entry per tokenizer
      - {name: c1000, tokenizer_run: runs/scaling/tokenizer, shards_dir: runs/scaling/shards}
    data_dir: runs/scaling/data    # the dataset the evaluator scores against (and data fractions read)
    evaluator_dir: runs/scaling/evaluator   # the one fixed evaluator
    sizes:                         # the model-size axis: a preset, or layers/heads/width
      - {name: w32l1, layers: 1, heads: 2, width: 32}
      - {name: 70m, preset: 70m, seeds: [0, 1]}   # per-size seeds replace `seeds`
    seeds: [0]
    data_fractions: [1.0]          # share of the train split each point trains on
    budget: {tokens: 3.0e6}        # or {steps: 600}, or {tokens_per_param: 20, min_steps: .., max_steps: ..}
    lr_rule: {base_lr: 1.0e-3, base_width: 128, exponent: 0.5, warmup_fraction: 0.05, min_warmup: 20}
    eval: {split: test, max_sequences: 384, seed: 0, cfg_scale: 2.5, bootstrap: 200}
    launch: {device: v5p, num_devices: 32, num_processes: 8, meshes: {1b: {data: 4, fsdp: 8, tensor: 1}}}
    prepare: ["mm-jax data synth ...", ...]  # the commands that made the shared runs (documentation)

Relative paths are resolved against the working directory. Budgets count
*tokens* as decoder positions (text prefix + motion), the unit of
:data:`mm_jax.perf.FLOP_CONVENTION`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Mapping

from mm_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True)
class SizeSpec:
    """One model size: a model preset, or layers/heads/width (kv heads default to heads: MHA)."""

    name: str
    preset: str | None = None
    layers: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    width: int | None = None
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        shape = (self.layers, self.heads, self.width)
        if self.preset is None and None in shape:
            raise ConfigError(f"size {self.name!r}: give a preset or all of layers, heads, width; got {shape}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenizerSpec:
    """One entry of the codebook axis: a trained tokenizer run and the shards it made."""

    name: str
    tokenizer_run: str
    shards_dir: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class BudgetSpec:
    """Training length per point: exactly one of ``steps``, ``tokens``, ``tokens_per_param``."""

    steps: int | None = None
    tokens: float | None = None
    tokens_per_param: float | None = None
    min_steps: int = 1
    max_steps: int | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("steps", "tokens", "tokens_per_param") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(f"budget: give exactly one of steps, tokens, tokens_per_param; got {given or 'none'}")
        if any(getattr(self, k) is not None and getattr(self, k) <= 0 for k in given):
            raise ConfigError(f"budget.{given[0]}={getattr(self, given[0])} must be > 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LrRule:
    """Width-aware learning rate and warm-up, recorded with every point.

    ``lr = min(max_lr, base_lr * (base_width / width) ** exponent)``;
    ``warmup = max(min_warmup, round(warmup_fraction * steps))`` (capped at steps - 1).
    Exponent 1 is muP's Adam rule for hidden matrices; 0.5 is a gentler
    compromise for the embedding-dominated small models.
    """

    base_lr: float = 1e-3
    base_width: int = 128
    exponent: float = 0.5
    max_lr: float | None = None
    warmup_fraction: float = 0.05
    min_warmup: int = 20

    def __post_init__(self) -> None:
        if not (self.base_lr > 0 and self.base_width > 0 and 0 <= self.warmup_fraction < 1 and self.min_warmup >= 0):
            raise ConfigError(f"lr_rule {self}: base_lr, base_width > 0; warmup_fraction in [0, 1); min_warmup >= 0")

    def lr(self, width: int) -> float:
        value = self.base_lr * (self.base_width / width) ** self.exponent
        return value if self.max_lr is None else min(value, self.max_lr)

    def warmup(self, steps: int) -> int:
        return max(0, min(steps - 1, max(self.min_warmup, round(self.warmup_fraction * steps))))


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalSpec:
    """How every point is scored with the fixed evaluator."""

    split: str = "test"
    max_sequences: int | None = None
    seed: int = 0
    cfg_scale: float = 2.5
    top_p: float = 0.95
    bootstrap: int = 200
    diversity_pairs: int = 300


@dataclasses.dataclass(frozen=True, kw_only=True)
class LaunchSpec:
    """Where points run on a pod slice (``mm-jax sweep plan``); meshes pinned per size name."""

    device: str | None = None
    num_devices: int = 1
    num_processes: int = 1
    coordinator: str = "$COORDINATOR"
    meshes: Mapping[str, Mapping[str, int]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """A parsed sweep file (module docstring)."""

    name: str
    sizes: tuple[SizeSpec, ...]
    tokenizers: tuple[TokenizerSpec, ...]
    base_preset: str = "tiny"
    overrides: tuple[str, ...] = ()
    data_dir: str | None = None
    evaluator_dir: str | None = None
    seeds: tuple[int, ...] = (0,)
    data_fractions: tuple[float, ...] = (1.0,)
    budget: BudgetSpec = BudgetSpec(steps=300)
    lr_rule: LrRule = LrRule()
    eval: EvalSpec = EvalSpec()
    launch: LaunchSpec = LaunchSpec()
    prepare: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ConfigError(f"sweep {self.name!r}: `sizes` is empty")
        if not self.tokenizers:
            raise ConfigError(f"sweep {self.name!r}: `tokenizers` is empty (name a tokenizer run and its shards)")
        for axis, items in (("sizes", [s.name for s in self.sizes]), ("tokenizers", [t.name for t in self.tokenizers])):
            if len(set(items)) != len(items):
                raise ConfigError(f"sweep {self.name!r}: duplicate names in {axis}: {items}")
        if any(not 0 < f <= 1 for f in self.data_fractions):
            raise ConfigError(f"data_fractions {self.data_fractions} must lie in (0, 1]")


def _build(cls: type, raw: Any, what: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{what} must be a mapping; got {raw!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"{what}: unknown keys {unknown}; valid: {sorted(fields)}")
    vals = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        return cls(**vals)
    except TypeError as e:
        raise ConfigError(f"{what}: {e}") from None


def spec_from_dict(raw: Mapping[str, Any]) -> SweepSpec:
    """A :class:`SweepSpec` from the parsed file; ConfigError names any bad or unknown key."""
    nested = {"budget": BudgetSpec, "lr_rule": LrRule, "eval": EvalSpec, "launch": LaunchSpec}
    out = dict(raw)
    for key, cls in nested.items():
        if key in out:
            out[key] = _build(cls, out[key], key)
    out["sizes"] = tuple(_build(SizeSpec, s, f"sizes[{i}]") for i, s in enumerate(raw.get("sizes") or ()))
    out["tokenizers"] = tuple(_build(TokenizerSpec, t, f"tokenizers[{i}]")
                              for i, t in enumerate(raw.get("tokenizers") or ()))
    return _build(SweepSpec, out, "sweep file")


def load_spec(path: str | pathlib.Path) -> SweepSpec:
    """Reads a sweep file (YAML or JSON)."""
    import yaml

    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"sweep file {path} is not valid YAML/JSON: {e}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"sweep file {path} must hold a mapping at the top level")
    return spec_from_dict(raw)
