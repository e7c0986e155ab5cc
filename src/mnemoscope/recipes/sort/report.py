"""Report section of the sort recipe: SORT accuracy before and after training on the book, in the
short-term (excerpt in context) and long-term (excerpt only in training) conditions, by segment
distance, with bootstrap intervals, the position bias and the excerpts' NLL.

Reads the ``sort/`` keys of metrics.json (drawn when the before/after long-term keys exist); None otherwise.
"""

from __future__ import annotations

import re

import numpy as np
from markupsafe import Markup

from mnemoscope.report import plots
from mnemoscope.report.html import (
    RunData,
    figure_html,
    fmt_auc,
    fmt_value,
    html_table,
    register_section,
    section_html,
)

CONDITIONS = (("short_term", "short-term (excerpt in context)"), ("long_term", "long-term (excerpt only in training)"))
PHASES = ("before", "after")


def _bins(run: RunData) -> list[str]:
    found = []
    for key in run.metrics:
        m = re.fullmatch(r"sort/short_term/accuracy@bin=(.+),phase=before", key)
        if m:
            found.append(m.group(1))
    return sorted(found, key=lambda b: int(b.split("-")[0]))


def _bins_figure(run: RunData, bins: list[str]):
    fig = plots.new_figure(11, 3.2)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (cond, title) in zip(axes, CONDITIONS):
        for k, phase in enumerate(PHASES):
            y = [run.metric(f"sort/{cond}/accuracy@bin={b},phase={phase}") for b in bins]
            ax.plot(np.arange(len(bins)), [np.nan if v is None else v for v in y], marker="o", label=f"{phase} study",
                    color=plots.PALETTE[k])
        ax.axhline(0.5, **plots.CHANCE_STYLE)
        ax.set_xticks(np.arange(len(bins)), bins)
        ax.set_xlabel("words between the segments")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("SORT accuracy")
    axes[0].legend(fontsize=8)
    return fig


def section_sort(run: RunData) -> Markup | None:
    """SORT by condition and phase, the change after study, by distance, position bias, excerpt NLL."""
    if run.metric("sort/long_term/accuracy@phase=after") is None:
        return None
    m = run.metric
    rows = []
    for cond, label in CONDITIONS:
        row: list[object] = [label]
        for phase in PHASES:
            tag = f"@phase={phase}"
            row.append(fmt_auc(m(f"sort/{cond}/accuracy{tag}"), m(f"sort/{cond}/accuracy/ci_lo{tag}"),
                               m(f"sort/{cond}/accuracy/ci_hi{tag}")))
        row.append(fmt_auc(m(f"sort/{cond}/accuracy_change"), m(f"sort/{cond}/accuracy_change/ci_lo"),
                           m(f"sort/{cond}/accuracy_change/ci_hi")))
        row += [fmt_value(m(f"sort/{cond}/chose_a_rate@phase=after")), fmt_value(m(f"sort/{cond}/pair_accuracy@phase=after"))]
        rows.append(row)
    table = html_table(["condition", "before study [95% CI]", "after study [95% CI]", "change [95% CI]",
                        "chose A (after)", "pair accuracy (after)"], rows, numeric=range(1, 6))
    nll = Markup("<p>Mean NLL of the book's excerpts: {} before study, {} after.</p>").format(
        fmt_value(m("sort/excerpt_nll@phase=before")), fmt_value(m("sort/excerpt_nll@phase=after")))
    parts = [table, nll]
    bins = _bins(run)
    if bins:
        parts.insert(0, figure_html(_bins_figure(run, bins), "SORT accuracy by segment distance",
                                    "Accuracy (chance 0.5, dashed) by distance bin, before and after training on the "
                                    "book."))
    note = ("Answer = the higher log-probability of \" A\" / \" B\" after \"Answer: Segment\"; every pair is shown in "
            "both orders, so a model that always picks A scores exactly 0.5 (chose A = 1, pair accuracy = 0). "
            "Intervals: 95% bootstrap over pairs.")
    return section_html("Episodic order memory (SORT)", Markup("\n").join(parts), note=note)


register_section(section_sort, order=6)
