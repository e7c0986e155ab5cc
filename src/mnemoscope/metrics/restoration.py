"""How much of the removed knowledge an attack gives back (quantization, relearning)."""

from __future__ import annotations

import math

__all__ = ["knowledge_restored"]


def knowledge_restored(after: float, unlearned: float, original: float) -> float:
    """Share of the removed knowledge an attack restores (Zhang et al., ICLR 2025, restated):

    ``restored = (after − unlearned) / (original − unlearned)``

    with ``unlearned`` the model's score before the attack (e.g. KnowMem on F), ``after`` its
    score after it (quantized, or at the relearning curve's peak) and ``original`` the original
    model's score on the same items. 0: nothing came back; 1: back to the original's level; > 1:
    above it; < 0: the attack removed more. NaN when the denominator is 0 (nothing was removed,
    e.g. the original itself) or an input is not finite: the caller reports null with a note.
    A denominator near 0 makes the ratio large and unstable; read it with the raw scores.
    """
    a, u, o = float(after), float(unlearned), float(original)
    if not (math.isfinite(a) and math.isfinite(u) and math.isfinite(o)) or o == u:
        return float("nan")
    return (a - u) / (o - u)
