"""Report sections for membership inference and extraction by dose: the quickstart's and the
audit's membership family (``samples.parquet`` with ``score/<attack>`` columns and a ``label``
or ``dose`` column; ``mia/<attack>/...`` and ``extraction/...@dose=D`` metrics).

Each section returns None when the run has none of its data.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from markupsafe import Markup

from mnemoscope.metrics.blind import BASELINES, verdict
from mnemoscope.metrics.roc import roc_auc, roc_curve_points
from mnemoscope.report import plots
from mnemoscope.report.html import (
    DASH,
    GENERATED_CHARS,
    N_EXTREME,
    TEXT_CHARS,
    RunData,
    _fpr_label,
    _truncate,
    figure_html,
    fmt_auc,
    fmt_tpr,
    fmt_value,
    html_table,
    register_section,
    section_html,
)


def run_attacks(run: RunData) -> list[str]:
    """Attack names: the ``score/<attack>`` columns of samples, then any other
    ``mia/<attack>/auc`` in metrics, in order of appearance."""
    found = [c.split("/", 1)[1] for c in run.samples.columns if str(c).startswith("score/")]
    for key in run.metrics:
        m = re.fullmatch(r"mia/([^/@]+)/auc", key)
        if m and m.group(1) not in found:
            found.append(m.group(1))
    return found


def run_doses(run: RunData) -> list[int] | None:
    """Sorted distinct doses from the ``dose`` column, or None when there is none (audit runs)."""
    if "dose" not in run.samples.columns:
        return None
    values = pd.to_numeric(run.samples["dose"], errors="coerce").dropna().unique()
    return sorted(int(v) if float(v).is_integer() else float(v) for v in values)


def run_labels(run: RunData) -> np.ndarray | None:
    """Membership labels (1 member, 0 non-member): the ``label`` column, else ``dose > 0``."""
    if "label" in run.samples.columns:
        return pd.to_numeric(run.samples["label"], errors="coerce").to_numpy(dtype=np.float64)
    if "dose" in run.samples.columns:
        return (pd.to_numeric(run.samples["dose"], errors="coerce") > 0).to_numpy(dtype=np.float64)
    return None


def run_fprs(run: RunData) -> list[float]:
    """The FPRs at which TPR was reported (``mia/<attack>/tpr@fpr=F`` keys), ascending."""
    found = set()
    for key in run.metrics:
        m = re.fullmatch(r"mia/[^/@]+/tpr@fpr=([0-9.eE+-]+)(?:/underpowered)?", key)
        if m:
            try:
                found.add(float(m.group(1)))
            except ValueError:
                continue
    return sorted(found)


def blind_rows(run: RunData) -> list[tuple[str, str]]:
    """(metric prefix, row label) of the blind baselines the run computed, in ``BASELINES`` order."""
    return [(f"blind/{name}", f"blind baseline: {title} (no model)") for name, title in BASELINES.items()
            if run.metric(f"blind/{name}/auc") is not None]


def _membership_table(run: RunData, attacks: list[str]) -> Markup:
    """One row per attack, opened by the blind baselines (what the sets say without the model)."""
    fprs = run_fprs(run)
    columns = ["attack", "ROC-AUC [95% CI]"] + [f"TPR @ FPR {_fpr_label(f)}" for f in fprs]
    rows, classes = [], []
    for prefix, label in blind_rows(run) + [(f"mia/{a}", a) for a in attacks]:
        row: list[object] = [label, fmt_auc(run.metric(f"{prefix}/auc"), run.metric(f"{prefix}/auc/ci_lo"),
                                            run.metric(f"{prefix}/auc/ci_hi"))]
        for f in fprs:
            key = f"{prefix}/tpr@fpr={f:g}"
            row.append(fmt_tpr(run.metric(key), run.flagged(f"{key}/underpowered"), f))
        rows.append(row)
        classes.append("blind" if prefix.startswith("blind/") else "")
    return html_table(columns, rows, numeric=range(1, len(columns)), row_classes=classes)


def blind_verdict_html(run: RunData) -> Markup:
    """The blind baseline's verdict as a paragraph (a warning when the attack AUCs cannot be read
    as membership), or nothing."""
    said = verdict(run.metrics)
    if not said:
        return Markup("")
    kind = "error" if said.startswith("WARNING") else "caption"
    return Markup('<p class="{}"><strong>{}</strong></p>').format(kind, said)


def _dose_table(run: RunData, doses: list, attacks: list[str]) -> Markup:
    columns = ["dose", "n", "exact extraction rate", "memorization (mean)", "mean NLL"]
    columns += [f"AUC {a} [95% CI]" for a in attacks]
    counts = pd.to_numeric(run.samples["dose"], errors="coerce").value_counts()
    rows, classes = [], []
    for d in doses:
        row: list[object] = [f"{d} (control)" if d == 0 else d, int(counts.get(d, 0))]
        row += [fmt_value(run.metric(name, d)) for name in
                ("extraction/exact/rate", "extraction/memorization/mean", "mia/loss/mean_nll")]
        for a in attacks:
            if d == 0:
                row.append(Markup('<span class="muted">control</span>'))
            else:
                row.append(fmt_auc(run.metric(f"mia/{a}/auc", d), run.metric(f"mia/{a}/auc/ci_lo", d),
                                   run.metric(f"mia/{a}/auc/ci_hi", d)))
        rows.append(row)
        classes.append("")
    overall = [run.metric(f"mia/{a}/auc") for a in attacks]
    if any(v is not None for v in overall):
        n_members = int(sum(counts.get(d, 0) for d in doses if d != 0))
        row = ["all doses > 0", n_members, "", "", ""]
        row += [fmt_auc(run.metric(f"mia/{a}/auc"), run.metric(f"mia/{a}/auc/ci_lo"), run.metric(f"mia/{a}/auc/ci_hi"))
                for a in attacks]
        rows.append(row)
        classes.append("total")
    return html_table(columns, rows, numeric=range(1, len(columns)), row_classes=classes)


def section_summary(run: RunData) -> Markup | None:
    """By dose: n, extraction, NLL and AUC vs controls; then per attack: AUC [CI] and TPR at low
    FPR for all members vs non-members, with "underpowered" where the negatives are too few."""
    attacks = [a for a in run_attacks(run) if run.metric(f"mia/{a}/auc") is not None
               or any(run.metric(f"mia/{a}/auc", d) is not None for d in (run_doses(run) or []))]
    doses = run_doses(run)
    parts = []
    if doses:
        parts.append(Markup('<h3>By dose</h3><p class="caption">Each dose\'s texts against the dose-0 controls '
                            '(higher AUC = the model tells them apart; 0.5 = chance). Extraction: greedy '
                            'continuation of a prefix matches the true suffix.</p>'))
        parts.append(_dose_table(run, doses, attacks))
    if attacks:
        n_pos = run.metric(f"mia/{attacks[0]}/n_members")
        n_neg = run.metric(f"mia/{attacks[0]}/n_nonmembers")
        who = "all members vs controls" if doses else "members vs non-members"
        if n_pos is not None and n_neg is not None:
            who += f" ({int(n_pos):,} vs {int(n_neg):,})"
        parts.append(Markup('<h3>Membership inference</h3><p class="caption">{}; score oriented so that higher = '
                            'member. TPR at an FPR below 1/(number of non-members) cannot be measured and is '
                            'marked underpowered. The first rows are blind baselines: classifiers that never see '
                            'the model (cross-validated), so an attack is worth reading only above them.</p>'
                            ).format(who))
        parts.append(blind_verdict_html(run))
        parts.append(_membership_table(run, attacks))
    by_set = [(label, run.metric(f"extraction/exact/rate@set={name}"),
               run.metric(f"extraction/memorization/mean@set={name}"))
              for name, label in (("member", "members"), ("nonmember", "non-members"))]
    if any(rate is not None for _, rate, _ in by_set):
        parts.append(Markup('<h3>Extraction</h3><p class="caption">Greedy continuation of each text\'s first half: '
                            'exact = every token of the true second half (up to 32 tokens) reproduced; '
                            'memorization = share of those tokens reproduced.</p>'))
        parts.append(html_table(["set", "exact extraction rate", "memorization (mean)"],
                                [[label, fmt_value(rate), fmt_value(mem)] for label, rate, mem in by_set],
                                numeric=[1, 2]))
    if not parts:
        return None
    return section_html("Summary", Markup("\n").join(parts))


def section_dose_response(run: RunData) -> Markup | None:
    """Extraction rates, AUC per attack (95% CI bars, chance 0.5) and mean NLL against dose."""
    doses = run_doses(run)
    if not doses:
        return None
    extraction = {
        "exact extraction rate": [run.metric("extraction/exact/rate", d) for d in doses],
        "memorization (mean)": [run.metric("extraction/memorization/mean", d) for d in doses],
    }
    stats = ("auc", "auc/ci_lo", "auc/ci_hi")
    auc = {  # attack → (auc, ci_lo, ci_hi) per dose; dose 0 holds the controls themselves
        a: tuple([None if d == 0 else run.metric(f"mia/{a}/{s}", d) for d in doses] for s in stats)
        for a in run_attacks(run)
    }
    nll = [run.metric("mia/loss/mean_nll", d) for d in doses]
    fig = plots.dose_response_figure(doses, extraction=extraction, auc=auc, nll=nll,
                                     colors=plots.attack_colors(run_attacks(run)))
    if fig is None:
        return None
    return section_html(
        "Dose–response",
        figure_html(fig, "dose-response plots",
                    "Dose axis is categorical (doses evenly spaced). AUC compares each dose with the "
                    "dose-0 controls; bars are 95% bootstrap CIs; dashed line = chance."),
    )


def section_roc(run: RunData) -> Markup | None:
    """ROC curves of every attack, all members vs non-members (controls), linear and log-log."""
    labels = run_labels(run)
    if labels is None:
        return None
    curves, legend, skipped = {}, {}, []
    for a in run_attacks(run):
        col = f"score/{a}"
        if col not in run.samples.columns:
            continue
        scores = pd.to_numeric(run.samples[col], errors="coerce").to_numpy(dtype=np.float64)
        keep = np.isfinite(scores) & np.isin(labels, (0, 1))
        y, s = labels[keep].astype(int), scores[keep]
        if min(int(y.sum()), int((1 - y).sum())) < 2:
            skipped.append(a)
            continue
        curves[a] = roc_curve_points(y, s)
        auc = run.metric(f"mia/{a}/auc")
        legend[a] = f"{a} (AUC {auc if auc is not None else roc_auc(y, s):.3f})"
    if not curves:
        return None
    fig = plots.roc_figure(curves, labels=legend, colors=plots.attack_colors(run_attacks(run)))
    note = f"skipped (fewer than 2 members or non-members with a score): {', '.join(skipped)}" if skipped else None
    return section_html(
        "ROC curves",
        figure_html(fig, "ROC curves", "All members vs all non-members (controls). Left: linear axes; right: "
                    "log-log axes, where the low-FPR regime is visible. Dashed diagonal = chance."),
        note=note,
    )


def _ranking_attack(run: RunData) -> str | None:
    """The attack with the highest overall AUC (first one on ties or when no AUC is known)."""
    present = [a for a in run_attacks(run) if f"score/{a}" in run.samples.columns]
    if not present:
        return None
    return max(present, key=lambda a: (run.metric(f"mia/{a}/auc") or -1.0, -present.index(a)))


def section_samples(run: RunData) -> Markup | None:
    """The few highest- and lowest-scoring texts under the best attack, escaped and truncated."""
    attack = _ranking_attack(run)
    if attack is None or "text" not in run.samples.columns:
        return None
    col = f"score/{attack}"
    frame = run.samples.assign(_score=pd.to_numeric(run.samples[col], errors="coerce"))
    frame = frame[np.isfinite(frame["_score"])].sort_values("_score", ascending=False, kind="mergesort")
    if frame.empty:
        return None
    k = min(N_EXTREME, len(frame))
    top = frame.iloc[:k]
    bottom = frame.iloc[max(k, len(frame) - N_EXTREME):].iloc[::-1]  # lowest first, never repeating top rows
    spec = [("id", "id", None), ("kind", "kind", None), ("dose", "dose", None), ("label", "label", None),
            ("_score", f"score ({attack})", 3), ("nll", "NLL", 3), ("extraction/exact", "extracted", None),
            ("extraction/memorization", "memorization", 2), ("text", "text", TEXT_CHARS),
            ("generated", "greedy continuation", GENERATED_CHARS)]
    spec = [s for s in spec if s[0] in frame.columns]
    columns = [s[1] for s in spec]
    numeric = [i for i, s in enumerate(spec) if s[0] in ("_score", "nll", "extraction/memorization", "dose", "label")]
    text = [i for i, s in enumerate(spec) if s[0] in ("text", "generated")]

    def rows(part: pd.DataFrame) -> list[list[object]]:
        out = []
        for _, r in part.iterrows():
            row = []
            for name, _, arg in spec:
                v = r[name]
                if name in ("text", "generated"):
                    row.append(_truncate(v, arg))
                elif name == "extraction/exact":
                    row.append(DASH if pd.isna(v) else ("yes" if float(v) >= 1 else "no"))
                elif arg is not None:
                    row.append(fmt_value(None if pd.isna(v) else float(v), arg))
                else:
                    row.append(DASH if pd.isna(v) else v)
            out.append(row)
        return out

    parts = [Markup("<h3>Highest {} scores (most member-like)</h3>").format(attack),
             html_table(columns, rows(top), numeric=numeric, text=text)]
    if len(bottom):
        parts += [Markup("<h3>Lowest {} scores (least member-like)</h3>").format(attack),
                  html_table(columns, rows(bottom), numeric=numeric, text=text)]
    note = f"{len(frame):,} scored texts ranked by {col}, the attack with the highest AUC; texts are truncated."
    return section_html("Samples", Markup("\n").join(parts), note=note)


# Order on the page: right after the run overview (10–12), and the samples after the training curve.
register_section(section_summary, order=10)
register_section(section_dose_response, order=11)
register_section(section_roc, order=12)
register_section(section_samples, order=25)
