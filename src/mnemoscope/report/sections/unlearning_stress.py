"""Report sections for unlearning under stress (``unlearn/stress.py``): the quantization table, the
knowledge each attack restores, and the benign / in-context relearning curves."""

from __future__ import annotations

import re

import pandas as pd
from markupsafe import Markup

from mnemoscope.report import plots
from mnemoscope.report.html import RunData, figure_html, fmt_value, html_table, register_section, section_html
from mnemoscope.report.sections.unlearning import MARKERS, _models

QUANT_COLUMNS = [("knowmem_forget", "KnowMem F ↓"), ("verbmem_forget", "VerbMem F ↓"), ("knowmem_retain", "KnowMem R ↑"),
                 ("verbmem_retain", "VerbMem R ↑"), ("privleak", "PrivLeak (→0)"), ("weights_changed", "weights changed")]
ROUTE_TITLES = {"benign_retain": "benign: retain text", "benign_background": "benign: background text",
                "in_context": "in context"}


def _modes(run: RunData) -> list[str]:
    modes = []
    for key in run.metrics:
        m = re.fullmatch(r"unlearn/[^/]+/quant@([^/]+)/knowmem_forget", key)
        if m and m.group(1) not in modes:
            modes.append(m.group(1))
    return modes


def _routes(run: RunData) -> list[str]:
    routes = []
    for key in run.metrics:
        m = re.fullmatch(r"unlearn/[^/]+/restored/([^/]+)/knowmem_forget", key)
        if m and m.group(1) not in routes:
            routes.append(m.group(1))
    return sorted(routes, key=lambda r: (not r.startswith("quant@"), not r.startswith("relearn@"), r))


def section_quantization(run: RunData) -> Markup | None:
    """Every model at full precision and after each quantization mode, with the knowledge restored."""
    modes, names = _modes(run), _models(run)
    if not modes:
        return None
    rows = []
    for name in names:
        rows.append([name, "full precision"] + [fmt_value(run.metric(f"unlearn/{name}/{k}"), 2)
                                                 for k, _ in QUANT_COLUMNS[:-1]] + ["", "", ""])
        for mode in modes:
            p = f"unlearn/{name}/quant@{mode}/"
            r = f"unlearn/{name}/restored/quant@{mode}/"
            rows.append(["", mode] + [fmt_value(run.metric(p + k), 2) for k, _ in QUANT_COLUMNS]
                        + [fmt_value(run.metric(r + "knowmem_forget"), 2), fmt_value(run.metric(r + "verbmem_forget"), 2)])
    header = ["model", "weights"] + [c for _, c in QUANT_COLUMNS] + ["restored KnowMem F", "restored VerbMem F"]
    caption = Markup(
        '<p class="caption">Each model evaluated again with the linear layers of its decoder blocks quantized and '
        'dequantized (round to nearest, symmetric; <i>channel</i>: one scale per output row, <i>group</i>: one per '
        'group of input columns; embeddings and output head in full precision), as in Zhang et al. (ICLR 2025). '
        'Weights changed: share of the quantized weights that differ from the quantized original\'s. '
        'Restored = (after − unlearned) / (original − unlearned), on the same metric, against the original at full '
        'precision: 0 nothing came back, 1 all of it; empty where the original and the model score the same.</p>')
    return section_html("Quantization attack", caption + html_table(header, rows, numeric=range(2, len(header))))


def section_restored(run: RunData) -> Markup | None:
    """Knowledge restored (KnowMem on F) by every attack, per model."""
    routes, names = _routes(run), [n for n in _models(run) if n != "original"]
    if not routes:
        return None
    rows = [[n] + [fmt_value(run.metric(f"unlearn/{n}/restored/{r}/knowmem_forget"), 2) for r in routes] for n in names]
    titles = [ROUTE_TITLES.get(r, r) for r in routes]
    caption = Markup(
        '<p class="caption">Share of the KnowMem on F that the method removed and that each attack gives back: '
        'quantization (int<i>b</i>), the relearning attack on some facts of the same people (relearn@facts), '
        'fine-tuning on text without any forget data (benign), and the forgotten people\'s other facts in the prompt '
        '(in context); relearning routes take the peak of their curve. A method that removed the knowledge stays near '
        'the retrained model\'s row.</p>')
    return section_html("Knowledge restored by each attack", caption + html_table(["model"] + titles, rows,
                                                                                  numeric=range(1, len(titles) + 1)))


def section_stress_curves(run: RunData) -> Markup | None:
    """Benign and in-context relearning curves: KnowMem on F per model."""
    path = run.run_dir / "stress_curves.parquet"
    if not path.is_file():
        return None
    c = pd.read_parquet(path)
    if c.empty:
        return None
    routes = list(dict.fromkeys(c["route"]))
    fig = plots.new_figure(5.0 * len(routes), 4.0)
    for j, route in enumerate(routes):
        ax = fig.add_subplot(1, len(routes), j + 1)
        sub = c[c["route"] == route]
        x = "facts" if route == "in_context" else "step"
        for i, (model, g) in enumerate(sub.groupby("model", sort=False)):
            g = g.sort_values(x)
            if model in ("retrain", "original"):
                ax.plot(g[x], g["knowmem"], "-" if model == "retrain" else "--", color="black",
                        linewidth=2.5 if model == "retrain" else 1.5, label=model)
            else:
                ax.plot(g[x], g["knowmem"], MARKERS[i % len(MARKERS)] + "-", ms=4, label=model,
                        color=plots.PALETTE[i % len(plots.PALETTE)])
        ax.set_xlabel("neighbouring facts in the prompt" if x == "facts" else "fine-tuning steps")
        ax.set_ylabel("KnowMem on the forget set")
        ax.set_title(ROUTE_TITLES.get(route, route))
    fig.axes[0].legend(fontsize=7, ncol=2)
    return section_html("Benign and in-context relearning", figure_html(
        fig, "benign and in-context relearning", "Benign: each model fine-tuned (a copy) on text that holds no forget "
        "data; in context: each forget question asked after k other facts of the same person. KnowMem on all forget "
        "questions; the retrained model (thick line) never learned them and sets the floor."))


for _fn in (section_quantization, section_restored, section_stress_curves):
    register_section(_fn)
