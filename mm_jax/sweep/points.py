"""A sweep's points: the grid of a :class:`SweepSpec` as concrete decoder experiments (stage: sweep).

Input: a parsed sweep file and the sweep's output directory. Output: a list
of :class:`Point` (sizes x tokenizers x data fractions x seeds, in that
order), each with its steps, learning rate and warm-up resolved, and
:func:`experiment` turning a point into the :class:`ExperimentConfig` that
``mm_jax.train.loop.run`` trains (S, N and the codebook still come from the
shards: :func:`mm_jax.train.sizes.bind_to_data`).

A point's id, ``<size>-<tokenizer>-f<fraction>-s<seed>``, names its run
directory (``OUT/points/<id>``) and its line in ``runs.jsonl``; it is stable
across re-runs, which is how finished points are skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib

from mm_jax import train
from mm_jax.errors import ConfigError
from mm_jax.model.config import preset as model_preset
from mm_jax.shards.manifest import MANIFEST, read_manifest
from mm_jax.sweep.spec import SizeSpec, SweepSpec, TokenizerSpec
from mm_jax.train.config import ExperimentConfig
from mm_jax.train.sizes import bind_to_data, override_keys

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Point:
    """One run of the sweep."""

    id: str
    size: SizeSpec
    tokenizer: TokenizerSpec
    fraction: float
    seed: int
    steps: int
    lr: float
    warmup_steps: int
    shards_dir: str

    def overrides(self, spec: SweepSpec) -> list[str]:
        """The ``section.key=value`` list this point applies to its base experiment (recorded in runs.jsonl)."""
        out = list(spec.overrides)
        s = self.size
        if s.layers is not None:
            out.append(f"model.num_layers={s.layers}")
        if s.heads is not None:
            out += [f"model.num_heads={s.heads}", f"model.num_kv_heads={s.kv_heads or s.heads}"]
        if s.width is not None:
            out.append(f"model.width={s.width}")
        out += [f"shards_dir={self.shards_dir}", f"tokenizer_run={self.tokenizer.tokenizer_run}",
                f"train.steps={self.steps}", f"train.lr={self.lr:.6g}", f"train.warmup_steps={self.warmup_steps}",
                f"train.seed={self.seed}", f"pipeline.seed={self.seed}"]
        return out


def fraction_tag(fraction: float) -> str:
    return f"{fraction:g}"


def fraction_shards_dir(out_dir: str | pathlib.Path, tok: TokenizerSpec, fraction: float) -> str:
    """Where the shards of a data fraction < 1 live (made by :mod:`mm_jax.sweep.subset`)."""
    if fraction >= 1.0:
        return tok.shards_dir
    return str(pathlib.Path(out_dir) / "fractions" / tok.name / f"f{fraction_tag(fraction)}")


def _base(spec: SweepSpec, size: SizeSpec) -> ExperimentConfig:
    exp = train.preset(spec.base_preset)
    return dataclasses.replace(exp, model=model_preset(size.preset)) if size.preset else exp


def experiment(spec: SweepSpec, point: Point) -> tuple[ExperimentConfig, frozenset[str]]:
    """(the point's experiment before data binding, the dotted keys the sweep file set explicitly)."""
    exp = train.apply_overrides(_base(spec, point.size), point.overrides(spec))
    return exp, override_keys(spec.overrides)


def _steps(spec: SweepSpec, exp: ExperimentConfig) -> int:
    """Steps of the budget for a bound experiment (tokens are decoder positions)."""
    b = spec.budget
    if b.steps is not None:
        steps = b.steps
    else:
        per_step = exp.pipeline.global_batch_size * (exp.pipeline.max_text_tokens + exp.pipeline.max_motion_tokens)
        tokens = b.tokens if b.tokens is not None else b.tokens_per_param * exp.model.num_params()
        steps = math.ceil(tokens / per_step)
    steps = max(b.min_steps, steps)
    return steps if b.max_steps is None else min(b.max_steps, steps)


def _manifest(shards_dir: str) -> dict | None:
    """The shards' manifest; None when the shards are not here (a pod sweep planned off-site: S and N
    then come from the base preset)."""
    if not (pathlib.Path(shards_dir) / MANIFEST).is_file():
        log.info("no shards at %s: planning with the preset's S and N", shards_dir)
        return None
    return read_manifest(shards_dir)


def expand(spec: SweepSpec, out_dir: str | pathlib.Path) -> list[Point]:
    """Every point of the grid, with steps, lr and warm-up resolved from the budget and the lr rule."""
    points = []
    for size in spec.sizes:
        for tok in spec.tokenizers:
            manifest = _manifest(tok.shards_dir)
            for fraction in spec.data_fractions:
                for seed in size.seeds if size.seeds is not None else spec.seeds:
                    shards = fraction_shards_dir(out_dir, tok, fraction)
                    draft = Point(id=f"{size.name}-{tok.name}-f{fraction_tag(fraction)}-s{seed}", size=size,
                                  tokenizer=tok, fraction=fraction, seed=seed, steps=1, lr=1.0,
                                  warmup_steps=0, shards_dir=shards)
                    exp, explicit = experiment(spec, draft)
                    bound = exp if manifest is None else bind_to_data(exp, manifest, explicit)
                    steps = _steps(spec, bound)
                    points.append(dataclasses.replace(draft, steps=steps, lr=spec.lr_rule.lr(bound.model.width),
                                                      warmup_steps=spec.lr_rule.warmup(steps)))
    return points


def select(points: list[Point], only: list[str] | None) -> list[Point]:
    """The points named in ``only`` (ids or size names), in sweep order; all when None."""

    if not only:
        return points
    chosen = [p for p in points if p.id in only or p.size.name in only]
    unknown = sorted(set(only) - {p.id for p in points} - {p.size.name for p in points})
    if unknown:
        raise ConfigError(f"--point {unknown}: not in the sweep; points: {', '.join(p.id for p in points)}")
    return chosen
