import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mnemoscope.metrics.membership import (
    loss_score,
    lowercase_score,
    membership_scores,
    min_k_count,
    min_k_pp_score,
    min_k_score,
    ratio_score,
    ref_score,
    zlib_bytes,
    zlib_score,
)
from mnemoscope.metrics.roc import roc_auc

LP = np.array([-0.5, -1.0, -2.0, -0.1, -3.0])  # sum -6.6, n = 5
MU = np.array([-1.0, -1.0, -1.0, -1.0, -1.0])
SIGMA = np.array([1.0, 2.0, 0.5, 1.0, 4.0])
# z = (0.5, 0.0, -2.0, 0.9, -0.5)


def test_loss_hand():
    assert loss_score(LP) == pytest.approx(-1.32)


def test_zlib_hand():
    assert zlib_bytes("hello world") == 19
    assert zlib_score(LP, "hello world") == pytest.approx(-1.32 / 19)
    text = "naïve café ✓"
    assert zlib_bytes(text) == len(zlib.compress(text.encode("utf-8")))


def test_min_k_hand():
    assert min_k_score(LP, k=0.2) == pytest.approx(-3.0)  # ceil(1.0) = 1 token
    assert min_k_score(LP, k=0.4) == pytest.approx(-2.5)  # 2 tokens: -3, -2
    assert min_k_score(LP, k=0.5) == pytest.approx(-2.0)  # ceil(2.5) = 3: -3, -2, -1
    assert min_k_score(LP, k=1.0) == pytest.approx(loss_score(LP))
    assert min_k_score(LP, k=0.01) == pytest.approx(-3.0)  # at least one token


def test_min_k_count_float_noise():
    assert min_k_count(15, 0.2) == 3  # 0.2 * 15 = 3.0000000000000004 in floating point
    assert min_k_count(10, 0.2) == 2
    assert min_k_count(11, 0.2) == 3
    assert min_k_count(1, 0.2) == 1
    assert min_k_count(0, 0.2) == 1
    with pytest.raises(ValueError):
        min_k_count(5, 0.0)
    with pytest.raises(ValueError):
        min_k_count(5, 1.5)


def test_min_k_rounding_down_is_the_published_codes_rule():
    # MUSE / Min-K%++: int(len · ratio); open-unlearning: max(1, int(len · k))
    assert min_k_count(10, 0.2, "down") == 2 and min_k_count(11, 0.2, "down") == 2
    assert min_k_count(11, 0.2, "up") == 3
    assert min_k_count(4, 0.2, "down") == 1  # int(0.8) = 0 → at least one token
    assert min_k_count(100, 0.29, "down") == int(100 * 0.29) == 28  # float noise kept, as published
    assert min_k_score(LP, k=0.5, rounding="down") == pytest.approx(-2.5)  # int(2.5) = 2: -3, -2
    assert min_k_score(LP, k=0.5) == pytest.approx(-2.0)  # the default rounds up: 3 tokens
    assert min_k_pp_score(LP, MU, SIGMA, k=0.5, rounding="down") == pytest.approx(-1.25)  # -2, -0.5
    out = membership_scores(LP, MU, SIGMA, "hello world", k=0.5, rounding="down")
    assert out["min_k"] == pytest.approx(-2.5) and out["min_k_pp"] == pytest.approx(-1.25)
    with pytest.raises(ValueError, match="rounding"):
        min_k_count(5, 0.2, "nearest")


def test_min_k_pp_hand():
    assert min_k_pp_score(LP, MU, SIGMA, k=0.2) == pytest.approx(-2.0)
    assert min_k_pp_score(LP, MU, SIGMA, k=0.4) == pytest.approx(-1.25)  # -2, -0.5
    assert min_k_pp_score(LP, MU, SIGMA, k=1.0) == pytest.approx((0.5 + 0 - 2 + 0.9 - 0.5) / 5)


def test_min_k_pp_sigma_floor():
    lp = np.array([-2.0, -1.0])
    mu = np.array([-1.0, -1.0])
    sigma = np.array([0.0, 0.0])
    assert min_k_pp_score(lp, mu, sigma, k=0.5, eps=1e-3) == pytest.approx(-1000.0)
    assert np.isfinite(min_k_pp_score(lp, mu, sigma))


def test_min_k_pp_shape_mismatch():
    with pytest.raises(ValueError, match="same length"):
        min_k_pp_score(LP, MU[:3], SIGMA)


def test_reference_style_scores_hand():
    assert ref_score(2.0, 1.5) == pytest.approx(-0.5)
    assert ratio_score(2.0, 1.5) == pytest.approx(-math.exp(2.0) / math.exp(1.5))
    assert lowercase_score(2.0, 4.0) == pytest.approx(-0.5)
    assert math.isnan(lowercase_score(2.0, 0.0))
    np.testing.assert_allclose(ref_score(np.array([1.0, 3.0]), np.array([2.0, 2.0])), [1.0, -1.0])
    # no overflow for large NLLs
    assert ratio_score(900.0, 899.0) == pytest.approx(-math.e)


def test_empty_arrays_give_nan():
    empty = np.array([])
    out = membership_scores(empty, empty, empty, "")
    assert set(out) == {"loss", "zlib", "min_k", "min_k_pp"}
    assert all(math.isnan(v) for v in out.values())


def test_membership_scores_matches_individual():
    out = membership_scores(LP, MU, SIGMA, "hello world", k=0.4)
    assert out == {
        "loss": loss_score(LP),
        "zlib": zlib_score(LP, "hello world"),
        "min_k": min_k_score(LP, 0.4),
        "min_k_pp": min_k_pp_score(LP, MU, SIGMA, 0.4),
    }


def test_rejects_2d():
    with pytest.raises(ValueError, match="1-D"):
        loss_score(np.zeros((2, 2)))


token_arrays = arrays(
    np.float64,
    st.integers(1, 40),
    elements=st.floats(-20.0, 0.0, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(token_arrays, st.randoms(use_true_random=False), st.floats(0.05, 1.0))
def test_permutation_invariance(lp, rnd, k):
    n = lp.size
    mu = np.linspace(-5, -1, n)
    sigma = np.linspace(0.5, 2.0, n)
    perm = list(range(n))
    rnd.shuffle(perm)
    a = membership_scores(lp, mu, sigma, "t", k=k)
    b = membership_scores(lp[perm], mu[perm], sigma[perm], "t", k=k)
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(token_arrays, st.floats(0.05, 1.0))
def test_min_k_below_loss_and_monotone_in_k(lp, k):
    assert min_k_score(lp, k) <= loss_score(lp) + 1e-12
    assert min_k_score(lp, k / 2) <= min_k_score(lp, k) + 1e-12


def test_direction_members_with_higher_logprobs_get_auc_above_half():
    rng = np.random.default_rng(0)
    n, t = 40, 30
    mu = np.full(t, -3.0)
    sigma = np.full(t, 1.0)
    members = [rng.normal(-1.5, 0.5, t) for _ in range(n)]
    nonmembers = [rng.normal(-3.0, 0.5, t) for _ in range(n)]
    texts = ["some text " * 5] * (2 * n)
    y = np.r_[np.ones(n), np.zeros(n)]
    rows = [membership_scores(lp, mu, sigma, tx) for lp, tx in zip(members + nonmembers, texts)]
    for key in ("loss", "zlib", "min_k", "min_k_pp"):
        auc = roc_auc(y, [r[key] for r in rows])
        assert auc > 0.9, key
    nll = np.array([-loss_score(lp) for lp in members + nonmembers])
    nll_ref = np.full(2 * n, 2.5)
    assert roc_auc(y, ref_score(nll, nll_ref)) > 0.9
    assert roc_auc(y, ratio_score(nll, nll_ref)) > 0.9
    assert roc_auc(y, lowercase_score(nll, nll_ref)) > 0.9
