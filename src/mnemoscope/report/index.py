"""``index.html`` of a folder of runs: every run with its status, recipe, model, date, seed and
headline metrics, linking to its report; and links to the comparison pages found there.
Self-contained like the reports (inline CSS, no scripts, relative links only)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment
from markupsafe import Markup, escape

from mnemoscope import rundir
from mnemoscope import runs as runlib
from mnemoscope.compare import csv_table, fmt_cell, headline_columns, md_table
from mnemoscope.report.html import DASH, TEMPLATE, html_table, section_html

INDEX_NAME = "index.html"
STATUS_CLASS = {runlib.FAILED: "under", runlib.INTERRUPTED: "muted"}


def headline(run: runlib.Run, limit: int = 3) -> list[tuple[str, object]]:
    """(key, value) of up to ``limit`` headline keys the run has (value as written: null stays None)."""
    return [(k, run.metrics[k]) for k in headline_columns([run], limit=limit)] if run.metrics else []


def date_text(run: runlib.Run) -> str:
    stamp = run.created
    if stamp is None:
        return DASH
    return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _href(target: Path, folder: Path) -> str:
    rel = os.path.relpath(target.resolve(), folder.resolve())
    return quote(Path(rel).as_posix(), safe="/=,@+-._~")


def render_index(folder: Path, run_list: list[runlib.Run], pages: list[Path]) -> str:
    from mnemoscope import __version__

    folder = Path(folder)
    rows = []
    for r in run_list:
        report = r.path / "report.html"
        name = Markup('<a href="{}">{}</a>').format(_href(report, folder), r.label) if report.is_file() \
            else escape(r.label)
        status = Markup('<span class="{}">{}</span>').format(STATUS_CLASS.get(r.status, ""), r.status)
        heads = Markup("<br>").join(Markup("{} <b>{}</b>").format(k, fmt_cell(v)) for k, v in headline(r))
        note = r.failure.get("error", "") if r.status == runlib.FAILED else (
            "started, never finished: rerun the same command to resume" if r.status == runlib.INTERRUPTED else "")
        rows.append([name, status, r.recipe or DASH, r.model or DASH, date_text(r),
                     DASH if r.seed is None else r.seed, heads, note])
    counts = {s: sum(r.status == s for r in run_list) for s in (runlib.COMPLETE, runlib.INTERRUPTED, runlib.FAILED)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    parts = [section_html("Runs", html_table(["run", "status", "recipe", "model", "date (UTC)", "seed",
                                               "headline metrics", "note"], rows),
                          note=f"{len(run_list)} run(s): {summary}. Run names link to their reports.")]
    if pages:
        items = Markup("").join(Markup('<li><a href="{}">{}</a></li>').format(
            _href(p, folder), Path(os.path.relpath(p, folder)).as_posix()) for p in pages)
        parts.append(section_html("Comparisons", Markup("<ul>{}</ul>").format(items)))
    env = Environment(autoescape=True, keep_trailing_newline=True)
    return env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        title=f"mnemoscope · runs in {folder.resolve().name}",
        subtitle=summary,
        toc=[],
        sections=parts,
        footer=f"Written by mnemoscope {__version__} (mnemoscope runs). Self-contained: no scripts, "
               "no external resources.",
    )


def write_index(folder: str | Path, run_list: list[runlib.Run]) -> Path:
    """Write ``folder/index.html`` atomically (comparison pages under ``folder`` are linked too)."""
    folder = Path(folder)
    path = folder / INDEX_NAME
    rundir.write_text(path, render_index(folder, run_list, runlib.find_pages(folder)))
    return path


def listing(run_list: list[runlib.Run], fmt: str = "md") -> str:
    """The runs as a md or csv table, or a JSON list."""
    import json

    if fmt == "json":
        return json.dumps([{"run": r.label, "path": str(r.path), "status": r.status, "recipe": r.recipe,
                            "model": r.model, "created_unix": r.created, "seed": r.seed,
                            "headline": dict(headline(r)), "error": r.failure.get("error")
                            if r.status == runlib.FAILED else None} for r in run_list], indent=2, default=str) + "\n"
    header = ["run", "status", "recipe", "model", "date (UTC)", "seed", "headline"]
    rows = [[r.label, r.status, r.recipe or "", r.model, date_text(r), "" if r.seed is None else str(r.seed),
             " · ".join(f"{k} {fmt_cell(v)}" for k, v in headline(r))] for r in run_list]
    if fmt == "csv":
        return csv_table(header, rows)
    return md_table(header, rows) + "\n"
