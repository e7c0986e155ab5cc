"""LiRA's pure functions (metrics.lira) against hand computations and scipy.stats.norm."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.lira import lira_gaussians, lira_offline, lira_online, logit_confidence

# 4 shadows × 2 examples; example 0 is IN shadows 0 and 1, example 1 is IN shadows 1 and 3.
SHADOW = np.array([[3.0, -1.0], [5.0, 2.0], [0.0, -3.0], [1.0, 4.0]])
KEEP = np.array([[True, False], [True, True], [False, False], [False, True]])
PHI = np.array([2.0, 0.5])


def _pdf(x, mu, sd):  # the normal density written out, independent of scipy
    return math.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def test_logit_confidence_by_hand():
    p = 0.25
    assert logit_confidence([math.log(p)])[0] == pytest.approx(math.log(p / (1 - p)), rel=1e-12)
    # a long sequence: p underflows in float64, φ ≈ log p exactly (no clamp at log 1e-45)
    assert logit_confidence([-900.0])[0] == pytest.approx(-900.0, abs=1e-9)
    # probability exactly 1: the reference's floor, log(1) − log(1e-45)
    assert logit_confidence([0.0])[0] == pytest.approx(-math.log(1e-45))
    # monotone in the log-probability
    lp = np.linspace(-50, -1e-6, 200)
    assert np.all(np.diff(logit_confidence(lp)) > 0)


def test_logit_confidence_refuses_positive_and_nan():
    with pytest.raises(MnemoscopeError, match="> 0"):
        logit_confidence([0.1])
    with pytest.raises(MnemoscopeError, match="nan"):
        logit_confidence([float("nan")])


def test_gaussians_by_hand():
    g = lira_gaussians(SHADOW, KEEP)
    # example 0: IN {3, 5} → median 4, std 1; OUT {0, 1} → median 0.5, std 0.5
    assert g["mu_in"][0] == pytest.approx(4.0) and g["sigma_in"][0] == pytest.approx(1.0)
    assert g["mu_out"][0] == pytest.approx(0.5) and g["sigma_out"][0] == pytest.approx(0.5)
    # example 1: IN {2, 4} → 3, 1; OUT {-1, -3} → -2, 1
    assert g["mu_in"][1] == pytest.approx(3.0) and g["mu_out"][1] == pytest.approx(-2.0)
    assert g["sigma_in"][1] == pytest.approx(1.0) and g["sigma_out"][1] == pytest.approx(1.0)


def test_online_by_hand_and_scipy():
    got = lira_online(PHI, SHADOW, KEEP)
    hand0 = math.log(_pdf(2.0, 4.0, 1.0)) - math.log(_pdf(2.0, 0.5, 0.5))
    hand1 = math.log(_pdf(0.5, 3.0, 1.0)) - math.log(_pdf(0.5, -2.0, 1.0))
    assert got == pytest.approx([hand0, hand1], rel=1e-9)
    scipy_ref = norm.logpdf(PHI, [4.0, 3.0], [1.0, 1.0]) - norm.logpdf(PHI, [0.5, -2.0], [0.5, 1.0])
    assert got == pytest.approx(scipy_ref, rel=1e-9)


def test_online_fixed_variance_uses_the_in_spread_for_both():
    sd = np.std([3.0, 5.0, 2.0, 4.0])  # every IN pair, ddof 0
    got = lira_online(PHI, SHADOW, KEEP, fix_variance=True)
    ref = norm.logpdf(PHI, [4.0, 3.0], sd) - norm.logpdf(PHI, [0.5, -2.0], sd)
    assert got == pytest.approx(ref, rel=1e-9)


def test_offline_one_sided_and_two_sided():
    got = lira_offline(PHI, SHADOW, KEEP)
    assert got == pytest.approx(norm.logcdf(PHI, [0.5, -2.0], [0.5, 1.0]), rel=1e-9)
    # hand: Φ(3) for example 0 → log 0.99865
    assert math.exp(got[0]) == pytest.approx(0.5 * (1 + math.erf(3 / math.sqrt(2))), rel=1e-9)
    two = lira_offline(PHI, SHADOW, KEEP, one_sided=False)
    assert two == pytest.approx([-math.log(_pdf(2.0, 0.5, 0.5)), -math.log(_pdf(0.5, -2.0, 1.0))], rel=1e-9)
    fixed = lira_offline(PHI, SHADOW, KEEP, fix_variance=True)
    assert fixed == pytest.approx(norm.logcdf(PHI, [0.5, -2.0], np.std([0.0, 1.0, -1.0, -3.0])), rel=1e-9)


def test_offline_one_sided_is_monotone_in_the_target_confidence():
    """Properties: a higher target confidence never lowers the one-sided offline score; the
    online score is invariant to shifting every φ by the same constant."""
    rng = np.random.default_rng(0)
    shadow = rng.normal(size=(8, 5))
    keep = np.zeros((8, 5), dtype=bool)
    keep[:4] = True
    phis = np.linspace(-3, 3, 7)
    scores = np.array([lira_offline(np.full(5, x), shadow, keep) for x in phis])
    assert np.all(np.diff(scores, axis=0) > 0)
    phi = rng.normal(size=5)
    assert lira_online(phi + 7.0, shadow + 7.0, keep) == pytest.approx(lira_online(phi, shadow, keep), rel=1e-9)


def test_online_separates_members_in_a_simulation():
    """Members' φ drawn from the IN law, non-members' from the OUT law: online AUC well above 0.5,
    and above a global threshold on φ when the per-example offsets vary."""
    from mnemoscope.metrics.roc import roc_auc

    rng = np.random.default_rng(1)
    n, k = 400, 16
    offset = rng.normal(scale=3.0, size=n)  # per-example difficulty
    keep = np.zeros((k, n), dtype=bool)
    for i in range(n):
        keep[rng.permutation(k)[: k // 2], i] = True
    shadow = offset + keep * 1.0 + rng.normal(scale=0.3, size=(k, n))
    member = rng.random(n) < 0.5
    phi = offset + member * 1.0 + rng.normal(scale=0.3, size=n)
    online = roc_auc(member.astype(int), lira_online(phi, shadow, keep))
    assert online > 0.9
    assert online > roc_auc(member.astype(int), phi) + 0.2
    assert roc_auc(member.astype(int), lira_offline(phi, shadow, keep)) > 0.85


def test_bad_inputs_are_refused():
    with pytest.raises(MnemoscopeError, match="shape|needs"):
        lira_online(PHI[:1], SHADOW, KEEP)
    with pytest.raises(MnemoscopeError, match="only 1 shadow"):
        lira_online(PHI, SHADOW[:3], KEEP[:3])
    with pytest.raises(MnemoscopeError, match="nan or infinite"):
        lira_online(np.array([np.inf, 0.0]), SHADOW, KEEP)
    with pytest.raises(MnemoscopeError, match="boolean"):
        lira_offline(PHI, SHADOW, KEEP * 2)
