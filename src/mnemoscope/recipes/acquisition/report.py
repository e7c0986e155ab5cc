"""Report section of the acquisition recipe: probe curves, retainability with decay fits, constants.

Reads ``probe_curves.parquet`` and ``retention.parquet`` from the run directory and the
``acquisition/...`` keys of metrics.json; returns None for runs without them.
"""

from __future__ import annotations

import math

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

KINDS = ("memorization", "semantic", "compositional")
GROUP_COLORS = {"paraphrase": "#1f77b4", "duplicate": "#d62728", "once": "#2ca02c", "control": "#7f7f7f"}


def _key(name: str, group: str, kind: str) -> str:
    return f"acquisition/{name}@group={group},probe={kind}"


def _curves_figure(curves: pd.DataFrame, injections: list[int]):
    fig = plots.new_figure(12, 3.4)
    axes = fig.subplots(1, len(KINDS), sharey=True)
    mean = curves.groupby(["kind", "group", "step"])["target_nll"].mean()
    for ax, kind in zip(axes, KINDS):
        for group, color in GROUP_COLORS.items():
            if (kind, group) in mean.index.droplevel(2):
                part = mean.loc[(kind, group)]
                ax.plot(part.index, part.to_numpy(), color=color, label=group, linewidth=1.2, marker=".", markersize=2)
        for t in injections:
            ax.axvline(t, color="#cccccc", linewidth=0.6, zorder=0)
        ax.set_title(f"{kind} probes")
        ax.set_xlabel("training step")
    axes[0].set_ylabel("mean target NLL")
    axes[0].legend(fontsize=8)
    return fig


R_VIEW = (-150, 250)


def _retention_figure(retention: pd.DataFrame, run: RunData):
    fig = plots.new_figure(12, 3.4)
    axes = fig.subplots(1, len(KINDS), sharey=True)
    kept = retention[~retention["outlier"]]
    for ax, kind in zip(axes, KINDS):
        for group, color in GROUP_COLORS.items():
            part = kept[(kept["kind"] == kind) & (kept["group"] == group)]
            if part.empty:
                continue
            binned = part.groupby("t")["r"].mean()
            ax.plot(binned.index, binned.to_numpy(), ".", color=color, markersize=3, label=group)
            a, b = run.metric(_key("retainability/decay_a", group, kind)), run.metric(_key("retainability/decay_b", group, kind))
            if a is not None and b is not None:
                t = np.geomspace(max(1, binned.index.min()), binned.index.max(), 50)
                ax.plot(t, 100 * (-a * np.log10(t) + b), color=color, linewidth=1.2)
        ax.set_xscale("log")
        ax.axhline(0, **plots.CHANCE_STYLE)
        ax.set_title(f"{kind} probes")
        ax.set_xlabel("steps after t_LAM")
    # R divides by the loss drop of the last injection, which is tiny for barely-learned probes
    # (the `once` group): a few points reach ±1000 %. Keep the informative range in view.
    axes[0].set_ylim(R_VIEW)
    axes[0].set_ylabel(f"R(t) %  (view {R_VIEW[0]}…{R_VIEW[1]})")
    axes[0].legend(fontsize=8)
    return fig


def _table(run: RunData, groups: list[str]) -> Markup:
    columns = ["group", "probe", "n", "effectivity", "log-prob after last inj.", "final log-prob", "a", "b",
               "R² (log)", "x-intercept (steps)", "x-intercept (tokens)", "RMSE log", "RMSE exp", "RMSE power",
               "outliers", "skipped"]
    rows = []
    for group in groups:
        for kind in KINDS:
            g = lambda name: run.metric(_key(name, group, kind))  # noqa: E731
            if g("n_probes") is None:
                continue
            tokens = g("retainability/x_intercept_tokens")
            rows.append([group, kind, fmt_value(g("n_probes"), 0), fmt_value(g("effectivity/mean")),
                         fmt_value(g("logprob/after_last")), fmt_value(g("logprob/final")),
                         fmt_value(g("retainability/decay_a")), fmt_value(g("retainability/decay_b")),
                         fmt_value(g("retainability/decay_r2")), fmt_value(g("retainability/x_intercept_steps"), 0),
                         "—" if tokens is None else f"{tokens:.3g}", fmt_value(g("retainability/decay_rmse")),
                         fmt_value(g("retainability/exp_rmse")), fmt_value(g("retainability/power_rmse")),
                         fmt_value(g("retainability/n_outliers"), 0), fmt_value(g("retainability/n_skipped"), 0)])
    return html_table(columns, rows, numeric=range(2, len(columns)))


def section_acquisition(run: RunData) -> Markup | None:
    """Probe NLL curves by group, retainability with fitted log-decay lines, fitted constants."""
    curves_path, retention_path = run.run_dir / "probe_curves.parquet", run.run_dir / "retention.parquet"
    if not curves_path.is_file() or not any(k.startswith("acquisition/") for k in run.metrics):
        return None
    curves = pd.read_parquet(curves_path)
    injections = [int(s) for s in run.manifest.get("injection_steps", [])]
    parts = [figure_html(_curves_figure(curves, injections), "probe target NLL curves",
                         "Mean target NLL per group (grey lines: injection steps; control = never-seen people). "
                         "Measured before the update of each step.")]
    if retention_path.is_file():
        retention = pd.read_parquet(retention_path)
        if not retention.empty:
            parts.append(figure_html(_retention_figure(retention, run), "retainability curves",
                                     "R(t) = 100·(ℓ(t_LAM+t) − ℓ_0)/(ℓ(t_LAM) − ℓ_0), mean over probes (IQR×2 "
                                     "outliers removed); lines: fitted R/100 = −a·log10(t) + b."))
    groups = [g for g in GROUP_COLORS if g != "control"]
    parts.append(Markup("<h3>Fitted constants</h3>"))
    parts.append(_table(run, groups + ["control"]))
    note = None
    if any(math.isnan(run.metrics.get(_key("retainability/decay_a", g, k)) or math.nan) for g in groups for k in KINDS):
        note = "— = not computed (too few retained points, or every probe skipped)."
    return section_html("Knowledge acquisition", Markup("\n").join(parts), note=note)


register_section(section_acquisition, order=6)
