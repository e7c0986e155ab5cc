import itertools

import numpy as np
import pytest
from scipy import stats

from mnemoscope.metrics.provenance import permutation_pvalue, provenance_test, spearman


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.integers(0, 5, 30).astype(float)
        y = rng.normal(size=30)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_exact_enumeration_hand_value():
    # perfectly increasing with n = 4: only the identity permutation reaches ρ = 1 → p = 1/24
    assert permutation_pvalue([1, 2, 3, 4], [10, 20, 30, 40], n_perm=10_000) == pytest.approx(1 / 24)
    # written out independently: count permutations with ρ ≥ ρ_obs
    y = np.array([0.3, -1.0, 2.0, 0.1, 0.7])
    x = np.array([1, 2, 3, 4, 5])
    rho = stats.spearmanr(y, x).statistic
    count = sum(stats.spearmanr(y, np.array(p)).statistic >= rho - 1e-12 for p in itertools.permutations(x))
    assert permutation_pvalue(y, x, n_perm=10_000) == pytest.approx(count / 120)


def test_monte_carlo_pvalue_formula_and_strong_signal():
    rng = np.random.default_rng(1)
    pos = np.arange(500)
    ll = 0.01 * pos + rng.normal(size=500)  # later = higher log-likelihood
    res = provenance_test(ll, pos, n_perm=999, seed=0)
    assert res["rho"] > 0.5
    assert res["p_value"] == pytest.approx(1 / 1000)  # the minimum a 999-permutation test can give
    # the opposite direction is not significant (one-sided)
    assert provenance_test(-ll, pos, n_perm=999)["p_value"] > 0.99


def test_calibration_uniform_under_shuffled_order():
    """Under the null (order shuffled independently of the scores) the p-value is uniform:
    P(p ≤ α) ≈ α, checked by a Kolmogorov–Smirnov test and at α = 0.05 and 0.2."""
    rng = np.random.default_rng(2)
    ll = rng.normal(size=60)
    ps = np.array([permutation_pvalue(ll, rng.permutation(60), n_perm=199, seed=s) for s in range(400)])
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    for alpha in (0.05, 0.2):
        share = np.mean(ps <= alpha)
        sd = np.sqrt(alpha * (1 - alpha) / ps.size)
        assert share <= alpha + 3 * sd


def test_errors():
    with pytest.raises(ValueError):
        provenance_test([1.0, 2.0], [1.0])
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_two_sided_p_matches_scipy_spearmanr():
    """The authors' p-value (scipy's spearmanr, two-sided), ties and both signs of ρ included."""
    from mnemoscope.metrics.provenance import spearman_two_sided_p

    rng = np.random.default_rng(3)
    for n in (5, 12, 40, 200):
        for _ in range(10):
            x = rng.integers(0, 6, n).astype(float)
            y = rng.normal(size=n) + 0.3 * x * rng.choice([-1, 1])
            assert spearman_two_sided_p(x, y) == pytest.approx(stats.spearmanr(x, y).pvalue, rel=1e-9, abs=1e-15)
    assert spearman_two_sided_p([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(stats.spearmanr([1, 2, 3, 4],
                                                                                           [1, 2, 3, 4]).pvalue)
    ll = np.arange(30.0) + rng.normal(size=30) * 25
    res = provenance_test(ll, np.arange(30.0), n_perm=9999)
    assert res["p_value_two_sided"] == pytest.approx(stats.spearmanr(ll, np.arange(30.0)).pvalue, rel=1e-9)
    # ρ > 0: the two-sided t-test p is about twice the one-sided permutation p
    assert 1.4 < res["p_value_two_sided"] / res["p_value"] < 2.8
