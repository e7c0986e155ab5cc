"""Analyses of result files the user already has (no model): ``mnemoscope analyze ...``.

``analyze_wemath``: a We-Math per-item correctness table → the four dimensions (docs/metrics.md),
strict and loose; ``format_wemath`` renders them as an aligned text table.
"""

from __future__ import annotations

import math
from pathlib import Path

from mnemoscope.metrics.reasoning import load_wemath_table, wemath_four_dimensions

VARIANTS = ("strict", "loose")
_COUNTS = (("ik", "IK"), ("ig", "IG"), ("cm", "CM"), ("rm", "RM"))


def analyze_wemath(path: str | Path) -> dict[str, float]:
    """Load a table (``id, composite_correct, sub_correct``; .csv / .jsonl) and return
    ``wemath_four_dimensions`` of it: ``n`` and ``{strict,loose}/{ik,ig,cm,rm,rm_rate,score}``,
    where Score = (N − 0.5·IG − RM − IK) / N and RM rate = RM / (CM + RM)."""
    return wemath_four_dimensions(load_wemath_table(path))


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100.0 * value:.1f}%"


def format_wemath(result: dict[str, float]) -> str:
    """Aligned text table: one row per variant with IK, IG, CM, RM (counts of N items),
    RM rate and score (in percent; ``n/a`` when RM rate is undefined)."""
    header = ["variant", *(label for _, label in _COUNTS), "RM rate", "score"]
    rows = [header]
    for variant in VARIANTS:
        rows.append([
            variant,
            *(str(int(result[f"{variant}/{key}"])) for key, _ in _COUNTS),
            _pct(float(result[f"{variant}/rm_rate"])),
            _pct(float(result[f"{variant}/score"])),
        ])
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = [f"We-Math four dimensions, N = {int(result['n'])} composite problems"]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells))
    return "\n".join(lines)
