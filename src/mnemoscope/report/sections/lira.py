"""Report section: shadow-model LiRA and each cheap attack's distance to it (``recipes.lira``).

Drawn when the run trained shadows (``lira/shadows`` in metrics): one row per attack with its
AUC and TPR at 0.1% and 1% FPR on the target's own candidates (``mia/...``) and on the pooled
trials (``mia_pooled/...``, the target and each shadow as a target), and the gap to online LiRA.
"""

from __future__ import annotations

import re

from markupsafe import Markup

from mnemoscope.report.html import (
    RunData,
    fmt_auc,
    fmt_tpr,
    fmt_value,
    html_table,
    register_section,
    section_html,
)

FPRS = (0.001, 0.01)


def _attacks(run: RunData, prefix: str) -> list[str]:
    found = [m.group(1) for k in run.metrics if (m := re.fullmatch(rf"{prefix}/([^/@]+)/auc", k))]
    lira_first = [a for a in ("lira_online", "lira_offline") if a in found]
    return lira_first + [a for a in found if a not in lira_first]


def _table(run: RunData, prefix: str, gap_prefix: str) -> Markup:
    columns = ["attack", "ROC-AUC [95% CI]", "ΔAUC vs LiRA"]
    for f in FPRS:
        columns += [f"TPR @ FPR {f:.1%}", f"Δ vs LiRA @ {f:.1%}"]
    rows = []
    for a in _attacks(run, prefix):
        row: list[object] = [a, fmt_auc(run.metric(f"{prefix}/{a}/auc"), run.metric(f"{prefix}/{a}/auc/ci_lo"),
                                        run.metric(f"{prefix}/{a}/auc/ci_hi")),
                             fmt_value(run.metric(f"{gap_prefix}/{a}/auc"))]
        for f in FPRS:
            key = f"{prefix}/{a}/tpr@fpr={f:g}"
            row += [fmt_tpr(run.metric(key), run.flagged(f"{key}/underpowered"), f),
                    fmt_value(run.metric(f"{gap_prefix}/{a}/tpr@fpr={f:g}"))]
        rows.append(row)
    return html_table(columns, rows, numeric=range(1, len(columns)))


def section_lira(run: RunData) -> Markup | None:
    shadows = run.metric("lira/shadows")
    if shadows is None:
        return None
    parts = [Markup('<p class="caption">{} shadow models, each trained like the target on a random half of the '
                    'candidates (each candidate in half of them). LiRA online compares the target\'s '
                    'logit-scaled sequence confidence with Gaussians fitted to the shadows that trained on the '
                    'candidate and those that did not; offline uses the second only. Δ = the attack − online '
                    'LiRA (negative: the cheap attack falls short of the shadow-model attack).</p>').format(int(shadows)),
             Markup("<h3>Target model</h3>"), _table(run, "mia", "lira/gap")]
    if run.metric("mia_pooled/lira_online/auc") is not None:
        parts += [Markup('<h3>Pooled trials</h3><p class="caption">The target and every shadow as a target '
                         '(its LiRA fitted on the other shadows): more non-members, so lower FPRs resolve.</p>'),
                  _table(run, "mia_pooled", "lira/gap_pooled")]
    return section_html("Shadow-model LiRA", Markup("").join(parts))


register_section(section_lira, order=12.5)  # after the summary, dose response and ROC


def section_ulira(run: RunData) -> Markup | None:
    """U-LiRA (recipes.ulira): each unlearning method's per-example attack next to its PrivLeak."""
    shadows = run.metric("ulira/shadows")
    if shadows is None:
        return None
    methods = [m.group(1) for k in run.metrics if (m := re.fullmatch(r"ulira/([^/]+)/online/auc", k))]
    columns = ["method", "PrivLeak [95% CI]", "U-LiRA online AUC [95% CI]", "accuracy (Λ > 0)",
               "TPR @ FPR 1.0%", "U-LiRA offline AUC [95% CI]"]
    rows = []
    for m in methods:
        p = f"unlearn/{m}/privleak"
        privleak = fmt_value(run.metric(p)) if run.metric(p) is None else f"{run.metric(p):.1f}"
        if run.metric(f"{p}/ci_lo") is not None and run.metric(f"{p}/ci_hi") is not None:
            privleak += f" [{run.metric(f'{p}/ci_lo'):.1f}, {run.metric(f'{p}/ci_hi'):.1f}]"
        u = f"ulira/{m}"
        rows.append([m, privleak,
                     fmt_auc(run.metric(f"{u}/online/auc"), run.metric(f"{u}/online/auc/ci_lo"),
                             run.metric(f"{u}/online/auc/ci_hi")),
                     fmt_value(run.metric(f"{u}/online/accuracy")),
                     fmt_tpr(run.metric(f"{u}/online/tpr@fpr=0.01"), run.flagged(f"{u}/online/tpr@fpr=0.01/underpowered"),
                             0.01),
                     fmt_auc(run.metric(f"{u}/offline/auc"), run.metric(f"{u}/offline/auc/ci_lo"),
                             run.metric(f"{u}/offline/auc/ci_hi"))])
    body = Markup('<p class="caption">{} shadow models trained like the original on the retain people and a random '
                  'half of the forget and holdout people, each then unlearned with the method\'s chosen learning '
                  'rate and steps. Per text, LiRA tells "trained, then unlearned" from "never trained" on the '
                  'method\'s unlearned model (forget texts vs holdout texts). AUC 0.5 and accuracy 0.5 = nothing '
                  'left to find; PrivLeak near 0 with a U-LiRA AUC well above 0.5 is the false sense of privacy '
                  'Hayes et al. (2024) describe.</p>').format(int(shadows))
    return section_html("Per-example unlearning audit (U-LiRA)",
                        body + html_table(columns, rows, numeric=range(1, len(columns))))


# section_ulira is registered by sections/unlearning.py, after the six-way table it sits beside
