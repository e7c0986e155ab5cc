"""Unlearning evaluation: MUSE's PrivLeak (definition and sign in docs/metrics.md §10).

Two AUC orientations meet here. Ours (every membership AUC in mnemoscope): the forget set F is
labelled member (1), the holdout set H non-member (0), scores higher = member, so
``A = P(s_F > s_H)``. MUSE's (``metrics/privleak.py``, key ``forget_holdout_Min-40%``: F is
the label-0 class) and open-unlearning's privleak (``1 − auc``) use the complement,
``AUC_MUSE = 1 − A``. PrivLeak is reported in MUSE's convention, so a number here can be put
next to MUSE's tables.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.roc import roc_auc

__all__ = ["privleak", "privleak_from_scores", "privleak_ci", "muse_auc", "relearn_recovery"]


def muse_auc(auc: float) -> float:
    """MUSE's orientation of a forget-vs-holdout AUC: ``1 − A`` (F labelled non-member)."""
    return 1.0 - float(auc)


def privleak(auc_unlearned: float, auc_retrain: float) -> float:
    """MUSE PrivLeak from our AUCs (F labelled member):

    ``PrivLeak = (AUC_MUSE,u − AUC_MUSE,r) / AUC_MUSE,r · 100 = (A_r − A_u) / (1 − A_r) · 100``

    with ``A_u``, ``A_r`` the AUCs under the unlearned and the retrained model and
    ``AUC_MUSE = 1 − A``. Near 0 is good. Negative: F is *more* recognisable as members than
    under the retrained model (under-unlearning; a model that was not unlearned at all, A_u ≈ 1
    against A_r ≈ 0.5, scores about −100). Positive: F looks *less* member-like than the
    retrained model sees it (over-unlearning). Refused when ``A_r = 1`` (MUSE's denominator
    would be 0; open-unlearning adds 1e-10 there, which gives a meaningless ±1e12).
    """
    a_u, a_r = float(auc_unlearned), float(auc_retrain)
    denominator = muse_auc(a_r)
    if not denominator > 0:
        raise MnemoscopeError(
            f"privleak: the retrained model separates the forget set from the holdout set perfectly "
            f"(AUC {a_r}, MUSE's AUC 0): PrivLeak's denominator is 0; use a larger or better-matched holdout set")
    return (a_r - a_u) / denominator * 100.0


def _auc_forget_vs_holdout(forget: ArrayLike, holdout: ArrayLike) -> float:
    f = np.asarray(forget, dtype=np.float64).ravel()
    h = np.asarray(holdout, dtype=np.float64).ravel()
    y = np.concatenate([np.ones(f.size, dtype=np.int64), np.zeros(h.size, dtype=np.int64)])
    return roc_auc(y, np.concatenate([f, h]))


def privleak_from_scores(
    forget_scores_u: ArrayLike,
    holdout_scores_u: ArrayLike,
    forget_scores_r: ArrayLike,
    holdout_scores_r: ArrayLike,
) -> dict[str, float]:
    """PrivLeak from membership scores (higher = member, e.g. Min-40% Prob).

    Each AUC separates the forget set (label 1, member) from a held-out set drawn like it
    (label 0), under the unlearned (``_u``) and the retrain (``_r``) model; ``privleak`` is
    then MUSE's number (see :func:`privleak`). Returns ``{"privleak", "auc/unlearned",
    "auc/retrain"}`` with both AUCs in our orientation (MUSE's are ``1 − auc``).
    """
    auc_u = _auc_forget_vs_holdout(forget_scores_u, holdout_scores_u)
    auc_r = _auc_forget_vs_holdout(forget_scores_r, holdout_scores_r)
    return {"privleak": privleak(auc_u, auc_r), "auc/unlearned": auc_u, "auc/retrain": auc_r}


def privleak_ci(
    forget_scores_u: ArrayLike,
    holdout_scores_u: ArrayLike,
    forget_scores_r: ArrayLike,
    holdout_scores_r: ArrayLike,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    forget_groups: ArrayLike | None = None,
    holdout_groups: ArrayLike | None = None,
) -> tuple[float, float, int]:
    """Paired percentile bootstrap ``(1 − alpha)`` CI of PrivLeak: each replicate resamples the
    forget texts (n₁ of them, with replacement) and the holdout texts (n₀) once, and scores the
    same resampled texts under both models (A_u and A_r move together, as they share the texts).
    With ``forget_groups`` and ``holdout_groups`` (a person per text, say) a replicate resamples
    groups instead — G₁ forget groups and G₀ holdout groups with replacement, each bringing all its
    texts (cluster bootstrap): texts of one person are alike, so resampling texts understates the
    spread. Replicates whose A_r is 1 (PrivLeak undefined) are left out. Returns
    ``(lo, hi, n_used)``; ``(nan, nan, n_used)`` when fewer than half the replicates are usable."""
    fu, hu = np.asarray(forget_scores_u, np.float64).ravel(), np.asarray(holdout_scores_u, np.float64).ravel()
    fr, hr = np.asarray(forget_scores_r, np.float64).ravel(), np.asarray(holdout_scores_r, np.float64).ravel()
    if fu.shape != fr.shape or hu.shape != hr.shape:
        raise MnemoscopeError("privleak_ci: both models must score the same forget and holdout texts")
    if fu.size < 2 or hu.size < 2:
        raise MnemoscopeError(f"privleak_ci: need at least 2 forget and 2 holdout texts, got {fu.size} and {hu.size}")
    if not 0.0 < alpha < 1.0 or int(n_boot) < 1:
        raise MnemoscopeError(f"privleak_ci: need 0 < alpha < 1 and n_boot ≥ 1, got {alpha}, {n_boot}")
    if (forget_groups is None) != (holdout_groups is None):
        raise MnemoscopeError("privleak_ci: give groups for both the forget and the holdout texts, or for neither")
    draw_f, draw_h = _resampler(fu.size, forget_groups, "forget"), _resampler(hu.size, holdout_groups, "holdout")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(int(n_boot)):
        i, j = draw_f(rng), draw_h(rng)
        a_r = _auc_forget_vs_holdout(fr[i], hr[j])
        if a_r < 1.0:
            values.append(privleak(_auc_forget_vs_holdout(fu[i], hu[j]), a_r))
    if len(values) < int(n_boot) / 2:
        return float("nan"), float("nan"), len(values)
    lo, hi = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi), len(values)


def _resampler(n: int, groups: ArrayLike | None, what: str):
    """rng → indices of one bootstrap sample: n texts with replacement, or (with ``groups``, one
    per text) as many groups as there are, with replacement, each with all its texts."""
    if groups is None:
        return lambda rng: rng.integers(0, n, n)
    g = np.asarray(groups, dtype=object).astype(str)
    if g.size != n:
        raise MnemoscopeError(f"privleak_ci: {g.size} {what} groups for {n} {what} texts")
    members = [np.flatnonzero(g == name) for name in sorted(set(g))]
    if len(members) < 2:
        raise MnemoscopeError(f"privleak_ci: a cluster bootstrap needs at least 2 {what} groups, got {len(members)}")
    return lambda rng: np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])


def relearn_recovery(steps: ArrayLike, knowmem: ArrayLike) -> dict[str, float]:
    """Summary of a relearning curve: KnowMem on untaught forget facts at relearning ``steps``
    (the first step must be 0, the model before the attack).

    - ``recovery`` = max_{s > 0} K(s) − K(0): the most knowledge the attack brought back at any
      point of the curve (the peak, not the end: a long narrow fine-tune also damages what it
      does not teach, so K falls again, even for a model that never forgot anything);
    - ``peak_step`` = the first step s > 0 where K(s) is that maximum;
    - ``final_change`` = K(last) − K(0) (negative: the attack damaged more than it recovered).
    """
    s, k = np.asarray(steps, np.float64).ravel(), np.asarray(knowmem, np.float64).ravel()
    if s.shape != k.shape or s.size < 2 or s[0] != 0 or np.any(np.diff(s) <= 0):
        raise MnemoscopeError("relearn_recovery: need KnowMem at step 0 and at ≥ 1 later step, steps increasing")
    j = 1 + int(np.argmax(k[1:]))
    return {"recovery": float(k[j] - k[0]), "peak_step": float(s[j]), "final_change": float(k[-1] - k[0])}
