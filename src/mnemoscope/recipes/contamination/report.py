"""Report section of ``mnemoscope contamination`` and the contamination lab: each signal's result
(or why it did not run), what each signal can and cannot show, the items that trip more than one
signal, and — in the lab — each signal's detection rate and the order test's power by dose.

Draws when the run has ``contam/`` metrics; None otherwise.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
from markupsafe import Markup

from mnemoscope.report import plots
from mnemoscope.report.html import RunData, figure_html, fmt_value, html_table, register_section, section_html

# signal → (headline key, what it can show, what it cannot show, source)
SIGNALS = {
    "overlap": ("contam/overlap/rate",
                "verbatim copies of the item in the training corpus (lm-eval's 13-gram rule; the longest shared span)",
                "anything without the corpus; paraphrases, translations, or items under 13 words",
                "lm-evaluation-harness decontamination (GPT-3's 13-gram rule)"),
    "membership": ("contam/membership/flagged/rate",
                   "that the model finds the items more likely than a reference set drawn like them (or than "
                   "perturbed copies of each item)",
                   "proof of training: a distribution shift between items and reference, or a fluent item form, "
                   "raises it too; without a reference set there is no AUC",
                   "likelihood attacks (loss, zlib, Min-K%, Min-K%++) of families.membership"),
    "guided": ("contam/guided/rouge_l/diff",
               "that naming the dataset and split makes the model reproduce an item's hidden half",
               "contamination the model cannot recite (seen rarely), or items whose dataset/split is not known",
               "Golchin & Surdeanu 2024, Time Travel in LLMs"),
    "order": ("contam/order/p_value",
              "that the model prefers the benchmark's canonical item order: it saw the benchmark as a file",
              "items seen one by one or shuffled; and it assumes the canonical order carries no content "
              "(e.g. not sorted by topic)",
              "Oren et al. 2024, Proving Test Set Contamination in Black-Box Language Models"),
}


def _notes(run: RunData) -> dict:
    path = run.run_dir / "notes.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _items(run: RunData) -> pd.DataFrame:
    path = run.run_dir / "family_samples" / "contamination.parquet"
    if path.is_file():
        return pd.read_parquet(path)
    return run.samples if run.samples is not None and "flags" in run.samples else pd.DataFrame()


def _signal_table(run: RunData) -> Markup:
    m, v, notes = run.metric, fmt_value, _notes(run)
    rows = []
    for name, (key, can, cannot, source) in SIGNALS.items():
        detail = {
            "overlap": f"13-gram rate {v(m(key))}; longest span mean {v(m('contam/overlap/longest_span/mean'), 1)}, "
                       f"max {v(m('contam/overlap/longest_span/max'), 0)} tokens",
            "membership": f"flagged {v(m(key))}; AUC vs reference (loss) {v(m('contam/mia/loss/auc'))}; blind "
                          f"baseline (no model) AUC {v(m('contam/blind/bow/auc'))}",
            "guided": f"ROUGE-L guided − general {v(m(key))} (p {v(m('contam/guided/p_value'))}); exact guided "
                      f"{v(m('contam/guided/exact/rate@prompt=guided'))} vs general "
                      f"{v(m('contam/guided/exact/rate@prompt=general'))}",
            "order": f"p {v(m(key))} (the paper's t-test {v(m('contam/order/p_value_t'))}); "
                     f"{v(m('contam/order/shards'), 0)} shards × {v(m('contam/order/permutations'), 0)} permutations",
        }[name]
        ran = key in run.metrics and run.metrics[key] is not None
        status = detail if ran else notes.get(key, "not run")
        if not ran and name == "order" and any(k.startswith("contam/order/power@dose=") for k in run.metrics):
            status = "per dose, above: each group planted in canonical order tested alone (power) and together (p)"
        if ran and name == "membership" and m("contam/membership/reference_n") == 0:
            status += " (no reference set: compared with perturbed copies of each item)"
        rows.append([name, status, can, cannot, source])
    return html_table(["signal", "result", "can show", "cannot show", "source"], rows, text=range(5))


def _multi_table(items: pd.DataFrame) -> Markup:
    if items.empty or "flags" not in items:
        return Markup("")
    multi = items[items["flags"] >= 2].sort_values("flags", ascending=False)
    flags = [c for c in items if c.startswith("flag/")]
    if multi.empty:
        return Markup("<p>No item trips more than one signal.</p>")
    rows = [[str(r["id"]), int(r["flags"]), ", ".join(f.split("/")[1] for f in flags if pd.notna(r[f]) and bool(r[f])),
             str(r["text"])[:80]] for _, r in multi.head(25).iterrows()]
    return Markup("<h3>Items tripping more than one signal ({} of {})</h3>").format(len(multi), len(items)) + \
        html_table(["item", "signals", "which", "text"], rows, numeric=[1], text=[3])


def _doses(run: RunData) -> list[int]:
    return sorted({int(x.group(1)) for k in run.metrics for x in [re.fullmatch(r"contam/\w+/detect@dose=(\d+)", k)] if x})


def _lab(run: RunData, doses: list[int]) -> Markup:
    m, v = run.metric, fmt_value
    rows = [[str(d)] + [v(m(f"contam/{s}/detect@dose={d}")) for s in ("overlap", "membership", "guided")] +
            [v(m(f"contam/multi/rate@dose={d}")), v(m(f"contam/order/power@dose={d}")),
             v(m(f"contam/order/p_value@dose={d}")), v(m(f"contam/order/p_value@dose={d},mode=single"))] for d in doses]
    table = html_table(["dose", "overlap", "membership", "guided", "≥ 2 signals", "order power", "order p (groups)",
                        "order p (single items)"], rows, numeric=range(1, 8))
    fig = plots.new_figure(6.5, 3.2)
    ax = fig.subplots()
    x = np.arange(len(doses))
    for i, s in enumerate(("overlap", "membership", "guided")):
        ax.plot(x, [np.nan if m(f"contam/{s}/detect@dose={d}") is None else m(f"contam/{s}/detect@dose={d}")
                    for d in doses], marker="o", color=plots.PALETTE[i], label=s)
    ax.plot(x, [np.nan if m(f"contam/order/power@dose={d}") is None else m(f"contam/order/power@dose={d}")
                for d in doses], "--", marker="s", color=plots.PALETTE[3], label="order test (power)")
    ax.set_xticks(x, [str(d) for d in doses])
    ax.set_xlabel("dose (times planted; 0 = never)")
    ax.set_ylabel("share detected")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    return figure_html(fig, "detection by dose", "Share of items each signal flags, by dose; dose 0 is the "
                       "false-positive rate on never-planted items. Order test: share of item groups (one planted "
                       "document each, canonical order) whose test gives p ≤ 0.05.") + table


def section_contamination(run: RunData) -> Markup | None:
    """Each signal, what it can and cannot show, items tripping more than one; the lab's doses."""
    if run.metric("contam/items/n") is None:
        return None
    doses = _doses(run)
    parts = [_lab(run, doses)] if doses else []
    parts += [_signal_table(run), _multi_table(_items(run))]
    note = (f"{v if (v := fmt_value(run.metric('contam/items/n'), 0)) else '?'} benchmark items. A signal that did not "
            "run says why; absence of a signal is not evidence of a clean benchmark.")
    return section_html("Benchmark contamination", Markup("\n").join(parts), note=note)


register_section(section_contamination, order=6)
