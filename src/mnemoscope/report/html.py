"""Run directory → ``report.html``: one self-contained page (inline CSS, base64 PNG plots, no
scripts, no external URLs).

The page is a list of *sections*: functions ``RunData -> str | None`` that return an HTML
fragment (use ``section_html``), or None when the run lacks their data. ``SECTIONS`` holds the
main content in order, ``APPENDIX`` the reference material drawn last; a section module (in
``report/sections/``, or one a recipe declares, e.g. ``recipes/capacity/report.py``) adds its
own with ``register_section``. A section that raises is shown as a visible error box (and warned
about) instead of costing the whole report. Text from the run is always HTML-escaped: cells and
titles go through ``markupsafe.escape`` unless already ``Markup``.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from jinja2 import Environment
from markupsafe import Markup, escape

from mnemoscope import files
from mnemoscope.errors import MnemoscopeError
from mnemoscope.report import plots
from mnemoscope.summary import fmt, is_count

__all__ = [
    "RunData",
    "Section",
    "SECTIONS",
    "APPENDIX",
    "load_run",
    "register_section",
    "section_html",
    "html_table",
    "figure_html",
    "fmt_value",
    "fmt_auc",
    "fmt_tpr",
    "fmt_count",
    "fmt_seconds",
    "render_report",
    "write_report",
]

REPORT_NAME = "report.html"
TEMPLATE = Path(__file__).with_name("template.html.j2")
DASH = "—"
N_EXTREME = 5  # samples shown at each end of the score ranking
TEXT_CHARS = 160
GENERATED_CHARS = 80


# --------------------------------------------------------------------------- run data


@dataclass(frozen=True)
class RunData:
    """Everything a section may draw from; optional files are empty (``{}`` / None) when absent."""

    run_dir: Path
    metrics: dict[str, float | None]
    samples: pd.DataFrame
    config: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    curves: pd.DataFrame | None = None

    def metric(self, name: str, dose: int | float | None = None) -> float | None:
        """``metrics[name]`` or ``metrics[name@dose=D]`` as a float; None when absent, null or not finite."""
        key = name if dose is None else f"{name}@dose={dose}"
        value = self.metrics.get(key)
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        return float(value)

    def flagged(self, name: str, dose: int | float | None = None) -> bool:
        """True when the 0/1 flag ``name`` (e.g. ``mia/loss/tpr@fpr=0.01/underpowered``) is set."""
        return bool(self.metric(name, dose))



def _read_json(path: Path, *, required: bool) -> dict:
    if not path.is_file():
        if required:
            raise MnemoscopeError(
                f"{path} not found: pass a run directory written by a mnemoscope recipe "
                f"(it holds metrics.json and samples.parquet), or rerun the recipe"
            )
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MnemoscopeError(f"{path} is not valid JSON ({exc}): rerun the recipe to rewrite it") from exc
    if not isinstance(obj, dict):
        raise MnemoscopeError(f"{path} must hold one JSON object, found {type(obj).__name__}: rerun the recipe")
    return obj


def _read_parquet(path: Path, *, required: bool) -> pd.DataFrame | None:
    if not path.is_file():
        if required:
            raise MnemoscopeError(
                f"{path} not found: pass a run directory written by a mnemoscope recipe "
                f"(it holds metrics.json and samples.parquet), or rerun the recipe"
            )
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        raise MnemoscopeError(f"{path} is not a readable Parquet table ({exc}): rerun the recipe") from exc


def load_run(run_dir: Path) -> RunData:
    """Read a run directory. metrics.json and samples.parquet are required; config.yaml,
    manifest.json and curves.parquet are optional. Unreadable files raise MnemoscopeError."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise MnemoscopeError(f"{run_dir} is a file, not a run directory: pass the folder a recipe wrote (its --out, "
                              "holding metrics.json and samples.parquet)")
    if not run_dir.is_dir():
        raise MnemoscopeError(f"run directory {run_dir} does not exist: pass the --out directory of a recipe run")
    metrics = _read_json(run_dir / "metrics.json", required=True)
    samples = _read_parquet(run_dir / "samples.parquet", required=True)
    manifest = _read_json(run_dir / "manifest.json", required=False)
    config: dict = {}
    config_file = run_dir / "config.yaml"
    if config_file.is_file():
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise MnemoscopeError(f"{config_file} is not valid YAML ({exc}): rerun the recipe") from exc
        config = loaded if isinstance(loaded, dict) else {}
    curves = _read_parquet(run_dir / "curves.parquet", required=False)
    return RunData(run_dir, metrics, samples, config, manifest, curves)


# --------------------------------------------------------------------------- formatting


def fmt_value(value: float | None, digits: int = 3) -> str:
    """A number for a table: None/NaN → "—", whole numbers from 1000 up with thousands separators,
    anything else to ``digits`` decimals (``summary.fmt``, ``whole="large"``)."""
    return fmt(value, digits, missing=DASH, whole="large")


def fmt_metric(key: str, value, digits: int = 3) -> str:
    """``fmt_value``, but a count (see :func:`is_count`) with no decimals, grouped."""
    grouped = is_count(key) and isinstance(value, (int, float)) and not isinstance(value, bool)
    return fmt(value, digits, missing=DASH, whole="grouped" if grouped else "large")


def fmt_auc(auc: float | None, lo: float | None = None, hi: float | None = None) -> str:
    """``"0.873 [0.801, 0.934]"``; without a CI just ``"0.873"``; no AUC → "—"."""
    if auc is None or not math.isfinite(auc):
        return DASH
    if lo is None or hi is None:
        return f"{auc:.3f}"
    return f"{auc:.3f} [{lo:.3f}, {hi:.3f}]"


def fmt_tpr(tpr: float | None, underpowered: bool, fpr: float | None = None) -> Markup:
    """TPR to 3 decimals, or an explicit *underpowered* marker (too few non-members: < 1/FPR)."""
    if underpowered:
        need = f" (needs ≥ {math.ceil(1 / fpr - 1e-9)} non-members)" if fpr else ""
        return Markup('<span class="under" title="too few non-members to resolve this FPR{}">'
                      "underpowered</span>").format(need)
    return escape(fmt_value(tpr))


def fmt_count(n: float | None) -> str:
    """Parameter counts: 1234 → "1,234", 2_500_000 → "2.50 M", 7e9 → "7.00 B"."""
    if n is None or not math.isfinite(float(n)):
        return DASH
    n = float(n)
    for size, unit in ((1e9, "B"), (1e6, "M")):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(round(n)):,}"


def fmt_seconds(seconds: float) -> str:
    """12.34 → "12.3 s", 125 → "2 min 5 s", 3725 → "1 h 2 min"."""
    s = float(seconds)
    if round(s, 1) < 60:
        return f"{s:.1f} s"
    if round(s) < 3600:
        minutes, sec = divmod(int(round(s)), 60)
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(int(round(s / 60)), 60)
    return f"{hours} h {minutes} min"


def _truncate(text: object, limit: int) -> str:
    s = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    s = " ".join(s.split())  # one line: newlines and runs of spaces collapse
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _fpr_label(fpr: float) -> str:
    return f"{fpr * 100:g}%"


# --------------------------------------------------------------------------- HTML building blocks


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def section_html(title: str, body: str, *, note: str | None = None) -> Markup:
    """``<section id=...><h2>title</h2>[note]body</section>``; ``title``/``note`` are escaped
    unless Markup, ``body`` must already be HTML (build it from escaped parts)."""
    note_html = Markup('<p class="note">{}</p>').format(note) if note else Markup("")
    return Markup('<section id="{}">\n<h2>{}</h2>\n{}{}\n</section>').format(
        _anchor(str(title)), title, note_html, Markup(body)
    )


def html_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    numeric: Sequence[int] = (),
    text: Sequence[int] = (),
    row_classes: Sequence[str] | None = None,
) -> Markup:
    """A table; every cell is escaped unless it is Markup. ``numeric``/``text``: column indexes
    drawn right-aligned / in monospace."""
    numeric, text = set(numeric), set(text)

    def cell(i: int, value: object) -> Markup:
        cls = "num" if i in numeric else "text" if i in text else ""
        attr = Markup(' class="{}"').format(cls) if cls else Markup("")
        return Markup("<td{}>{}</td>").format(attr, value if isinstance(value, Markup) else str(value))

    head = Markup("").join(Markup("<th>{}</th>").format(c) for c in columns)
    body = []
    for r, row in enumerate(rows):
        cls = row_classes[r] if row_classes else ""
        attr = Markup(' class="{}"').format(cls) if cls else Markup("")
        body.append(Markup("<tr{}>{}</tr>").format(attr, Markup("").join(cell(i, v) for i, v in enumerate(row))))
    return Markup('<div class="scroll"><table><thead><tr>{}</tr></thead><tbody>\n{}\n</tbody></table></div>').format(
        head, Markup("\n").join(body)
    )


def figure_html(fig, alt: str, caption: str | None = None) -> Markup:
    """Embed a matplotlib figure as a base64 PNG ``<img>`` with alt text and an optional caption."""
    uri = plots.to_data_uri(fig)
    cap = Markup("<figcaption>{}</figcaption>").format(caption) if caption else Markup("")
    return Markup('<figure><img src="{}" alt="{}">{}</figure>').format(uri, alt, cap)


# --------------------------------------------------------------------------- sections

Section = Callable[[RunData], "str | None"]


def _model_name(run: RunData) -> str:
    model = run.manifest.get("model", run.config.get("model"))
    if isinstance(model, dict):
        for key in ("name", "id", "path", "name_or_path"):
            if isinstance(model.get(key), str):
                return model[key]
        return ", ".join(f"{k}={v}" for k, v in model.items() if not isinstance(v, (dict, list)))
    return DASH if model is None else str(model)


def section_overview(run: RunData) -> Markup:
    """Header facts: recipe, model, parameters, seed, device, timings, software versions."""
    m = run.manifest
    facts: list[tuple[str, object]] = [("Recipe", m.get("recipe", DASH)), ("Run directory", run.run_dir.name)]
    facts.append(("Model", _model_name(run)))
    params = run.metric("model/parameters")
    if params is None and isinstance(m.get("parameters"), (int, float)):
        params = float(m["parameters"])
    facts.append(("Parameters", fmt_count(params)))
    seed = m.get("seed", run.config.get("seed"))
    facts.append(("Seed", DASH if seed is None else seed))
    facts.append(("Device", m.get("device", DASH)))
    created = m.get("created_unix")
    if isinstance(created, (int, float)):
        stamp = datetime.fromtimestamp(created, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        facts.append(("Created", stamp))
    timings = m.get("timings_s")
    if isinstance(timings, dict) and timings:
        parts = [f"{k} {fmt_seconds(v)}" for k, v in timings.items() if isinstance(v, (int, float))]
        total = sum(v for v in timings.values() if isinstance(v, (int, float)))
        facts.append(("Timings", " · ".join(parts) + f"  (total {fmt_seconds(total)})"))
    version = m.get("mnemoscope", DASH)
    rev = m.get("git_revision")
    facts.append(("mnemoscope", f"{version} (git {str(rev)[:12]})" if rev else f"{version}"))
    software = [f"{k} {m[k]}" for k in ("python", "torch", "transformers", "numpy") if m.get(k)]
    if software:
        facts.append(("Software", ", ".join(software)))
    final_loss = run.metric("train/final_loss")
    if final_loss is not None:
        facts.append(("Final training loss", fmt_value(final_loss)))
    if len(run.samples):
        facts.append(("Samples", f"{len(run.samples):,} rows in samples.parquet"))
    body = Markup("").join(Markup("<dt>{}</dt><dd>{}</dd>").format(k, str(v)) for k, v in facts)
    return section_html("Run", Markup('<dl class="facts">{}</dl>').format(body))


def section_training(run: RunData) -> Markup | None:
    """Training loss per step, with steps whose batch held injected tokens marked lightly."""
    c = run.curves
    if c is None or "loss" not in c.columns or c.empty:
        return None
    step = c["step"].to_numpy(dtype=np.float64) if "step" in c.columns else np.arange(len(c), dtype=np.float64)
    loss = pd.to_numeric(c["loss"], errors="coerce").to_numpy(dtype=np.float64)
    injected = ()
    if "injected_tokens" in c.columns:
        injected = step[pd.to_numeric(c["injected_tokens"], errors="coerce").fillna(0).to_numpy() > 0]
    lr = pd.to_numeric(c["lr"], errors="coerce").to_numpy(dtype=np.float64) if "lr" in c.columns else None
    fig = plots.loss_figure(step, loss, injected_steps=injected, lr=lr)
    caption = f"{len(c):,} steps"
    if len(injected):
        caption += f"; {len(injected):,} steps had injected tokens in their batch (orange marks)"
    return section_html("Training loss", figure_html(fig, "training loss curve", caption))


def _natural_key(key: str) -> list:
    """Sort "a@dose=4" before "a@dose=16": digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def section_all_metrics(run: RunData) -> Markup | None:
    """Every key of metrics.json (natural order), folded away."""
    if not run.metrics:
        return None
    rows = []
    for key in sorted(run.metrics, key=_natural_key):
        v = run.metrics[key]
        numeric = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
        rows.append([key, fmt_metric(key, v, 4) if numeric else str(v)])
    table = html_table(["key", "value"], rows, numeric=[1])
    body = Markup("<details><summary>{} values from metrics.json (null = not computed)</summary>{}</details>").format(
        len(rows), table)
    return section_html("All metrics", body)


def section_config(run: RunData) -> Markup | None:
    """The resolved config.yaml, folded away."""
    if not run.config:
        return None
    text = yaml.safe_dump(run.config, sort_keys=False)
    body = Markup("<details><summary>config.yaml (fully resolved)</summary><pre>{}</pre></details>").format(text)
    return section_html("Configuration", body)


SECTIONS: list[Section] = [section_overview, section_training]
APPENDIX: list[Section] = [section_all_metrics, section_config]


_ORDER: dict[int, float] = {id(section_overview): 0, id(section_training): 20}
DEFAULT_ORDER = 50.0


def _order(fn: Section) -> float:
    return _ORDER.get(id(fn), DEFAULT_ORDER)


def register_section(fn: Section, *, index: int | None = None, order: float | None = None) -> Section:
    """Add ``fn`` to ``SECTIONS`` (before the appendix). Placement: ``order`` (the run overview is
    0, a lab recipe's claim 5 (``sections/claim.py``), the recipe's own results 6, the training
    curve 20, sections without an order 50), or a list ``index``, or the end. A named function with the same
    module and qualified name replaces the old one (so re-importing a recipe does not duplicate
    its section). Returns ``fn`` (usable as a decorator)."""
    ident = (getattr(fn, "__module__", None), getattr(fn, "__qualname__", None))
    if order is not None:
        _ORDER[id(fn)] = float(order)
    for i, old in enumerate(SECTIONS):
        same_name = "<lambda>" not in str(ident[1]) and ident == (
            getattr(old, "__module__", None), getattr(old, "__qualname__", None))
        if old is fn or same_name:
            SECTIONS[i] = fn
            return fn
    if index is None:
        index = next((i for i, old in enumerate(SECTIONS) if _order(old) > _order(fn)), len(SECTIONS))
    SECTIONS.insert(index, fn)
    return fn


# --------------------------------------------------------------------------- page

_TOC = re.compile(r'<section id="([^"]+)">\s*<h2>(.*?)</h2>', re.S)


_DISCOVERED: set[str] = set()  # section modules imported so far


def discover_sections() -> None:
    """Import every module of ``mnemoscope.report.sections`` and every report-section module that a
    registered run kind declares (``mnemoscope.recipes``: a recipe's own ``report.py``), each once:
    each registers its sections when imported."""
    import importlib
    import pkgutil

    from mnemoscope.recipes import declarations
    from mnemoscope.report import sections as package

    names = [f"{package.__name__}.{info.name}"
             for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name)]
    names += [name for declared in declarations() for name in declared.sections]
    for name in dict.fromkeys(names):
        if name not in _DISCOVERED:
            importlib.import_module(name)
            _DISCOVERED.add(name)


def _render_section(fn: Section, run: RunData) -> str | None:
    try:
        return fn(run)
    except Exception as exc:  # one broken section must not cost the whole report
        name = getattr(fn, "__name__", repr(fn))
        warnings.warn(f"report section {name} failed: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
        return section_html(
            f"{name} (failed)",
            Markup('<p class="error">This section could not be drawn: {}: {}</p>').format(type(exc).__name__, str(exc)),
        )


def render_report(run: RunData, sections: Sequence[Section] | None = None) -> str:
    """The full HTML page for ``run``: each section in order, skipped when it returns None."""
    discover_sections()
    sections = list(SECTIONS) + list(APPENDIX) if sections is None else list(sections)
    parts = [Markup(p) for p in (_render_section(fn, run) for fn in sections) if p]
    toc = [(m.group(1), Markup(m.group(2))) for p in parts for m in [_TOC.search(p)] if m]
    recipe = run.manifest.get("recipe") or "run"
    version = run.manifest.get("mnemoscope")
    if version is None:
        from mnemoscope import __version__ as version
    env = Environment(autoescape=True, keep_trailing_newline=True)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        title=" · ".join(dict.fromkeys(["mnemoscope", recipe, run.run_dir.name])),
        subtitle=f"model {_model_name(run)} · seed {run.manifest.get('seed', run.config.get('seed', DASH))}",
        toc=toc,
        sections=parts,
        footer=f"Written by mnemoscope {version} from {run.run_dir.name}/ "
               f"(metrics.json, samples.parquet{', curves.parquet' if run.curves is not None else ''}). "
               "Self-contained: no scripts, no external resources.",
    )


def write_report(run_dir: Path, sections: Sequence[Section] | None = None) -> Path:
    """Render ``run_dir/report.html`` and write it atomically (temp file + rename); return its path.

    Raises MnemoscopeError naming metrics.json or samples.parquet when either is missing.
    """
    run = load_run(Path(run_dir))
    page = render_report(run, sections)
    path = run.run_dir / REPORT_NAME
    files.write_text(path, page)
    return path
