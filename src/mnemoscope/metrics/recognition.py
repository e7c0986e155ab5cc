"""Recognition and recall (Orhan 2023; docs/metrics.md §4)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.extraction import exact_match, memorization_score
from mnemoscope.metrics.text import rouge_l_f1

__all__ = ["two_afc_accuracy", "recall_scores", "unguessed_recall"]


def two_afc_accuracy(nll_seen: ArrayLike, nll_foil: ArrayLike) -> float:
    """Two-alternative forced choice: ``mean_i ([NLL_seen_i < NLL_foil_i] + ½·[equal])``.

    Chance is 0.5. Arrays are paired item by item and must have equal, non-zero length.
    """
    seen = np.asarray(nll_seen, dtype=np.float64).ravel()
    foil = np.asarray(nll_foil, dtype=np.float64).ravel()
    if seen.size != foil.size:
        raise ValueError(f"nll_seen and nll_foil must be paired, got {seen.size} and {foil.size} values")
    if seen.size == 0:
        raise ValueError("two_afc_accuracy needs at least one (seen, foil) pair")
    correct = (seen < foil).astype(np.float64) + 0.5 * (seen == foil)
    return float(correct.mean())


def recall_scores(
    generated_ids: ArrayLike, true_ids: ArrayLike, generated_text: str, true_text: str
) -> dict[str, float]:
    """Recall of one studied text from its cue. Pass the *continuation only* (not the cue).

    Returns ``match_rate`` (fraction of token positions equal), ``exact`` (1.0 iff all
    equal) and ``rouge_l_f1`` (ROUGE-L F1 of the texts, no stemming).
    """
    return {
        "match_rate": memorization_score(generated_ids, true_ids),
        "exact": float(exact_match(generated_ids, true_ids)),
        "rouge_l_f1": rouge_l_f1(generated_text, true_text),
    }


def unguessed_recall(hits: ArrayLike, reference_hits: ArrayLike) -> tuple[float, int]:
    """Token-level cued recall of what a reference model could not guess.

    ``hits[i]`` = 1 iff token i of a studied text's continuation is the model's most likely next
    token given every true token before it (teacher forcing); ``reference_hits`` the same for a
    reference model that never saw the text (e.g. the model before study). Over the positions
    U = {i : reference_hits[i] = 0} (what generic prediction misses):

        unguessed recall = |{i ∈ U : hits[i] = 1}| / |U|

    Returns (recall, |U|); recall is nan when U is empty.
    """
    h = np.asarray(hits, dtype=bool)
    r = np.asarray(reference_hits, dtype=bool)
    if h.shape != r.shape or h.ndim != 1:
        raise MnemoscopeError(f"unguessed_recall: hits {h.shape} and reference_hits {r.shape} must be 1-D and alike")
    unguessed = ~r
    n = int(unguessed.sum())
    return (float(h[unguessed].mean()) if n else math.nan), n
