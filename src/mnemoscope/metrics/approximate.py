"""Approximate memorization: how close a continuation is to the true one, token by token.

Ippolito et al. (2023), *Preventing Verbatim Memorization in Language Models Gives a False Sense of
Privacy*: a continuation is **approximately memorized** when BLEU(generation, true suffix) ≥ 0.75.
Next to it, the normalised edit similarity 1 − Levenshtein / max length. Both work on token ids (any
hashable items), so a decoded-text round trip cannot change them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["APPROX_THRESHOLD", "approximately_memorized", "bleu", "edit_distance", "edit_similarity"]

APPROX_THRESHOLD = 0.75  # Ippolito et al.'s BLEU threshold


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning a into b."""
    a, b = list(a), list(b)
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bb = np.asarray([hash(x) for x in b])
    prev = np.arange(len(b) + 1)
    for i, x in enumerate(a, 1):
        # row i from row i−1: substitution/match and deletion are vectorised, insertion is a running min
        sub = prev[:-1] + (bb != hash(x))
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(sub, prev[1:] + 1)
        # insertion: cur[j] = min(cur[j], cur[j−1] + 1), i.e. cur[j] − j is a running minimum
        cur = np.minimum.accumulate(cur - np.arange(len(b) + 1)) + np.arange(len(b) + 1)
        prev = cur
    return int(prev[-1])


def edit_similarity(generated: Sequence, true: Sequence) -> float:
    """Normalised edit similarity ``1 − Levenshtein(g, t) / max(|g|, |t|)`` in [0, 1]; 1 = identical
    (two empty sequences are identical)."""
    n = max(len(generated), len(true))
    if n == 0:
        return 1.0
    return 1.0 - edit_distance(generated, true) / n


def _ngrams(seq: list, n: int) -> Counter:
    return Counter(tuple(seq[i : i + n]) for i in range(len(seq) - n + 1))


def bleu(generated: Sequence, reference: Sequence, max_n: int = 4) -> float:
    """Sentence BLEU (Papineni et al. 2002) of one candidate against one reference.

    ``BLEU = BP · exp(Σ_{n=1..N} (1/N) log p_n)``, p_n = clipped n-gram matches / candidate n-grams,
    ``BP = 1 if c > r else exp(1 − r/c)`` (c, r = candidate and reference lengths), N = 4. No
    smoothing: a zero p_n (including a candidate shorter than N) gives 0 — the same numbers as
    ``nltk.translate.bleu_score.sentence_bleu`` with its defaults.
    """
    cand, ref = list(generated), list(reference)
    if not cand or not ref:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        c = _ngrams(cand, n)
        total = sum(c.values())
        matches = sum((c & _ngrams(ref, n)).values())
        if total == 0 or matches == 0:
            return 0.0
        log_sum += math.log(matches / total) / max_n
    bp = 1.0 if len(cand) > len(ref) else math.exp(1.0 - len(ref) / len(cand))
    return float(bp * math.exp(log_sum))


def approximately_memorized(generated: Sequence, true: Sequence, threshold: float = APPROX_THRESHOLD) -> bool:
    """Ippolito et al.: BLEU(generated, true) ≥ threshold [0.75]."""
    return bleu(generated, true) >= threshold
