"""mm_jax.perf: the FLOP convention and MFU against numbers computed by hand for a tiny config."""

from __future__ import annotations

import math

import jax
import pytest

from mm_jax import perf
from mm_jax.errors import ConfigError
from mm_jax.model.config import ModelConfig

# L=1, H=2, K=1, D=8 (E=4), MLP 16, codebook 2*3=6 -> vocab 9, padded to a multiple of 4 -> Vp=12, text width 3.
TINY = ModelConfig(num_layers=1, num_heads=2, num_kv_heads=1, width=8, mlp_hidden_override=16, fsq_levels=(2, 3),
                   vocab_multiple=4, text_dim=3, max_text_tokens=2, max_motion_tokens=3)
# By hand: fused QKV (2 + 2*1) * 4 * 8 = 128, output 8 * 2 * 4 = 64, gate/up/down 3 * 16 * 8 = 384 -> 576 per
# layer; the FLOP count's N adds the head 12 * 8 = 96 -> 672; attention 12 * L * H * E * T at T = 5 = 480.
HAND_MATMUL_N = 672
HAND_FLOPS_T5 = 6 * 672 + 12 * 1 * 2 * 4 * 5  # 4512
# Total: text projection 8*3=24, two tables 2*12*8=192, layer 576 + two norms 16, final norm 8 -> 816.
HAND_TOTAL, HAND_TABLES = 816, 192


def test_flops_per_token_by_hand():
    assert TINY.non_embedding_params() == HAND_MATMUL_N
    assert perf.flops_per_token(TINY, 5) == HAND_FLOPS_T5 == 4512
    assert perf.training_flops(TINY, 5, 1000) == 4512 * 1000


def test_causal_attention_is_not_halved():
    """The attention term grows with the full context T: 12 L H E per extra position, not 6 L H E."""
    assert perf.CAUSAL_ATTENTION_HALVED is False
    assert "not halved" in perf.FLOP_CONVENTION
    assert perf.flops_per_token(TINY, 6) - perf.flops_per_token(TINY, 5) == 12 * 1 * 2 * 4


def test_parameter_counts_by_hand_and_from_the_initialised_tree():
    from mm_jax.model import llama

    assert (TINY.num_params(), TINY.vocab_table_params(), TINY.non_vocab_params()) == (816, 192, 624)
    shapes = jax.eval_shape(lambda k: llama.init_params(TINY, key=k), jax.random.key(0))
    assert sum(math.prod(x.shape) for x in jax.tree.leaves(shapes)) == HAND_TOTAL


def test_mfu_by_hand():
    # 1000 tokens/s * 4512 FLOPs / (2 devices * 1e6 FLOP/s) = 2.256
    assert perf.mfu(1000.0, 4512.0, device_kind="whatever", num_devices=2, peak=1e6) == pytest.approx(2.256)
    # the table: v4 is 275 TFLOP/s bf16; 1e12 tokens/s * 275 FLOPs on one chip = 1.0
    assert perf.mfu(1e12, 275.0, device_kind="TPU v4") == pytest.approx(1.0)


def test_mfu_unknown_device_and_bad_count():
    assert perf.mfu(1.0, 1.0, device_kind="abacus") is None
    assert perf.peak_flops("cpu") is not None and perf.peak_flops(jax.devices()[0].device_kind) is not None
    with pytest.raises(ConfigError, match="num_devices=0"):
        perf.mfu(1.0, 1.0, device_kind="cpu", num_devices=0)


def test_measured_matmul_peak_is_a_positive_rate():
    assert perf.measure_matmul_peak(size=64, repeats=2) > 0


def test_7b_preset_is_the_released_model():
    from mm_jax.model.config import PRESETS

    c = PRESETS["7b"]
    assert (c.num_layers, c.num_heads, c.width, c.mlp_hidden) == (36, 32, 4096, 11008)
