"""More membership scores, each oriented **higher = member** (label 1), each written from its
authors' code and checked against it in the tests:

| attack | score (our orientation) | authors' orientation |
|---|---|---|
| neighbourhood | −(NLL(x) − mean_j NLL(x̃_j)) | Mattern et al. 2023: loss(x) − mean loss(neighbours), low = member |
| gradnorm | −mean_t ‖∇_{θ_t} NLL(x)‖_p over parameter tensors t (MIMIR, p = ∞); input-embedding variant −‖∇_E NLL(x)‖_p: smaller norm = member | MIMIR returns −norm and its ``get_roc_metrics`` negates every score, so MIMIR ranks a *larger* norm as member (AUC = 1 − ours); ``orientation="mimir"`` reproduces it |
| recall | LL(x | P) / LL(x), LL = mean log-likelihood (< 0), P = non-member prefix | Xie et al. 2024: the same ratio, high = member |
| dcpdd | mean over first occurrences of min(p_i · log(1/f_i), a), f = Laplace-smoothed token frequency in a reference corpus, a = 0.01 | Zhang et al. 2024 code returns −mean, scored as −score (high = member) |
| samia | mean over samples of ROUGE-1 recall (clipped unigram overlap / |reference|) of a sampled continuation of the first half against the true second half (words) | Kaneko et al. 2024: the same, high = member |
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "dcpdd_score",
    "gradnorm_score",
    "neighbourhood_score",
    "recall_score",
    "rouge1_recall",
    "samia_score",
    "samia_split",
    "token_frequencies",
]


def neighbourhood_score(nll: float, neighbour_nlls: ArrayLike) -> float:
    """Neighbourhood comparison: ``−(NLL(x) − mean_j NLL(x̃_j))``; nan without neighbours."""
    nb = np.asarray(neighbour_nlls, dtype=np.float64)
    if nb.size == 0:
        return math.nan
    return float(-(nll - nb.mean()))


GRADNORM_ORIENTATIONS = ("ours", "mimir")


def gradnorm_score(norms: ArrayLike, orientation: str = "ours") -> float:
    """Gradient norm: ``−mean`` of the given norms (one per parameter tensor, as MIMIR aggregates;
    pass one value for the input-embedding variant). A smaller gradient = a better-fit text = member.

    ``orientation="mimir"`` returns ``+mean``: MIMIR's ``GradNormAttack`` returns −mean and its
    ``get_roc_metrics`` multiplies every score by −1 before ranking members high, so in MIMIR a
    larger norm ranks as member (its AUC = 1 − ours on the same scores)."""
    if orientation not in GRADNORM_ORIENTATIONS:
        raise ValueError(f"orientation must be one of {GRADNORM_ORIENTATIONS}, got {orientation!r}")
    n = np.asarray(norms, dtype=np.float64)
    if n.size == 0:
        return math.nan
    return float(-n.mean() if orientation == "ours" else n.mean())


def recall_score(ll_conditional: float, ll_unconditional: float) -> float:
    """ReCaLL: ``LL(x | P) / LL(x)``, both mean log-likelihoods (negative); nan when LL(x) = 0.
    Conditioning a member on non-member text lowers its likelihood more, so the ratio is larger."""
    if ll_unconditional == 0:
        return math.nan
    return float(ll_conditional / ll_unconditional)


def token_frequencies(counts: ArrayLike) -> np.ndarray:
    """Laplace-smoothed token frequency ``f_v = (c_v + 1) / (Σ c + V)`` from per-token counts."""
    c = np.asarray(counts, dtype=np.float64)
    return (c + 1.0) / (c.sum() + c.size)


def dcpdd_score(token_ids: ArrayLike, logprobs: ArrayLike, freq: ArrayLike, a: float = 0.01) -> float:
    """DC-PDD: ``mean_{i ∈ first occurrences} min(p_i · log(1/f_{t_i}), a)`` with p_i = exp(log p_i).

    Only the first occurrence of each token id in the scored tokens counts; ``a`` [0.01] caps each
    term. nan when no token was scored."""
    ids = np.asarray(token_ids, dtype=np.int64)
    lp = np.asarray(logprobs, dtype=np.float64)
    f = np.asarray(freq, dtype=np.float64)
    if ids.shape != lp.shape:
        raise ValueError(f"token_ids and logprobs must have the same length, got {ids.size} and {lp.size}")
    if ids.size == 0:
        return math.nan
    _, first = np.unique(ids, return_index=True)
    first = np.sort(first)
    ce = np.exp(lp[first]) * np.log(1.0 / f[ids[first]])
    return float(np.minimum(ce, a).mean())


def samia_split(text: str, prefix_ratio: float = 0.5) -> tuple[str, list[str]]:
    """(prefix, reference words): the first ⌊r·n⌋ whitespace words joined by spaces, and the rest."""
    words = text.split()
    k = int(len(words) * prefix_ratio)
    return " ".join(words[:k]), words[k:]


def rouge1_recall(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-1 recall: clipped unigram overlap / |reference|; 0 when either is empty."""
    if not candidate or not reference:
        return 0.0
    overlap = Counter(candidate) & Counter(reference)
    return sum(overlap.values()) / len(reference)


def samia_score(samples: Sequence[Sequence[str]], reference: Sequence[str], *, zlib_weight: bool = False) -> float:
    """SaMIA: mean over samples of ROUGE-1 recall against the reference words; with ``zlib_weight``
    each term is multiplied by the zlib-compressed size (bytes) of the sample (SaMIA*zlib)."""
    if not samples:
        return math.nan
    terms = []
    for s in samples:
        r = rouge1_recall(list(s), list(reference))
        if zlib_weight:
            r *= len(zlib.compress(" ".join(s).encode("utf-8")))
        terms.append(r)
    return float(np.mean(terms))
