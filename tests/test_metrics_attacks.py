"""New membership scores against hand-computed values and against the authors' procedures
written out independently (loops in the shape of their code; orientation flipped where theirs is
low = member)."""

import math
import zlib

import numpy as np
import pytest

from mnemoscope.metrics.attacks import (
    dcpdd_score,
    gradnorm_score,
    neighbourhood_score,
    recall_score,
    rouge1_recall,
    samia_score,
    samia_split,
    token_frequencies,
)
from mnemoscope.metrics.forecast import compression_ratio, forecast_precision_recall


def test_neighbourhood_hand_value():
    # Mattern et al.: loss(x) − mean loss(neighbours), low = member; ours is its negative
    assert neighbourhood_score(2.0, [3.0, 4.0]) == pytest.approx(1.5)
    assert math.isnan(neighbourhood_score(2.0, []))


def test_gradnorm_orientations_rank_opposite_ways():
    """Ours ranks the smaller mean norm as member; MIMIR's (−mean, then negated by get_roc_metrics)
    the larger: on any scores the two AUCs sum to 1."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    norms = [rng.gamma(2.0, size=5) for _ in range(30)]
    labels = rng.integers(0, 2, 30)
    labels[:2] = [0, 1]
    ours = [gradnorm_score(n) for n in norms]
    mimir_raw = [-float(np.mean(n)) for n in norms]  # GradNormAttack._attack
    mimir_ranked = [-x for x in mimir_raw]  # get_roc_metrics: total_preds * -1
    assert [gradnorm_score(n, "mimir") for n in norms] == pytest.approx(mimir_ranked)
    assert roc_auc_score(labels, ours) + roc_auc_score(labels, mimir_ranked) == pytest.approx(1.0)
    assert ours[0] > ours[1] if np.mean(norms[0]) < np.mean(norms[1]) else ours[0] <= ours[1]
    assert math.isnan(gradnorm_score([]))
    with pytest.raises(ValueError, match="orientation"):
        gradnorm_score([1.0], "larger")


def test_recall_hand_value():
    # LL(x|P) = −3.5, LL(x) = −3.0: ratio 7/6 (> 1: the prefix lowered the likelihood)
    assert recall_score(-3.5, -3.0) == pytest.approx(7 / 6)
    assert math.isnan(recall_score(-1.0, 0.0))


def authors_dcpdd(input_ids, logprobs, fre_counts, a):
    """DC-PDD's scoring loop as in its authors' code, with their sign (−mean, low = member)."""
    fre = (np.asarray(fre_counts, dtype=float) + 1) / (sum(fre_counts) + len(fre_counts))
    probs = np.exp(np.asarray(logprobs))
    indexes, current = [], []
    for i, t in enumerate(input_ids):
        if t not in current:
            indexes.append(i)
            current.append(t)
    x_pro = probs[indexes]
    x_fre = fre[np.asarray(input_ids)[indexes]]
    ce = x_pro * np.log(1 / x_fre)
    ce[ce > a] = a
    return -np.mean(ce)


def test_dcpdd_against_authors_procedure():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=20)
    for _ in range(50):
        ids = rng.integers(0, 20, size=15)
        lp = np.log(rng.uniform(0.001, 1.0, size=15))
        ours = dcpdd_score(ids, lp, token_frequencies(counts), a=0.01)
        assert ours == pytest.approx(-authors_dcpdd(list(ids), lp, list(counts), 0.01))
        assert dcpdd_score(ids, lp, token_frequencies(counts), a=10.0) >= ours  # a larger cap never lowers it


def test_dcpdd_hand_value():
    counts = [3, 1]  # f = (4/6, 2/6)
    ids, lp = [1, 0, 1], np.log([0.5, 0.25, 0.9])
    expected = np.mean([min(0.5 * math.log(3), 10), min(0.25 * math.log(1.5), 10)])
    assert dcpdd_score(ids, lp, token_frequencies(counts), a=10) == pytest.approx(expected)
    assert dcpdd_score(ids, lp, token_frequencies(counts), a=0.01) == pytest.approx(0.01)


def test_samia_split_and_rouge1():
    prefix, ref = samia_split("a b c d e f g", 0.5)
    assert prefix == "a b c" and ref == ["d", "e", "f", "g"]
    assert rouge1_recall(["d", "d", "x"], ["d", "e", "d", "g"]) == pytest.approx(2 / 4)
    assert rouge1_recall([], ["a"]) == 0.0
    samples = [["d", "e"], ["z"]]
    assert samia_score(samples, ref) == pytest.approx((2 / 4 + 0) / 2)
    weighted = (2 / 4 * len(zlib.compress(b"d e")) + 0) / 2
    assert samia_score(samples, ref, zlib_weight=True) == pytest.approx(weighted)


def test_forecast_precision_recall():
    p, r = forecast_precision_recall([1, 1, 0, 0], [1, 0, 1, 0])
    assert (p, r) == (0.5, 0.5)
    p, r = forecast_precision_recall([0, 0], [1, 0])
    assert math.isnan(p) and r == 0.0


def test_compression_ratio():
    assert compression_ratio(20, 4) == 5.0
    assert math.isnan(compression_ratio(20, None))
    with pytest.raises(ValueError):
        compression_ratio(20, 0)
