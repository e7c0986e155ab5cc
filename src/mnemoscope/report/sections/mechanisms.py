"""Report section of the mechanisms family and recipe: held-out probe AUC by layer (and the best
layer, chosen on the fit half, with its eval-half AUC), the 2-D PCA of one layer coloured by set,
accuracy (and the alternative answer's rate) against α (ours) and s (the seed paper's projection
scaling) for both sets with the random-direction control, a layer × α heatmap, and the directional
ablation.

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


def _of(sweep: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The rows of one intervention (runs written before the paper's intervention hold ours only)."""
    if "intervention" not in sweep:
        return sweep if kind == "add" else sweep.iloc[0:0]
    return sweep[sweep["intervention"] == kind]


def _sweep_figure(sweep: pd.DataFrame, layer: int, xlabel: str = "α (× mean ‖h‖ at the layer)"):
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
        ax.set_xlabel(xlabel)
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
    fit_auc = probe["fit_auc"] if "fit_auc" in probe else pd.Series(math.nan, index=probe.index)
    rows = [[int(r["layer"]), fmt_auc(r["auc"], r["auc/ci_lo"], r["auc/ci_hi"]), fmt_value(r["accuracy"]),
             fmt_value(None if math.isnan(fit_auc[i]) else fit_auc[i]), fmt_value(r["mean_norm"], 2)]
            for i, r in probe[probe["probed"]].iterrows()]
    parts += [Markup("<h3>Where the two sets separate</h3>"), figure_html(_probe_figure(probe), "probe AUC by layer"),
              html_table(["layer", "held-out AUC [95% CI]", "held-out accuracy", "fit-half AUC", "mean ‖h‖"], rows,
                         numeric=[0, 1, 2, 3, 4])]
    if best is not None:
        parts.append(Markup("<p>Best layer <b>{}</b>, chosen by the k-fold AUC within the fit half only; its AUC on "
                            "the held-out half (direction fitted on the fit half): <b>{}</b>.</p>").format(
            fmt_value(best, 0), fmt_auc(m("mechanisms/best_layer/auc"), m("mechanisms/best_layer/auc/ci_lo"),
                                        m("mechanisms/best_layer/auc/ci_hi"))))
    if items is not None and "pca_1" in items.columns:
        layer = int(items["layer"].iloc[0])
        explained = (m("mechanisms/pca/explained@component=1"), m("mechanisms/pca/explained@component=2"))
        parts.append(figure_html(_pca_figure(items, explained), "PCA of the residual stream",
                                 f"Layer {layer}: the first two principal components of every prompt's features, "
                                 "coloured by set; circles fitted the direction, triangles are held out."))
    ours = _of(sweep, "add") if sweep is not None else None
    if ours is not None and len(ours):
        layer = int(m("mechanisms/recipe/to_rule/layer") if m("mechanisms/recipe/to_rule/layer") is not None
                    else ours["layer"].iloc[0])
        parts += [Markup("<h3>Steering along the direction, against a random direction of the same norm</h3>"),
                  figure_html(_sweep_figure(ours, layer), "accuracy against alpha",
                              f"Ours, layer {layer}, held-out items: h ← h + α·‖h̄‖·r̂ at that layer only, from "
                              "the steering start on. Solid: the fitted direction; dotted: a seeded random unit "
                              "direction. 'Answer' is the share answering the set's answer, 'alternative' the share "
                              "giving the competing answer (for exceptions: the rule's).")]
        if ours["layer"].nunique() > 1:
            parts.append(figure_html(_heatmap_figure(ours), "layer by alpha heatmap",
                                     "The fitted direction at every layer and α (rows: layers, columns: α)."))
    paper = _of(sweep, "scale") if sweep is not None else None
    if paper is not None and len(paper):
        key = "mechanisms/recipe/to_rule/layer@intervention=scale"
        layer = int(m(key) if m(key) is not None else paper["layer"].iloc[0])
        parts.append(figure_html(_sweep_figure(paper, layer, "s (the projection on r̂ scaled by 1 + s)"),
                                 "accuracy against the projection scale",
                                 f"The seed paper's intervention with the direction of layer {layer}, held-out items: "
                                 "h ← h + s·(h·r̂)r̂ on every block's input, attention output and MLP output, at "
                                 "every layer and position. Solid: the fitted direction; dotted: the random one."))
    rows = []
    for tag, label in (("", "ours (add at one layer)"), ("@intervention=scale", "the paper's (scale everywhere)")):
        for name, what, kept in (("to_rule", "exceptions (recall prompts) answered with the rule's answer",
                                  "exceptions still answered from memory"),
                                 ("to_memory", "exceptions asked to compute, answered from memory",
                                  "compute prompts (all) answered by the rule")):
            key = f"mechanisms/recipe/{name}"
            if m(key + tag) is not None:
                random = "@" + ",".join(t for t in (tag[1:], "direction=random") if t)
                grid = "α" if not tag else "s"
                cell = (f"layer {fmt_value(m(key + '/layer' + tag), 0)}, "
                        f"{grid} = {fmt_value(m(key + '/alpha' + tag), 2)}")
                rows += [[label, what, cell, fmt_value(m(key + tag)), fmt_value(m(key + random))],
                         [label, kept, cell, fmt_value(m(key + "/kept" + tag)), fmt_value(m(key + "/kept" + random))]]
    if rows:
        parts += [Markup("<h3>Strongest moves between memory and rule (held-out items)</h3>"),
                  html_table(["intervention", "share of held-out items", "cell", "fitted direction",
                              "random direction"], rows, numeric=[3, 4])]
    if ablation is not None and len(ablation):
        rows = [[r.set, r.direction, fmt_value(r.accuracy),
                 fmt_value(None if math.isnan(r.alternative_rate) else r.alternative_rate),
                 fmt_value(r.answer_logprob, 2)] for r in ablation.itertuples()]
        parts += [Markup("<h3>Directional ablation on every residual write: embeddings, attention and MLP "
                         "outputs (direction of layer {})</h3>").format(fmt_value(best, 0)),
                  html_table(["set", "ablated", "answer rate", "alternative rate", "answer log p"], rows,
                             numeric=[2, 3, 4])]
    note = ("Probe: stratified k-fold; each item is projected on the direction fitted without its fold; the CI is a "
            "stratified bootstrap over those held-out scores. The best layer is chosen within the fit half; the "
            "causal sweeps use held-out items only.")
    return section_html("Mechanisms: a direction in the residual stream", Markup("\n").join(parts), note=note)


register_section(section_mechanisms, order=6)
