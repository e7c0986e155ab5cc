"""Report sections for unlearning runs: six-way table (PrivLeak with its CI), the trade-off frontier
of every method's sweep, the robustness table (membership, extraction, adversarial probes,
relearning, residue), relearning curves, adversarial probes by type, scalability and
sustainability, and what was not computed (with the reason)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
from markupsafe import Markup

from mnemoscope.metrics.blind import BASELINES, verdict
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
from mnemoscope.report.sections.families import run_notes
from mnemoscope.report.sections.lira import section_ulira

SIX = [("verbmem_forget", "VerbMem F ↓"), ("knowmem_forget", "KnowMem F ↓"), ("knowmem_retain", "KnowMem R ↑"),
       ("privleak", "PrivLeak (→0)"), ("mia_auc", "Min-40% AUC F vs H"), ("ppl_holdout", "ppl held-out ↓"),
       ("forget_quality", "forget quality ↑"), ("model_utility", "model utility ↑"), ("stop_step", "stop step")]
# WMDP-style multiple choice (families.multichoice), shown beside KnowMem when the run has it
MC = [("mc_forget/letter/acc", "MC F letter"), ("mc_forget/cloze/acc", "MC F cloze"),
      ("mc_retain/letter/acc", "MC R letter"), ("mc_retain/cloze/acc", "MC R cloze")]
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p", "d")


def _models(run: RunData) -> list[str]:
    names = []
    for key in run.metrics:
        m = re.fullmatch(r"unlearn/([^/]+)/knowmem_forget", key)
        if m and m.group(1) not in names and m.group(1) != "reference":
            names.append(m.group(1))
    first = [n for n in ("original", "retrain") if n in names]
    return first + [n for n in names if n not in first]


def _notes(run: RunData) -> dict:
    """The reference kind and the unlearning notes: what was not computed (key → reason) and what
    happened to each method (its ``steps_run`` note: stopping rule, divergence). Runs written
    before notes.json held them keep an ``unlearn_notes.json``."""
    old = run.run_dir / "unlearn_notes.json"
    if old.is_file():
        return json.loads(old.read_text())
    notes = {k: v for k, v in run_notes(run).items() if k.startswith("unlearn/")}
    return {"reference": run.manifest.get("reference", "retrained"),
            "not_computed": {k: v for k, v in notes.items() if not k.endswith("/steps_run")},
            "events": [f"{k.split('/')[1]}: {v}" for k, v in notes.items() if k.endswith("/steps_run") and v]}


def _cell(run: RunData, name: str, key: str, digits: int = 2) -> str:
    value = fmt_value(run.metric(f"unlearn/{name}/{key}"), digits)
    if key in ("privleak", "mia_auc"):
        lo, hi = run.metric(f"unlearn/{name}/{key}/ci_lo"), run.metric(f"unlearn/{name}/{key}/ci_hi")
        if lo is not None and hi is not None:
            digits = 1 if key == "privleak" else 2
            value += f" [{fmt_value(lo, digits)}, {fmt_value(hi, digits)}]"
    return value


def _table(run: RunData, names: list[str], columns) -> Markup:
    rows = [[n] + [_cell(run, n, k) for k, _ in columns] for n in names]
    return html_table(["model"] + [c for _, c in columns], rows, numeric=range(1, len(columns) + 1))


def _facts(run: RunData) -> list[str]:
    return sorted({k.split("@facts=")[1] for k in run.metrics if "/relearn/recovery@facts=" in k}, key=int)


def _blind(run: RunData) -> Markup:
    """The blind baseline on PrivLeak's sets (forget vs holdout texts, no model) and its verdict
    against the original model's forget-vs-holdout AUC."""
    rows = [[title, fmt_auc(*(run.metric(f"blind/{name}/auc{s}") for s in ("", "/ci_lo", "/ci_hi")))]
            for name, title in BASELINES.items() if run.metric(f"blind/{name}/auc") is not None]
    if not rows:
        return Markup("")
    said = verdict(run.metrics, attacks=r"unlearn/(original)/mia_auc")
    note = Markup('<p class="{}">{}</p>').format("error" if said.startswith("WARNING") else "caption", said) \
        if said else Markup('<p class="caption">The blind baseline does not tell the sets apart.</p>')
    return Markup("<h3>Blind baseline: forget vs holdout texts without the model</h3>") + html_table(
        ["blind baseline", "AUC [95% CI]"], rows, numeric=[1]) + note


def section_unlearning(run: RunData) -> Markup | None:
    """Six-way table (MUSE) + TOFU, the sweep's best point, and the reasons for anything not computed."""
    names = _models(run)
    if not names:
        return None
    notes = _notes(run)
    ref = notes.get("reference", "retrained")
    columns = list(SIX)
    if any(run.metric(f"unlearn/{n}/mc_forget/letter/acc") is not None for n in names):
        at = [k for k, _ in columns].index("knowmem_retain") + 1
        columns[at:at] = MC  # letter at chance with cloze and KnowMem high: the letter format broke, not the knowledge
    if any(run.metric(f"unlearn/{n}/best/lr") is not None for n in names):
        columns += [("best/lr", "best lr"), ("best/step", "best step")]
    n_f, n_h = run.metric("data/forget_texts"), run.metric("data/holdout_texts")
    p_f, p_h = run.metric("data/forget_people"), run.metric("data/holdout_people")
    unit = (Markup("over the people ({} forget, {} holdout: a person's texts are alike, so people are the unit)")
            .format(fmt_value(p_f, 0), fmt_value(p_h, 0)) if p_f and p_h else Markup("over the texts"))
    texts = (Markup(" PrivLeak's AUC compares {} forget texts with {} holdout texts; [95% CI] by paired bootstrap "
                    "{}.").format(fmt_value(n_f, 0), fmt_value(n_h, 0), unit) if n_f and n_h else Markup(""))
    parts = [Markup('<p class="caption">Reference: <b>{}</b>. ↓ lower is better, ↑ higher is better; the goal on F is '
                    'the retrained model\'s level, not zero. PrivLeak (MUSE\'s sign) near 0 is good: &lt; 0 under-unlearning '
                    '(a model that was not unlearned scores about −100), &gt; 0 over-unlearning.{} Stop step: first '
                    'evaluation where the stopping rule was met; best lr/step: the sweep point chosen for the '
                    'method (the stop point with the most utility).</p>').format(ref, texts),
             _table(run, names, columns), _blind(run)]
    missing = notes.get("not_computed", {})
    if missing:
        rows = [[k, v] for k, v in sorted(missing.items())]
        parts.append(Markup("<details><summary>{} value(s) not computed</summary>{}</details>").format(
            len(rows), html_table(["metric", "reason"], rows)))
    events = notes.get("events", [])
    if events:
        parts.append(Markup("<ul>{}</ul>").format(Markup("").join(Markup("<li>{}</li>").format(e) for e in events)))
    return section_html("Unlearning", Markup("\n").join(parts))


def section_robustness(run: RunData) -> Markup | None:
    """Is it really gone? Membership, extraction, adversarial probes, relearning and residue, per model."""
    names = _models(run)
    if not names:
        return None
    columns = [("robust/mia/loss/auc", "MIA loss AUC"), ("robust/mia/min_k/auc", "MIA Min-40% AUC"),
               ("robust/extraction/exact_rate", "extraction exact"),
               ("adversarial/question/hit_rate", "probe: question"),
               ("adversarial/forget/any_hit_rate", "probe: any wording ↓"),
               ("adversarial/forget/adversarial_gain", "adversarial gain"),
               ("adversarial/neighbour/hit_rate", "locality: neighbours ↑")]
    columns += [(f"relearn/recovery@facts={f}", f"relearn {f} fact(s): peak recovery") for f in _facts(run)]
    columns += [("residue/accuracy", "residue probe acc."), ("residue/control_accuracy", "probe on unseen people")]
    columns = [(k, c) for k, c in columns if any(run.metric(f"unlearn/{n}/{k}") is not None for n in names)]
    if not columns:
        return None
    caption = Markup(
        '<p class="caption">Compare each row with <b>retrain</b>, the model that never saw F. Probes: share of forget '
        'facts whose answer begins the greedy continuation (any wording: at least one of the seven RWKU-style '
        'probes; adversarial gain: what the adversarial wordings add to the plain question); locality: the same '
        'on neighbours that were not forgotten. Relearning: KnowMem on forget facts that were <i>not</i> relearned, '
        'after fine-tuning on the other facts of the same people: the highest point of the curve minus before (a long '
        'narrow fine-tune also damages untaught facts, so the curve falls again). Residue: accuracy of a linear probe '
        'fitted on the retain people\'s hidden states, reading the forget people\'s attribute (chance ≈ 0.5; '
        'the last column: the same probe on never-trained people).</p>')
    return section_html("Is it really gone?", caption + _table(run, names, columns))


def _frontier(run: RunData) -> pd.DataFrame | None:
    for name in ("unlearn_frontier.parquet", "unlearn_curves.parquet"):
        path = run.run_dir / name
        if path.is_file():
            c = pd.read_parquet(path)
            if len(c) and "knowmem_forget" in c.columns:
                return c
    return None


def section_tradeoff(run: RunData) -> Markup | None:
    """The trade-off frontier: every evaluation point of every method's sweep, each method's
    Pareto frontier and best point, against the retrained and the original model."""
    c = _frontier(run)
    if c is None:
        return None
    panels = [("knowmem_forget", "KnowMem on forget set (↓ forgetting)")]
    if "privleak" in c.columns and c["privleak"].notna().any():
        panels.append(("privleak", "PrivLeak (→ 0)"))
    fig = plots.new_figure(6.0 * len(panels), 5.0)
    axes = [fig.add_subplot(1, len(panels), j + 1) for j in range(len(panels))]
    for i, (method, g) in enumerate(c.groupby("method", sort=False)):
        color, marker = plots.PALETTE[i % len(plots.PALETTE)], MARKERS[i % len(MARKERS)]
        for ax, (x, _) in zip(axes, panels):
            ax.plot(g[x], g["knowmem_retain"], marker, ms=3, alpha=0.3, color=color, linestyle="none")
            if "pareto" in g.columns and x == "knowmem_forget":
                front = g[g["pareto"].fillna(False).astype(bool)].sort_values(x)
                ax.plot(front[x], front["knowmem_retain"], "-", color=color, alpha=0.7, linewidth=1)
            chosen = g[g["best"].fillna(False).astype(bool)] if "best" in g.columns else g.iloc[0:0]
            ax.plot(chosen[x], chosen["knowmem_retain"], marker, ms=9, color=color, markeredgecolor="black",
                    label=method if ax is axes[0] else None)
    for ax, (x, label) in zip(axes, panels):
        for name, style, ms in (("retrain", "*", 15), ("original", "P", 11)):
            rx, ry = run.metric(f"unlearn/{name}/{x}"), run.metric(f"unlearn/{name}/knowmem_retain")
            if rx is not None and ry is not None:
                ax.plot([rx], [ry], style, ms=ms, color="black", label=name if ax is axes[0] else None)
        if x == "privleak":
            ax.axvline(0.0, **plots.CHANCE_STYLE)
        ax.set_xlabel(label)
        ax.set_ylabel("KnowMem on retain set (↑ utility)")
    fig.legend(loc="outside right upper", fontsize=8)
    return section_html("Forgetting / utility trade-off", figure_html(
        fig, "trade-off frontier", "MUSE's trade-off: every evaluation of every sweep run (faint; learning rate × "
        "steps), each method's frontier (line: points no other point of that method beats on both axes) and its "
        "best point (large marker: where the stopping rule chose), against the retrained model (star) and the "
        "original (plus)."))


def section_relearning(run: RunData) -> Markup | None:
    """Relearning curves: KnowMem on untaught forget facts as the attacker fine-tunes on taught ones."""
    path = run.run_dir / "relearn_curves.parquet"
    if not path.is_file():
        return None
    c = pd.read_parquet(path)
    if c.empty:
        return None
    groups = sorted(c["facts"].unique()) if "facts" in c.columns else [None]
    fig = plots.new_figure(5.2 * len(groups), 4.2)
    for j, facts in enumerate(groups):
        ax = fig.add_subplot(1, len(groups), j + 1)
        sub = c if facts is None else c[c["facts"] == facts]
        for i, (model, g) in enumerate(sub.groupby("model", sort=False)):
            g = g.sort_values("step")
            if model == "retrain":
                ax.plot(g["step"], g["knowmem"], "-", color="black", linewidth=2.5, label="retrain (floor)")
            elif model == "original":
                ax.plot(g["step"], g["knowmem"], "--", color="black", linewidth=1.5, label="original")
            else:
                ax.plot(g["step"], g["knowmem"], MARKERS[i % len(MARKERS)] + "-", ms=4,
                        color=plots.PALETTE[i % len(plots.PALETTE)], label=model)
        ax.set_xlabel("relearning steps")
        ax.set_ylabel("KnowMem on forget facts not relearned")
        if facts is not None:
            ax.set_title(f"relearning {facts} fact(s) per person")
    fig.axes[0].legend(fontsize=7, ncol=2)
    return section_html("Relearning curves", figure_html(
        fig, "relearning curves", "An attacker fine-tunes each model on some facts of the forgotten people; the "
        "curve is KnowMem on their other facts (never shown to the attacker). The retrained model, which never "
        "learned them, sets the floor; a method whose curve climbs above it had hidden the facts, not removed them."))


def section_probes(run: RunData) -> Markup | None:
    """Hit rate of each adversarial probe type, per model."""
    names = _models(run)
    kinds = []
    for key in run.metrics:
        m = re.fullmatch(r"unlearn/[^/]+/adversarial/([^/]+)/hit_rate", key)
        if m and m.group(1) not in kinds and m.group(1) not in ("forget", "neighbour"):
            kinds.append(m.group(1))
    if not kinds:
        return None
    cols = [(f"adversarial/{k}/hit_rate", k.replace("_", " ")) for k in kinds]
    return section_html("Adversarial probes by type", Markup(
        '<p class="caption">Share of probes of each type whose greedy continuation begins with the answer (RWKU-style: '
        'fill-in-the-blank, the trained question, reworded questions, prefix injection, role play, reverse query, '
        'in-context hints; neighbour types measure locality and should stay high).</p>') + _table(run, names, cols))


def _series(run: RunData, tag: str) -> dict[str, list[tuple[int, float, float]]]:
    out: dict[str, list] = {}
    for key in run.metrics:
        m = re.fullmatch(rf"unlearn/([^/]+)/{tag}=(\d+)/knowmem_forget", key)
        if m:
            method, n = m.group(1), int(m.group(2))
            r = run.metric(f"unlearn/{method}/{tag}={n}/knowmem_retain")
            out.setdefault(method, []).append((n, run.metric(key), r))
    return {k: sorted(v) for k, v in out.items()}


def section_scale_sustain(run: RunData) -> Markup | None:
    """Scalability (nested forget sets) and sustainability (sequential requests)."""
    panels = [(t, x, _series(run, t)) for t, x in (("scale@n", "forget-set size (people)"),
                                                     ("sustain@req", "requests unlearned"))]
    panels = [p for p in panels if p[2]]
    if not panels:
        return None
    fig = plots.new_figure(5.5 * len(panels), 3.8)
    for j, (tag, xlabel, series) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        for i, (method, pts) in enumerate(series.items()):
            x = [p[0] for p in pts]
            col = plots.PALETTE[i % len(plots.PALETTE)]
            ax.plot(x, [np.nan if p[1] is None else p[1] for p in pts], "o--", color=col, label=f"{method} KnowMem F")
            ax.plot(x, [np.nan if p[2] is None else p[2] for p in pts], "o-", color=col, label=f"{method} KnowMem R")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("KnowMem")
        ax.set_title("scalability" if tag.startswith("scale") else "sustainability")
        ax.legend(fontsize=8)
    return section_html("Scalability and sustainability", figure_html(
        fig, "scalability and sustainability", "Dashed: KnowMem on the forgotten people (↓); solid: KnowMem on "
        "retain (↑, utility). Sustainability: each request starts from the previous request's result."))


for _fn in (section_unlearning, section_ulira, section_tradeoff, section_robustness, section_relearning,
            section_probes, section_scale_sustain):
    register_section(_fn)
