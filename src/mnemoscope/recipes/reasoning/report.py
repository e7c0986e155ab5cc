"""Report section of the reasoning recipe: accuracy on training, perturbed and unseen Knights-and-Knaves
puzzles and LiMem over fine-tuning, and a before/after table with bootstrap intervals.

Reads ``reasoning_curve.parquet`` and the ``reasoning/`` keys of metrics.json; None for other runs.
"""

from __future__ import annotations

import re

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

SERIES = (("acc_train", "training puzzles"), ("acc_perturbed", "perturbed training puzzles"),
          ("acc_unseen", "unseen puzzles"), ("consistency_ratio", "consistency ratio CR"), ("limem", "LiMem"))


def _shares_figure(frame: pd.DataFrame, x: str, series, dashed: tuple[str, ...], xscale: dict, xlabel: str):
    """One line per (column, label) of ``series`` against ``x``, shares in [0, 1]; ``dashed`` columns dashed."""
    fig = plots.new_figure(8, 3.4)
    ax = fig.subplots()
    for i, (col, label) in enumerate(series):
        ax.plot(frame[x], frame[col], "--" if col in dashed else "-", marker="o", markersize=3, label=label,
                color=plots.PALETTE[i % len(plots.PALETTE)])
    ax.set_xscale(**xscale)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of puzzles")
    ax.legend(fontsize=8)
    return fig


def _curve_figure(curve: pd.DataFrame):
    return _shares_figure(curve, "epoch", SERIES, ("consistency_ratio", "limem"),
                          {"value": "symlog", "linthresh": 1}, "epochs of fine-tuning")


def section_reasoning(run: RunData) -> Markup | None:
    """Memorization versus reasoning: accuracies, CR and LiMem over training; before/after table."""
    path = run.run_dir / "reasoning_curve.parquet"
    if not path.is_file():
        return None
    curve = pd.read_parquet(path)
    m = run.metric
    rows = []
    for split in ("train", "perturbed", "unseen"):
        row = [split]
        for phase in ("before", "after"):
            tag = f"@split={split},phase={phase}"
            row.append(fmt_auc(m(f"reasoning/accuracy{tag}"), m(f"reasoning/accuracy/ci_lo{tag}"),
                               m(f"reasoning/accuracy/ci_hi{tag}")))
        row.append(fmt_value(m(f"reasoning/n@split={split},phase=after"), 0))
        rows.append(row)
    for key, label in (("consistency_ratio", "consistency ratio CR"), ("limem", "LiMem = Acc·(1 − CR)")):
        rows.append([label, fmt_value(m(f"reasoning/limem/{key}@phase=before")),
                     fmt_value(m(f"reasoning/limem/{key}@phase=after")), ""])
    people = sorted({int(x.group(1)) for k in run.metrics for x in [re.search(r"people=(\d+)", k)] if x})
    by_people = [[n] + [fmt_value(m(f"reasoning/accuracy@split={s},people={n},phase=after")) for s in ("train", "unseen")]
                 for n in people]
    parts = [figure_html(_curve_figure(curve), "accuracy and LiMem over fine-tuning",
                         "Greedy answers graded by every person's role; perturbed = one local, answer-changing "
                         "edit of each training puzzle. High training accuracy with low CR (high LiMem) is "
                         "memorization; accuracy on unseen puzzles is reasoning."),
             html_table(["split", "before fine-tuning [95% CI]", "after fine-tuning [95% CI]", "puzzles"], rows,
                        numeric=[1, 2, 3]),
             Markup("<h3>After fine-tuning, by number of people</h3>"),
             html_table(["people", "training puzzles", "unseen puzzles"], by_people, numeric=[1, 2])]
    skipped = m("reasoning/limem/n_skipped")
    note = ("Intervals: 95% percentile bootstrap over puzzles."
            + (f" {int(skipped)} training puzzle(s) without an answer-changing perturbation are left out of the "
               "training/perturbed numbers." if skipped else ""))
    return section_html("Memorization versus reasoning (Knights and Knaves)", Markup("\n").join(parts), note=note)


register_section(section_reasoning, order=6)


def _sweep_figure(table: pd.DataFrame):
    series = (("train", "training puzzles"), ("perturbed", "perturbed training puzzles"),
              ("unseen", "unseen puzzles"), ("baseline", "no-reasoning baseline"), ("limem", "LiMem"))
    return _shares_figure(table, "n_train", series, ("baseline", "limem"), {"value": "log"},
                          "training puzzles per number of people")


def section_reasoning_sweep(run: RunData) -> Markup | None:
    """The training-set sweep (``puzzles.sweep``): per size, accuracies after fine-tuning, the no-reasoning
    baseline, the one-sided p of unseen accuracy above it, and LiMem."""
    sizes = sorted({int(x.group(1)) for k in run.metrics for x in [re.search(r"^reasoning/sweep/limem@n_train=(\d+)$", k)]
                    if x})
    if not sizes:
        return None
    m = run.metric
    table = pd.DataFrame([{"n_train": n, **{s: m(f"reasoning/accuracy@split={s},phase=after,n_train={n}")
                                            for s in ("train", "perturbed", "unseen")},
                           "baseline": m(f"reasoning/sweep/baseline@n_train={n}"),
                           "limem": m(f"reasoning/sweep/limem@n_train={n}")} for n in sizes])
    rows = [[n, fmt_value(m(f"reasoning/sweep/epochs@n_train={n}"), 1)]
            + [fmt_value(v) for v in (r.train, r.perturbed, r.unseen, r.baseline)]
            + [fmt_value(m(f"reasoning/sweep/p_value@n_train={n}"), 4), fmt_value(r.limem)]
            for n, r in zip(sizes, table.itertuples())]
    parts = [figure_html(_sweep_figure(table), "accuracy and LiMem by training-set size",
                         "One fresh model per size, the same step budget; the larger sets are nested supersets."),
             html_table(["training puzzles per size", "epochs", "training", "perturbed", "unseen", "baseline",
                         "p (unseen > baseline)", "LiMem"], rows, numeric=list(range(1, 8)))]
    note = ("Baseline: per puzzle, the larger of guessing (2⁻ⁿ) and the share of the most common solution "
            "among the training puzzles of its size; p: exact one-sided test over the evaluated unseen puzzles.")
    return section_html("Training-set sweep (Knights and Knaves)", Markup("\n").join(parts), note=note)


register_section(section_reasoning_sweep, order=6.1)
