"""Report sections of the extraction families beyond prefixes, one per family, drawn whenever the
run holds the family's own keys (``mnemoscope audit`` with their data, or any recipe that runs
them): adversarial compression (``acr/``), approximate memorization (``approx/``), untargeted
extraction (``untargeted/``), palimpsestic provenance (``provenance/``) and forecasting
(``forecast/``). Each shows its contrast — memorised vs not, with vs without the verbatim filter,
the suspect's ρ against the null, the earlier model against the final one — and a few examples.
The extraction recipe's by-dose overview is ``recipes/extraction/report.py``.
"""

from __future__ import annotations

from markupsafe import Markup

from mnemoscope.report.html import RunData, figure_html, fmt_value, html_table, register_section
from mnemoscope.report.sections.families import (
    _examples,
    _notes_of,
    _with_examples,
    bar_figure,
    family_samples,
    grouped,
    metrics_table,
)
ALPHA = 0.01  # the significance level the provenance verdict uses (as the extraction recipe's)


def _plain(run: RunData, key: str) -> float | None:
    """An ungrouped key's value (None when absent): the audit's own numbers, not a recipe's by-dose ones."""
    return run.metric(key)


def section_acr(run: RunData) -> Markup | None:
    """Adversarial compression ratio: |target| / |shortest prompt found|; memorised iff ACR > 1."""
    if _plain(run, "acr/n") is None:
        return None
    table = metrics_table(run, ["acr/n", "acr/found/rate", "acr/memorized/rate", "acr/ratio/mean",
                                "acr/budget_exhausted/count"])
    frame = family_samples(run, "acr")
    parts = [table] if table is not None else []
    if frame is not None and not frame.empty and "memorized" in frame:
        memorised = int((frame["memorized"] > 0).sum())
        parts.append(Markup("<p>{} of {} targets compress: a prompt shorter than the target makes the model emit "
                            "it exactly (ACR &gt; 1); {} do not.</p>").format(memorised, len(frame),
                                                                              len(frame) - memorised))
    ex = _examples(frame, ["id", "target_tokens", "prompt_tokens", "acr", "status", "prompt"], by="acr",
                   high="most compressible", low="least compressible")
    return _with_examples("Adversarial compression (ACR)", parts, ex, _notes_of(run, ("acr/",)),
                          "Schwarzschild et al. 2024: the shortest prompt found by GCG under a budget; "
                          "null = none found within it (notes say which).")


def section_approximate(run: RunData) -> Markup | None:
    """Exact match vs approximate memorization (BLEU ≥ threshold) vs edit similarity, with and
    without the MemFree filter when it ran."""
    if _plain(run, "approx/exact/rate") is None:
        return None
    filtered = {name: run.metric(f"approx/{name}@filter=memfree") for name in ("exact/rate", "memorized/rate",
                                                                               "edit_similarity/mean")}
    rows = [[label, fmt_value(run.metric(f"approx/{name}")), fmt_value(filtered[name])]
            for name, label in (("exact/rate", "exact match"), ("memorized/rate", "BLEU ≥ threshold"),
                                ("edit_similarity/mean", "edit similarity (mean)"))]
    parts = [html_table(["measure", "no filter", "MemFree filter"], rows, numeric=[1, 2])]
    parts.append(figure_html(
        bar_figure([r[0] for r in rows], [run.metric(f"approx/{n}") for n in filtered], ylabel="rate / mean",
                   xlabel="continuations of the texts' prefixes"),
        "exact vs approximate memorization",
        "Ippolito et al. 2023: a continuation can miss the exact suffix yet be nearly verbatim."))
    ex = _examples(family_samples(run, "approximate"), ["id", "filter", "exact", "bleu", "edit_similarity",
                                                        "generated"], by="bleu")
    return _with_examples("Approximate memorization", parts, ex, _notes_of(run, ("approx/",)))


def section_untargeted(run: RunData) -> Markup | None:
    """Share of generations without a prefix that contain a long verbatim training span."""
    if _plain(run, "untargeted/extracted/rate") is None:
        return None
    rows = [[label, fmt_value(run.metric(f"untargeted/{name}"), digits),
             fmt_value(run.metric(f"untargeted/{name}@filter=memfree"), digits)]
            for name, label, digits in (("generations/n", "generations", 0), ("extracted/count", "with a span", 0),
                                        ("extracted/rate", "share with a span", 3),
                                        ("spans/unique", "unique spans", 0))]
    parts = [html_table(["", "no filter", "MemFree filter"], rows, numeric=[1, 2])]
    by_mode = grouped(run, "untargeted/extracted/rate", "mode")
    if by_mode:
        parts.append(html_table(["decoding", "share with a span"],
                                [[k, fmt_value(v)] for k, v in by_mode.items()], numeric=[1]))
    ex = _examples(family_samples(run, "untargeted"), ["generation", "mode", "filter", "tokens", "doc_id", "text"],
                   by="tokens", high="longest spans", low="shortest spans")
    return _with_examples("Untargeted extraction", parts, ex, _notes_of(run, ("untargeted/",)),
                          "Nasr et al. 2023: generations that contain a span of at least the configured length "
                          "found verbatim in the corpus (n-gram index, every hit verified).")


def section_provenance(run: RunData) -> Markup | None:
    """Spearman ρ between a suspect's per-example log-likelihood and the training order, with its p-value."""
    rho, p = _plain(run, "provenance/rho"), _plain(run, "provenance/p_value")
    if rho is None and p is None:
        return None
    verdict = "—" if p is None else ("evidence that the model descends from that training run" if p < ALPHA
                                     else "no evidence at this level")
    parts = [metrics_table(run, ["provenance/"]),
             Markup("<p>Verdict at α = {}: <strong>{}</strong>. Later-seen examples are remembered better, so a "
                    "model derived from the run shows ρ &gt; 0.</p>").format(ALPHA, verdict)]
    ex = _examples(family_samples(run, "provenance"), ["id", "position", "nll"], by="position",
                   high="seen last", low="seen first")
    return _with_examples("Provenance (palimpsestic test)", [x for x in parts if x is not None], ex,
                          _notes_of(run, ("provenance/",)),
                          "Kuditipudi et al. 2025: the p-value comes from permutations of the order (exact "
                          "under the null).")


def section_forecast(run: RunData) -> Markup | None:
    """Which of the final model's memorised texts an earlier checkpoint or a smaller model predicts."""
    if _plain(run, "forecast/n") is None:
        return None
    fractions = grouped(run, "forecast/memorized/rate", "fraction")
    rows = [[f, fmt_value(rate), fmt_value(run.metric(f"forecast/precision@fraction={f}")),
             fmt_value(run.metric(f"forecast/recall@fraction={f}"))] for f, rate in fractions.items()]
    parts = [metrics_table(run, ["forecast/n", "forecast/memorized/rate"])]
    if rows:
        parts.append(html_table(["compute fraction", "memorized then", "precision", "recall"], rows,
                                numeric=[0, 1, 2, 3]))
    ex = _examples(family_samples(run, "forecast"), ["id", "memorized@final"], by="memorized@final")
    return _with_examples("Forecasting memorization", [x for x in parts if x is not None], ex,
                          _notes_of(run, ("forecast/",)),
                          "Biderman et al. 2023: memorized = every greedy token of the suffix correct; precision "
                          "and recall of the earlier model's memorized set against the final model's.")


for _fn in (section_acr, section_approximate, section_untargeted, section_provenance, section_forecast):
    register_section(_fn)
