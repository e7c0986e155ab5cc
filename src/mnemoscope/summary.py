"""Terminal summaries: the few lines a command prints when a run ends (the report has the rest),
and :func:`fmt`, the one number formatter (terminal, report tables, ``compare`` tables)."""

from __future__ import annotations

import math

WHOLE = ("int", "grouped", "large", "none")


def fmt(value, digits: int = 3, *, significant: bool = False, missing: str = "-", whole: str = "int") -> str:
    """A number as text. None, NaN and ±inf → ``missing``; a string passes through unchanged.

    ``whole`` says how whole numbers print: ``"int"`` without decimals below 10¹⁵ ("12", "1234");
    ``"grouped"`` without decimals, with thousands separators ("12", "1,234"); ``"large"`` grouped
    from 1000 up and below that like any other number ("5.000", "1,234": report tables, where
    small whole values sit beside fractions); ``"none"``: like any other number.
    Any other number: ``digits`` decimals ("0.873"), or with ``significant`` ``digits`` significant
    digits ("0.8734", "1.235e+05").
    """
    if whole not in WHOLE:
        raise ValueError(f"whole must be one of {WHOLE}, not {whole!r}")
    if value is None or isinstance(value, str):
        return missing if value is None else value
    value = float(value)
    if not math.isfinite(value):
        return missing
    if value.is_integer() and (whole == "grouped" or (whole == "large" and abs(value) >= 1000)):
        return f"{int(value):,}"
    if value.is_integer() and whole == "int" and abs(value) < 1e15:
        return f"{int(value)}"
    return f"{value:.{digits}{'g' if significant else 'f'}}"


def is_count(key: str) -> bool:
    """Whether a metric key names a count (its last segment before any ``@`` is ``n``, ``count``,
    ``n_...``, ``parameters``, ``steps`` or ``tokens``): counts print as whole numbers."""
    stat = key.split("@", 1)[0].rsplit("/", 1)[-1]
    return stat in ("n", "count", "parameters", "steps", "tokens") or stat.startswith("n_")


def fmt_metric(key: str, value, digits: int = 3) -> str:
    """A metric for the terminal: a count as a whole number, anything else with ``digits`` decimals."""
    return fmt(value, digits, whole="int" if is_count(key) else "none")


def auc_line(metrics: dict, attack: str, key: str = "mia") -> str:
    """``"   min_k_pp  AUC 0.873  [0.801, 0.934]"``."""
    auc, lo, hi = (metrics.get(f"{key}/{attack}/auc{s}") for s in ("", "/ci_lo", "/ci_hi"))
    return f"{attack:>10}  AUC {fmt_metric('auc', auc)}  [{fmt_metric('auc', lo)}, {fmt_metric('auc', hi)}]"
