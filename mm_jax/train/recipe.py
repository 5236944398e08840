"""The training recipe shared by the decoder, tokenizer and evaluator trainers (stage: train).

Each trainer keeps its own model, loss and data; what a training run *is*
lives here once:

* :class:`TrainState` ``(step, params, opt_state)``, checkpointed as a dict;
* :func:`warmup_cosine`, the learning-rate schedule (linear warm-up, cosine
  decay to ``lr * min_lr_ratio``, or constant after warm-up);
* :func:`adamw`, the optimizer (optional global-norm clipping, then AdamW
  with decoupled weight decay under an optional mask);
* :func:`host_metrics`, the fetch of a step's metrics to the host that stops
  the run with a :class:`~mm_jax.errors.NonFiniteError` naming the step when a
  watched value is NaN/inf, before any checkpoint of that state is written.

The trainers differ only in the schedule's first update: the decoder's
update k uses the rate of count k + 1 (``shift=1``: its first update is not
spent at rate 0), the tokenizer and evaluator keep optax's count k.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, NamedTuple

import jax
import optax

from mm_jax.errors import NonFiniteError


class TrainState(NamedTuple):
    """What a step updates: step int32 [], float32 params, optimizer state."""

    step: jax.Array
    params: Any
    opt_state: Any

    def to_dict(self) -> dict[str, Any]:
        """The checkpointed form (orbax saves plain dicts)."""
        return {"step": self.step, "params": self.params, "opt_state": self.opt_state}

    @classmethod
    def from_dict(cls, tree: dict[str, Any]) -> "TrainState":
        return cls(tree["step"], tree["params"], tree["opt_state"])


def warmup_cosine(lr: float, warmup_steps: int, steps: int, min_lr_ratio: float, *, shift: int = 0,
                  constant: bool = False) -> optax.Schedule:
    """Linear warm-up from 0 to ``lr`` over ``warmup_steps``, then cosine decay to ``lr * min_lr_ratio``
    at ``steps`` (or ``lr`` held when ``constant``); update k reads count ``k + shift``."""
    warmup = min(warmup_steps, max(steps - 1, 0))
    if constant:
        base = optax.join_schedules([optax.linear_schedule(0.0, lr, max(warmup, 1)), optax.constant_schedule(lr)],
                                    [warmup]) if warmup else optax.constant_schedule(lr)
    else:
        base = optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps=warmup, decay_steps=max(steps, warmup + 1),
                                                  end_value=lr * min_lr_ratio)
    return base if shift == 0 else (lambda count: base(count + shift))


def adamw(schedule: optax.Schedule | float, *, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 0.0, grad_clip: float | None = None, mask: Any = None
          ) -> optax.GradientTransformation:
    """Global-norm clipping (when ``grad_clip`` is > 0) followed by AdamW (decay under ``mask`` when given)."""
    opt = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=mask)
    return optax.chain(optax.clip_by_global_norm(grad_clip), opt) if grad_clip and grad_clip > 0 else opt


def host_metrics(metrics: dict[str, Any], *, step: int, watched: Iterable[str],
                 context: Callable[[], str] | None = None, on_bad: Callable[[], None] | None = None
                 ) -> dict[str, float]:
    """A step's metrics as host floats; NonFiniteError when a ``watched`` one is NaN/inf.

    Args:
      metrics: the step's metric arrays (device or host).
      step: the step they belong to (named in the error).
      watched: the keys that must be finite (loss, gradient norm, ...).
      context: builds the text appended to the error (what was kept, which batch); called only then.
      on_bad: called before raising (e.g. wait for pending checkpoint writes).
    """
    host = {k: float(v) for k, v in jax.device_get(metrics).items()}
    bad = {k: host[k] for k in watched if not math.isfinite(host[k])}
    if bad:
        if on_bad is not None:
            on_bad()
        raise NonFiniteError(f"non-finite training at step {step}: {bad}" + (f"; {context()}" if context else ""))
    return host
