"""Report section of the mechanisms family and recipe: held-out probe AUC by layer, the 2-D PCA of
one layer coloured by set, accuracy (and the alternative answer's rate) against α for both sets
with the random-direction control, a layer × α heatmap, and the directional ablation.

Reads ``mechanisms/{probe,items,sweep,ablation}.parquet`` (written by ``families.mechanisms.save``)
and the ``mechanisms/`` keys of metrics.json; None for runs without them.
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
    fmt_auc,
    fmt_value,
    html_table,
    register_section,
    section_html,
)


def _table(run: RunData, name: str) -> pd.DataFrame | None:
    path = run.run_dir / "mechanisms" / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def _probe_figure(probe: pd.DataFrame):
    fig = plots.new_figure(5.5, 3.2)
    ax = fig.subplots()
    p = probe[probe["probed"]].sort_values("layer")
    ax.fill_between(p["layer"], p["auc/ci_lo"], p["auc/ci_hi"], color=plots.PALETTE[0], alpha=0.2, label="95% CI")
    ax.plot(p["layer"], p["auc"], "o-", color=plots.PALETTE[0], label="held-out AUC")
    ax.axhline(0.5, **plots.CHANCE_STYLE, label="chance")
    ax.set_ylim(0.0, 1.02)
    ax.set_xticks(p["layer"])
    ax.set_xlabel("layer (−1 = embeddings)")
    ax.set_ylabel("probe ROC-AUC")
    ax.legend(fontsize=8)
    return fig


def _pca_figure(items: pd.DataFrame, explained: tuple[float | None, float | None]):
    fig = plots.new_figure(5.0, 3.6)
    ax = fig.subplots()
    for i, (name, part) in enumerate(items.groupby("set", sort=False)):
        for split, marker in (("fit", "o"), ("eval", "^")):
            g = part[part["split"] == split]
            ax.scatter(g["pca_1"], g["pca_2"], s=16, marker=marker, color=plots.PALETTE[i % len(plots.PALETTE)],
                       alpha=0.8, label=f"{name} ({split})")
    labels = [f"PC{k + 1}" + (f" ({v:.0%} of variance)" if v is not None else "") for k, v in enumerate(explained)]
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.legend(fontsize=7)
    return fig


def _sweep_figure(sweep: pd.DataFrame, layer: int):
    part = sweep[sweep["layer"] == layer]
    sets = list(dict.fromkeys(part["set"]))
    fig = plots.new_figure(4.2 * len(sets), 3.3)
    axes = np.atleast_1d(fig.subplots(1, len(sets), sharey=True))
    for ax, name in zip(axes, sets):
        g = part[part["set"] == name]
        for kind, style in (("direction", "-"), ("random", ":")):
            k = g[g["direction"] == kind].sort_values("alpha")
            ax.plot(k["alpha"], k["accuracy"], style, marker="o", markersize=3, color=plots.PALETTE[0],
                    label=f"answer ({kind})")
            if k["alternative_rate"].notna().any():
                ax.plot(k["alpha"], k["alternative_rate"], style, marker="s", markersize=3, color=plots.PALETTE[1],
                        label=f"alternative ({kind})")
        ax.axvline(0, color="#bbbbbb", linewidth=0.8)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"set {name}", fontsize=9)
        ax.set_xlabel("α (× mean ‖h‖ at the layer)")
    axes[0].set_ylabel("share of eval items")
    axes[-1].legend(fontsize=7)
    return fig


def _heatmap_figure(sweep: pd.DataFrame):
    d = sweep[sweep["direction"] == "direction"]
    panels = [(name, "accuracy") for name in dict.fromkeys(d["set"])]
    panels += [(name, "alternative_rate") for name in dict.fromkeys(d["set"])
               if d.loc[d["set"] == name, "alternative_rate"].notna().any()]
    fig = plots.new_figure(3.6 * len(panels), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, col) in zip(axes, panels):
        grid = d[d["set"] == name].pivot_table(index="layer", columns="alpha", values=col)
        image = ax.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto", origin="lower")
        ax.set_xticks(range(grid.shape[1]), [f"{a:g}" for a in grid.columns], fontsize=7)
        ax.set_yticks(range(grid.shape[0]), [str(int(v)) for v in grid.index], fontsize=7)
        ax.set_xlabel("α")
        ax.set_ylabel("layer")
        ax.set_title(f"{name}: {'answer' if col == 'accuracy' else 'alternative'} rate", fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    return fig


def section_mechanisms(run: RunData) -> Markup | None:
    """Probe AUC by layer, PCA picture, causal sweep with its control, heatmap, ablation."""
    probe = _table(run, "probe")
    if probe is None:
        return None
    items, sweep, ablation = _table(run, "items"), _table(run, "sweep"), _table(run, "ablation")
    m = run.metric
    best = m("mechanisms/best_layer")
    parts = []
    rows = [[int(r["layer"]), fmt_auc(r["auc"], r["auc/ci_lo"], r["auc/ci_hi"]), fmt_value(r["accuracy"]),
             fmt_value(r["mean_norm"], 2)] for _, r in probe[probe["probed"]].iterrows()]
    parts += [Markup("<h3>Where the two sets separate</h3>"), figure_html(_probe_figure(probe), "probe AUC by layer"),
              html_table(["layer", "held-out AUC [95% CI]", "held-out accuracy", "mean ‖h‖"], rows, numeric=[0, 1, 2, 3])]
    if items is not None and "pca_1" in items.columns:
        layer = int(items["layer"].iloc[0])
        explained = (m("mechanisms/pca/explained@component=1"), m("mechanisms/pca/explained@component=2"))
        parts.append(figure_html(_pca_figure(items, explained), "PCA of the residual stream",
                                 f"Layer {layer}: the first two principal components of every prompt's features, "
                                 "coloured by set; circles fitted the direction, triangles are held out."))
    if sweep is not None and len(sweep):
        layer = int(m("mechanisms/recipe/to_rule/layer") if m("mechanisms/recipe/to_rule/layer") is not None
                    else sweep["layer"].iloc[0])
        parts += [Markup("<h3>Steering along the direction, against a random direction of the same norm</h3>"),
                  figure_html(_sweep_figure(sweep, layer), "accuracy against alpha",
                              f"Layer {layer}, held-out items: h ← h + α·‖h̄‖·r̂ from the steering start on. "
                              "Solid: the fitted direction; dotted: a seeded random unit direction. 'Answer' is "
                              "the share answering the set's answer, 'alternative' the share giving the competing "
                              "answer (for exceptions: the rule's).")]
        if sweep["layer"].nunique() > 1:
            parts.append(figure_html(_heatmap_figure(sweep), "layer by alpha heatmap",
                                     "The fitted direction at every layer and α (rows: layers, columns: α)."))
    rows = []
    for name, what, kept in (("to_rule", "exceptions (recall prompts) answered with the rule's answer",
                              "exceptions still answered from memory"),
                             ("to_memory", "exceptions asked to compute, answered from memory",
                              "compute prompts (all) answered by the rule")):
        key = f"mechanisms/recipe/{name}"
        if m(key) is not None:
            cell = f"layer {fmt_value(m(key + '/layer'), 0)}, α = {fmt_value(m(key + '/alpha'), 2)}"
            rows += [[what, cell, fmt_value(m(key)), fmt_value(m(key + "@direction=random"))],
                     [kept, cell, fmt_value(m(key + "/kept")), fmt_value(m(key + "/kept@direction=random"))]]
    if rows:
        parts += [Markup("<h3>Strongest moves between memory and rule (held-out items)</h3>"),
                  html_table(["share of held-out items", "cell", "fitted direction", "random direction"], rows,
                             numeric=[2, 3])]
    if ablation is not None and len(ablation):
        rows = [[r.set, r.direction, fmt_value(r.accuracy),
                 fmt_value(None if math.isnan(r.alternative_rate) else r.alternative_rate),
                 fmt_value(r.answer_logprob, 2)] for r in ablation.itertuples()]
        parts += [Markup("<h3>Directional ablation at every layer (direction of layer {})</h3>").format(
            fmt_value(best, 0)),
                  html_table(["set", "ablated", "answer rate", "alternative rate", "answer log p"], rows,
                             numeric=[2, 3, 4])]
    note = ("Probe: stratified k-fold; each item is projected on the direction fitted without its fold; the CI is a "
            "stratified bootstrap over those held-out scores. The causal sweep uses held-out items only.")
    return section_html("Mechanisms: a direction in the residual stream", Markup("\n").join(parts), note=note)


register_section(section_mechanisms, order=6)
