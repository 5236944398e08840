"""Tests of mm_jax.motion.normalize: statistics, zero-std guard, inverse, save/load, errors."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from mm_jax.errors import ConfigError, DataError, FormatError, ShapeError
from mm_jax.motion.normalize import Normalizer

F = 13  # prime width so a swapped axis cannot pass


def _clips(seed: int = 0, n: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.1, 10.0, F)
    return [(rng.standard_normal((int(rng.integers(7, 41)), F)) * scale + 3.0).astype(np.float32)
            for _ in range(n)]


def test_fit_matches_numpy_over_all_frames():
    clips = _clips()
    norm = Normalizer.fit(clips)
    allf = np.concatenate(clips).astype(np.float64)
    np.testing.assert_allclose(norm.mean, allf.mean(0), rtol=1e-6)
    np.testing.assert_allclose(norm.std, allf.std(0), rtol=1e-5)
    assert norm.mean.dtype == np.float32 and norm.dim == F
    # A generator, a single [T,F] array and a stacked [N,T,F] array agree.
    np.testing.assert_allclose(Normalizer.fit(c for c in clips).mean, norm.mean, rtol=1e-6)
    np.testing.assert_allclose(Normalizer.fit(allf).std, norm.std, rtol=1e-6)
    same_t = np.stack([c[:7] for c in clips])
    np.testing.assert_allclose(Normalizer.fit(same_t).mean, same_t.reshape(-1, F).mean(0), rtol=1e-5)


def test_normalized_stats_and_inverse():
    clips = _clips(1)
    norm = Normalizer.fit(clips)
    z = norm.normalize(np.concatenate(clips))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-4)
    x = np.random.default_rng(2).standard_normal((3, 11, F)).astype(np.float32)
    np.testing.assert_allclose(norm.denormalize(norm.normalize(x)), x, rtol=1e-5, atol=1e-5)
    # jax arrays pass through as jax arrays.
    zj = norm.normalize(jnp.asarray(x))
    assert not isinstance(zj, np.ndarray)
    np.testing.assert_allclose(zj, norm.normalize(x), rtol=1e-6, atol=1e-6)


def test_constant_channel_is_guarded():
    x = np.random.default_rng(3).standard_normal((50, F)).astype(np.float32)
    x[:, 4] = 7.5  # constant
    x[:, 9] = 0.0
    norm = Normalizer.fit(x, min_std=1e-3)
    assert norm.std[4] == pytest.approx(1e-3) and norm.std[9] == pytest.approx(1e-3)
    z = norm.normalize(x)
    assert np.all(np.isfinite(z))
    np.testing.assert_allclose(z[:, [4, 9]], 0.0, atol=1e-6)
    np.testing.assert_allclose(norm.denormalize(z)[:, 4], 7.5, atol=1e-6)


def test_save_load_roundtrip(tmp_path):
    norm = Normalizer.fit(_clips(4))
    path = tmp_path / "stats.npz"
    norm.save(path)
    back = Normalizer.load(path)
    np.testing.assert_array_equal(back.mean, norm.mean)
    np.testing.assert_array_equal(back.std, norm.std)
    odd = tmp_path / "stats.bin"  # saved at exactly the given name
    norm.save(odd)
    assert odd.exists() and Normalizer.load(odd).dim == F


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "x.npz", mu=np.zeros(3))
    with pytest.raises(FormatError, match=r"'mean' and 'std'.*mu"):
        Normalizer.load(tmp_path / "x.npz")
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(FormatError, match="t.txt"):
        Normalizer.load(tmp_path / "t.txt")
    with pytest.raises(FileNotFoundError):
        Normalizer.load(tmp_path / "missing.npz")


def test_width_mismatch_names_both_widths():
    norm = Normalizer.fit(_clips())
    with pytest.raises(ShapeError, match=r"width 272.*width 13"):
        norm.normalize(np.zeros((4, 272)))
    with pytest.raises(ShapeError, match=r"width 12.*width 13"):
        norm.denormalize(np.zeros(12))


def test_fit_errors():
    clips = _clips()
    bad = [c.copy() for c in clips]
    bad[2][5, 3] = np.nan
    with pytest.raises(DataError, match=r"clip 2.*frame 5, channel 3"):
        Normalizer.fit(bad)
    bad[2][5, 3] = np.inf
    with pytest.raises(DataError, match="clip 2"):
        Normalizer.fit(bad)
    with pytest.raises(ShapeError, match=r"clip 1 has width 7 but earlier clips have 13"):
        Normalizer.fit([clips[0], np.zeros((5, 7))])
    with pytest.raises(ShapeError, match=r"\(5,\)"):
        Normalizer.fit([np.zeros(5)])
    with pytest.raises(DataError, match="zero frames"):
        Normalizer.fit([])
    with pytest.raises(ConfigError, match="min_std"):
        Normalizer.fit(clips, min_std=0.0)


def test_constructor_validates():
    with pytest.raises(DataError, match="channel 1"):
        Normalizer(mean=np.zeros(3), std=np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ShapeError):
        Normalizer(mean=np.zeros(3), std=np.ones(4))
    with pytest.raises(DataError, match="NaN"):
        Normalizer(mean=np.array([0.0, np.nan]), std=np.ones(2))


def test_grouped_std_shares_one_std_per_group():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 7)) * np.array([1.0, 2.0, 0.01, 0.02, 0.03, 5.0, 1.0])
    norm = Normalizer.fit(x, groups=(slice(2, 5),))
    std = np.asarray(norm.std)
    assert np.allclose(std[2:5], std[2])  # one std for the group...
    np.testing.assert_allclose(std[2], x[:, 2:5].std(0).mean(), rtol=1e-5)  # ...their mean
    np.testing.assert_allclose(std[[0, 1, 5, 6]], x[:, [0, 1, 5, 6]].std(0), rtol=1e-5)
