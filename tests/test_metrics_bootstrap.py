"""metrics.bootstrap: the percentile interval by hand, the whole interval against scipy.stats.bootstrap
(same draws from the same generator), the draw order the recipes' intervals rely on, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemoscope.metrics.bootstrap import (
    bootstrap_ci,
    percentile_interval,
    replicates,
    resample,
    stratified_replicates,
)


def test_percentile_interval_by_hand():
    # 5 sorted values, linear interpolation: position q·(n − 1) → 0.025·4 = 0.1 and 0.975·4 = 3.9
    assert percentile_interval([5.0, 1.0, 4.0, 2.0, 3.0]) == pytest.approx((1.1, 4.9), abs=1e-12)
    assert percentile_interval([0.0, 10.0], 0.1, 0.5) == pytest.approx((1.0, 5.0))


def test_bootstrap_ci_by_hand_on_two_values():
    # n = 1: every replicate is the single value; constants give a zero-width interval
    assert bootstrap_ci(np.array([0.3]), np.mean, 50, np.random.default_rng(0)) == pytest.approx((0.3, 0.3))
    assert bootstrap_ci(np.full(6, 2.0), np.mean, 20, np.random.default_rng(0)) == pytest.approx((2.0, 2.0))
    # values {0, 1}: a replicate's mean is 0, ½ or 1; with many replicates the 95% interval is [0, 1]
    lo, hi = bootstrap_ci(np.array([0.0, 1.0]), np.mean, 4000, np.random.default_rng(1))
    assert (lo, hi) == (0.0, 1.0)
    assert all(np.isnan(bootstrap_ci(np.array([]), np.mean, 50, np.random.default_rng(0))))
    assert all(np.isnan(bootstrap_ci(np.array([1.0, 2.0]), np.mean, 0, np.random.default_rng(0))))


@pytest.mark.parametrize("n, n_boot, level", [(8, 999, 0.95), (20, 500, 0.9), (33, 1000, 0.95)])
def test_bootstrap_ci_matches_scipy_percentile_bootstrap(n, n_boot, level):
    x = np.random.default_rng(n).normal(size=n)
    ref = scipy.stats.bootstrap((x,), np.mean, n_resamples=n_boot, method="percentile", confidence_level=level,
                                rng=np.random.default_rng(7), vectorized=True)
    lo, hi = bootstrap_ci(x, np.mean, n_boot, np.random.default_rng(7), level=level)
    assert lo == pytest.approx(ref.confidence_interval.low, abs=1e-12)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=1e-12)


def test_draw_order_is_one_integers_call_per_resampled_set():
    values = np.arange(10.0) ** 2
    groups = [np.arange(3.0), np.arange(5.0) + 10]
    rng = np.random.default_rng(3)
    manual = []
    for _ in range(4):
        a = groups[0][rng.integers(0, 3, 3)]
        b = groups[1][rng.integers(0, 5, 5)]
        manual.append(a.sum() - b.sum())
    assert stratified_replicates(groups, lambda g: g[0].sum() - g[1].sum(), 4, np.random.default_rng(3)) == manual
    rng = np.random.default_rng(4)
    assert replicates(values, np.max, 5, np.random.default_rng(4)) == [values[rng.integers(0, 10, 10)].max()
                                                                      for _ in range(5)]
    rows = np.arange(12.0).reshape(4, 3)
    drawn = resample(rows, np.random.default_rng(5))
    assert drawn.shape == (4, 3) and all(any((r == row).all() for row in rows) for r in drawn)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30), st.integers(0, 2**32 - 1))
def test_the_interval_of_a_mean_is_ordered_and_inside_the_data(values, seed):
    x = np.array(values)
    lo, hi = bootstrap_ci(x, np.mean, 60, np.random.default_rng(seed))
    tol = 1e-9 * max(1.0, float(np.abs(x).max()))
    assert lo <= hi + tol and x.min() - tol <= lo and hi <= x.max() + tol
    assert not math.isnan(lo)
