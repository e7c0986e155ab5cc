"""What a lab recipe is for: its source paper's finding as a testable sentence, and the metric
keys that measure the finding's effect in a run.

A :class:`Claim` names the recipe, the source, the finding and one or more :class:`Effect`\\ s. An
effect is a metric key the recipe writes (with ``/ci_lo`` and ``/ci_hi`` beside it when it has an
interval) and the side of a threshold the finding predicts, e.g. "recall of studied items minus
recall of never-studied ones > 0". The claim *holds in a run* when every effect is on its side;
across seeds, the report states the mean, the sample standard deviation, min–max and in how many
seeds each effect holds. ``scale`` says what the default (CPU) scale can and cannot show and which
setting should show the rest.

Each recipe declares its claim beside its code (``claim=`` of its ``recipes.plugin.Recipe``, e.g.
``recipes/quickstart/__init__.py``); ``mnemoscope.recipes.claim_for`` finds it through the recipes' registry. The
run report's first section (``report/sections/claim.py``), the seed comparison page
(``report/comparison.py``) and ``mnemoscope compare``'s default columns read it;
``docs/recipes.md`` holds the measured 3-seed figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Effect:
    key: str
    label: str
    direction: str = ">"  # the finding predicts value > threshold (">") or value < threshold ("<")
    threshold: float = 0.0
    minus: str | None = None  # a second key: the effect is key − minus (no interval then)

    def __post_init__(self):
        if self.direction not in (">", "<"):
            raise ValueError(f"Effect {self.key}: direction must be '>' or '<', not {self.direction!r}")

    @property
    def rule(self) -> str:
        return f"{self.direction} {self.threshold:g}"

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,) if self.minus is None else (self.key, self.minus)

    @property
    def formula(self) -> str:
        return self.key if self.minus is None else f"{self.key} − {self.minus}"

    def value(self, metrics: Mapping) -> float | None:
        """The effect in one run's metrics: the key's value, or key − minus; None when missing."""
        v = _number(metrics, self.key)
        if self.minus is None or v is None:
            return v
        w = _number(metrics, self.minus)
        return None if w is None else v - w

    def holds(self, value: float | None) -> bool | None:
        """Whether ``value`` is on the predicted side (None when there is no number)."""
        if value is None or not math.isfinite(value):
            return None
        return value > self.threshold if self.direction == ">" else value < self.threshold


@dataclass(frozen=True)
class Claim:
    recipe: str
    source: str
    sentence: str
    effects: tuple[Effect, ...]
    scale: str = ""


def stat_key(key: str, stat: str) -> str:
    """``a/b@x=1`` with ``stat`` → ``a/b/stat@x=1`` (the flat-key place of a statistic)."""
    name, sep, tags = key.partition("@")
    return f"{name}/{stat}{sep}{tags}"


def _number(metrics: Mapping, key: str) -> float | None:
    v = metrics.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def effect_rows(claim: Claim, metrics: Mapping) -> list[dict]:
    """One row per effect of ``claim`` in one run: value, 95% interval (None when the run has none),
    whether the value is on the predicted side, and whether the whole interval is. A difference of
    two keys has no interval."""
    rows = []
    for e in claim.effects:
        value = e.value(metrics)
        lo = hi = None
        if e.minus is None:
            lo, hi = _number(metrics, stat_key(e.key, "ci_lo")), _number(metrics, stat_key(e.key, "ci_hi"))
        clear = None
        if lo is not None and hi is not None:
            clear = bool(e.holds(lo) and e.holds(hi))
        rows.append({"effect": e, "value": value, "ci_lo": lo, "ci_hi": hi, "holds": e.holds(value),
                     "ci_clear": clear})
    return rows


def holds(claim: Claim, metrics: Mapping) -> bool | None:
    """True when every effect is on its side, False when one is not, None when one is missing."""
    states = [r["holds"] for r in effect_rows(claim, metrics)]
    if any(s is False for s in states):
        return False
    return None if any(s is None for s in states) else True


def effect_spread(claim: Claim, runs: Sequence[Mapping]) -> list[dict]:
    """Per effect over several runs' metrics: the values, n (runs with a number), mean, sd (n − 1;
    nan below 2), min, max, and in how many runs the effect holds."""
    out = []
    for e in claim.effects:
        values = [e.value(m) for m in runs]
        x = np.array([v for v in values if v is not None], dtype=np.float64)
        n = int(x.size)
        out.append({
            "effect": e, "values": values, "n": n,
            "mean": float(x.mean()) if n else math.nan,
            "sd": float(x.std(ddof=1)) if n > 1 else math.nan,
            "min": float(x.min()) if n else math.nan,
            "max": float(x.max()) if n else math.nan,
            "n_hold": int(sum(bool(e.holds(v)) for v in values if v is not None)),
        })
    return out
