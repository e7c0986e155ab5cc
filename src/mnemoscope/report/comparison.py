"""A ``Comparison`` → one self-contained HTML page (inline CSS, base64 PNG plots, no scripts, no
external URLs; links to each run's own report are relative).

Plots follow what the compared runs' kinds declare (``mnemoscope.recipes``: ``series`` and
``tradeoff``): a metric against its group variable (dose, exposures, phase…) with one line per
run group — its mean over seeds, the min–max band and each seed's point — the unlearning
trade-off (KnowMem on the forget set against KnowMem on the retain set, every method of every
run), and a strip of each chosen column across groups.
"""

from __future__ import annotations

import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np
from jinja2 import Environment
from markupsafe import Markup, escape

from mnemoscope import rundir
from mnemoscope.claims import effect_spread
from mnemoscope.compare import Comparison, as_number, display_value, fmt_cell
from mnemoscope.errors import MnemoscopeError
from mnemoscope.recipes.plugin import Series
from mnemoscope.report import plots
from mnemoscope.report.html import DASH, TEMPLATE, figure_html, html_table, section_html
from mnemoscope.runs import Run, natural_key
from mnemoscope.summary import fmt as fmt_number

MAX_GROUPS = 8  # lines per panel; more groups are listed as not drawn
MAX_STRIPS = 12  # chosen columns drawn as strips


# --------------------------------------------------------------------------- figures


def _short(text: str, limit: int = 42) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _group_index(c: Comparison) -> dict[str, list[int]]:
    """Group label → row positions, in order of first appearance."""
    out: dict[str, list[int]] = {}
    for i, g in enumerate(c.groups):
        out.setdefault(g, []).append(i)
    return out


def _series_figure(c: Comparison, runs_idx: list[int], panels: list[tuple[Series, list[tuple[str, str]]]],
                   groups: dict[str, list[int]]):
    """One panel per series; per group: mean line, min–max band (≥ 2 runs), every run's point."""
    cols = 2 if len(panels) == 4 else min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = plots.new_figure(4.1 * cols, 3.3 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, (series, points) in zip(axes, panels):
        x = np.arange(len(points), dtype=np.float64)
        for gi, (group, members) in enumerate(list(groups.items())[:MAX_GROUPS]):
            members = [i for i in members if i in runs_idx]
            if not members:
                continue
            color = plots.PALETTE[gi % len(plots.PALETTE)]
            y = np.array([[_value(c, i, key) for _, key in points] for i in members])  # runs × x
            finite = np.isfinite(y)
            counts = finite.sum(axis=0)
            with np.errstate(all="ignore"):
                mean = np.where(counts > 0, np.nansum(np.where(finite, y, 0.0), axis=0) / np.maximum(counts, 1), np.nan)
                lo = np.where(counts > 0, np.nanmin(np.where(finite, y, np.inf), axis=0), np.nan)
                hi = np.where(counts > 0, np.nanmax(np.where(finite, y, -np.inf), axis=0), np.nan)
            label = f"{_short(group)} (n={len(members)})"
            ax.plot(x, mean, marker="o", color=color, label=label, linewidth=1.8)
            if len(members) > 1:
                ax.fill_between(x, lo, hi, color=color, alpha=0.18, linewidth=0)
                # every run's points as one artist: hundreds of runs stay cheap to draw
                ax.plot(np.tile(x, len(members)), y.ravel(), linestyle="none", marker=".", color=color, alpha=0.7,
                        markersize=5)
        if series.chance is not None:
            ax.axhline(series.chance, label="chance", **plots.CHANCE_STYLE)
        ax.set_xticks(x, [p[0] for p in points])
        ax.set_xlim(-0.5, len(points) - 0.5)
        ax.set_xlabel(series.xlabel)
        ax.set_title(series.title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def _value(c: Comparison, row: int, key: str) -> float:
    if key not in c.values.columns:
        return as_number(c.runs[row].metrics.get(key))
    return float(c.values.iat[row, c.values.columns.get_loc(key)])


def _declared(c: Comparison, idx: list[int]):
    """What the run kind of the runs at ``idx`` (all of one kind) declares; None when unknown."""
    return c.runs[idx[0]].declaration if idx else None


def section_series(c: Comparison) -> Markup | None:
    groups = _group_index(c)
    parts = []
    for recipe in c.recipes:
        idx = [i for i, r in enumerate(c.runs) if r.recipe == recipe]
        declared = _declared(c, idx)
        specs = declared.series if declared else ()
        keys = set().union(*(c.runs[i].metrics for i in idx))
        panels = [(s, pts) for s in specs for pts in [s.points(keys)] if len(pts) >= 1]
        panels = [(s, pts) for s, pts in panels
                  if any(np.isfinite(_value(c, i, k)) for i in idx for _, k in pts)]
        if not panels:
            continue
        fig = _series_figure(c, idx, panels, groups)
        n_groups = len({c.groups[i] for i in idx})
        caption = (f"{recipe}: {len(idx)} run(s) in {n_groups} group(s) (runs whose configs differ only in the "
                   "seed). Line = mean over the group's runs; shaded band = min–max across them; dots = each run.")
        if n_groups > MAX_GROUPS:
            caption += f" Only the first {MAX_GROUPS} groups are drawn."
        parts.append(figure_html(fig, f"{recipe} comparison plots", caption))
    if not parts:
        return None
    return section_html("By group variable", Markup("\n").join(parts))


def section_tradeoff(c: Comparison) -> Markup | None:
    """KnowMem on F (x, lower = more forgotten) against KnowMem on R (y, higher = utility kept)."""
    idx = [i for i, r in enumerate(c.runs) if r.declaration is not None and r.declaration.tradeoff]
    points: dict[str, list[tuple[float, float, int]]] = {}
    for i in idx:
        m = c.runs[i].metrics
        for key in sorted(m, key=natural_key):
            hit = re.fullmatch(r"unlearn/([^/@]+)/knowmem_forget", key)
            if not hit or hit.group(1) == "reference":
                continue
            name = hit.group(1)
            fx, ry = m.get(key), m.get(f"unlearn/{name}/knowmem_retain")
            fx, ry = as_number(fx), as_number(ry)
            if math.isfinite(fx) and math.isfinite(ry):
                points.setdefault(name, []).append((float(fx), float(ry), i))
    if not points:
        return None
    groups = list(dict.fromkeys(c.groups[i] for i in idx))
    markers = "o^Dv<>pXh"  # one per group; ★ and ■ are kept for the retrained and original models
    symbols = dict(zip(markers, "●▲◆▼◀▶⬟✖⬢"))
    fig = plots.new_figure(6.4, 4.6)
    ax = fig.subplots()
    for mi, (name, pts) in enumerate(points.items()):
        color = plots.PALETTE[mi % len(plots.PALETTE)]
        special = {"retrain": "*", "original": "s"}.get(name)
        for g_i, group in enumerate(groups):
            mine = [(x, y) for x, y, i in pts if c.groups[i] == group]
            if not mine:
                continue
            xs, ys = np.array(mine).T
            ax.scatter(xs, ys, color=color, marker=special or markers[g_i % len(markers)],
                       s=90 if special == "*" else 36, alpha=0.55 if len(mine) > 1 else 0.9,
                       label=name if g_i == 0 else None, edgecolors="white", linewidths=0.5)
            if len(mine) > 1:
                ax.errorbar(xs.mean(), ys.mean(), xerr=xs.std(ddof=1), yerr=ys.std(ddof=1), color=color,
                            marker=special or markers[g_i % len(markers)], markersize=8, capsize=3,
                            markeredgecolor="black", linewidth=1.2)
    ax.set_xlabel("KnowMem on forget set F (lower = more forgotten)")
    ax.set_ylabel("KnowMem on retain set R (higher = utility kept)")
    ax.set_title("Unlearning trade-off across runs", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title="model", title_fontsize=7)
    caption = ("Each small point is one method in one run (★ retrained model = the target, ■ original). Where a "
               "group has several seeds, the large marker is their mean with ± 1 sd bars.")
    if len(groups) > 1:
        caption += " Marker shape = group: " + "; ".join(
            f"{symbols[markers[g % len(markers)]]} {_short(name, 60)}" for g, name in enumerate(groups)) + "."
    return section_html("Unlearning trade-off", figure_html(fig, "unlearning trade-off", caption))


def section_strips(c: Comparison) -> Markup | None:
    """Each chosen column: every run's value by group, with the group mean ± 1 sd."""
    groups = _group_index(c)
    columns = [k for k in c.columns if np.isfinite(c.values[k].to_numpy(dtype=np.float64)).any()][:MAX_STRIPS]
    if len(c.runs) < 2 or not columns:
        return None
    cols = min(4, len(columns))
    rows = math.ceil(len(columns) / cols)
    fig = plots.new_figure(3.2 * cols, 2.7 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    names = list(groups)[:MAX_GROUPS]
    short_ids = any(len(n) > 14 for n in names)  # long labels: numbered ticks, spelled out in the caption
    ticks = [f"g{i + 1}" if short_ids else n for i, n in enumerate(names)]
    for ax, key in zip(axes, columns):
        column = c.values[key].to_numpy(dtype=np.float64)
        bars = []  # (x, mean, sd) of groups with ≥ 2 values, drawn as one artist
        for gi, name in enumerate(names):
            y = column[groups[name]]
            y = y[np.isfinite(y)]
            if not y.size:
                continue
            jitter = np.linspace(-0.12, 0.12, y.size) if y.size > 1 else np.zeros(1)
            ax.plot(gi + jitter, y, linestyle="none", marker="o", color=plots.PALETTE[gi % len(plots.PALETTE)],
                    alpha=0.6, markersize=4)
            if y.size > 1:
                bars.append((gi + 0.25, y.mean(), y.std(ddof=1)))
        if bars:
            bx, bm, bs = np.array(bars).T
            ax.errorbar(bx, bm, yerr=bs, color="black", marker="_", markersize=10, capsize=3, linewidth=1,
                        linestyle="none")
        ax.set_xticks(range(len(names)), ticks, fontsize=7)
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_title(_short(key, 46), fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    caption = "Dots = runs; black bar = group mean ± 1 sd (groups with at least 2 runs)."
    if short_ids:
        caption += " Groups: " + "; ".join(f"g{i + 1} = {n}" for i, n in enumerate(names)) + "."
    if len([k for k in c.columns if np.isfinite(c.values[k].to_numpy(dtype=np.float64)).any()]) > MAX_STRIPS:
        caption += f" The first {MAX_STRIPS} columns with values are drawn."
    if len(groups) > MAX_GROUPS:
        caption += f" The first {MAX_GROUPS} groups are drawn."
    return section_html("Chosen metrics", figure_html(fig, "chosen metrics by group", caption))


# --------------------------------------------------------------------------- tables


def _num(v: float) -> str:
    """A statistic in a comparison table: 4 significant digits, whole numbers whole, missing "—"."""
    return fmt_number(v, 4, significant=True, missing=DASH)


def section_claims(c: Comparison) -> Markup | None:
    """Per run kind with a claim (declared in ``mnemoscope.recipes``) and per group of its runs: each
    effect's value in every run, mean ± sd, min–max and in how many runs it lies on the side the
    finding predicts."""
    parts = []
    for recipe in c.recipes:
        idx = [i for i, r in enumerate(c.runs) if r.recipe == recipe]
        declared = _declared(c, idx)
        claim = declared.claim if declared else None
        if claim is None:
            continue
        groups = {}
        for i in idx:
            groups.setdefault(c.groups[i], []).append(i)
        parts.append(Markup("<p><strong>{}</strong> ({}) — {}</p>").format(recipe, claim.source, claim.sentence))
        for group, members in groups.items():
            spread = effect_spread(claim, [c.runs[i].metrics for i in members])
            columns = ["effect", "predicts"] + [c.runs[i].label for i in members] + [
                "mean ± sd", "min – max", "on that side"]
            rows = []
            for s in spread:
                e = s["effect"]
                row: list[object] = [e.label, e.rule] + [_num(v) if v is not None else DASH for v in s["values"]]
                row.append(f"{_num(s['mean'])} ± {_num(s['sd'])}" if s["n"] > 1 else _num(s["mean"]))
                row.append(f"{_num(s['min'])} – {_num(s['max'])}" if s["n"] else DASH)
                row.append(f"{s['n_hold']} of {len(members)} runs")
                rows.append(row)
            if len(groups) > 1:
                parts.append(Markup("<p class=\"note\">group: {}</p>").format(group))
            parts.append(html_table(columns, rows, numeric=range(2, len(columns) - 1)))
        if claim.scale:
            parts.append(Markup('<p class="note">{}</p>').format(claim.scale))
    if not parts:
        return None
    note = "sd: sample standard deviation (n − 1) over the runs of a group; a run is one seed."
    return section_html("Claim across seeds", Markup("\n").join(parts), note=note)


def section_checks(c: Comparison) -> Markup | None:
    if not c.warnings and not c.notes:
        return None
    items = [Markup('<p class="error">warning: {}</p>').format(w) for w in c.warnings]
    items += [Markup('<p class="note">{}</p>').format(n) for n in c.notes]
    return section_html("Checks", Markup("\n").join(items))


def section_spread(c: Comparison) -> Markup | None:
    sizes = c.group_sizes()
    if max(sizes.values()) < 2:
        return None
    stats = {(r["group"], r["metric"]): r for r in c.spread().to_dict("records")}
    groups = list(sizes)
    columns = ["metric"] + [f"{_short(g, 48)} (n={sizes[g]})" for g in groups]
    rows = []
    for key in c.columns:
        row: list[object] = [key]
        for g in groups:
            r = stats[(g, key)]
            if r["n"] == 0:
                row.append("")
            elif r["n"] == 1:
                row.append(Markup('{} <span class="muted">(1 run)</span>').format(_num(r["mean"])))
            else:
                row.append(Markup('{} ± {} <span class="muted">[{}, {}] n={}</span>').format(
                    _num(r["mean"]), _num(r["sd"]), _num(r["min"]), _num(r["max"]), int(r["n"])))
        rows.append(row)
    note = ("mean ± sd (n − 1) over the runs of each group that have a number; [min, max]; "
            "an empty cell: no run of the group has the key.")
    return section_html("Spread across seeds", html_table(columns, rows, numeric=range(1, len(columns)),
                                                           text=[0]), note=note)


def _link(run: Run, page_dir: Path | None) -> Markup:
    report = run.path / "report.html"
    if page_dir is None or not report.is_file():
        return escape(run.label)
    rel = os.path.relpath(report.resolve(), page_dir.resolve())
    return Markup('<a href="{}">{}</a>').format(quote(Path(rel).as_posix(), safe="/=,@+-._~"), run.label)


def section_runs(c: Comparison, page_dir: Path | None) -> Markup:
    show_recipe = len(c.recipes) > 1
    show_group = len(set(c.groups)) > 1
    columns = ["run"] + (["recipe"] if show_recipe else []) + (["group"] if show_group else []) + c.config_keys
    columns += c.columns
    rows = []
    for r, g in zip(c.runs, c.groups):
        row: list[object] = [_link(r, page_dir)] + ([r.recipe or ""] if show_recipe else [])
        row += [g] if show_group else []
        row += [display_value(c.config_value(r, k)) for k in c.config_keys]
        row += [fmt_cell(c.raw(r, k)) for k in c.columns]
        rows.append(row)
    first_metric = len(columns) - len(c.columns)
    note = (f"{len(c.runs)} complete run(s). Config keys that differ between runs of a recipe come first; an "
            "empty cell = the run has no such key, null = written as not computed (see the run's notes).")
    return section_html("Runs", html_table(columns, rows, numeric=range(first_metric, len(columns))), note=note)


def _hash(entry) -> str:
    if not isinstance(entry, dict):
        return ""
    if entry.get("kind") == "hub":
        return f"{entry.get('id')}@{str(entry.get('revision'))[:12]}"
    return str(entry.get("sha256") or "unreadable")[:12]


def section_provenance(c: Comparison) -> Markup | None:
    keys: list[str] = []
    for r in c.runs:
        for k in (r.provenance or {}).get("inputs") or {}:
            if k not in keys:
                keys.append(k)
    columns = ["run", "config sha256", "git", "created"] + [f"{k}" for k in keys]
    rows = []
    for r in c.runs:
        p = r.provenance
        git = ((p or {}).get("git") or {})
        rev = git.get("revision") or r.manifest.get("git_revision")
        created = r.manifest.get("created_unix")
        stamp = datetime.fromtimestamp(created, tz=timezone.utc).strftime("%Y-%m-%d %H:%M") \
            if isinstance(created, (int, float)) else DASH
        if p is None:
            rows.append([r.label, Markup('<span class="muted">not recorded (older run)</span>'),
                         (str(rev)[:12] if rev else DASH), stamp] + [""] * len(keys))
            continue
        inputs = p.get("inputs") or {}
        rows.append([r.label, str(p.get("config_sha256", ""))[:12],
                     (str(rev)[:12] if rev else DASH) + (" +dirty" if git.get("dirty") else ""), stamp]
                    + [_hash(inputs.get(k)) for k in keys])
    note = ("First 12 hex digits of each SHA-256: the resolved config, and each input file, folder or hub "
            "snapshot the run read (by config key). Equal hashes = the same bytes, wherever the files lay.")
    return section_html("Provenance", html_table(columns, rows, text=range(1, len(columns))), note=note)


# --------------------------------------------------------------------------- page


def section_every(every: Comparison | None) -> Markup | None:
    """The spread of every metric (folded): the comparison of all keys, not just the chosen ones."""
    if every is None or not every.columns:
        return None
    stats = every.spread()
    several = len(set(every.groups)) > 1
    columns = (["group"] if several else []) + ["metric", "n", "mean", "sd", "min", "max"]
    rows = [([r["group"]] if several else []) + [r["metric"], r["n"]]
            + [_num(r[k]) for k in ("mean", "sd", "min", "max")] for r in stats.to_dict("records")]
    first = 2 if several else 1
    body = Markup("<details><summary>{} metric(s) × {} group(s): n, mean, sd (n − 1), min, max</summary>{}</details>"
                  ).format(len(every.columns), len(set(every.groups)),
                           html_table(columns, rows, numeric=range(first, len(columns)), text=[first - 1]))
    return section_html("Every metric", body)


def render_comparison(c: Comparison, page_path: Path | None = None, title: str | None = None,
                      every: Comparison | None = None) -> str:
    """The full page; links to run reports are relative to ``page_path``'s folder. ``every``: a
    comparison of all metric keys whose spread is added, folded away."""
    from mnemoscope import __version__

    page_dir = Path(page_path).parent if page_path is not None else None
    parts = [p for p in (section_claims(c), section_checks(c), section_series(c), section_tradeoff(c), section_strips(c),
                         section_spread(c), section_runs(c, page_dir), section_every(every),
                         section_provenance(c)) if p]
    toc = [(m.group(1), Markup(m.group(2))) for p in parts
           for m in [re.search(r'<section id="([^"]+)">\s*<h2>(.*?)</h2>', p, re.DOTALL)] if m]
    n_groups = len(set(c.groups))
    env = Environment(autoescape=True, keep_trailing_newline=True)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        title=title or f"mnemoscope · comparison of {len(c.runs)} run(s)",
        subtitle=f"recipes: {', '.join(c.recipes) or DASH} · {n_groups} group(s) · "
                 f"{len(c.columns)} metric column(s)",
        toc=toc,
        sections=parts,
        footer=f"Written by mnemoscope {__version__} (mnemoscope compare). Self-contained: no scripts, "
               "no external resources; run names link to each run's own report.",
    )


def check_page_path(path: Path) -> None:
    """A page path that is a folder is refused in one line (before any work)."""
    if Path(path).is_dir():
        raise MnemoscopeError(f"--html {path} is a folder: name the page's file, e.g. {Path(path) / 'comparison.html'}")


def write_comparison(c: Comparison, path: str | Path, title: str | None = None,
                     every: Comparison | None = None) -> Path:
    """Render the page and write it atomically to ``path``."""
    path = Path(path)
    rundir.write_text(path, render_comparison(c, path, title, every))
    return path
