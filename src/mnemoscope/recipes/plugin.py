"""What a recipe declares about itself: :class:`Recipe`, and :class:`Series` (one comparison panel).

A declaration is light: it names the heavy module that runs the recipe (``module``, imported only
when the recipe runs) and says what the rest of mnemoscope needs to know without running it — the
claim the report's first section, the seed comparison and ``mnemoscope compare`` read, the headline
columns of ``compare`` and ``mnemoscope runs``, the comparison page's panels, whether the
comparison page draws the unlearning trade-off for its runs, the report sections it brings and the
function that prints its terminal summary. Importing a declaration imports neither torch nor
transformers nor matplotlib (``tests/test_plugins.py`` checks it).

    RECIPE = Recipe("toy", "toypkg.recipe", claim=Claim(...), headlines=("toy/auc",),
                    series=(Series("AUC by dose", "toy/auc@dose={x}", "dose"),), sections=("toypkg.report",))
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the claim's classes are light, but a declaration need not import them to be typed
    from mnemoscope.claims import Claim


@dataclass(frozen=True)
class Series:
    """One panel of the comparison page: ``pattern`` with ``{x}`` standing for the x-axis value (e.g.
    the dose), plotted per group of runs; ``order`` ranks named x values, ``chance`` draws a line."""

    title: str
    pattern: str
    xlabel: str
    order: tuple[str, ...] = ()
    chance: float | None = None

    def points(self, keys) -> list[tuple[str, str]]:
        """(x label, key) for the keys matching, x in ``order`` / numeric / natural order."""
        rx = re.compile(re.escape(self.pattern).replace(re.escape("{x}"), r"(?P<x>[^/@,=]+)") + r"\Z")
        found = {m.group("x"): k for k in keys for m in [rx.match(k)] if m}

        def rank(x: str):
            if x in self.order:
                return (0, self.order.index(x), 0.0, "")
            try:
                return (1, 0, float(x), "")
            except ValueError:
                return (2, 0, 0.0, x)

        return [(x, found[x]) for x in sorted(found, key=rank)]


@dataclass(frozen=True)
class Recipe:
    """A kind of run: its ``name`` (the manifest's ``"recipe"``) and what it declares.

    - ``module``: dotted name of the module with ``DEFAULTS`` and ``run(out, overrides, log)``
      (``mnemoscope run NAME``); None for runs a command writes (``audit``, ``unlearn``,
      ``contamination-check``), which are declared for their headlines and sections only.
    - ``claim``: the source's finding and its effects (``mnemoscope.claims.Claim``), or None.
    - ``headlines``: metric keys (globs allowed) summarising a run, after the claim's keys.
    - ``series``: the comparison page's panels (:class:`Series`) for runs of this kind.
    - ``tradeoff``: the comparison page draws KnowMem forget against retain for these runs.
    - ``sections``: dotted names of report-section modules it brings (each registers its
      sections when imported; the report imports every declared one).
    - ``summary``: ``"module:function"`` printing the terminal summary of a finished run
      (``function(run_dir) -> str``); None: its first ungrouped numbers.
    - ``pooled``: ``"module:function"`` pooling the effects of several seeds' runs with their
      unit resampled (``function(run_dirs) -> dict``); ``--seeds`` writes it to ``OUT/pooled.json``.
    """

    name: str
    module: str | None = None
    claim: Claim | None = None
    headlines: tuple[str, ...] = ()
    series: tuple[Series, ...] = ()
    tradeoff: bool = False
    sections: tuple[str, ...] = ()
    summary: str | None = None
    pooled: str | None = None

    def __post_init__(self):
        if self.claim is not None and self.claim.recipe != self.name:
            raise ValueError(f"Recipe {self.name!r}: its claim is for {self.claim.recipe!r}")
        if self.summary is not None and ":" not in self.summary:
            raise ValueError(f"Recipe {self.name!r}: summary must be 'module:function', not {self.summary!r}")
        if self.pooled is not None and ":" not in self.pooled:
            raise ValueError(f"Recipe {self.name!r}: pooled must be 'module:function', not {self.pooled!r}")

    def load(self):
        """The runnable module (imports it: torch and the rest)."""
        if self.module is None:
            raise ValueError(f"'{self.name}' runs are written by a command, not by `mnemoscope run`")
        return importlib.import_module(self.module)

    def pool(self, run_dirs: list[Path]) -> dict | None:
        """The declared pooled analysis of several seeds' runs, or None when it declares none."""
        if self.pooled is None:
            return None
        module, function = self.pooled.split(":")
        return getattr(importlib.import_module(module), function)([Path(d) for d in run_dirs])

    def summarize(self, run_dir: Path) -> str:
        """The terminal summary of a finished run: the declared function's text, else the run's first
        twelve ungrouped numbers."""
        if self.summary is not None:
            module, function = self.summary.split(":")
            return getattr(importlib.import_module(module), function)(Path(run_dir))
        return first_numbers(Path(run_dir))


def first_numbers(run_dir: Path, limit: int = 12) -> str:
    """A run's first ``limit`` ungrouped numeric metrics, one per line, and where the rest are."""
    import json

    from mnemoscope.summary import fmt

    metrics = json.loads((run_dir / "metrics.json").read_text())
    plain = [k for k in sorted(metrics) if "@" not in k and isinstance(metrics[k], (int, float))]
    lines = [f"{k:<48} {fmt(metrics[k])}" for k in plain[:limit]]
    lines.append(f"({len(metrics)} metrics in {run_dir / 'metrics.json'})")
    return "\n".join(lines)
