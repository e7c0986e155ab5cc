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


register_section(section_lira, order=7)
