"""Knowledge-memorization metrics (docs/metrics.md §3): target log-probability and TOFU.

All NLLs here are *mean per-token* NLLs of an answer/target span given its
question/prefix, so probabilities are length-normalised:
``P̃(a|q) = P(a|q)^(1/|a|) = exp(−mean NLL)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import ks_2samp

__all__ = [
    "probability",
    "truth_ratio",
    "truth_ratio_summary",
    "forget_quality",
    "model_utility",
    "target_nll",
    "first_token_nll",
]


def _scalar_or_array(x: np.ndarray) -> float | np.ndarray:
    return float(x) if x.ndim == 0 else x


def probability(mean_nll: ArrayLike) -> float | np.ndarray:
    """TOFU probability: ``P̃ = exp(−mean NLL)`` (element-wise)."""
    return _scalar_or_array(np.exp(-np.asarray(mean_nll, dtype=np.float64)))


def truth_ratio(nll_perturbed: ArrayLike, nll_paraphrased: ArrayLike, mean: str = "geometric") -> float | np.ndarray:
    """TOFU truth ratio of one item (or of many, one per row).

    ``TR = GM_j P̃(perturbed_j) / P̃(paraphrased) = exp(NLL_para − mean_j NLL_pert_j)``,
    where GM is the geometric mean over the item's perturbed (wrong) answers, as in
    the TOFU paper (Maini et al., 2024, Eq. for R_truth). TR < 1 means the model
    prefers the (paraphrased) correct answer.

    ``nll_perturbed``: shape ``[n_pert]`` for one item or ``[n_items, n_pert]``;
    ``nll_paraphrased``: scalar or ``[n_items]``.

    ``mean="geometric"`` (default) is what TOFU's released code computes; ``mean="arithmetic"``
    is the paper's formula, (1/|A|) Σ_j P̃(perturbed_j) / P̃(paraphrased).
    """
    if mean not in ("geometric", "arithmetic"):
        raise ValueError(f"mean must be 'geometric' or 'arithmetic', got {mean!r}")
    pert = np.asarray(nll_perturbed, dtype=np.float64)
    para = np.asarray(nll_paraphrased, dtype=np.float64)
    if pert.ndim not in (1, 2) or pert.shape[-1] == 0:
        raise ValueError(
            f"nll_perturbed must have shape [n_pert] or [n_items, n_pert] with n_pert ≥ 1, got {pert.shape}"
        )
    if para.shape != pert.shape[:-1]:
        raise ValueError(
            f"nll_paraphrased must have shape {pert.shape[:-1]} to match nll_perturbed "
            f"{pert.shape}, got {para.shape}"
        )
    if mean == "arithmetic":
        return _scalar_or_array(np.exp(para[..., None] - pert).mean(axis=-1))
    return _scalar_or_array(np.exp(para - pert.mean(axis=-1)))


def truth_ratio_summary(tr: ArrayLike, forget: bool) -> float:
    """TOFU truth-ratio statistic over items: ``mean(min(TR, 1/TR))`` on a forget set,
    ``mean(max(0, 1 − TR))`` elsewhere (higher = better on retain/real-world sets)."""
    t = np.asarray(tr, dtype=np.float64).ravel()
    if t.size == 0:
        raise ValueError("truth_ratio_summary needs at least one truth ratio")
    if (t <= 0).any():
        raise ValueError("truth ratios must be positive")
    if forget:
        return float(np.mean(np.minimum(t, 1.0 / t)))
    return float(np.mean(np.maximum(0.0, 1.0 - t)))


def forget_quality(tr_unlearned: ArrayLike, tr_retain: ArrayLike) -> float:
    """TOFU forget quality: p-value of the two-sided two-sample KS test
    (``scipy.stats.ks_2samp``, default method) between the unlearned model's and the
    retain model's forget-set truth ratios. Higher = closer to the retain model.

    TOFU's released code feeds ``1/TR``; the two-sided KS statistic only depends on
    the ordering of the pooled sample, which ``1/x`` reverses, so the p-value is the same.
    """
    a = np.asarray(tr_unlearned, dtype=np.float64).ravel()
    b = np.asarray(tr_retain, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(f"forget_quality needs non-empty samples, got {a.size} and {b.size}")
    return float(ks_2samp(a, b).pvalue)


def model_utility(values: ArrayLike) -> float:
    """TOFU model utility: harmonic mean ``n / Σ 1/v_i`` of non-negative values; 0 if any is 0."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("model_utility needs at least one value")
    if (v < 0).any() or np.isnan(v).any():
        raise ValueError(f"model_utility needs non-negative values, got {v.tolist()}")
    if (v == 0).any():
        return 0.0
    return float(v.size / np.sum(1.0 / v))


def target_nll(logprobs: ArrayLike) -> float:
    """Mean NLL of a target span: ``−mean_i log p_i`` over its tokens. ``nan`` if empty."""
    lp = np.asarray(logprobs, dtype=np.float64).ravel()
    if lp.size == 0:
        return float("nan")
    return float(-lp.mean())


def first_token_nll(logprobs: ArrayLike) -> float:
    """NLL of the target's first token: ``−log p_1``. ``nan`` if empty."""
    lp = np.asarray(logprobs, dtype=np.float64).ravel()
    if lp.size == 0:
        return float("nan")
    return float(-lp[0])
