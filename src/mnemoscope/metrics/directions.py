"""Linear directions in hidden states: fit, probe, project, picture (pure functions, no model).

Inputs are features ``X`` [n, d] (one row per item, e.g. the residual stream at one layer under a
position rule) and labels ``y`` (1 = the first set, e.g. reasoning/compute prompts; 0 = the second,
e.g. memory/recall prompts). Every direction is a unit vector oriented so that projections are
higher for label 1, as membership scores are higher for members.

- ``mean_difference``: r = mean_{y=1} x − mean_{y=0} x, r̂ = r / ‖r‖ (the difference-of-means
  "linear feature" of the reasoning–memorization paper; also the refusal-direction recipe);
- ``logistic_direction``: the weight vector of an L2 logistic regression fitted on standardised
  features, mapped back to the raw feature space (w_j / s_j) and normalised;
- ``pca_direction``: the first principal axis of the pooled, centred features, signed so that
  the label-1 mean projects higher (unsupervised: finds the class split only when it dominates
  the variance);
- ``probe``: held-out quality of a direction method: stratified k-fold; each item's score is its
  projection on the direction fitted without its fold; ROC-AUC of those out-of-fold scores
  (``metrics.roc``, ties count half) with a stratified percentile bootstrap CI, and accuracy of
  the projection thresholded at the midpoint of the two training-class mean projections.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.roc import bootstrap_auc_ci, roc_auc

METHODS = ("mean_diff", "logistic", "pca")


def _check(X: ArrayLike, y: ArrayLike, min_per_class: int = 1) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise MnemoscopeError(f"features must be [n, d] and labels [n], got shapes {X.shape} and {y.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise MnemoscopeError("labels must be 0 or 1")
    if not np.isfinite(X).all():
        raise MnemoscopeError("features hold nan or inf values")
    labels = y.astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 < min_per_class or n0 < min_per_class:
        raise MnemoscopeError(f"need at least {min_per_class} item(s) of each label, got {n1} with label 1 and "
                              f"{n0} with label 0")
    return X, labels


def _unit(r: np.ndarray, what: str) -> np.ndarray:
    norm = float(np.linalg.norm(r))
    if not np.isfinite(norm) or norm == 0.0:
        raise MnemoscopeError(f"{what} is zero: the two sets have identical features here")
    return r / norm


def mean_difference(X: ArrayLike, y: ArrayLike) -> np.ndarray:
    """r̂ = (mean_{y=1} x − mean_{y=0} x) / ‖·‖."""
    X, labels = _check(X, y)
    return _unit(X[labels].mean(0) - X[~labels].mean(0), "the difference of class means")


def logistic_direction(X: ArrayLike, y: ArrayLike, C: float = 1.0) -> np.ndarray:
    """Unit weight vector of ``LogisticRegression(C)`` on features standardised by their mean and
    std (a constant feature keeps scale 1), mapped back to raw features: w_raw = w / s."""
    from sklearn.linear_model import LogisticRegression

    X, labels = _check(X, y)
    mu, s = X.mean(0), X.std(0)
    s = np.where(s > 0, s, 1.0)
    model = LogisticRegression(C=C, max_iter=5000).fit((X - mu) / s, labels.astype(int))
    return _unit(model.coef_[0] / s, "the logistic-regression weight vector")


def pca_direction(X: ArrayLike, y: ArrayLike) -> np.ndarray:
    """First principal axis of the centred features, signed so mean_{y=1} x · r̂ > mean_{y=0} x · r̂."""
    X, labels = _check(X, y)
    centred = X - X.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    r = vt[0]
    if X[labels].mean(0) @ r < X[~labels].mean(0) @ r:
        r = -r
    return _unit(r, "the first principal axis")


def fit_direction(X: ArrayLike, y: ArrayLike, method: str = "mean_diff") -> np.ndarray:
    """The unit direction of ``method`` (one of ``METHODS``)."""
    if method == "mean_diff":
        return mean_difference(X, y)
    if method == "logistic":
        return logistic_direction(X, y)
    if method == "pca":
        return pca_direction(X, y)
    raise MnemoscopeError(f"unknown direction method '{method}': use one of {', '.join(METHODS)}")


def project(X: ArrayLike, direction: ArrayLike) -> np.ndarray:
    """x · r̂ for each row (the direction is normalised first)."""
    r = np.asarray(direction, dtype=np.float64)
    return np.asarray(X, dtype=np.float64) @ _unit(r, "the direction")


def held_out_scores(X: ArrayLike, y: ArrayLike, method: str = "mean_diff", folds: int = 5,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold projections and 0/1 predictions (see the module docstring). Folds: sklearn's
    ``StratifiedKFold(min(folds, smallest class), shuffle=True, random_state=seed)``."""
    from sklearn.model_selection import StratifiedKFold

    X, labels = _check(X, y, min_per_class=2)
    if folds < 2:
        raise MnemoscopeError(f"a held-out probe needs at least 2 folds, got {folds}")
    k = min(int(folds), int(labels.sum()), int((~labels).sum()))
    scores = np.empty(len(labels))
    predicted = np.empty(len(labels), dtype=bool)
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(X, labels):
        r = fit_direction(X[train], labels[train], method)
        proj_train = X[train] @ r
        threshold = 0.5 * (proj_train[labels[train]].mean() + proj_train[~labels[train]].mean())
        scores[test] = X[test] @ r
        predicted[test] = scores[test] > threshold
    return scores, predicted


def probe(X: ArrayLike, y: ArrayLike, method: str = "mean_diff", folds: int = 5, n_boot: int = 1000,
          seed: int = 0) -> dict[str, float]:
    """``auc``, ``auc/ci_lo``, ``auc/ci_hi`` (95%), ``accuracy`` of the held-out probe, and ``n``."""
    X, labels = _check(X, y, min_per_class=2)
    scores, predicted = held_out_scores(X, labels, method, folds, seed)
    y01 = labels.astype(int)
    lo, hi = bootstrap_auc_ci(y01, scores, n_boot=n_boot, seed=seed) if n_boot > 0 else (float("nan"),) * 2
    return {"auc": roc_auc(y01, scores), "auc/ci_lo": lo, "auc/ci_hi": hi,
            "accuracy": float((predicted == labels).mean()), "n": float(len(labels))}


def probe_by_layer(features: ArrayLike, y: ArrayLike, layers: list[int], method: str = "mean_diff",
                   folds: int = 5, n_boot: int = 1000, seed: int = 0) -> list[dict[str, float]]:
    """:func:`probe` at each layer of ``features`` [n, n_layers, d]; rows carry ``layer``."""
    F = np.asarray(features)
    if F.ndim != 3 or F.shape[1] != len(layers):
        raise MnemoscopeError(f"features must be [n, {len(layers)} layers, d], got shape {F.shape}")
    return [{"layer": int(layer), **probe(F[:, j], y, method, folds, n_boot, seed)} for j, layer in enumerate(layers)]


def pca_2d(X: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates [n, 2] of the centred features on their first two principal axes, and the share
    of variance each explains. Each axis is signed so its largest-magnitude loading is positive."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise MnemoscopeError(f"a 2-D PCA needs at least 2 items of [n, d] features, got shape {X.shape}")
    centred = X - X.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:2]
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])
    vt = vt * signs[:, None]
    coords = centred @ vt.T
    if coords.shape[1] < 2:  # a single feature: the second axis is empty
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    total = float((s ** 2).sum())
    ratio = (s[:2] ** 2) / total if total > 0 else np.zeros(min(2, len(s)))
    return coords, np.pad(ratio, (0, 2 - len(ratio)))


def random_direction(size: int, seed: int) -> np.ndarray:
    """A seeded unit vector, uniform on the sphere (normalised standard normal): the control
    direction, of the same norm as any unit direction."""
    r = np.random.default_rng(seed).standard_normal(int(size))
    return r / np.linalg.norm(r)


def answer_match(generated: str, answer: str) -> bool:
    """True when the continuation (leading whitespace dropped) begins with the answer (stripped) and
    the answer is not the start of a longer word or number (the next character, if any, is not a
    letter or digit)."""
    text, want = generated.lstrip(), answer.strip()
    if not want or not text.startswith(want):
        return False
    rest = text[len(want):]
    return not rest or not rest[0].isalnum()
