"""Report sections for unlearning runs: six-way table, trade-off curves, scalability and
sustainability, robustness, and what was not computed (with the reason)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
from markupsafe import Markup

from mnemoscope.report import plots
from mnemoscope.report.html import (
    RunData,
    figure_html,
    fmt_value,
    html_table,
    register_section,
    section_html,
)
from mnemoscope.report.sections.families import run_notes

SIX = [("verbmem_forget", "VerbMem F ↓"), ("knowmem_forget", "KnowMem F ↓"), ("knowmem_retain", "KnowMem R ↑"),
       ("privleak", "PrivLeak (→0)"), ("ppl_holdout", "ppl held-out ↓"), ("forget_quality", "forget quality ↑"),
       ("model_utility", "model utility ↑"), ("stop_step", "stop step")]
ROBUST = [("robust/mia/loss/auc", "MIA loss AUC"), ("robust/mia/min_k/auc", "MIA Min-40% AUC"),
          ("robust/extraction/exact_rate", "extraction exact"), ("robust/paraphrase/hit_rate", "reworded probe hits"),
          ("relearn/knowmem_before", "relearn: KnowMem before"), ("relearn/knowmem_after", "relearn: after")]


def _models(run: RunData) -> list[str]:
    names = []
    for key in run.metrics:
        m = re.fullmatch(r"unlearn/([^/]+)/knowmem_forget", key)
        if m and m.group(1) not in names:
            names.append(m.group(1))
    first = [n for n in ("original", "retrain") if n in names]
    return first + [n for n in names if n not in first]


def _notes(run: RunData) -> dict:
    """The reference kind and the unlearning notes: what was not computed (key → reason) and what
    happened to each method (its ``steps_run`` note: stopping rule, divergence). Runs written
    before notes.json held them keep an ``unlearn_notes.json``."""
    old = run.run_dir / "unlearn_notes.json"
    if old.is_file():
        return json.loads(old.read_text())
    notes = {k: v for k, v in run_notes(run).items() if k.startswith("unlearn/")}
    return {"reference": run.manifest.get("reference", "retrained"),
            "not_computed": {k: v for k, v in notes.items() if not k.endswith("/steps_run")},
            "events": [v for k, v in notes.items() if k.endswith("/steps_run")]}


def _table(run: RunData, names: list[str], columns) -> Markup:
    rows = [[n] + [fmt_value(run.metric(f"unlearn/{n}/{k}"), 2) for k, _ in columns] for n in names]
    return html_table(["model"] + [c for _, c in columns], rows, numeric=range(1, len(columns) + 1))


def section_unlearning(run: RunData) -> Markup | None:
    """Six-way table (MUSE) + TOFU, robustness, and the reasons for anything not computed."""
    names = _models(run)
    if not names:
        return None
    notes = _notes(run)
    ref = notes.get("reference", "retrained")
    parts = [Markup('<p class="caption">Reference: <b>{}</b>. ↓ lower is better, ↑ higher is better; the goal on F is '
                    'the retrained model\'s level, not zero. PrivLeak (MUSE\'s sign) near 0 is good: &lt; 0 under-unlearning '
                    '(a model that was not unlearned scores about −100), &gt; 0 over-unlearning. Stop step: first evaluation where KnowMem on F reached the reference.</p>').format(ref),
             _table(run, names, SIX), Markup("<h3>Is it really gone?</h3>"), _table(run, names, ROBUST)]
    missing = notes.get("not_computed", {})
    if missing:
        rows = [[k, v] for k, v in sorted(missing.items())]
        parts.append(Markup("<details><summary>{} value(s) not computed</summary>{}</details>").format(
            len(rows), html_table(["metric", "reason"], rows)))
    events = notes.get("events", [])
    if events:
        parts.append(Markup("<ul>{}</ul>").format(Markup("").join(Markup("<li>{}</li>").format(e) for e in events)))
    return section_html("Unlearning", Markup("\n").join(parts))


def section_tradeoff(run: RunData) -> Markup | None:
    """KnowMem on R against KnowMem on F along each method's run; the retrained model as a star."""
    path = run.run_dir / "unlearn_curves.parquet"
    if not path.is_file():
        return None
    c = pd.read_parquet(path)
    if c.empty or "knowmem_forget" not in c.columns:
        return None
    fig = plots.new_figure(6.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for i, (method, g) in enumerate(c.groupby("method", sort=False)):
        g = g.sort_values("step")
        ax.plot(g["knowmem_forget"], g["knowmem_retain"], "o-", ms=3, color=plots.PALETTE[i % len(plots.PALETTE)], label=method)
        if "stop" in g.columns and g["stop"].fillna(False).astype(bool).any():
            s = g[g["stop"].fillna(False).astype(bool)].iloc[0]
            ax.plot([s["knowmem_forget"]], [s["knowmem_retain"]], "s", ms=8, mfc="none", color=plots.PALETTE[i % len(plots.PALETTE)])
    rf, rr = run.metric("unlearn/retrain/knowmem_forget"), run.metric("unlearn/retrain/knowmem_retain")
    if rf is not None and rr is not None:
        ax.plot([rf], [rr], "*", ms=14, color="black", label="retrained")
    ax.set_xlabel("KnowMem on forget set (↓)")
    ax.set_ylabel("KnowMem on retain set (↑)")
    ax.legend(fontsize=8)
    return section_html("Forgetting / utility trade-off", figure_html(
        fig, "trade-off curves", "Each point is an evaluation during unlearning (step 0 = the original model); "
        "open squares mark the step chosen by the stopping rule."))


def _series(run: RunData, tag: str) -> dict[str, list[tuple[int, float, float]]]:
    out: dict[str, list] = {}
    for key in run.metrics:
        m = re.fullmatch(rf"unlearn/([^/]+)/{tag}=(\d+)/knowmem_forget", key)
        if m:
            method, n = m.group(1), int(m.group(2))
            r = run.metric(f"unlearn/{method}/{tag}={n}/knowmem_retain")
            out.setdefault(method, []).append((n, run.metric(key), r))
    return {k: sorted(v) for k, v in out.items()}


def section_scale_sustain(run: RunData) -> Markup | None:
    """Scalability (nested forget sets) and sustainability (sequential requests)."""
    panels = [(t, x, _series(run, t)) for t, x in (("scale@n", "forget-set size (people)"),
                                                     ("sustain@req", "requests unlearned"))]
    panels = [p for p in panels if p[2]]
    if not panels:
        return None
    fig = plots.new_figure(5.5 * len(panels), 3.8)
    for j, (tag, xlabel, series) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        for i, (method, pts) in enumerate(series.items()):
            x = [p[0] for p in pts]
            col = plots.PALETTE[i % len(plots.PALETTE)]
            ax.plot(x, [np.nan if p[1] is None else p[1] for p in pts], "o--", color=col, label=f"{method} KnowMem F")
            ax.plot(x, [np.nan if p[2] is None else p[2] for p in pts], "o-", color=col, label=f"{method} KnowMem R")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("KnowMem")
        ax.set_title("scalability" if tag.startswith("scale") else "sustainability")
        ax.legend(fontsize=8)
    return section_html("Scalability and sustainability", figure_html(
        fig, "scalability and sustainability", "Dashed: KnowMem on the forgotten people (↓); solid: KnowMem on "
        "retain (↑, utility). Sustainability: each request starts from the previous request's result."))


for _fn in (section_unlearning, section_tradeoff, section_scale_sustain):
    register_section(_fn)
