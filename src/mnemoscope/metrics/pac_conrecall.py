"""Two more membership scores, oriented **higher = member** (label 1):

| attack | score (our orientation) | authors' orientation |
|---|---|---|
| pac | mean_j PD(x̃_j) − PD(x), PD = polarized distance of the token log-probs, x̃_j = x with random word swaps | Ye et al. 2024: PAC = PD(x) − mean_j PD(x̃_j), AUC of −PAC (low = member) |
| conrecall | (LL(x \\| P_non) − γ·LL(x \\| P_mem)) / LL(x), LL = mean log-likelihood (< 0) | Wang et al. 2024: the same, high = member |

Polarized distance (Ye et al. 2024, *Data Contamination Calibration for Black-box LLMs*):
``PD(l) = mean of the max(1, int(far·n)) largest l_i − mean of the max(1, int(local·n)) smallest
l_i`` over a text's n token log-probs (local = 0.3, far = 0.05). The augmentation (``eda_swaps``)
is EDA's random swap: split the text on single spaces, and for each of ``n`` augmented copies
swap two random positions ``max(1, int(alpha·words))`` times (alpha = 0.3; a swap whose second
position keeps equalling the first after 3 retries is skipped), then shuffle the copies.
"""

from __future__ import annotations

import math
import random

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["conrecall_score", "eda_swaps", "pac_score", "polarized_distance"]


def polarized_distance(logprobs: ArrayLike, local: float = 0.3, far: float = 0.05) -> float:
    """``mean(top max(1, int(far·n))) − mean(bottom max(1, int(local·n)))`` of the log-probs;
    nan when no token was scored. Both fractions in (0, 1]."""
    for name, value in (("local", local), ("far", far)):
        if not 0 < value <= 1:
            raise ValueError(f"polarized_distance: {name} must be in (0, 1], got {value}")
    lp = np.sort(np.asarray(logprobs, dtype=np.float64).ravel())
    n = lp.size
    if n == 0:
        return math.nan
    n_local, n_far = max(int(n * local), 1), max(int(n * far), 1)
    return float(lp[::-1][:n_far].mean() - lp[:n_local].mean())


def pac_score(distance: float, augmented_distances: ArrayLike) -> float:
    """PAC in our orientation: ``mean_j PD(x̃_j) − PD(x)`` (the authors' PAC negated: a member's
    own text is more polarized than its shuffled copies); nan without augmented copies."""
    aug = np.asarray(augmented_distances, dtype=np.float64)
    if aug.size == 0:
        return math.nan
    return float(aug.mean() - distance)


def eda_swaps(text: str, n: int, alpha: float, rng: random.Random) -> list[str]:
    """``n`` copies of ``text`` with ``max(1, int(alpha·words))`` random word swaps each (words =
    ``text.split(' ')``), in shuffled order. ``rng`` is consumed exactly as EDA's random swap
    consumes Python's ``random``, so one ``random.Random(seed)`` over the texts in order gives
    the authors' copies for ``random.seed(seed)``."""
    if n < 1:
        raise ValueError(f"eda_swaps: n must be ≥ 1, got {n}")
    if not 0 < alpha <= 1:
        raise ValueError(f"eda_swaps: alpha must be in (0, 1], got {alpha}")
    words = text.split(" ")
    n_swaps = max(1, int(alpha * len(words)))
    copies = []
    for _ in range(n):
        swapped = list(words)
        for _ in range(n_swaps):
            _swap_two(swapped, rng)
        copies.append(" ".join(swapped))
    rng.shuffle(copies)
    return copies


def _swap_two(words: list[str], rng: random.Random) -> None:
    i = rng.randint(0, len(words) - 1)
    j, tries = i, 0
    while j == i:
        j = rng.randint(0, len(words) - 1)
        tries += 1
        if tries > 3:
            return
    words[i], words[j] = words[j], words[i]


def conrecall_score(ll_nonmember_prefix: float, ll_member_prefix: float, ll: float, gamma: float = 0.5) -> float:
    """Con-ReCall: ``(LL(x | P_non) − γ·LL(x | P_mem)) / LL(x)``, mean log-likelihoods (negative);
    nan when LL(x) = 0. γ = 0 is ReCaLL's ratio."""
    if ll == 0:
        return math.nan
    return float((ll_nonmember_prefix - gamma * ll_member_prefix) / ll)
