"""Palimpsestic provenance test (Kuditipudi et al. 2025, *Blackbox Model Provenance via Palimpsestic
Membership Inference*).

A model remembers best what it saw last. For a suspect model and the original model's training
examples with their training positions, the test statistic is Spearman's ρ between each example's
log-likelihood under the suspect and its position (later = larger). Under the null hypothesis
(the suspect is independent of the original's training order) every assignment of positions to
examples is equally likely, so the permutation p-value

    p = (1 + #{b : ρ(π_b) ≥ ρ_obs}) / (1 + B)

over B random permutations π_b of the positions is exactly valid: P(p ≤ α) ≤ α for every α. When
n! ≤ B the p-value is computed over all n! permutations instead (exact, no Monte Carlo error).
A derived model shows ρ > 0 (one-sided test).

The authors' code (``blackbox-model-tracing``, ``tracing/query/statistics.py``) reports scipy's
``spearmanr`` p-value instead: two-sided, from the t approximation
t = ρ √((n − 2) / (1 − ρ²)) with n − 2 degrees of freedom, p = 2 · P(T ≥ |t|)
(``spearman_two_sided_p``). For ρ > 0 it is about twice the one-sided permutation p and it
rejects for ρ < 0 too; ``provenance_test`` returns both.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata
from scipy.stats import t as student_t

__all__ = ["permutation_pvalue", "provenance_test", "spearman", "spearman_two_sided_p"]

_TOL = 1e-12  # permutations whose ρ equals ρ_obs up to float noise count as ≥


def _centered_ranks(x: np.ndarray) -> np.ndarray:
    r = rankdata(x)  # average ranks for ties
    return r - r.mean()


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's ρ = Pearson correlation of the (average-tie) ranks of x and y; nan when either is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman needs two 1-D arrays of equal length, got {x.shape} and {y.shape}")
    rx, ry = _centered_ranks(x), _centered_ranks(y)
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry / denom) if denom > 0 else math.nan


def spearman_two_sided_p(x: ArrayLike, y: ArrayLike) -> float:
    """Two-sided p-value of Spearman's ρ by the t approximation (what scipy's ``spearmanr`` reports):
    t = ρ √((n − 2) / (1 − ρ²)), p = 2 · sf(|t|; n − 2); 0 when |ρ| = 1, nan when n < 3 or ρ is nan."""
    rho = spearman(x, y)
    n = np.asarray(x).size
    if math.isnan(rho) or n < 3:
        return math.nan
    if abs(rho) >= 1.0:
        return 0.0
    t = rho * math.sqrt((n - 2) / (1.0 - rho * rho))
    return float(min(1.0, 2.0 * student_t.sf(abs(t), n - 2)))


def permutation_pvalue(scores: ArrayLike, positions: ArrayLike, *, n_perm: int = 9999, seed: int = 0) -> float:
    """One-sided p-value of ρ(scores, positions) > 0 by permuting the positions (see module doc)."""
    scores, positions = np.asarray(scores, dtype=np.float64), np.asarray(positions, dtype=np.float64)
    rho = spearman(scores, positions)
    if math.isnan(rho):
        return math.nan
    n = scores.size
    ry, rx = _centered_ranks(scores), _centered_ranks(positions)
    norm = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if n <= 12 and math.factorial(n) <= n_perm:  # every permutation: the exact null distribution
        perms = np.asarray(list(itertools.permutations(range(n))))
        stats = rx[perms] @ ry / norm
        return float(np.mean(stats >= rho - _TOL))
    rng = np.random.default_rng(seed)
    chunk = max(1, 2**22 // n)
    count, done = 0, 0
    while done < n_perm:
        b = min(chunk, n_perm - done)
        idx = rng.permuted(np.tile(np.arange(n), (b, 1)), axis=1)
        count += int(np.sum(rx[idx] @ ry / norm >= rho - _TOL))
        done += b
    return (1 + count) / (1 + n_perm)


def provenance_test(loglik: ArrayLike, positions: ArrayLike, *, n_perm: int = 9999, seed: int = 0) -> dict[str, float]:
    """``{"rho", "p_value", "p_value_two_sided", "n"}`` for per-example log-likelihoods under the
    suspect and their positions in the original training order (higher position = seen later).
    ``p_value`` is ours (one-sided permutation), ``p_value_two_sided`` the authors' (scipy's t test)."""
    loglik = np.asarray(loglik, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    if loglik.shape != positions.shape:
        raise ValueError(f"one position per example: {loglik.size} log-likelihoods, {positions.size} positions")
    if not np.all(np.isfinite(loglik)):
        raise ValueError("log-likelihoods must be finite")
    return {"rho": spearman(loglik, positions), "p_value": permutation_pvalue(loglik, positions, n_perm=n_perm, seed=seed),
            "p_value_two_sided": spearman_two_sided_p(loglik, positions), "n": float(loglik.size)}
