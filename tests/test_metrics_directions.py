"""Directions, probes and PCA against hand computation and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.directions import (
    answer_match,
    fit_direction,
    held_out_scores,
    logistic_direction,
    mean_difference,
    pca_2d,
    pca_direction,
    probe,
    probe_by_layer,
    project,
    random_direction,
)


def _blobs(n=40, d=6, gap=1.5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array([1] * (n // 2) + [0] * (n - n // 2))
    axis = np.zeros(d)
    axis[2] = 1.0
    X = rng.normal(size=(n, d)) + np.outer(y, axis) * gap
    return X, y


def test_mean_difference_by_hand():
    X = np.array([[1.0, 2.0], [3.0, 2.0], [0.0, 0.0], [0.0, 2.0]])
    y = np.array([1, 1, 0, 0])
    # class means (2, 2) and (0, 1): r = (2, 1), r̂ = (2, 1)/√5
    np.testing.assert_allclose(mean_difference(X, y), np.array([2.0, 1.0]) / np.sqrt(5.0))
    np.testing.assert_allclose(mean_difference(X, 1 - y), -np.array([2.0, 1.0]) / np.sqrt(5.0))
    np.testing.assert_allclose(project(X, [2.0, 1.0]), X @ np.array([2.0, 1.0]) / np.sqrt(5.0))


def test_logistic_direction_matches_sklearn_on_standardised_features():
    X, y = _blobs()
    mu, s = X.mean(0), X.std(0)
    w = LogisticRegression(C=1.0, max_iter=5000).fit((X - mu) / s, y).coef_[0] / s
    np.testing.assert_allclose(logistic_direction(X, y), w / np.linalg.norm(w), atol=1e-6)
    assert abs(logistic_direction(X, y)[2]) > 0.8  # it finds the axis the classes differ on


def test_pca_direction_matches_sklearn_and_is_oriented():
    X, y = _blobs(gap=6.0)
    ref = PCA(n_components=1).fit(X).components_[0]
    got = pca_direction(X, y)
    np.testing.assert_allclose(np.abs(got), np.abs(ref), atol=1e-8)
    assert project(X[y == 1], got).mean() > project(X[y == 0], got).mean()
    np.testing.assert_allclose(pca_direction(X, 1 - y), -got)


def test_held_out_scores_and_probe_by_hand():
    X, y = _blobs(n=30, gap=1.0, seed=3)
    scores, predicted = held_out_scores(X, y, "mean_diff", folds=5, seed=7)
    want = np.empty(len(y))
    want_pred = np.empty(len(y), dtype=bool)
    for train, test in StratifiedKFold(5, shuffle=True, random_state=7).split(X, y):
        m1, m0 = X[train][y[train] == 1].mean(0), X[train][y[train] == 0].mean(0)
        r = (m1 - m0) / np.linalg.norm(m1 - m0)
        want[test] = X[test] @ r
        want_pred[test] = X[test] @ r > (m1 @ r + m0 @ r) / 2
    np.testing.assert_allclose(scores, want, atol=1e-10)
    assert (predicted == want_pred).all()
    result = probe(X, y, "mean_diff", folds=5, n_boot=200, seed=7)
    assert result["auc"] == pytest.approx(roc_auc_score(y, want))
    assert result["accuracy"] == pytest.approx((want_pred == y.astype(bool)).mean())
    assert result["auc/ci_lo"] <= result["auc"] <= result["auc/ci_hi"]
    assert result["n"] == 30


def test_probe_properties():
    X, y = _blobs(n=40, gap=8.0)
    for method in ("mean_diff", "logistic", "pca"):
        assert probe(X, y, method, n_boot=0)["auc"] == 1.0
        # positive rescaling and a shift of every feature change nothing
        a = probe(X, y, method, n_boot=0, seed=1)
        b = probe(3.0 * X + 5.0, y, method, n_boot=0, seed=1)
        assert a["auc"] == pytest.approx(b["auc"]) and a["accuracy"] == pytest.approx(b["accuracy"])
    noise = np.random.default_rng(1).normal(size=(200, 5))
    labels = np.array([0, 1] * 100)
    assert abs(probe(noise, labels, n_boot=0)["auc"] - 0.5) < 0.15  # nothing to find: near chance
    two = probe(X[[0, 1, 20, 21]], y[[0, 1, 20, 21]], n_boot=0)  # two per class: two folds
    assert two["n"] == 4


def test_probe_by_layer_rows():
    X, y = _blobs(n=20, d=4)
    rng = np.random.default_rng(2)
    feats = np.stack([rng.normal(size=X.shape), X], axis=1)  # layer -1 noise, layer 0 the signal
    rows = probe_by_layer(feats, y, [-1, 0], n_boot=50)
    assert [r["layer"] for r in rows] == [-1, 0]
    assert rows[1]["auc"] == pytest.approx(probe(X, y, n_boot=50)["auc"])
    with pytest.raises(MnemoscopeError, match="layers"):
        probe_by_layer(feats, y, [0])


def test_pca_2d_matches_sklearn():
    X, _ = _blobs(n=25, d=5, gap=3.0, seed=4)
    coords, ratio = pca_2d(X)
    ref = PCA(n_components=2).fit(X)
    want = ref.transform(X)
    for j in range(2):
        sign = np.sign(coords[:, j] @ want[:, j])
        np.testing.assert_allclose(coords[:, j], sign * want[:, j], atol=1e-8)
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, atol=1e-10)
    one, r1 = pca_2d(X[:, :1])
    assert one.shape == (25, 2) and (one[:, 1] == 0).all() and r1[0] == pytest.approx(1.0)


def test_random_direction():
    a, b = random_direction(64, 0), random_direction(64, 0)
    assert np.array_equal(a, b) and np.linalg.norm(a) == pytest.approx(1.0)
    assert not np.allclose(a, random_direction(64, 1))


def test_answer_match():
    assert answer_match(" b c d e, and so on", "b c d e")  # the answer, then a word boundary
    assert answer_match(" b c d e", "b c d e")
    assert answer_match("42.", " 42")
    assert answer_match("42 and more", "42")
    assert not answer_match("421", "42")
    assert not answer_match("4", "42")
    assert not answer_match("anything", "  ")


def test_bad_inputs():
    X, y = _blobs(n=6)
    with pytest.raises(MnemoscopeError, match="at least 2"):
        probe(X[:3], np.array([1, 0, 0]))
    with pytest.raises(MnemoscopeError, match="shapes"):
        mean_difference(X, y[:-1])
    with pytest.raises(MnemoscopeError, match="identical"):
        mean_difference(np.ones((4, 3)), np.array([1, 1, 0, 0]))
    with pytest.raises(MnemoscopeError, match="unknown direction method"):
        fit_direction(X, y, "cosine")
    with pytest.raises(MnemoscopeError, match="0 or 1"):
        mean_difference(X, y + 1)
    with pytest.raises(MnemoscopeError, match="nan"):
        mean_difference(np.full((4, 2), np.nan), np.array([1, 1, 0, 0]))
