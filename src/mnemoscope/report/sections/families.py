"""Report sections for the measurement families of ``mnemoscope audit`` (one per family).

Each section reads flat keys from metrics.json (``extraction/exact/rate@prefix=P``,
``recognition/2afc/accuracy@foil=K``, ``sort/<condition>/accuracy@bin=B``, ...), the family's
notes from ``notes.json`` and, for examples, ``family_samples/<family>.parquet``; it returns None
when the run has none of its keys, so other recipes' reports are unaffected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from markupsafe import Markup

from mnemoscope.report import plots
from mnemoscope.report.html import (
    RunData,
    _natural_key,
    _truncate,
    figure_html,
    fmt_metric,
    fmt_value,
    html_table,
    register_section,
    section_html,
)

EXAMPLES = 5  # example rows shown per generation family
CHANCE = 0.5


# --------------------------------------------------------------------------- helpers


def run_notes(run: RunData) -> dict[str, str]:
    """notes.json as {metric key: reason}; {} when absent or unreadable. Runs written before
    notes were keyed by metric hold {family: [note, ...]}: each note is then keyed by its family."""
    path = Path(run.run_dir) / "notes.json"
    if not path.is_file():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if not isinstance(obj, dict):
        return {}
    out = {}
    for key, value in obj.items():
        if isinstance(value, list):
            out[str(key)] = " · ".join(str(n) for n in value)
        elif isinstance(value, str):
            out[str(key)] = value
    return out


def family_samples(run: RunData, family: str) -> pd.DataFrame | None:
    """``family_samples/<family>.parquet`` or None when absent or unreadable."""
    path = Path(run.run_dir) / "family_samples" / f"{family}.parquet"
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception:  # a broken optional table costs its examples only
        return None


def keys_with(run: RunData, prefix: str) -> list[str]:
    """Metric keys starting with ``prefix``, in natural order."""
    return sorted((k for k in run.metrics if k.startswith(prefix)), key=_natural_key)


def metrics_table(run: RunData, prefixes: Sequence[str]) -> Markup | None:
    """Two columns (metric, value) for every key under ``prefixes``; None when none has a value
    (a family that computed nothing has its reasons in the notes section)."""
    keys = [k for p in prefixes for k in keys_with(run, p)]
    if all(run.metric(k) is None for k in keys):
        return None
    rows = [[k, fmt_metric(k, run.metric(k), 3)] for k in keys]
    return html_table(["metric", "value"], rows, numeric=[1])


def grouped(run: RunData, name: str, group: str) -> dict[str, float | None]:
    """{label: value} of the keys ``{name}@{group}=<label>`` (natural order of labels)."""
    pattern = re.compile(re.escape(f"{name}@{group}=") + r"(.+)")
    found = {}
    for key in sorted(run.metrics, key=_natural_key):
        m = pattern.fullmatch(key)
        if m:
            found[m.group(1)] = run.metric(key)
    return found


def _notes_of(run: RunData, prefixes: Sequence[str]) -> str | None:
    """The notes whose key starts with one of ``prefixes``, joined."""
    found = [reason for key, reason in run_notes(run).items() if key.startswith(tuple(prefixes))]
    return " · ".join(dict.fromkeys(found)) if found else None


def _cell(value: object, chars: int) -> str:
    if isinstance(value, str):
        return _truncate(value, chars)
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (int, float, np.number)):
        return fmt_value(float(value), 2)
    return str(value)


def _examples(frame: pd.DataFrame | None, columns: Sequence[str], chars: int = 80, *,
              by: str | None = None, high: str | None = None, low: str | None = None) -> Markup | None:
    """Example rows of a per-sample frame, text columns truncated: with ``by``, the items at both
    ends of that score (so the contrast is visible), else the first rows."""
    if frame is None or frame.empty:
        return None
    cols = [c for c in columns if c in frame.columns]
    if not cols:
        return None
    text = [i for i, c in enumerate(cols) if frame[c].dtype == object]

    def table(part: pd.DataFrame) -> Markup:
        return html_table(cols, [[_cell(r[c], chars) for c in cols] for _, r in part.iterrows()], text=text)

    if by is None or by not in frame.columns or len(frame) <= EXAMPLES:
        return table(frame.head(EXAMPLES))
    ranked = frame.assign(_by=pd.to_numeric(frame[by], errors="coerce")).dropna(subset=["_by"])
    ranked = ranked.sort_values("_by", ascending=False, kind="mergesort")
    k = min(3, len(ranked) // 2)
    return Markup("\n").join([Markup("<h4>{}</h4>").format(high or f"highest {by}"), table(ranked.head(k)),
                              Markup("<h4>{}</h4>").format(low or f"lowest {by}"), table(ranked.tail(k).iloc[::-1])])


def _with_examples(title: str, parts: list, examples: Markup | None, note: str | None,
                   caption: str | None = None) -> Markup:
    if caption:
        parts = [Markup('<p class="caption">{}</p>').format(caption)] + parts
    if examples is not None:
        parts += [Markup("<h3>Examples</h3>"), examples]
    return section_html(title, Markup("\n").join(parts), note=note)


def bar_figure(labels: Sequence[str], values: Sequence[float | None], *, ylabel: str, xlabel: str,
               chance: float | None = None, counts: Sequence[float | None] | None = None):
    """Bars of ``values`` per label (0–1 axis), a dashed chance line, and n above each bar."""
    fig = plots.new_figure(max(3.5, 0.9 * len(labels) + 1.5), 3.0)
    ax = fig.add_subplot(1, 1, 1)
    y = np.array([np.nan if v is None else v for v in values], dtype=float)
    x = np.arange(len(labels))
    ax.bar(x, np.nan_to_num(y), color=plots.PALETTE[0])
    if chance is not None:  # labelled on the line itself: a legend box would cover the bars' labels
        ax.axhline(chance, **plots.CHANCE_STYLE)
        ax.text(len(labels) - 0.5, chance + 0.01, "chance", ha="right", va="bottom", fontsize=7, color="0.4")
    if counts is not None:
        for xi, yi, n in zip(x, y, counts):
            if n is not None and np.isfinite(yi):
                ax.text(xi, min(yi, 0.97) + 0.02, f"n={int(n)}", ha="center", fontsize=7)
    ax.set_xticks(x, [str(lbl) for lbl in labels], rotation=20 if len(labels) > 4 else 0)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    return fig


def line_figure(series: dict[str, tuple[Sequence[float], Sequence[float | None]]], *, xlabel: str, ylabel: str,
                chance: float | None = None, log_x: bool = False):
    """One line with markers per series (x, y), 0–1 y axis."""
    fig = plots.new_figure(4.5, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, (x, y)) in enumerate(series.items()):
        yy = np.array([np.nan if v is None else v for v in y], dtype=float)
        ax.plot(np.asarray(x, dtype=float), yy, marker="o", color=plots.PALETTE[i % len(plots.PALETTE)], label=name)
    if chance is not None:
        ax.axhline(chance, **plots.CHANCE_STYLE, label="chance")
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best", fontsize=8)
    return fig


# --------------------------------------------------------------------------- sections


def section_notes(run: RunData) -> Markup | None:
    """Every note from notes.json: what was skipped or not computed, and why."""
    rows = [[key, reason] for key, reason in run_notes(run).items()]
    if not rows:
        return None
    return section_html("Notes: skipped and not computed", html_table(["metric", "note"], rows, text=[0, 1]),
                        note="A value that could not be computed is null in metrics.json, never guessed.")


def section_extraction(run: RunData) -> Markup | None:
    """k-extractable rate against prefix length (Carlini et al. 2023) and the Pythia memorization score."""
    rates = grouped(run, "extraction/exact/rate", "prefix")
    pythia = keys_with(run, "extraction/pythia/")
    if not rates and not pythia:
        return None
    parts = []
    if rates:
        prefixes = list(rates)
        rows = [[p, fmt_value(run.metric(f"extraction/exact/n@prefix={p}"), 0),
                 fmt_value(run.metric(f"extraction/exact/count@prefix={p}"), 0), fmt_value(rates[p])]
                for p in prefixes]
        parts.append(html_table(["prefix tokens", "texts", "extracted", "rate"], rows, numeric=[0, 1, 2, 3]))
        if len(prefixes) > 1:
            fig = line_figure({"exact extraction": ([float(p) for p in prefixes], list(rates.values()))},
                              xlabel="prefix length (tokens, log scale)", ylabel="k-extractable rate", log_x=True)
            parts.append(figure_html(fig, "k-extractable rate against prefix length",
                                     "Share of texts whose greedy continuation of the prefix equals the true "
                                     "suffix on every token."))
    if pythia and metrics_table(run, ["extraction/pythia/"]) is not None:
        parts.append(Markup("<h3>Pythia memorization score</h3>"))
        parts.append(metrics_table(run, ["extraction/pythia/"]))
    ex = _examples(family_samples(run, "extraction"), ["id", "prefix_tokens", "memorization", "generated"],
                   by="memorization")
    return _with_examples("Extraction by prefix length", parts, ex,
                          _notes_of(run, ("extraction/exact/rate@prefix", "extraction/pythia")))


def section_verbmem(run: RunData) -> Markup | None:
    """MUSE VerbMem: ROUGE-L F1 ×100 of greedy continuations, with a few examples."""
    table = metrics_table(run, ["verbmem/"])
    if table is None:
        return None
    ex = _examples(family_samples(run, "verbmem"), ["id", "reference", "generated", "verbmem"], by="verbmem")
    return _with_examples("VerbMem (verbatim continuation)", [table], ex, _notes_of(run, ("verbmem/",)),
                          "ROUGE-L F1 of the greedy continuation against the true one, ×100 (0–100).")


def section_knowmem(run: RunData) -> Markup | None:
    """MUSE KnowMem: few-shot QA, ROUGE-L F1 ×100 of the cut answer."""
    table = metrics_table(run, ["knowmem/"])
    if table is None:
        return None
    ex = _examples(family_samples(run, "knowmem"), ["id", "question", "answer", "prediction", "knowmem"], by="knowmem")
    return _with_examples("KnowMem (question answering)", [table], ex, _notes_of(run, ("knowmem/",)),
                          "ROUGE-L F1 of the cut greedy answer against the true answer, ×100 (0–100).")


def section_tofu(run: RunData) -> Markup | None:
    """TOFU: answer probability, ROUGE-L recall and the truth-ratio summary."""
    table = metrics_table(run, ["tofu/"])
    if table is None:
        return None
    ex = _examples(family_samples(run, "tofu"), ["id", "question", "answer", "generated", "probability",
                                                 "truth_ratio"], by="probability")
    return _with_examples("TOFU", [table], ex, _notes_of(run, ("tofu/",)),
                          "Probability and ROUGE-L recall on 0–1; truth-ratio summary as TOFU reports it "
                          "(forget set: mean min(TR, 1/TR); otherwise mean max(0, 1 − TR)).")


def section_target(run: RunData) -> Markup | None:
    """Target log-probability (Chang et al.): mean NLL of the target span, overall and by group."""
    table = metrics_table(run, ["target/"])
    if table is None:
        return None
    ex = _examples(family_samples(run, "target"), ["id", "prefix", "target", "target_nll"], by="target_nll",
                   high="least likely targets (highest target_nll)", low="most likely targets (lowest target_nll)")
    return _with_examples("Target log-probability", [table], ex, _notes_of(run, ("target/",)),
                          "Mean NLL of the target's tokens given its prefix (nats; lower = better known).")


def section_recognition(run: RunData) -> Markup | None:
    """2AFC accuracy overall and by foil kind, against the 0.5 chance line."""
    overall = run.metric("recognition/2afc/accuracy")
    if overall is None:
        return None
    by_kind = grouped(run, "recognition/2afc/accuracy", "foil")
    counts = grouped(run, "recognition/2afc/n", "foil")
    labels = ["all"] + list(by_kind)
    values = [overall] + list(by_kind.values())
    ns = [run.metric("recognition/2afc/n")] + [counts.get(k) for k in by_kind]
    rows = [[lbl, fmt_value(n, 0), fmt_value(v)] for lbl, n, v in zip(labels, ns, values)]
    fig = bar_figure(labels, values, ylabel="2AFC accuracy", xlabel="foil kind", chance=CHANCE, counts=ns)
    parts = [html_table(["foil kind", "pairs", "accuracy"], rows, numeric=[1, 2]),
             figure_html(fig, "2AFC accuracy by foil kind",
                         "Correct when the model gives the studied text a lower NLL than its foil; dashed = chance.")]
    frame = family_samples(run, "recognition")
    if frame is not None and {"nll_seen", "nll_foil"} <= set(frame.columns):
        frame = frame.assign(margin=frame["nll_foil"] - frame["nll_seen"])
    ex = _examples(frame, ["kind", "seen", "foil", "nll_seen", "nll_foil", "margin"], by="margin",
                   high="clearest recognitions (largest margin = NLL(foil) − NLL(seen))",
                   low="clearest misses (smallest margin)")
    return _with_examples("Recognition (two-alternative forced choice)", parts, ex, _notes_of(run, ("recognition/",)))


def section_recall(run: RunData) -> Markup | None:
    """Cued recall: continuation of the second half from the first, scored on the continuation only."""
    table = metrics_table(run, ["recall/"])
    if table is None:
        return None
    ex = _examples(family_samples(run, "recall"), ["id", "true", "generated", "match_rate"], by="match_rate")
    return _with_examples("Recall", [table], ex, _notes_of(run, ("recall/",)),
                          "Continuation of each text's second half from its first, scored on the continuation "
                          "only; rates on 0–1.")


def section_sort(run: RunData) -> Markup | None:
    """SORT accuracy by segment-distance bin for each condition, against the 0.5 chance line."""
    conditions = [c for c in ("short_term", "long_term") if run.metric(f"sort/{c}/accuracy") is not None]
    if not conditions:
        return None
    rows, series = [], {}
    for c in conditions:
        rows.append([c, "all", fmt_value(run.metric(f"sort/{c}/n"), 0), fmt_value(run.metric(f"sort/{c}/accuracy")),
                     fmt_value(run.metric(f"sort/{c}/pair_accuracy")), fmt_value(run.metric(f"sort/{c}/chose_a_rate"))])
        bins = grouped(run, f"sort/{c}/accuracy", "bin")
        ns = grouped(run, f"sort/{c}/n", "bin")
        for b, v in bins.items():
            rows.append([c, b, fmt_value(ns.get(b), 0), fmt_value(v), "", ""])
        series[c.replace("_", "-")] = (list(bins), list(bins.values()))
    parts = [html_table(["condition", "distance bin (words)", "records", "accuracy", "pair accuracy",
                         "chose A"], rows, numeric=[2, 3, 4, 5])]
    labels = list(dict.fromkeys(b for x, _ in series.values() for b in x))
    if labels:
        fig = plots.new_figure(4.5, 3.0)
        ax = fig.add_subplot(1, 1, 1)
        for i, (name, (x, y)) in enumerate(series.items()):
            pos = [labels.index(b) for b in x]
            ax.plot(pos, [np.nan if v is None else v for v in y], marker="o", label=name,
                    color=plots.PALETTE[i % len(plots.PALETTE)])
        ax.axhline(CHANCE, **plots.CHANCE_STYLE, label="chance")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlabel("words between the segments")
        ax.set_ylabel("SORT accuracy")
        ax.legend(loc="best", fontsize=8)
        parts.append(figure_html(fig, "SORT accuracy by distance bin",
                                 "Which segment came first; counterbalanced A/B order; dashed = chance. Pair "
                                 "accuracy counts a pair right only when both orders are answered right."))
    return section_html("Sequence order recall (SORT)", Markup("\n").join(parts), note=_notes_of(run, ("sort/",)))


def section_reasoning(run: RunData) -> Markup | None:
    """Knights-and-Knaves accuracy (by number of people) and LiMem = Acc · (1 − CR)."""
    table = metrics_table(run, ["reasoning/kk/", "reasoning/limem/"])
    if table is None:
        return None
    return section_html("Knights and Knaves: memorization vs reasoning", table,
                        note=_notes_of(run, ("reasoning/",)))


for _section in (section_extraction, section_verbmem, section_knowmem, section_tofu, section_target,
                 section_recognition, section_recall, section_sort, section_reasoning, section_notes):
    register_section(_section)
