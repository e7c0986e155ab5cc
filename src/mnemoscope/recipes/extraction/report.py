"""Report section of the extraction recipe: by dose, exact vs approximate vs untargeted extraction
with and without the MemFree verbatim filter, the adversarial compression ratio, the provenance
test of a derived and an independent model, forecasting from checkpoints, and the newer
membership attacks.

Draws when the run holds by-dose approximate-memorization keys (``approx/exact/rate@dose=D``) and reads
the ``approx/``, ``untargeted/``, ``acr/``, ``provenance/``, ``forecast/`` and ``mia/`` keys; None otherwise.
The families' own sections (any run that measured them) are ``report/sections/extraction_families.py``.
"""

from __future__ import annotations

import re

import numpy as np
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

FILTERED = ",filter=memfree"
NEW_ATTACKS = ("neighbourhood", "gradnorm", "gradnorm_embed", "recall", "dcpdd", "samia")
ALPHA = 0.01  # the significance level the provenance verdict uses


def _doses(run: RunData) -> list[int]:
    return sorted({int(m.group(1)) for k in run.metrics for m in [re.fullmatch(r"approx/exact/rate@dose=(\d+)", k)] if m})


def _figure(run: RunData, doses: list[int]):
    fig = plots.new_figure(11, 3.2)
    ax1, ax2 = fig.subplots(1, 2)
    x = np.arange(len(doses))
    for i, (key, label) in enumerate((("approx/exact/rate", "exact"), ("approx/memorized/rate", "BLEU ≥ 0.75"),
                                      ("approx/edit_similarity/mean", "edit similarity"))):
        for tag, style in (("", "-"), (FILTERED, "--")):
            y = [run.metric(f"{key}@dose={d}{tag}") for d in doses]
            ax1.plot(x, [np.nan if v is None else v for v in y], style, marker="o", color=plots.PALETTE[i],
                     label=f"{label}{' (MemFree)' if tag else ''}")
    ax1.set_xticks(x, [str(d) for d in doses])
    ax1.set_xlabel("dose (training repetitions)")
    ax1.set_ylabel("rate / mean")
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend(fontsize=7)
    trained = [d for d in doses if d > 0]
    for tag, style, label in (("", "-", "no filter"), (FILTERED, "--", "MemFree")):
        y = [run.metric(f"untargeted/spans/unique@source=dose{d}{tag}") for d in trained]
        ax2.plot(np.arange(len(trained)), [np.nan if v is None else v for v in y], style, marker="o",
                 color=plots.PALETTE[3], label=label)
    ax2.set_xticks(np.arange(len(trained)), [str(d) for d in trained])
    ax2.set_xlabel("dose")
    ax2.set_ylabel("unique spans extracted without a prefix")
    ax2.legend(fontsize=8)
    return fig


def section_extraction_lab(run: RunData) -> Markup | None:
    """Exact / approximate / untargeted extraction by dose, ACR, provenance, forecasting, attacks."""
    doses = _doses(run)
    if not doses:
        return None
    m, v = run.metric, fmt_value
    rows = []
    for d in doses:
        g = f"@dose={d}"
        src = f"@source=dose{d}"
        rows.append([str(d), v(m(f"approx/exact/rate{g}")), v(m(f"approx/exact/rate{g}{FILTERED}")),
                     v(m(f"approx/memorized/rate{g}")), v(m(f"approx/memorized/rate{g}{FILTERED}")),
                     v(m(f"approx/edit_similarity/mean{g}")), v(m(f"approx/edit_similarity/mean{g}{FILTERED}")),
                     v(m(f"untargeted/spans/unique{src}"), 0) if d > 0 else "—",
                     v(m(f"untargeted/spans/unique{src}{FILTERED}"), 0) if d > 0 else "—",
                     v(m(f"acr/ratio/mean{g}"), 2), v(m(f"acr/memorized/rate{g}"))])
    rows.append(["background", "—", "—", "—", "—", "—", "—", v(m("untargeted/spans/unique@source=background"), 0),
                 v(m(f"untargeted/spans/unique@source=background{FILTERED}"), 0), "—", "—"])
    table = html_table(["dose", "exact", "exact (MemFree)", "BLEU ≥ 0.75", "BLEU ≥ 0.75 (MemFree)", "edit sim.",
                        "edit sim. (MemFree)", "untargeted spans", "untargeted spans (MemFree)", "ACR", "ACR > 1"],
                       rows, numeric=range(1, 11))
    untargeted = Markup("<p>Untargeted: {} generations ({} greedy, {} sampled) of {} new tokens; {} contain a "
                        "verbatim training span of ≥ {} tokens ({} with MemFree); {} unique spans ({} with MemFree). "
                        "Matching took {} s against {} s of generation.</p>").format(
        v(m("untargeted/generations/n"), 0), v(m("untargeted/generations/n@mode=greedy"), 0),
        v(m("untargeted/generations/n@mode=sampled"), 0), run.config.get("untargeted", {}).get("max_new_tokens", "?"),
        v(m("untargeted/extracted/count"), 0), run.config.get("untargeted", {}).get("min_tokens", "?"),
        v(m("untargeted/extracted/count@filter=memfree"), 0), v(m("untargeted/spans/unique"), 0),
        v(m("untargeted/spans/unique@filter=memfree"), 0), v(m("untargeted/match/seconds"), 2),
        v(m("untargeted/generate/seconds"), 1))
    prov = []
    for suspect, what in (("original", "the original itself"), ("derived", "fine-tuned from the original"),
                          ("independent", "trained from scratch on the same data, another order")):
        p = m(f"provenance/p_value@suspect={suspect}")
        verdict = "—" if p is None else ("derived from the original" if p < ALPHA else "no evidence")
        p2 = m(f"provenance/p_value_two_sided@suspect={suspect}")
        prov.append([suspect, what, v(m(f"provenance/rho@suspect={suspect}"), 4),
                     "—" if p is None else f"{p:.2g}", "—" if p2 is None else f"{p2:.2g}", verdict])
    prov_table = html_table(["suspect", "model", "Spearman ρ", "p-value (one-sided permutation; the verdict's)",
                             "two-sided p (the authors', scipy)", f"verdict (α = {ALPHA})"], prov, numeric=[2, 3, 4])
    fractions = sorted({float(x.group(1)) for k in run.metrics
                        for x in [re.fullmatch(r"forecast/recall@fraction=([0-9.]+)", k)] if x})
    fc = [[f"{f:g}", v(m(f"forecast/memorized/rate@fraction={f:g}")), v(m(f"forecast/precision@fraction={f:g}")),
           v(m(f"forecast/recall@fraction={f:g}"))] for f in fractions]
    fc_table = html_table(["compute fraction", "memorized then", "precision", "recall"], fc, numeric=[1, 2, 3])
    trained = [d for d in doses if d > 0]
    attacks = [a for a in NEW_ATTACKS if any(m(f"mia/{a}/auc@dose={d}") is not None for d in trained)]
    at_rows = [[a] + [v(m(f"mia/{a}/auc@dose={d}")) for d in trained] for a in attacks]
    at_table = html_table(["attack"] + [f"AUC dose {d}" for d in trained], at_rows, numeric=range(1, len(trained) + 1))
    parts = [figure_html(_figure(run, doses), "extraction by dose",
                         "Left: prefix-prompted continuations of each canary's second half — exact match, approximate "
                         "memorization (BLEU ≥ 0.75) and edit similarity, without (solid) and with (dashed) the "
                         "MemFree filter. Right: unique spans of the canaries of each dose emitted without any prefix."),
             table, untargeted,
             Markup("<h3>Provenance (palimpsestic test against the original's training order)</h3>"), prov_table,
             Markup("<h3>Forecasting the final model's memorized canaries from checkpoints</h3>"), fc_table,
             Markup("<h3>Newer membership attacks, each dose against the dose-0 controls</h3>"), at_table]
    note = (f"Forecast: memorized = all {run.config.get('forecast', {}).get('suffix', '?')} greedy tokens after a "
            f"{run.config.get('forecast', {}).get('prefix', '?')}-token prefix correct (Pythia score 1, lab lengths). "
            f"MemFree bans every {run.config.get('filter', {}).get('n', '?')}-gram of the training data at decoding. "
            "ACR: |target| / |shortest prompt found|, GCG warm-started from the canary's first tokens; null = "
            "nothing found within the budget (see notes.json).")
    return section_html("Extraction beyond prefixes", Markup("\n").join(parts), note=note)


register_section(section_extraction_lab, order=6)
