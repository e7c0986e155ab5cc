"""Blind baselines: tell members from non-members WITHOUT the model (Das, Zhang & Tramèr 2024).

If a classifier that never sees the model separates the two sets, they differ in distribution
(a topic, a year, a style), and a membership attack's AUC measures that difference as much as
membership. Two baselines, each a score per text oriented higher = member:

- ``bag_of_words_scores``: out-of-fold P(member | text) of a TF-IDF word n-gram (1..n) logistic
  regression, k-fold stratified cross-validation (``StratifiedGroupKFold`` when texts are
  grouped, so one group's texts never sit on both sides of a split). Every text is scored by a
  classifier that did not train on it, so the AUC over all texts is an honest estimate.
- ``date_scores``: Das et al.'s date detector. ``year(x)`` = the latest standalone year
  (1000–2099) written in x. With a cutoff year c: score 1 if year(x) < c (written before the
  training cutoff: member), 0 if year(x) ≥ c, ½ if x holds no year. Without c: the cutoff and its
  direction are chosen on the training folds (the pair with the highest training AUC) and
  applied to the held-out fold, as for the bag of words.
"""

from __future__ import annotations

import math
import re

import numpy as np
from numpy.typing import ArrayLike

from mnemoscope.errors import MnemoscopeError

__all__ = ["bag_of_words_scores", "latest_years", "date_scores", "fold_count_problem", "verdict", "auc_row",
           "YEAR_PATTERN", "BASELINES"]

BASELINES = {"bow": "bag of words", "date": "dates"}  # metric name → title

# A standalone year 1000–2099 (not part of a longer number).
YEAR_PATTERN = re.compile(r"(?<![0-9])(1[0-9]{3}|20[0-9]{2})(?![0-9])")
# Das et al.'s pattern: any run of 4 digits (also inside longer numbers).
ANY_FOUR_DIGITS = re.compile(r"[0-9]{4}")


def fold_count_problem(labels: ArrayLike, folds: int, groups: ArrayLike | None = None) -> str | None:
    """Why ``folds``-fold stratified cross-validation cannot run on these labels (None when it can):
    each class needs at least ``folds`` texts (or groups)."""
    y = np.asarray(labels).astype(bool)
    if folds < 2:
        return f"cross-validation needs at least 2 folds, got {folds}"
    unit = "texts" if groups is None else "groups"
    if groups is None:
        counts = int(y.sum()), int((~y).sum())
    else:
        g = np.asarray(groups, dtype=object).astype(str)
        counts = len(set(g[y])), len(set(g[~y]))
    if min(counts) < folds:
        return (f"{folds}-fold cross-validation needs at least {folds} member and {folds} non-member {unit}, "
                f"got {counts[0]} and {counts[1]}")
    return None


def _splits(labels: np.ndarray, folds: int, seed: int, groups: ArrayLike | None):
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    problem = fold_count_problem(labels, folds, groups)
    if problem is not None:
        raise MnemoscopeError(problem)
    if groups is None:
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(labels, labels)
    g = np.asarray(groups, dtype=object).astype(str)
    return StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(labels, labels, g)


def bag_of_words_scores(texts: list[str], labels: ArrayLike, *, folds: int = 5, ngram_max: int = 2,
                        seed: int = 0, groups: ArrayLike | None = None) -> np.ndarray:
    """Out-of-fold P(member | text): for each of ``folds`` stratified folds, fit
    ``TfidfVectorizer(ngram_range=(1, ngram_max), sublinear_tf=True)`` and a logistic regression
    (L2, C = 1) on the other folds and score the held-out texts. Raises MnemoscopeError when a
    class has fewer than ``folds`` texts (groups)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(labels, dtype=int)
    if len(texts) != y.size:
        raise MnemoscopeError(f"bag_of_words_scores: {len(texts)} texts for {y.size} labels")
    if ngram_max < 1:
        raise MnemoscopeError(f"ngram_max must be ≥ 1, got {ngram_max}")
    docs = np.asarray(texts, dtype=object)
    out = np.empty(y.size, dtype=np.float64)
    for train, test in _splits(y, folds, seed, groups):
        vectorizer = TfidfVectorizer(ngram_range=(1, ngram_max), sublinear_tf=True)
        classifier = LogisticRegression(C=1.0, max_iter=1000)
        classifier.fit(vectorizer.fit_transform(docs[train]), y[train])
        out[test] = classifier.predict_proba(vectorizer.transform(docs[test]))[:, 1]
    return out


def latest_years(texts: list[str], pattern: re.Pattern = YEAR_PATTERN) -> np.ndarray:
    """The largest year each text writes (nan where none), under ``pattern``."""
    out = np.full(len(texts), np.nan)
    for i, text in enumerate(texts):
        found = pattern.findall(text)
        if found:
            out[i] = max(int(y) for y in found)
    return out


def _rule(years: np.ndarray, cutoff: float, older_is_member: bool = True) -> np.ndarray:
    """Das et al.'s score: 1 if year < cutoff, 0 if ≥, ½ without a year (flipped when newer = member)."""
    before = np.where(years < cutoff, 1.0, 0.0)
    score = before if older_is_member else 1.0 - before
    return np.where(np.isnan(years), 0.5, score)


def _best_rule(years: np.ndarray, labels: np.ndarray) -> tuple[float, bool]:
    """The (cutoff, direction) with the highest AUC of ``_rule`` on these texts (ties: older = member
    first, then the earliest cutoff). With, per class, p₁ = share of texts with year < c, p½ = share
    without a year, p₀ = 1 − p₁ − p½ (m: members, n: non-members):
    ``AUC(c) = p₁ᵐ(p½ⁿ + p₀ⁿ) + p½ᵐ p₀ⁿ + ½(p₁ᵐp₁ⁿ + p½ᵐp½ⁿ + p₀ᵐp₀ⁿ)``, and the reversed
    direction (newer = member) has AUC 1 − AUC(c)."""
    candidates = np.unique(years[~np.isnan(years)]) + 1.0
    if candidates.size == 0 or labels.min() == labels.max():
        return np.inf, True
    shares = []
    for side in (labels == 1, labels == 0):
        known = np.sort(years[side][~np.isnan(years[side])])
        n = int(side.sum())
        p1 = np.searchsorted(known, candidates, side="left") / n
        ph = 1.0 - known.size / n
        shares.append((p1, ph, 1.0 - p1 - ph))
    (m1, mh, m0), (n1, nh, n0) = shares
    auc = m1 * (nh + n0) + mh * n0 + 0.5 * (m1 * n1 + mh * nh + m0 * n0)
    both = np.concatenate([auc, 1.0 - auc])  # older = member for every cutoff, then newer = member
    j = int(np.argmax(both >= both.max() - 1e-12))
    return float(candidates[j % candidates.size]), j < candidates.size


def date_scores(years: ArrayLike, labels: ArrayLike, *, cutoff: int | None = None, folds: int = 5, seed: int = 0,
                groups: ArrayLike | None = None) -> np.ndarray:
    """Das et al.'s date rule per text (``years`` from ``latest_years``): with ``cutoff``, the rule
    itself (no fitting); without, out-of-fold: the cutoff and direction fitted on the other folds."""
    yrs = np.asarray(years, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if yrs.shape != y.shape:
        raise MnemoscopeError(f"date_scores: {yrs.size} years for {y.size} labels")
    if cutoff is not None:
        return _rule(yrs, float(cutoff))
    out = np.empty(y.size, dtype=np.float64)
    for train, test in _splits(y, folds, seed, groups):
        c, older = _best_rule(yrs[train], y[train])
        out[test] = _rule(yrs[test], c, older)
    return out


# --------------------------------------------------------------------------- verdict (flat metric keys)


def auc_row(metrics: dict, key: str) -> tuple[float, float, float] | None:
    """``(AUC, CI low, CI high)`` of the flat metric ``key``, or None when any is missing."""
    values = (metrics.get(key), metrics.get(f"{key}/ci_lo"), metrics.get(f"{key}/ci_hi"))
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return None
    return values


def _best(metrics: dict, pattern: str) -> tuple[str, tuple[float, float, float]] | None:
    found = [(m.group(1), auc_row(metrics, key)) for key in metrics if (m := re.fullmatch(pattern, key))]
    found = [(name, row) for name, row in found if row is not None]
    return max(found, key=lambda item: item[1][0]) if found else None


def verdict(metrics: dict, attacks: str = r"mia/([^/@]+)/auc") -> str | None:
    """What the blind baseline says about the attack AUCs (None: it is at chance, or absent).

    ``attacks``: a regular expression matching the attacks' AUC keys (group 1 = the attack's
    name; its CI at ``<key>/ci_lo`` and ``<key>/ci_hi``). Let B be the best blind baseline and A
    the best attack (highest AUC). When B's 95% CI lies above 0.5, the sets differ without the
    model; when moreover AUC(B) ≥ the lower end of A's CI, the attack AUCs cannot be read as
    membership (a warning); otherwise the attacks do better than the blind baseline, but part of
    their AUC may be that difference (a caution)."""
    blind = _best(metrics, r"blind/([^/@]+)/auc")
    if blind is None or blind[1][1] <= 0.5:
        return None
    name, (auc, lo, hi) = blind
    said = f"blind {BASELINES.get(name, name)} AUC {auc:.3f} [{lo:.3f}, {hi:.3f}]"
    attack = _best(metrics, attacks)
    if attack is None:
        return f"The member and non-member sets differ without the model ({said})."
    a_name, (a_auc, a_lo, a_hi) = attack
    best = f"best attack {a_name} AUC {a_auc:.3f} [{a_lo:.3f}, {a_hi:.3f}]"
    if auc >= a_lo:
        return (f"WARNING: the member and non-member sets differ without the model ({said} reaches the {best}): "
                "the attack AUCs cannot be read as membership.")
    return (f"Caution: the member and non-member sets differ without the model ({said}); the {best} is above it, "
            "but part of every attack's AUC may be that difference.")
