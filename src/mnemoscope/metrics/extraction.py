"""Verbatim extraction metrics on token ids (docs/metrics.md §2).

Compare a greedy continuation with the true continuation, token by token. Both
must be the *continuation only* (never the prompt/cue) and of equal length;
force the generation length (``min_new_tokens``) so an early EOS cannot shorten it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["exact_match", "memorization_score", "rates_by_group"]


def _pair(generated_ids: ArrayLike, true_ids: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    gen = np.asarray(generated_ids)
    true = np.asarray(true_ids)
    if gen.ndim != 1 or true.ndim != 1:
        raise ValueError(f"token ids must be 1-D, got shapes {gen.shape} and {true.shape}")
    if gen.size != true.size:
        raise ValueError(
            f"generated and true continuations must have equal length, got {gen.size} and {true.size} tokens"
        )
    if gen.size == 0:
        raise ValueError("cannot compare empty continuations (0 tokens)")
    return gen, true


def exact_match(generated_ids: ArrayLike, true_ids: ArrayLike) -> bool:
    """k-extractable / exact extraction: True iff all L generated tokens equal the true ones."""
    gen, true = _pair(generated_ids, true_ids)
    return bool(np.array_equal(gen, true))


def memorization_score(generated_ids: ArrayLike, true_ids: ArrayLike) -> float:
    """Pythia memorization score: ``(1/L) Σ_i [gen_i = true_i]``; "memorized" iff it equals 1."""
    gen, true = _pair(generated_ids, true_ids)
    return float(np.mean(gen == true))


def rates_by_group(values: Sequence[float], groups: Sequence[Hashable]) -> dict[Hashable, float]:
    """Mean of ``values`` per group label, e.g. exact-match rate per dose.

    Returns ``{group: mean}`` with groups in sorted order when they are sortable,
    else in first-seen order. Booleans count as 0/1.
    """
    vals = [float(v) for v in values]
    grps = list(groups)
    if len(vals) != len(grps):
        raise ValueError(f"values and groups must have equal length, got {len(vals)} and {len(grps)}")
    sums: dict[Hashable, float] = {}
    counts: dict[Hashable, int] = {}
    for v, g in zip(vals, grps):
        sums[g] = sums.get(g, 0.0) + v
        counts[g] = counts.get(g, 0) + 1
    keys = list(sums)
    try:
        keys = sorted(keys)
    except TypeError:
        pass
    return {g: sums[g] / counts[g] for g in keys}
