"""Forecasting memorization (Biderman et al. 2023, *Emergent and Predictable Memorization in Large
Language Models*) and the adversarial compression ratio (Schwarzschild et al. 2024).

Forecasting: an item is memorized when its Pythia memorization score is 1 (32-token prefix, 32
greedy tokens all correct). An earlier checkpoint (or a smaller model) *predicts* the final model's
memorized set by its own memorized set; precision = |pred ∩ final| / |pred|, recall =
|pred ∩ final| / |final|, each null (nan) when its denominator is 0.

ACR: ``ACR(y) = |y| / |x*|`` in tokens, x* the shortest prompt found for which greedy decoding
outputs exactly y; y is memorized iff ACR > 1.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["compression_ratio", "forecast_precision_recall"]


def forecast_precision_recall(predicted: ArrayLike, actual: ArrayLike) -> tuple[float, float]:
    """(precision, recall) of boolean predictions against the final memorized set."""
    p = np.asarray(predicted, dtype=bool)
    a = np.asarray(actual, dtype=bool)
    if p.shape != a.shape:
        raise ValueError(f"predicted and actual must have the same length, got {p.size} and {a.size}")
    hit = int(np.sum(p & a))
    precision = hit / int(p.sum()) if p.any() else math.nan
    recall = hit / int(a.sum()) if a.any() else math.nan
    return precision, recall


def compression_ratio(target_tokens: int, prompt_tokens: int | None) -> float:
    """``target_tokens / prompt_tokens``; nan when no prompt was found (None)."""
    if prompt_tokens is None:
        return math.nan
    if prompt_tokens < 1 or target_tokens < 1:
        raise ValueError(f"token counts must be ≥ 1, got target {target_tokens} and prompt {prompt_tokens}")
    return target_tokens / prompt_tokens
