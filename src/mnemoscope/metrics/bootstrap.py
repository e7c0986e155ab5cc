"""Nonparametric bootstrap intervals (Efron & Tibshirani 1993, ch. 6 and §13.3): resample with
replacement, recompute the statistic, read percentiles. Pure functions, arrays in, numbers out.

For values x₁ … xₙ and a statistic T, one replicate is T(x*) with x* = (x_{J₁}, …, x_{Jₙ}) and the
J drawn uniformly from {1 … n} with replacement (rows, for a 2-D array). The percentile interval of
B replicates at level L is their empirical (1 − L)/2 and 1 − (1 − L)/2 quantiles (numpy's linear
interpolation). A stratified replicate resamples each group within itself and applies T to the
list of resampled groups (e.g. a line fitted through the groups' means).

The draws come from the caller's ``numpy.random.Generator`` (one per run, so intervals are
reproducible), and the draw order is part of the contract: each resampled set of n values takes
one ``rng.integers(0, n, n)``, replicate after replicate and, within a replicate, group after group.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def resample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``values`` (its rows, when 2-D) drawn ``len(values)`` times with replacement."""
    return values[rng.integers(0, len(values), len(values))]


def replicates(values: np.ndarray, stat: Callable, n_boot: int, rng: np.random.Generator) -> list:
    """``[stat(x*₁), …, stat(x*_B)]``: ``n_boot`` resamples of ``values``, each through ``stat``."""
    return [stat(resample(values, rng)) for _ in range(n_boot)]


def stratified_replicates(groups: Sequence[np.ndarray], stat: Callable[[list[np.ndarray]], object], n_boot: int,
                          rng: np.random.Generator) -> list:
    """``n_boot`` replicates of ``stat([g*₁, …, g*_k])``, each group resampled within itself."""
    return [stat([resample(g, rng) for g in groups]) for _ in range(n_boot)]


def percentile_interval(values, lo: float = 0.025, hi: float = 0.975) -> tuple[float, float]:
    """The ``lo`` and ``hi`` empirical quantiles of bootstrap replicates (default: the 95% interval)."""
    return float(np.quantile(values, lo)), float(np.quantile(values, hi))


def bootstrap_ci(values: np.ndarray, stat: Callable[[np.ndarray], float], n_boot: int,
                 rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over resampled ``values`` at ``level``: the
    q = (1 − level)/2 and 1 − q quantiles of ``n_boot`` replicates; (nan, nan) when there are no
    values or no replicates."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or n_boot < 1:
        return math.nan, math.nan
    q = (1 - level) / 2
    return percentile_interval(replicates(values, stat, n_boot, rng), q, 1 - q)
