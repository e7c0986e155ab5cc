"""Benchmark contamination: pure functions behind ``families.contamination`` (no model, no I/O).

**Overlap, lm-evaluation-harness's definition** (``lm_eval/decontamination``): a text is
normalised by mapping ASCII ``A–Z`` to ``a–z`` and deleting every character of
``string.punctuation`` (nothing else: accented capitals stay); it is split on whitespace into
words; its word 13-grams are every window of 13 consecutive words. A benchmark item is
*contaminated* when any of its 13-grams is also a 13-gram of a training document normalised the
same way. An item of fewer than 13 words has no 13-gram and is never contaminated.

**Order test** (Oren et al. 2024, *Proving Test Set Contamination in Black-Box Language Models*):
the items in canonical order are cut into S contiguous shards (the first ``N mod S`` shards one
item longer); per shard s, ``d_s = log p(canonical concatenation) − mean_j log p(j-th random
permutation)``. Their p-value is the one-sided t-test ``1 − F_t(√S · mean(d) / std(d), S − 1)``
(``std`` with ddof 0, as their code). Under the null (the model is exchangeable in the items'
order) the canonical order is one more draw from the permutation distribution, so ours is the
Monte-Carlo test that uses exactly that: in each shard pick uniformly which of its m + 1 orders
plays "canonical", recompute ``T = Σ_s (x_s − mean of the other m)``, and
``p = (1 + #{T* ≥ T}) / (1 + R)`` — valid (P(p ≤ α) ≤ α) at any S, m and R.

**Guided completion** (Golchin & Surdeanu 2024, *Time Travel in LLMs*): the difference between a
completion's overlap with the true second half when the prompt names the dataset and split and
when it does not; the p-value of the mean difference is a one-sided bootstrap (resample items).
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import numpy as np
from scipy.stats import t as t_dist

__all__ = [
    "LM_EVAL_N",
    "guided_bootstrap_pvalue",
    "lm_eval_normalise",
    "lm_eval_words",
    "order_statistics",
    "order_pvalue_exact",
    "order_pvalue_t",
    "shard_sizes",
]

LM_EVAL_N = 13
_DELETE = set(string.punctuation)
_UPPER = {chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)}


def lm_eval_normalise(text: str) -> str:
    """ASCII capitals lowered and ``string.punctuation`` deleted; every other character kept."""
    return "".join(_UPPER.get(ch, ch) for ch in text if ch not in _DELETE)


def lm_eval_words(text: str) -> list[str]:
    """The normalised text's whitespace-separated words (``str.split()`` whitespace)."""
    return lm_eval_normalise(text).split()


# --------------------------------------------------------------------------- the order test


def shard_sizes(n_items: int, n_shards: int) -> list[int]:
    """S contiguous shard sizes summing to N, the first ``N mod S`` one item longer (the paper's split)."""
    if n_shards < 1 or n_items < n_shards:
        raise ValueError(f"cannot cut {n_items} items into {n_shards} shards")
    base, extra = divmod(n_items, n_shards)
    return [base + 1 if i < extra else base for i in range(n_shards)]


def order_statistics(canonical: Sequence[float], permuted: Sequence[Sequence[float]]) -> np.ndarray:
    """``d_s = canonical_s − mean(permuted_s)`` per shard (log-likelihoods, natural log)."""
    c = np.asarray(canonical, dtype=np.float64)
    p = np.asarray(permuted, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != c.size or p.shape[1] < 1:
        raise ValueError(f"permuted must be (shards, m ≥ 1) with {c.size} shards, got shape {p.shape}")
    return c - p.mean(axis=1)


def order_pvalue_t(canonical: Sequence[float], permuted: Sequence[Sequence[float]]) -> float:
    """Oren et al.'s p-value: ``1 − F_t(√S·mean(d)/std(d), df=S−1)`` (std with ddof 0). NaN with one
    shard or when every d_s is equal (no spread to test)."""
    d = order_statistics(canonical, permuted)
    sd = d.std()
    if d.size < 2 or sd == 0:
        return math.nan
    z = d.mean() / sd * math.sqrt(d.size)
    return float(1.0 - t_dist.cdf(z, df=d.size - 1))


def order_pvalue_exact(canonical: Sequence[float], permuted: Sequence[Sequence[float]], *, n_resamples: int = 9999,
                       seed: int = 0) -> float:
    """Monte-Carlo exchangeability test of ``T = Σ_s d_s`` (module docstring): p = (1 + #{T* ≥ T}) / (1 + R)."""
    c = np.asarray(canonical, dtype=np.float64)
    p = np.asarray(permuted, dtype=np.float64)
    order_statistics(c, p)  # shape checks
    values = np.concatenate([c[:, None], p], axis=1)  # (S, m + 1): column 0 is the canonical order
    m = p.shape[1]
    totals = values.sum(axis=1)

    def stat(pick: np.ndarray) -> np.ndarray:
        chosen = np.take_along_axis(values, pick, axis=1)  # (S, R)
        return (chosen - (totals[:, None] - chosen) / m).sum(axis=0)

    observed = float(stat(np.zeros((c.size, 1), dtype=np.int64))[0])
    rng = np.random.default_rng(seed)
    exceed, done = 0, 0
    while done < n_resamples:  # in blocks, so memory stays O(S · block)
        block = min(4096, n_resamples - done)
        pick = rng.integers(0, m + 1, size=(c.size, block))
        exceed += int((stat(pick) >= observed - 1e-9 * max(1.0, abs(observed))).sum())
        done += block
    return (1 + exceed) / (1 + n_resamples)


# --------------------------------------------------------------------------- guided completion


def guided_bootstrap_pvalue(guided: Sequence[float], general: Sequence[float], *, n_boot: int = 10000,
                            seed: int = 0) -> float:
    """One-sided bootstrap p-value that mean(guided − general) > 0: the share of item resamples whose
    mean difference is ≤ 0, with the usual +1 (``(1 + #{mean* ≤ 0}) / (1 + B)``). NaN without items."""
    d = np.asarray(guided, dtype=np.float64) - np.asarray(general, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    return float((1 + int((means <= 0).sum())) / (1 + n_boot))
