"""Text-to-motion metrics on evaluator embeddings (stage: eval).

Inputs are embeddings from a text/motion evaluator (:mod:`mm_jax.eval.evaluator`,
or any other): motion embeddings ``[B, D]`` and text embeddings ``[B, D]``,
row ``i`` of one matched with row ``i`` of the other. Outputs are plain
Python floats. The definitions follow the HumanML3D protocol (Guo et al.
2022, the ``eval_t2m`` scripts that T2M-GPT, MoMask and MotionMillion reuse):

* **FID**: Fréchet distance between Gaussians fitted (mean, covariance) to
  two embedding sets, ``|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^{1/2})``.
  The protocol compares generated and real motions of the test set
  (thousands of samples; with fewer samples than dimensions the covariance
  is singular and FID is biased upwards).
* **R-precision top-k**: the set is shuffled (seeded) and cut into batches of
  32 matched text/motion pairs (the remainder is dropped); in each batch the
  32x32 Euclidean distance matrix text x motion is ranked per text, and
  top-k is the fraction of texts whose own motion is among the k nearest.
  Chance is k/32.
* **MM-Dist**: mean Euclidean distance between matched text and motion
  embeddings.
* **Diversity**: mean distance between ``num_pairs`` (300) random pairs of
  motion embeddings (two independent draws of 300 indices without
  replacement, as in the protocol).
* **MultiModality**: for each text, ``num_pairs`` (10) pairs of its R
  generations (two independent draws without replacement from the R),
  mean distance, averaged over texts (the protocol uses 100 texts x 30
  generations).

Random choices take an explicit ``key`` (a ``jax.random`` key).
"""

from __future__ import annotations

import logging

import jax
import numpy as np

from mm_jax.errors import DataError, ShapeError

log = logging.getLogger(__name__)

R_PRECISION_BATCH = 32
TOP_K = (1, 2, 3)


def _as_2d(x, what: str) -> np.ndarray:
    arr = np.asarray(x, np.float64)
    if arr.ndim != 2:
        raise ShapeError(f"{what} must be [B, D]; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{what} contains NaN or inf")
    return arr


def _pair(a, b, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_2d(a, f"{what} (first)"), _as_2d(b, f"{what} (second)")
    if a.shape != b.shape:
        raise ShapeError(f"{what}: matched embeddings must have equal shapes; got {a.shape} and {b.shape}")
    return a, b


def gaussian_stats(emb_bd) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (unbiased, rows are samples) of ``emb_bd`` [B, D]."""
    emb = _as_2d(emb_bd, "embeddings")
    if emb.shape[0] < 2:
        raise DataError(f"need at least 2 embeddings for a covariance; got {emb.shape[0]}")
    return emb.mean(0), np.cov(emb, rowvar=False).reshape(emb.shape[1], emb.shape[1])


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (eigen-decomposition)."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(c1: np.ndarray, c2: np.ndarray, *, use_scipy: bool = True) -> float:
    """``tr((C1 C2)^{1/2})`` of two covariances.

    With scipy, ``scipy.linalg.sqrtm(C1 @ C2)`` (the reference
    implementation's route, with an ``eps * I`` offset when the product is
    singular); otherwise (or ``use_scipy=False``) the symmetric form
    ``tr((C1^{1/2} C2 C1^{1/2})^{1/2})``, equal for PSD matrices, from two
    eigen-decompositions.
    """
    if use_scipy:
        try:
            from scipy import linalg
        except ImportError:  # pragma: no cover - scipy is optional
            use_scipy = False
    if not use_scipy:
        s1 = _psd_sqrt(c1)
        w = np.linalg.eigvalsh(s1 @ c2 @ s1)
        return float(np.sqrt(np.clip(w, 0.0, None)).sum())
    covmean = linalg.sqrtm(c1 @ c2)
    if not np.isfinite(covmean).all():
        log.warning("FID: singular covariance product; adding 1e-6 to the diagonals")
        offset = np.eye(c1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((c1 + offset) @ (c2 + offset))
    return float(np.real(np.trace(covmean)))


def frechet_distance(mu1, c1, mu2, c2, *, use_scipy: bool = True) -> float:
    """Fréchet distance of N(mu1, C1) and N(mu2, C2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    c1, c2 = np.asarray(c1, np.float64), np.asarray(c2, np.float64)
    if mu1.shape != mu2.shape or c1.shape != c2.shape or c1.shape != mu1.shape * 2:
        raise ShapeError(f"FID: means {mu1.shape}, {mu2.shape} and covariances {c1.shape}, {c2.shape} disagree")
    diff = mu1 - mu2
    tr = trace_sqrt_product(c1, c2, use_scipy=use_scipy)
    return float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * tr)


def fid(emb1_bd, emb2_bd, *, use_scipy: bool = True) -> float:
    """FID between two embedding sets [B1, D] and [B2, D] (e.g. real vs generated motions)."""
    mu1, c1 = gaussian_stats(emb1_bd)
    mu2, c2 = gaussian_stats(emb2_bd)
    if mu1.shape != mu2.shape:
        raise ShapeError(f"FID: embedding widths differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    return frechet_distance(mu1, c1, mu2, c2, use_scipy=use_scipy)


def distance_matrix(a_bd: np.ndarray, b_bd: np.ndarray) -> np.ndarray:
    """Euclidean distances [Ba, Bb] between rows."""
    sq = (a_bd**2).sum(1)[:, None] + (b_bd**2).sum(1)[None, :] - 2.0 * a_bd @ b_bd.T
    return np.sqrt(np.clip(sq, 0.0, None))


def r_precision(text_bd, motion_bd, *, key: jax.Array | None = None,
                batch_size: int = R_PRECISION_BATCH, top_k: tuple[int, ...] = TOP_K) -> dict[str, float]:
    """R-precision top-k of matched text/motion embeddings (HumanML3D protocol).

    Args:
      text_bd: [B, D] text embeddings; row i describes motion i.
      motion_bd: [B, D] motion embeddings.
      key: shuffles the pairs before batching (None: keep the given order).
      batch_size: pairs per batch (32; the remainder B % 32 is dropped).
      top_k: the k to report.

    Returns:
      ``{"top1": ..., "top2": ..., "top3": ...}``, each in [0, 1].

    Raises:
      ShapeError: mismatched shapes. DataError: fewer than one batch.
    """
    text, motion = _pair(text_bd, motion_bd, "r_precision")
    n = text.shape[0]
    if n < batch_size:
        raise DataError(f"r_precision needs at least batch_size={batch_size} pairs; got {n}")
    order = np.arange(n) if key is None else np.asarray(jax.random.permutation(key, n))
    num_batches = n // batch_size
    hits = np.zeros(len(top_k))
    for b in range(num_batches):
        idx = order[b * batch_size : (b + 1) * batch_size]
        dist = distance_matrix(text[idx], motion[idx])
        # Rank of the matched motion: how many motions are strictly nearer.
        rank = (dist < np.diag(dist)[:, None]).sum(1)
        hits += [(rank < k).mean() for k in top_k]
    return {f"top{k}": float(h / num_batches) for k, h in zip(top_k, hits)}


def matching_score(text_bd, motion_bd) -> float:
    """MM-Dist: mean Euclidean distance between matched text and motion embeddings."""
    text, motion = _pair(text_bd, motion_bd, "matching_score")
    return float(np.linalg.norm(text - motion, axis=1).mean())


def diversity(emb_bd, *, key: jax.Array, num_pairs: int = 300) -> float:
    """Mean distance between ``num_pairs`` random pairs of rows of ``emb_bd`` [B, D].

    Two independent draws of ``num_pairs`` indices without replacement (so
    B >= num_pairs); a pair may, rarely, be a row with itself, as in the
    protocol.
    """
    emb = _as_2d(emb_bd, "diversity embeddings")
    if emb.shape[0] < num_pairs:
        raise DataError(f"diversity needs at least num_pairs={num_pairs} embeddings; got {emb.shape[0]}")
    k1, k2 = jax.random.split(key)
    first = np.asarray(jax.random.choice(k1, emb.shape[0], (num_pairs,), replace=False))
    second = np.asarray(jax.random.choice(k2, emb.shape[0], (num_pairs,), replace=False))
    return float(np.linalg.norm(emb[first] - emb[second], axis=1).mean())


def multimodality(emb_brd, *, key: jax.Array, num_pairs: int = 10) -> float:
    """Mean distance between pairs of generations for the same text.

    Args:
      emb_brd: [B, R, D] embeddings of R generations for each of B texts.
      key: draws the pairs (the same index pairs for every text).
      num_pairs: pairs per text (R >= num_pairs).
    """
    emb = np.asarray(emb_brd, np.float64)
    if emb.ndim != 3:
        raise ShapeError(f"multimodality embeddings must be [B, R, D]; got shape {emb.shape}")
    if emb.shape[1] < num_pairs:
        raise DataError(f"multimodality needs R >= num_pairs={num_pairs} generations per text; got {emb.shape[1]}")
    k1, k2 = jax.random.split(key)
    first = np.asarray(jax.random.choice(k1, emb.shape[1], (num_pairs,), replace=False))
    second = np.asarray(jax.random.choice(k2, emb.shape[1], (num_pairs,), replace=False))
    return float(np.linalg.norm(emb[:, first] - emb[:, second], axis=-1).mean())


def text_motion_metrics(text_bd, motion_bd, *, key: jax.Array, real_motion_bd=None,
                        diversity_pairs: int = 300) -> dict[str, float]:
    """R-precision, MM-Dist and Diversity (and FID against ``real_motion_bd``) as a flat dict.

    Diversity is skipped (with a log line) when B < ``diversity_pairs``.
    """
    k_r, k_d = jax.random.split(key)
    out = {f"r_precision/{k}": v for k, v in r_precision(text_bd, motion_bd, key=k_r).items()}
    out["mm_dist"] = matching_score(text_bd, motion_bd)
    n = np.shape(motion_bd)[0]
    if n >= diversity_pairs:
        out["diversity"] = diversity(motion_bd, key=k_d, num_pairs=diversity_pairs)
    else:
        log.info("diversity skipped: %d embeddings < %d pairs", n, diversity_pairs)
    if real_motion_bd is not None:
        out["fid"] = fid(real_motion_bd, motion_bd)
    return out


def fid_bootstrap(emb1_bd, emb2_bd, *, key: jax.Array, num_samples: int = 200,
                  level: float = 0.95) -> dict[str, float]:
    """Percentile-bootstrap confidence interval of :func:`fid` (both sets resampled with replacement).

    Each of ``num_samples`` replicates draws B1 rows of ``emb1_bd`` and B2
    rows of ``emb2_bd`` with replacement and recomputes FID (the symmetric
    eigen-decomposition route, equal to scipy's ``sqrtm`` for PSD matrices).
    FID is biased upwards at small B, and a replicate repeats rows, so the
    interval describes the sampling spread of this estimator, not the bias.

    Returns:
      ``{"lo", "hi"}`` (the ``(1 - level) / 2`` and ``(1 + level) / 2``
      quantiles), ``"std"`` (of the replicates), ``"num_samples"``, ``"level"``.
    """
    a, b = _as_2d(emb1_bd, "fid_bootstrap (first)"), _as_2d(emb2_bd, "fid_bootstrap (second)")
    if num_samples < 2 or not 0 < level < 1:
        raise DataError(f"fid_bootstrap: num_samples={num_samples} must be >= 2 and level={level} in (0, 1)")
    k1, k2 = jax.random.split(key)
    idx1 = np.asarray(jax.random.randint(k1, (num_samples, a.shape[0]), 0, a.shape[0]))
    idx2 = np.asarray(jax.random.randint(k2, (num_samples, b.shape[0]), 0, b.shape[0]))
    reps = np.array([fid(a[i], b[j], use_scipy=False) for i, j in zip(idx1, idx2)])
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return {"lo": float(lo), "hi": float(hi), "std": float(reps.std(ddof=1)), "num_samples": num_samples,
            "level": level}
