"""Terminal summaries: the few lines a command prints when a run ends (the report has the rest)."""

from __future__ import annotations

import math


def fmt(value, digits: int = 3) -> str:
    """A number for the terminal: "-" when missing, whole numbers without decimals."""
    if value is None or isinstance(value, str):
        return "-" if value is None else value
    value = float(value)
    if not math.isfinite(value):
        return "-"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value)}"
    return f"{value:.{digits}f}"


def auc_line(metrics: dict, attack: str, key: str = "mia") -> str:
    """``"   min_k_pp  AUC 0.873  [0.801, 0.934]"``."""
    auc, lo, hi = (metrics.get(f"{key}/{attack}/auc{s}") for s in ("", "/ci_lo", "/ci_hi"))
    return f"{attack:>10}  AUC {fmt(auc)}  [{fmt(lo)}, {fmt(hi)}]"
