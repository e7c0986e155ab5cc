"""Runs side by side: one table of flat metrics, the config keys that differ, the spread across
seeds, and a provenance check (did the runs read the same data and model?).

    comparison = compare(["runs/sweep"], ["mia/*/auc@dose=*"])
    print(format_table(comparison, "md"))

Rows are runs, columns metric keys chosen by glob patterns: ``*`` matches within one ``/``
segment, ``**`` across segments, ``?`` one character, ``[...]`` a class. A key a run lacks is
shown empty and a null value as ``null``; nothing is filled in. Runs whose configs differ only in
``seed`` form a *group*; each group's mean, standard deviation (n − 1), min and max per metric is
its spread. Only complete runs are compared; the others are listed as skipped.
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import runs as runlib
from mnemoscope.modules import make_callable
from mnemoscope.errors import MnemoscopeError
from mnemoscope.runs import Run, natural_key
from mnemoscope.summary import fmt as fmt_number

FALLBACK_HEADLINES = ["train/final_loss"]
MISSING = object()  # a key the run does not have (distinct from a null value)


# --------------------------------------------------------------------------- patterns


@functools.lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern:
    """A metric-key glob as a regex: ``*`` within a segment, ``**`` across, ``?``, ``[...]``."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = i + 1  # the class ends at the first "]" after an optional "!" and a leading "]"
            end += pattern[end:end + 1] == "!"
            end += pattern[end:end + 1] == "]"
            end = pattern.find("]", end)
            if end == -1:
                out.append(re.escape(c))
            else:  # fnmatch's own translation of the class, unwrapped from "(?s:...)\Z"
                out.append(fnmatch.translate(pattern[i:end + 1])[4:-3])
                i = end + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def match_keys(keys, pattern: str) -> list[str]:
    """Keys matching ``pattern``, natural order."""
    rx = glob_regex(pattern)
    return sorted((k for k in keys if rx.match(k)), key=natural_key)


def select_columns(keys: set[str], patterns: list[str], *, strict: bool = True) -> list[str]:
    """Columns for ``patterns`` in order (each pattern's matches in natural order, no repeats).
    ``strict``: a pattern no run has is a MnemoscopeError naming the nearest key."""
    import difflib

    columns: list[str] = []
    for pattern in patterns:
        found = match_keys(keys, pattern)
        if not found and strict:
            near = difflib.get_close_matches(pattern, sorted(keys), n=1, cutoff=0.5)
            hint = f"; did you mean '{near[0]}'?" if near else " (mnemoscope compare --list-keys shows them)"
            raise MnemoscopeError(f"no compared run has a metric matching '{pattern}'{hint}")
        columns.extend(k for k in found if k not in columns)
    return columns


def headline_columns(run_list: list[Run], limit: int | None = None) -> list[str]:
    """The headline keys of the run kinds among ``run_list`` that at least one run has: the keys of
    each kind's claim first, then its declared headlines (``mnemoscope.recipes``)."""
    keys = set().union(*(r.metrics for r in run_list)) if run_list else set()
    patterns: list[str] = []
    for r in run_list:
        declared = r.declaration
        if declared is None:
            continue
        claim_keys = [k for e in declared.claim.effects for k in e.keys] if declared.claim else []
        for p in claim_keys + list(declared.headlines):
            if p not in patterns:
                patterns.append(p)
    columns = select_columns(keys, patterns + FALLBACK_HEADLINES, strict=False)
    if not columns:  # an unknown recipe: its first plain numbers
        columns = sorted((k for k in keys if "@" not in k), key=natural_key)[:6]
    return columns[:limit] if limit else columns


# --------------------------------------------------------------------------- values


def as_number(value) -> float:
    """A metric value as a float; NaN for null, missing, non-finite or non-numeric values."""
    if value is MISSING or value is None or isinstance(value, str):
        return math.nan
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def _canonical(value):
    """A comparable, hashable stand-in for a config value (1 and 1.0 and True stay distinct)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return type(value).__name__, value
    return "json", json.dumps(value, sort_keys=True, default=str)


def _positions(labels: list[str]) -> dict[str, list[int]]:
    """Label → row positions, in order of first appearance."""
    out: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        out.setdefault(label, []).append(i)
    return out


def differences_by_recipe(run_list: list[Run]) -> dict[str | None, list[str]]:
    """Per recipe: config keys (dotted) whose value is not the same in every run of that recipe
    (absent counts as a value). Runs of different recipes are not compared key by key."""
    by_recipe: dict[str | None, list[dict]] = {}
    for r in run_list:
        by_recipe.setdefault(r.recipe, []).append(r.flat_config)
    out = {}
    for recipe, flat in by_recipe.items():
        keys = set().union(*flat)
        differ = [k for k in keys if len({_canonical(f[k]) if k in f else None for f in flat}) > 1]
        out[recipe] = sorted(differ, key=natural_key)
    return out


def config_differences(run_list: list[Run]) -> list[str]:
    """Config keys that differ between runs of the same recipe (all recipes together)."""
    keys = set().union(*differences_by_recipe(run_list).values())
    return sorted(keys, key=natural_key)


def display_value(value) -> str:
    if value is MISSING:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


@dataclass
class Comparison:
    """The runs compared, the chosen columns and everything derived from them."""

    runs: list[Run]
    columns: list[str]
    values: pd.DataFrame  # index: run labels; columns: metric keys; NaN = missing, null or not numeric
    config_keys: list[str]  # config keys that differ
    groups: list[str]  # group label of each run (same config but the seed)
    skipped: list[Run] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def raw(self, run: Run, key: str):
        """The value as written in metrics.json, or MISSING."""
        return run.metrics.get(key, MISSING)

    def config_value(self, run: Run, key: str):
        return run.flat_config.get(key, MISSING)

    @property
    def recipes(self) -> list[str]:
        found = []
        for r in self.runs:
            if r.recipe and r.recipe not in found:
                found.append(r.recipe)
        return found

    def spread(self) -> pd.DataFrame:
        """Per group and column: n (runs with a finite number), mean, sd (n − 1; NaN below 2
        runs), min, max (NaN when n = 0). Groups in order of first appearance."""
        values = self.values.to_numpy(dtype=np.float64)
        rows = []
        for group, idx in _positions(self.groups).items():
            block = values[idx]
            finite = np.isfinite(block)
            n = finite.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(n > 0, np.where(finite, block, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
                squares = np.where(finite, (block - mean) ** 2, 0.0).sum(axis=0)  # two passes: no cancellation
                sd = np.where(n > 1, np.sqrt(squares / np.maximum(n - 1, 1)), np.nan)
                low = np.where(n > 0, np.where(finite, block, np.inf).min(axis=0), np.nan)
                high = np.where(n > 0, np.where(finite, block, -np.inf).max(axis=0), np.nan)
            rows += [{"group": group, "metric": key, "n": int(n[j]), "mean": mean[j], "sd": sd[j], "min": low[j],
                      "max": high[j]} for j, key in enumerate(self.columns)]
        return pd.DataFrame(rows, columns=["group", "metric", "n", "mean", "sd", "min", "max"])

    def group_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for g in self.groups:
            sizes[g] = sizes.get(g, 0) + 1
        return sizes


def _group_labels(run_list: list[Run]) -> list[str]:
    """Runs of a recipe whose configs are equal apart from ``seed`` share a label: the values of
    the keys that differ between that recipe's runs."""
    differing = differences_by_recipe(run_list)
    several = len(differing) > 1
    idents: dict[tuple, str] = {}
    labels = []
    for r in run_list:
        keys = [k for k in differing[r.recipe] if k != "seed"]
        f = r.flat_config
        ident = (r.recipe, tuple(_canonical(f[k]) if k in f else None for k in keys))
        if ident not in idents:
            parts = [f"{k}={display_value(f[k])}" for k in keys if k in f]
            text = ", ".join(parts[:3]) + (" …" if len(parts) > 3 else "")
            if several:
                text = f"{r.recipe or 'run'}: {text}" if text else (r.recipe or "run")
            text = text or "all runs"
            if text in idents.values():
                text = f"{text} (#{len(idents) + 1})"
            idents[ident] = text
        labels.append(idents[ident])
    return labels


def compare(targets: list[str | Path], patterns: list[str] | None = None) -> Comparison:
    """Compare the complete runs under ``targets`` on the columns ``patterns`` choose (default:
    the headline keys of their recipes)."""
    found = runlib.gather(targets)
    complete = [r for r in found if r.status == runlib.COMPLETE]
    skipped = [r for r in found if r.status != runlib.COMPLETE]
    if not complete:
        counts = ", ".join(f"{sum(r.status == s for r in skipped)} {s}" for s in (runlib.INTERRUPTED, runlib.FAILED)
                           if any(r.status == s for r in skipped))
        raise MnemoscopeError(f"no complete run to compare ({counts}); `mnemoscope runs FOLDER` lists them")
    keys = set().union(*(r.metrics for r in complete))
    columns = select_columns(keys, patterns) if patterns else headline_columns(complete)
    labels = [r.label for r in complete]
    values = pd.DataFrame([[as_number(r.metrics.get(k, MISSING)) for k in columns] for r in complete],
                          index=pd.Index(labels, name="run"), columns=columns, dtype="float64")
    config_keys = config_differences(complete)
    comparison = Comparison(complete, columns, values, config_keys, _group_labels(complete), skipped)
    comparison.warnings, comparison.notes = provenance_check(complete)
    if skipped:
        comparison.notes.insert(0, f"skipped {len(skipped)} run(s) that are not complete: "
                                + ", ".join(f"{r.label} ({r.status})" for r in skipped[:5])
                                + (" …" if len(skipped) > 5 else ""))
    return comparison


# --------------------------------------------------------------------------- provenance


def _identity(entry) -> str:
    if not isinstance(entry, dict):
        return "absent"
    if entry.get("kind") == "hub":
        return f"hub {entry.get('id')}@{str(entry.get('revision'))[:12]}"
    digest = entry.get("sha256")
    return f"sha256 {digest[:12]}" if isinstance(digest, str) else "unreadable"


def _names(labels: list[str], limit: int = 3) -> str:
    return ", ".join(labels[:limit]) + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def provenance_check(run_list: list[Run]) -> tuple[list[str], list[str]]:
    """(warnings, notes): warnings when runs read different data or models (by hash, not by
    path); notes on runs without provenance and on differing code or package versions."""
    warnings, notes = [], []
    known = [r for r in run_list if r.provenance is not None]
    unknown = [r for r in run_list if r.provenance is None]
    if unknown and len(run_list) > 1:
        notes.append(f"{len(unknown)} of {len(run_list)} runs have no provenance record (written by an older "
                     f"mnemoscope): their data and model cannot be checked ({_names([r.label for r in unknown])})")
    inputs = [r.provenance.get("inputs") or {} for r in known]
    for key in sorted(set().union(*inputs) if inputs else set(), key=natural_key):
        by_identity: dict[str, list[str]] = {}
        role = "data"
        for r, ins in zip(known, inputs):
            entry = ins.get(key)
            if isinstance(entry, dict):
                role = entry.get("role", role)
            by_identity.setdefault(_identity(entry), []).append(r.label)
        if len(by_identity) > 1:
            parts = "; ".join(f"{ident} in {_names(labels)}" for ident, labels in by_identity.items())
            warnings.append(f"runs differ in {role} '{key}': {parts}")
    revisions: dict[str, list[str]] = {}
    for r in run_list:
        git = (r.provenance or {}).get("git") or {}
        rev = git.get("revision") or r.manifest.get("git_revision")
        tag = (str(rev)[:12] if rev else "unknown") + (" (uncommitted changes)" if git.get("dirty") else "")
        revisions.setdefault(tag, []).append(r.label)
    if len(revisions) > 1 or any("uncommitted" in t for t in revisions):
        notes.append("code: " + "; ".join(f"git {t} in {_names(labels)}" for t, labels in revisions.items()))
    packages: dict[str, dict[str, list[str]]] = {}
    for r in known:
        for name, version in (r.provenance.get("packages") or {}).items():
            packages.setdefault(name, {}).setdefault(str(version), []).append(r.label)
    for name, versions in sorted(packages.items()):
        if len(versions) > 1:
            notes.append(f"{name} versions differ: " + "; ".join(f"{v} in {_names(ls)}" for v, ls in versions.items()))
    return warnings, notes


# --------------------------------------------------------------------------- output


def fmt_cell(value) -> str:
    """A value for the Markdown table: 4 significant digits, integers whole, null and missing apart."""
    if value is MISSING:
        return ""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        return fmt_number(v, 4, significant=True)
    return str(value)


def _csv_cell(value) -> str:
    if value is MISSING:
        return ""
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    return value if isinstance(value, str) else json.dumps(value, default=str)


def csv_table(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _run_rows(c: Comparison, cell) -> tuple[list[str], list[list[str]]]:
    show_recipe = len(c.recipes) > 1
    header = ["run"] + (["recipe"] if show_recipe else []) + c.config_keys + c.columns
    rows = []
    for r in c.runs:
        row = [r.label] + ([r.recipe or ""] if show_recipe else [])
        row += [display_value(c.config_value(r, k)) for k in c.config_keys]
        row += [cell(c.raw(r, k)) for k in c.columns]
        rows.append(row)
    return header, rows


def format_table(c: Comparison, fmt: str = "md", *, spread: bool = False) -> str:
    """The per-run table (or, with ``spread``, the per-group statistics) as md, csv or json."""
    if fmt == "json":
        from mnemoscope.rundir import json_safe

        return json.dumps(json_safe(to_json(c)), indent=2) + "\n"
    if spread:
        s = c.spread()
        header = ["group", "metric", "n", "mean", "sd", "min", "max"]
        if fmt == "csv":
            rows = [[r.group, r.metric, str(r.n)] + ["" if math.isnan(v) else repr(float(v))
                                                     for v in (r.mean, r.sd, r.min, r.max)] for r in s.itertuples()]
        else:
            rows = [[r.group, r.metric, str(r.n)] + [fmt_number(v, 4, significant=True, missing="")
                                                     for v in (r.mean, r.sd, r.min, r.max)] for r in s.itertuples()]
    else:
        header, rows = _run_rows(c, _csv_cell if fmt == "csv" else fmt_cell)
    if fmt == "csv":
        return csv_table(header, rows)
    if fmt != "md":
        raise MnemoscopeError(f"unknown format '{fmt}': use md, csv or json")
    return md_table(header, rows) + "\n"


def _clean(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def to_json(c: Comparison) -> dict:
    """Everything in one JSON object: runs (only the keys each has), spread, differing config, checks."""
    spread = [{k: _clean(v) for k, v in row.items()} for row in c.spread().to_dict("records")]
    return {
        "columns": c.columns,
        "config_keys": c.config_keys,
        "runs": [{"run": r.label, "path": str(r.path), "recipe": r.recipe, "group": g, "status": r.status,
                  "config": {k: c.config_value(r, k) for k in c.config_keys if c.config_value(r, k) is not MISSING},
                  "metrics": {k: r.metrics[k] for k in c.columns if k in r.metrics}}
                 for r, g in zip(c.runs, c.groups)],
        "spread": spread,
        "skipped": [{"run": r.label, "path": str(r.path), "status": r.status} for r in c.skipped],
        "warnings": c.warnings,
        "notes": c.notes,
    }


def compare_targets(*targets, metrics: list[str] | None = None) -> Comparison:
    """``mnemoscope.compare(*runs)`` (and ``mnemoscope.api.compare``): ``targets`` are run
    directories, folders of runs, or run results (anything with a ``path``)."""
    paths = [getattr(t, "path", t) for t in targets]
    if not paths:
        raise MnemoscopeError("compare needs at least one run directory or folder")
    return compare(paths, metrics)


make_callable(__name__, compare_targets)  # mnemoscope.compare(*runs)
