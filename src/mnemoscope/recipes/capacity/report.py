"""Report section of the capacity recipe: bits per person by exposures with the fitted line, bits over
training, per-attribute losses against pool sizes, and the capacity ratio.

Reads ``bits_curve.parquet`` and the ``capacity/`` keys of metrics.json; None for other runs.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from markupsafe import Markup

from mnemoscope.report import plots
from mnemoscope.report.html import (
    DASH,
    RunData,
    figure_html,
    fmt_auc,
    fmt_count,
    fmt_value,
    html_table,
    register_section,
    section_html,
)


def _exposures(run: RunData) -> list[int]:
    found = {int(m.group(1)) for k in run.metrics for m in [re.fullmatch(r"capacity/bits@exposures=(\d+)", k)] if m}
    return sorted(found)


def _attributes(run: RunData) -> list[str]:
    return sorted({m.group(1) for k in run.metrics for m in [re.fullmatch(r"capacity/pool_bits@attribute=(.+)", k)] if m})


def _bits_figure(run: RunData, exposures: list[int], curve: pd.DataFrame | None):
    fig = plots.new_figure(11, 3.4)
    ax, ax2 = fig.subplots(1, 2)
    trained = [e for e in exposures if e > 0]
    y = [run.metric(f"capacity/person_bits/mean@exposures={e}") for e in trained]
    lo = [run.metric(f"capacity/person_bits/mean/ci_lo@exposures={e}") for e in trained]
    hi = [run.metric(f"capacity/person_bits/mean/ci_hi@exposures={e}") for e in trained]
    err = np.array([[v - (l if l is not None else v) for v, l in zip(y, lo)],
                    [(h if h is not None else v) - v for v, h in zip(y, hi)]])
    ax.errorbar(trained, y, yerr=err, fmt="o", color=plots.PALETTE[0], capsize=3, label="trained people")
    s, c = run.metric("capacity/fit/slope_per_decade"), run.metric("capacity/fit/intercept")
    if s is not None and c is not None and trained:
        t = np.geomspace(min(trained), max(trained), 50)
        ax.plot(t, c + s * np.log10(t), color=plots.PALETTE[0], linewidth=1.2, label="fit c + s·log10(E)")
    control = run.metric("capacity/person_bits/mean@exposures=0")
    if control is not None:
        ax.axhline(control, **plots.CHANCE_STYLE, label="never-trained control")
    ax.set_xscale("log")
    ax.set_xlabel("exposures per person")
    ax.set_ylabel("bits per person")
    ax.legend(fontsize=8)
    if curve is not None and not curve.empty:
        for i, (e, part) in enumerate(curve.groupby("exposures", sort=True)):
            part = part[part["step"] > 0]
            ax2.plot(part["step"], part["bits_per_person"], marker=".", color=plots.PALETTE[i % len(plots.PALETTE)],
                     label=f"{e} exposures")
        ax2.set_xscale("log")
        ax2.set_xlabel("training step")
        ax2.set_ylabel("group bits per person")
        ax2.legend(fontsize=8)
    return fig


def _ratio(m, key: str) -> str:
    """``"0.0523 [0.0501, 0.0547]"`` (3 significant digits: ratios span 0.001 to 2); a dash when missing."""
    value, lo, hi = m(key), m(f"{key}/ci_lo"), m(f"{key}/ci_hi")
    if value is None:
        return DASH
    return f"{value:.3g}" if lo is None or hi is None else f"{value:.3g} [{lo:.3g}, {hi:.3g}]"


def section_capacity(run: RunData) -> Markup | None:
    """Bits stored by exposure group, the fitted exposure line and bits per parameter."""
    if run.metric("capacity/bits") is None:
        return None
    exposures = _exposures(run)
    path = run.run_dir / "bits_curve.parquet"
    curve = pd.read_parquet(path) if path.is_file() else None
    m = run.metric
    facts = [["bits stored (trained groups)", fmt_value(m("capacity/bits"), 1)],
             ["parameters", fmt_count(m("model/parameters"))],
             ["bits per parameter [95% CI over people]", _ratio(m, "capacity/bits_per_parameter")],
             ["bits per non-embedding parameter [95% CI]", _ratio(m, "capacity/bits_per_nonembedding_parameter")],
             ["share of the possible bits stored", fmt_value(m("capacity/bits_share"))],
             ["bits minus the control's per-person credit", fmt_value(m("capacity/bits_net"), 1)],
             ["bits per parameter (net)", "—" if m("capacity/bits_net_per_parameter") is None
              else f"{m('capacity/bits_net_per_parameter'):.3g}"],
             ["fit slope s (bits/person per decade of exposures) [95% CI]",
              fmt_auc(m("capacity/fit/slope_per_decade"), m("capacity/fit/slope_per_decade/ci_lo"),
                      m("capacity/fit/slope_per_decade/ci_hi"))],
             ["fit intercept c (bits/person at 1 exposure) [95% CI]",
              fmt_auc(m("capacity/fit/intercept"), m("capacity/fit/intercept/ci_lo"), m("capacity/fit/intercept/ci_hi"))],
             ["fit R²", fmt_value(m("capacity/fit/r2"))],
             ["training tokens", fmt_count(m("capacity/tokens"))]]
    attrs = _attributes(run)
    columns = ["exposures", "people", "bits", "bits/person (group)", "person bits mean [95% CI]"] + [
        f"loss {a} (bits; pool {fmt_value(m(f'capacity/pool_bits@attribute={a}'), 1)})" for a in attrs]
    rows = []
    for e in exposures:
        tag = f"@exposures={e}"
        rows.append([e, fmt_value(m(f"capacity/n_people{tag}"), 0), fmt_value(m(f"capacity/bits{tag}"), 1),
                     fmt_value(m(f"capacity/bits_per_person{tag}"), 2),
                     fmt_auc(m(f"capacity/person_bits/mean{tag}"), m(f"capacity/person_bits/mean/ci_lo{tag}"),
                             m(f"capacity/person_bits/mean/ci_hi{tag}"))]
                    + [fmt_value(m(f"capacity/loss_bits@attribute={a},exposures={e}"), 2) for a in attrs])
    parts = [figure_html(_bits_figure(run, exposures, curve), "bits per person by exposures",
                         "Left: mean bits per person (Σ over attributes of max(0, log2|pool| − loss in bits)) with "
                         "95% bootstrap intervals over people, the fitted line, and the never-trained control. "
                         "Right: the group formula N·max(0, log2|pool| − mean loss) per person during training."),
             html_table(["quantity", "value"], facts, numeric=[1]),
             Markup("<h3>By exposure group</h3>"), html_table(columns, rows, numeric=range(1, len(columns)))]
    note = ("bits = Σ_attr N·max(0, log2|pool| − mean loss in bits) per group (docs/metrics.md); a lower bound in "
            "spirit that ignores name diversity. The control group was never trained: its bits are what the model "
            "knows about the pools, not about people.")
    return section_html("Knowledge capacity", Markup("\n").join(parts), note=note)


register_section(section_capacity, order=6)
