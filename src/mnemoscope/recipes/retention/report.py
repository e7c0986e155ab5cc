"""Report section of the retention recipe: recognition / recall by exposure group, retention curves with
fitted log-decay lines, fitted constants with bootstrap intervals, and the continual-learning metrics.

Reads ``retention.parquet`` (accuracy per probe step × group × foil kind) and the ``recognition/``,
``recall/``, ``retention/`` and ``continual/`` keys of metrics.json; None for other runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
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

PHASES = ("before_study", "after_study", "end")


def _groups(run: RunData) -> list[str]:
    found = set()
    for key in run.metrics:
        if key.startswith("recognition/2afc/accuracy@") and ",phase=after_study" in key:
            found.add(key.split("@", 1)[1].split(",phase=")[0])
    return sorted(found, key=lambda g: (g.startswith("task="), 0 if g.startswith("task=") else int(g.split("=")[1])))


def _label(sel: str) -> str:
    if sel.startswith("task="):
        return "other text"
    n = sel.split("=")[1]
    return f"{n} exposure{'' if n == '1' else 's'}"


def _ci(run: RunData, name: str, tag: str) -> str:
    """``value [lo, hi]`` of ``name@tag`` with its ``name/ci_lo@tag`` and ``name/ci_hi@tag``."""
    return fmt_auc(run.metric(f"{name}@{tag}"), run.metric(f"{name}/ci_lo@{tag}"), run.metric(f"{name}/ci_hi@{tag}"))


def _bars_figure(run: RunData, groups: list[str]):
    fig = plots.new_figure(7.5, 3.4)
    ax = fig.subplots()
    width = 0.8 / len(PHASES)
    for k, phase in enumerate(PHASES):
        acc = [run.metric(f"recognition/2afc/accuracy@{g},phase={phase}") for g in groups]
        lo = [run.metric(f"recognition/2afc/accuracy/ci_lo@{g},phase={phase}") for g in groups]
        hi = [run.metric(f"recognition/2afc/accuracy/ci_hi@{g},phase={phase}") for g in groups]
        x = np.arange(len(groups)) + (k - 1) * width
        y = np.array([np.nan if v is None else v for v in acc])
        err = np.array([[0 if (v is None or l is None) else v - l for v, l in zip(acc, lo)],
                        [0 if (v is None or h is None) else h - v for v, h in zip(acc, hi)]])
        ax.bar(x, y, width, yerr=err, capsize=2, label=phase.replace("_", " "), color=plots.PALETTE[k])
    ax.axhline(0.5, **plots.CHANCE_STYLE)
    ax.set_xticks(np.arange(len(groups)), [_label(g) for g in groups])
    ax.set_ylim(0, 1)
    ax.set_ylabel("2AFC recognition accuracy")
    ax.legend(fontsize=8)
    return fig


def _curves_figure(run: RunData, retention: pd.DataFrame, groups: list[str]):
    fig = plots.new_figure(11, 3.4)
    axes = fig.subplots(1, 2)
    kind = retention["foil_kind"].iloc[0]
    part = retention[(retention["foil_kind"] == kind) & (retention["step"] >= 1)]
    for i, g in enumerate(groups):
        name = g.split("=")[1]
        rows = part[part["group"] == name].sort_values("step")
        if rows.empty:
            continue
        color = plots.PALETTE[i % len(plots.PALETTE)]
        for ax, col, family in ((axes[0], "accuracy", "recognition"), (axes[1], "match_rate", "recall")):
            ax.plot(rows["step"], rows[col], ".", color=color, label=_label(g), markersize=4)
            a, b = run.metric(f"retention/{family}/decay_a@{g}"), run.metric(f"retention/{family}/decay_b@{g}")
            if a is not None and b is not None:
                t = np.geomspace(rows["step"].min(), rows["step"].max(), 50)
                ax.plot(t, b - a * np.log10(t), color=color, linewidth=1.2)
    axes[0].axhline(0.5, **plots.CHANCE_STYLE)
    axes[0].set_ylabel(f"2AFC accuracy (foil: {kind})")
    axes[1].set_ylabel("recall token match rate")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("steps of continued training after study")
    axes[0].legend(fontsize=8)
    return fig


def _constants_table(run: RunData, groups: list[str]) -> Markup:
    columns = ["group", "family", "a (decay per decade) [95% CI]", "b (level at t = 1) [95% CI]", "R²", "final"]
    rows = []
    for g in groups:
        for family in ("recognition", "recall"):
            if run.metric(f"retention/{family}/decay_a@{g}") is None:
                continue
            rows.append([_label(g), family, _ci(run, f"retention/{family}/decay_a", g),
                         _ci(run, f"retention/{family}/decay_b", g), fmt_value(run.metric(f"retention/{family}/decay_r2@{g}")),
                         fmt_value(run.metric(f"retention/{family}/final@{g}"))])
    return html_table(columns, rows, numeric=range(2, len(columns)))


def _phase_table(run: RunData, groups: list[str]) -> Markup:
    columns = ["group"] + [f"2AFC {p.replace('_', ' ')} [95% CI]" for p in PHASES] + [
        "recall match (after study)", "recall ROUGE-L (after study)"]
    rows = []
    for g in groups:
        row: list[object] = [_label(g)]
        row += [_ci(run, "recognition/2afc/accuracy", f"{g},phase={p}") for p in PHASES]
        row += [fmt_value(run.metric(f"recall/match_rate/mean@{g},phase=after_study")),
                fmt_value(run.metric(f"recall/rouge_l_f1/mean@{g},phase=after_study"))]
        rows.append(row)
    return html_table(columns, rows, numeric=range(1, len(columns)))


def _continual_table(run: RunData) -> Markup | None:
    m = run.metric
    if m("continual/bwt") is None:
        return None
    rows = [["A[study, study] (study set after study)", fmt_value(m("continual/accuracy@after=study,task=study"))],
            ["A[study, other] (other text before its training)", fmt_value(m("continual/accuracy@after=study,task=other"))],
            ["A[other, study] (study set after continued training)", fmt_value(m("continual/accuracy@after=other,task=study"))],
            ["A[other, other] (other text after its training)", fmt_value(m("continual/accuracy@after=other,task=other"))],
            ["forgetting (study)", fmt_value(m("continual/forgetting@task=study"))],
            ["BWT", fmt_value(m("continual/bwt"))], ["FWT (other)", fmt_value(m("continual/fwt@task=other"))],
            ["Min-ACC", fmt_value(m("continual/min_acc"))], ["WC-ACC", fmt_value(m("continual/wc_acc"))]]
    rows += [[k.split("/", 1)[1], fmt_value(run.metric(k))] for k in run.metrics
             if k.startswith("continual/windowed_forgetting")]
    return html_table(["continual metric (2AFC accuracy; tasks: study set, other text)", "value"], rows, numeric=[1])


def section_retention(run: RunData) -> Markup | None:
    """Exposure groups, retention curves with fitted lines, constants, continual metrics."""
    path = run.run_dir / "retention.parquet"
    if not path.is_file() or not _groups(run):  # (acquisition runs hold a retention.parquet too)
        return None
    groups = _groups(run)
    retention = pd.read_parquet(path)
    parts = [figure_html(_bars_figure(run, groups), "recognition accuracy by exposure group",
                         "2AFC accuracy (seen item vs novel foil) per exposure group, before study, right after it "
                         "and at the end of continued training; bars: 95% bootstrap intervals over items; "
                         "dashed: chance."),
             _phase_table(run, groups)]
    gap = [k for k in run.metrics if k.startswith("retention/compare/accuracy_gap@")]
    if gap:
        tag = gap[0].split("@", 1)[1]
        parts.append(Markup("<p>Accuracy gap right after study, most vs fewest exposures ({}): {}</p>").format(
            tag.replace(",phase=after_study", ""), _ci(run, "retention/compare/accuracy_gap", tag)))
    if not retention.empty:
        parts.append(figure_html(_curves_figure(run, retention, groups), "retention curves",
                                 "Recognition and recall during continued training on other text, probed at "
                                 "log-spaced steps (dots: means over items); lines: fitted y = b − a·log10(t)."))
    parts += [Markup("<h3>Fitted constants</h3>"), _constants_table(run, groups)]
    table = _continual_table(run)
    if table is not None:
        parts += [Markup("<h3>Continual-learning metrics</h3>"), table]
    return section_html("Recognition, recall and retention", Markup("\n").join(parts),
                        note="Intervals: 95% percentile bootstrap over items. Exposure group 0 was never studied "
                             "(control, chance by construction).")


register_section(section_retention, order=6)
