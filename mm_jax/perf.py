"""The FLOP convention, the peak-FLOP/s table and MFU: the one place these are defined (stage: perf).

Input: a :class:`~mm_jax.model.config.ModelConfig`, a measured throughput
(tokens/s) and the devices it ran on. Output: model FLOPs per token, training
FLOPs and model-FLOPs utilisation (MFU) as plain floats.

**Convention** (PaLM appendix B / Chinchilla, as MaxText and Levanter report
MFU): training FLOPs per token = ``6 * N_mm + 12 * L * H * E * T``, with
``N_mm`` the matmul weights one token touches (every block + the output head:
:meth:`ModelConfig.non_embedding_params`), ``E`` the head dim and ``T`` the
context length (S text + N motion positions). The attention term counts
``QK^T`` and ``AV`` against all ``T`` keys: **causal attention is not
halved** (``CAUSAL_ATTENTION_HALVED = False``), so MFU is comparable with
PaLM's and MaxText's figures and slightly overstates the useful work of the
causal motion part. Rematerialisation is not counted (model FLOPs, not
hardware FLOPs). A "token" is one position of the decoder's sequence (text
prefix and motion alike): ``tokens seen = steps * global batch * T``.

**Peaks** (``PEAK_FLOPS``, dense FLOP/s per device, keyed by
``jax.devices()[0].device_kind``): TPUs and GPUs at bf16 from the vendors'
data sheets; ``cpu`` is the float32 matmul peak *measured* on this project's
2-core CI machine (:func:`measure_matmul_peak`: best of 5 jitted 512 x 512
matmuls = 151 GFLOP/s, taken under a load average of 6, i.e. what a run here
can get; rerun it on another host and pass ``peak=``).

Another module (the train loop's log rows) calls :func:`mfu`; keep this API
small: ``flops_per_token``, ``training_flops``, ``peak_flops``, ``mfu``,
``measure_matmul_peak``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from mm_jax.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from mm_jax.model.config import ModelConfig

log = logging.getLogger(__name__)

CAUSAL_ATTENTION_HALVED = False
FLOP_CONVENTION = ("6*N_matmul + 12*L*H*E*T per token (PaLM/Chinchilla); causal attention not halved; "
                   "remat not counted; token = one decoder position (text prefix + motion)")

# Dense peak FLOP/s per device; bf16 for accelerators, float32 for the CPU entry (measured, see above).
PEAK_FLOPS: dict[str, float] = {
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,  # v5e
    "TPU v5": 459e12,  # v5p
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,  # v6e (Trillium)
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA H100 80GB HBM3": 989e12,
    "NVIDIA H200": 989e12,
    "cpu": 151e9,
}


def flops_per_token(model: "ModelConfig", seq_len: int | None = None) -> float:
    """Training FLOPs per token of ``model`` at context ``seq_len`` under :data:`FLOP_CONVENTION`."""
    return model.flops_per_token(seq_len)


def training_flops(model: "ModelConfig", seq_len: int, tokens: float) -> float:
    """Model FLOPs of training on ``tokens`` positions at context ``seq_len``."""
    return flops_per_token(model, seq_len) * float(tokens)


def peak_flops(device_kind: str) -> float | None:
    """Peak FLOP/s of one device of ``device_kind`` (``PEAK_FLOPS``), or None when unknown."""
    return PEAK_FLOPS.get(device_kind)


def mfu(tokens_per_s: float, flops_per_tok: float, *, device_kind: str, num_devices: int = 1,
        peak: float | None = None) -> float | None:
    """Model-FLOPs utilisation: ``tokens_per_s * flops_per_tok / (peak * num_devices)``.

    Args:
      tokens_per_s: positions per second over all devices.
      flops_per_tok: :func:`flops_per_token` of the model at the run's context.
      device_kind: ``jax.devices()[0].device_kind``; looked up in ``PEAK_FLOPS``.
      num_devices: devices the throughput was measured on.
      peak: per-device peak FLOP/s, replacing the table's entry.

    Returns:
      The fraction in [0, ...), or None when the device kind is unknown and no
      ``peak`` is given (a log line names it).
    """
    if num_devices < 1:
        raise ConfigError(f"num_devices={num_devices} must be >= 1")
    peak = peak if peak is not None else peak_flops(device_kind)
    if peak is None:
        log.info("no peak FLOP/s for device kind %r (known: %s): MFU not reported",
                 device_kind, ", ".join(sorted(PEAK_FLOPS)))
        return None
    return float(tokens_per_s) * float(flops_per_tok) / (peak * num_devices)


def measure_matmul_peak(size: int = 512, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 FLOP/s of one jitted ``size x size`` matmul on the default device."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best
