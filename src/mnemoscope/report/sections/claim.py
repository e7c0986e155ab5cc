"""The first section of a lab recipe's report: the source's finding as a testable sentence and the
effect this run measured (value, 95% interval where the recipe computes one, and whether it lies on
the side the finding predicts). The claim is the one the run's kind declares (``recipes.claim_for``);
a run of a kind without one gets no section.
"""

from __future__ import annotations

from markupsafe import Markup

from mnemoscope.claims import effect_rows, holds
from mnemoscope.recipes import claim_for
from mnemoscope.report.html import (
    RunData,
    fmt_value,
    html_table,
    register_section,
    section_html,
)

DASH = "—"


def _interval(row: dict) -> str:
    if row["ci_lo"] is None or row["ci_hi"] is None:
        return DASH
    return f"[{fmt_value(row['ci_lo'])}, {fmt_value(row['ci_hi'])}]"


def _verdict(state: bool | None, yes: str = "yes", no: str = "no") -> Markup:
    if state is None:
        return Markup('<span class="muted">not measured</span>')
    return Markup('<span class="{}">{}</span>').format("good" if state else "bad", yes if state else no)


def section_claim(run: RunData) -> Markup | None:
    """The claim, then one row per effect: this run's value, its interval, the predicted side."""
    claim = claim_for(run.manifest.get("recipe") or run.config.get("recipe"))
    if claim is None:
        return None
    rows = []
    for r in effect_rows(claim, run.metrics):
        e = r["effect"]
        rows.append([e.label, fmt_value(r["value"]), _interval(r), e.rule, _verdict(r["holds"]),
                     _verdict(r["ci_clear"]) if r["ci_lo"] is not None else DASH, Markup("<code>{}</code>").format(e.formula)])
    table = html_table(["effect", "this run", "95% interval", "finding predicts", "on that side",
                        "whole interval on that side", "metric key"], rows, numeric=[1, 2])
    verdict = holds(claim, run.metrics)
    summary = {True: "Every effect lies on the predicted side in this run.",
               False: "At least one effect is not on the predicted side in this run.",
               None: "At least one effect was not measured in this run (see the notes)."}[verdict]
    seed = run.manifest.get("seed", run.config.get("seed"))
    parts = [Markup("<p><strong>{}</strong> — {}</p>").format(claim.source, claim.sentence), table,
             Markup("<p>{} One run is one seed ({}): <code>mnemoscope run {} --seeds 0,1,2</code> measures the "
                    "spread across seeds.</p>").format(summary, DASH if seed is None else seed, claim.recipe)]
    return section_html("Claim", Markup("\n").join(parts), note=claim.scale or None)


register_section(section_claim, order=5)
