"""ROC statistics for membership inference (label convention: member = 1).

Scores are oriented so that higher = more likely a member. Every function here
takes ``(y_true, y_score)`` in that order, like scikit-learn.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from mnemoscope.errors import MnemoscopeError

__all__ = [
    "roc_auc",
    "bootstrap_auc_ci",
    "bootstrap_aucs",
    "n_groups",
    "roc_curve_points",
    "tpr_at_fpr",
    "membership_report",
]

# Bootstrap replicates are processed in chunks of at most this many count cells.
_CHUNK_CELLS = 2_000_000


def _validate(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels as bool, scores as float64) or raise MnemoscopeError."""
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise MnemoscopeError(
            f"y_true and y_score must be 1-D and of equal length, got shapes {y.shape} and {s.shape}"
        )
    if y.size and not np.isin(y, (0, 1)).all():
        bad = sorted({str(v) for v in np.unique(y[~np.isin(y, (0, 1))])})[:5]
        raise MnemoscopeError(f"y_true must hold only 0 (non-member) and 1 (member), found {', '.join(bad)}")
    n_nan = int(np.isnan(s).sum())
    if n_nan:
        raise MnemoscopeError(
            f"y_score has {n_nan} nan value(s) (e.g. texts with no scored tokens); "
            "drop them before computing an AUC"
        )
    labels = y.astype(bool)
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos < 2 or n_neg < 2:
        raise MnemoscopeError(
            "need at least 2 members (label 1) and 2 non-members (label 0) in y_true, "
            f"got {n_pos} members and {n_neg} non-members"
        )
    return labels, s


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann–Whitney form: ``(Σ ranks of members − n₁(n₁+1)/2) / (n₁·n₀)``;
    ties get average ranks, i.e. ``AUC = P(s_member > s_non) + ½·P(s_member = s_non)``."""
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    ranks = rankdata(scores, method="average")
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """ROC-AUC = P(score of a member > score of a non-member) + ½·P(equal).

    Equal to ``sklearn.metrics.roc_auc_score`` (ties count half). Raises
    MnemoscopeError for non-binary labels, nan scores, or fewer than 2 of a class.
    """
    labels, scores = _validate(y_true, y_score)
    return _auc(labels, scores)


def bootstrap_aucs(
    y_true: ArrayLike, y_score: ArrayLike, n_boot: int = 1000, seed: int = 0, groups: ArrayLike | None = None
) -> np.ndarray:
    """``n_boot`` stratified bootstrap replicates of the AUC.

    Text bootstrap (``groups=None``): each replicate draws n₁ members from the members and n₀
    non-members from the non-members, with replacement, as multinomial counts ``w``.

    Cluster bootstrap (``groups`` given, one label per text): the unit is a group within a class
    (a person, a document, a canary's copies; a name used by both classes is two units). Each
    replicate draws G₁ member groups from the G₁ member groups and G₀ non-member groups from the
    G₀, with replacement; a text weighs as many times as its group was drawn, ``w_i = c_g(i)``.
    Texts of one group are alike, so the text bootstrap understates the spread; this one does not.

    Either way, with non-member scores sorted, a member of score s beats
    ``below(s) + ½·equal(s)`` resampled non-members, read off the cumulative weights, so a
    replicate costs O(n₁ + n₀) with no sort:
    ``AUC_b = Σ_i w⁺_bi (below_b(s_i) + ½ equal_b(s_i)) / (Σ_i w⁺_bi · Σ_j w⁻_bj)``
    (the denominators are n₁ and n₀ for the text bootstrap). Deterministic for a given ``seed``.
    """
    labels, scores = _validate(y_true, y_score)
    if int(n_boot) < 1:
        raise MnemoscopeError(f"n_boot must be a positive integer, got {n_boot}")
    n_boot = int(n_boot)
    order = np.argsort(scores[~labels], kind="mergesort")
    pos = scores[labels]
    neg = scores[~labels][order]
    lo_idx = np.searchsorted(neg, pos, side="left")  # non-members strictly below each member
    hi_idx = np.searchsorted(neg, pos, side="right")  # ... below or equal
    rng = np.random.default_rng(seed)
    if groups is None:
        draw_pos, draw_neg = _text_draw(pos.size), _text_draw(neg.size)
    else:
        codes_pos, codes_neg = _group_codes(groups, labels)
        draw_pos, draw_neg = _group_draw(codes_pos), _group_draw(codes_neg[order])
    chunk = max(1, _CHUNK_CELLS // (pos.size + neg.size))
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w_pos, w_neg = draw_pos(rng, b), draw_neg(rng, b)
        cum = np.zeros((b, neg.size + 1), dtype=np.int64)
        np.cumsum(w_neg, axis=1, out=cum[:, 1:])
        below = cum[:, lo_idx]
        equal = cum[:, hi_idx] - below
        wins = (w_pos * (below + 0.5 * equal)).sum(axis=1)
        out[start : start + b] = wins / (w_pos.sum(axis=1) * cum[:, -1])
    return out


def _text_draw(n: int):
    """Replicate weights of the text bootstrap: multinomial(n, uniform) counts per text."""
    p = np.full(n, 1.0 / n)
    return lambda rng, b: rng.multinomial(n, p, size=b)


def _group_draw(codes: np.ndarray):
    """Replicate weights of the cluster bootstrap: each text weighs its group's multinomial count."""
    n_groups = int(codes.max()) + 1
    p = np.full(n_groups, 1.0 / n_groups)
    return lambda rng, b: rng.multinomial(n_groups, p, size=b)[:, codes]


def _group_codes(groups: ArrayLike, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group index (0..G−1) of every member and of every non-member; at least 2 groups a class."""
    g = np.asarray(groups, dtype=object)
    if g.shape != labels.shape:
        raise MnemoscopeError(f"groups must give one group per text: {g.size} groups for {labels.size} texts")
    if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in g):
        raise MnemoscopeError("groups: every text needs a group (found a missing one); give all or none")
    out = []
    for side, name in ((labels, "member"), (~labels, "non-member")):
        _, codes = np.unique(g[side].astype(str), return_inverse=True)
        if codes.max() + 1 < 2:
            raise MnemoscopeError(f"a cluster bootstrap needs at least 2 {name} groups, got {codes.max() + 1}")
        out.append(codes.ravel())
    return out[0], out[1]


def n_groups(groups: ArrayLike, labels: ArrayLike) -> tuple[int, int]:
    """Number of distinct groups among the members and among the non-members."""
    g = np.asarray(groups, dtype=object).astype(str)
    y = np.asarray(labels).astype(bool)
    return len(set(g[y])), len(set(g[~y]))


def bootstrap_auc_ci(
    y_true: ArrayLike,
    y_score: ArrayLike,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: ArrayLike | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 − alpha)`` CI of the AUC from ``bootstrap_aucs`` (resampling
    texts, or with ``groups`` whole groups): the ``alpha/2`` and ``1 − alpha/2`` quantiles
    (linear interpolation) of the replicates."""
    if not 0.0 < alpha < 1.0:
        raise MnemoscopeError(f"alpha must be in (0, 1), got {alpha}")
    reps = bootstrap_aucs(y_true, y_score, n_boot=n_boot, seed=seed, groups=groups)
    lo, hi = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def roc_curve_points(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """ROC points for plotting: one point per distinct score threshold, from (0, 0) to (1, 1).

    Predict "member" iff score ≥ threshold; thresholds run over the distinct
    scores from high to low. Same points as ``sklearn.metrics.roc_curve(...,
    drop_intermediate=False)``.
    """
    labels, scores = _validate(y_true, y_score)
    return _curve(labels, scores)


def _curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="mergesort")
    s_sorted = scores[order]
    l_sorted = labels[order]
    # last index of each run of equal scores
    ends = np.flatnonzero(np.diff(s_sorted) != 0)
    ends = np.append(ends, s_sorted.size - 1)
    tps = np.cumsum(l_sorted)[ends]
    fps = (ends + 1) - tps
    tpr = np.concatenate(([0.0], tps / labels.sum()))
    fpr = np.concatenate(([0.0], fps / (~labels).sum()))
    return fpr, tpr


def tpr_at_fpr(y_true: ArrayLike, y_score: ArrayLike, fpr: float) -> tuple[float, bool]:
    """Largest TPR over ROC points with FPR ≤ ``fpr``, and an *underpowered* flag.

    Underpowered when the number of non-members is below ``1/fpr``: such an FPR
    cannot be resolved (one false positive already exceeds it).
    """
    if not 0.0 < fpr <= 1.0:
        raise MnemoscopeError(f"fpr must be in (0, 1], got {fpr}")
    labels, scores = _validate(y_true, y_score)
    fprs, tprs = _curve(labels, scores)
    n_neg = int((~labels).sum())
    tpr = float(tprs[fprs <= fpr + 1e-12].max())
    underpowered = n_neg < 1.0 / fpr - 1e-9
    return tpr, bool(underpowered)


def membership_report(
    y_true: ArrayLike,
    y_score: ArrayLike,
    fprs: tuple[float, ...] = (0.001, 0.01, 0.05),
    n_boot: int = 1000,
    seed: int = 0,
    groups: ArrayLike | None = None,
) -> dict[str, float]:
    """Flat summary: ``auc``, ``auc/ci_lo``, ``auc/ci_hi`` (95% percentile bootstrap; with
    ``groups``, the cluster bootstrap over groups), ``tpr@fpr=F`` and ``tpr@fpr=F/underpowered``
    (0/1) for each F in ``fprs``, plus ``n_members`` and ``n_nonmembers`` (and, with ``groups``,
    ``n_member_groups`` and ``n_nonmember_groups``: the CI's resampling units)."""
    labels, scores = _validate(y_true, y_score)
    lo, hi = bootstrap_auc_ci(labels, scores, n_boot=n_boot, alpha=0.05, seed=seed, groups=groups)
    report: dict[str, float] = {
        "auc": _auc(labels, scores),
        "auc/ci_lo": lo,
        "auc/ci_hi": hi,
    }
    for f in fprs:
        tpr, under = tpr_at_fpr(labels, scores, f)
        report[f"tpr@fpr={f:g}"] = tpr
        report[f"tpr@fpr={f:g}/underpowered"] = int(under)
    report["n_members"] = int(labels.sum())
    report["n_nonmembers"] = int((~labels).sum())
    if groups is not None:
        report["n_member_groups"], report["n_nonmember_groups"] = n_groups(groups, labels)
    return report
