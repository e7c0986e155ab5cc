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


def is_count(key: str) -> bool:
    """Whether a metric key names a count (its last segment before any ``@`` is ``n``, ``count``,
    ``n_...``, ``parameters``, ``steps`` or ``tokens``): counts print as whole numbers."""
    stat = key.split("@", 1)[0].rsplit("/", 1)[-1]
    return stat in ("n", "count", "parameters", "steps", "tokens") or stat.startswith("n_")


def fmt_metric(key: str, value, digits: int = 3) -> str:
    """A metric for the terminal: a count as a whole number, anything else with ``digits`` decimals."""
    if value is None or isinstance(value, str):
        return fmt(value)
    if is_count(key):
        return fmt(value, digits)
    value = float(value)
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"


def auc_line(metrics: dict, attack: str, key: str = "mia") -> str:
    """``"   min_k_pp  AUC 0.873  [0.801, 0.934]"``."""
    auc, lo, hi = (metrics.get(f"{key}/{attack}/auc{s}") for s in ("", "/ci_lo", "/ci_hi"))
    return f"{attack:>10}  AUC {fmt_metric('auc', auc)}  [{fmt_metric('auc', lo)}, {fmt_metric('auc', hi)}]"
