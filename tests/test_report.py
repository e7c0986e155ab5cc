"""Tests for mnemoscope.report: run directory → self-contained report.html."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from sklearn.metrics import roc_curve

from mnemoscope.errors import MnemoscopeError
from mnemoscope.report import html, plots
from mnemoscope.report.html import (
    RunData,
    fmt_auc,
    fmt_count,
    fmt_seconds,
    fmt_tpr,
    fmt_value,
    html_table,
    load_run,
    register_section,
    render_report,
    section_html,
    write_report,
)
from mnemoscope.report.sections import membership as membership_sections

ATTACKS = ("loss", "zlib", "min_k", "min_k_pp")
DOSES = (0, 1, 4, 16)
MALICIOUS = '<script>alert("pwned")</script> & <img src=x onerror=alert(1)>'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- synthetic run directories


def _metrics(with_doses: bool) -> dict:
    m: dict = {"train/final_loss": 2.345, "model/parameters": 1_234_567}
    for i, a in enumerate(ATTACKS):
        auc = 0.70 + 0.05 * i
        m[f"mia/{a}/auc"] = auc
        m[f"mia/{a}/auc/ci_lo"] = auc - 0.10
        m[f"mia/{a}/auc/ci_hi"] = auc + 0.05
        m[f"mia/{a}/tpr@fpr=0.001"] = None
        m[f"mia/{a}/tpr@fpr=0.001/underpowered"] = 1
        m[f"mia/{a}/tpr@fpr=0.01"] = None
        m[f"mia/{a}/tpr@fpr=0.01/underpowered"] = 1
        m[f"mia/{a}/tpr@fpr=0.05"] = 0.25 + 0.125 * i
        m[f"mia/{a}/tpr@fpr=0.05/underpowered"] = 0
        m[f"mia/{a}/n_members"] = 18
        m[f"mia/{a}/n_nonmembers"] = 22
        if with_doses:
            for j, d in enumerate(DOSES[1:]):
                m[f"mia/{a}/auc@dose={d}"] = 0.55 + 0.1 * j
                m[f"mia/{a}/auc/ci_lo@dose={d}"] = 0.45 + 0.1 * j
                m[f"mia/{a}/auc/ci_hi@dose={d}"] = 0.65 + 0.1 * j
    if with_doses:
        m["mia/min_k_pp/auc@dose=16"] = 0.8125
        m["mia/min_k_pp/auc/ci_lo@dose=16"] = 0.7
        m["mia/min_k_pp/auc/ci_hi@dose=16"] = 0.91
        for j, d in enumerate(DOSES):
            m[f"extraction/exact/rate@dose={d}"] = [0.0, 0.0, 0.5, 0.875][j]
            m[f"extraction/memorization/mean@dose={d}"] = [0.05, 0.1, 0.6, 0.9375][j]
            m[f"mia/loss/mean_nll@dose={d}"] = [5.5, 5.25, 3.0, 0.75][j]
        m["extraction/exact/rate@dose=1"] = None  # not computed → "—"
    return m


def _samples(with_doses: bool) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    doses = [0] * 22 + [1] * 6 + [4] * 6 + [16] * 6
    n = len(doses)
    dose = np.array(doses)
    label = (dose > 0).astype(int)
    nll = 5.0 - 0.25 * np.log2(1 + dose) + rng.normal(0, 0.3, n)
    frame = pd.DataFrame({
        "id": [f"c{i:03d}" for i in range(n)],
        "kind": ["passphrase" if i % 2 else "random_tokens" for i in range(n)],
        "text": [f"My secret passphrase is text number {i}" for i in range(n)],
        "dose": dose,
        "label": label,
        "nll": nll,
        "n_scored": rng.integers(10, 30, n),
        "truncated": False,
    })
    for i, a in enumerate(ATTACKS):
        frame[f"score/{a}"] = -nll + rng.normal(0, 0.1 * (i + 1), n)
    frame.loc[3, "score/zlib"] = np.nan  # a text with no score must not break the ROC
    # the most member-like text under every attack is the malicious one
    top = int(np.argmax(frame["score/min_k_pp"]))
    frame.loc[top, "text"] = MALICIOUS
    frame["extraction/exact"] = (dose >= 16).astype(float)
    frame["extraction/memorization"] = np.clip(dose / 16, 0, 1)
    frame["generated"] = ["continuation " + "x" * 200 for _ in range(n)]
    if not with_doses:
        frame = frame.drop(columns=["dose", "extraction/exact", "extraction/memorization", "generated"])
    return frame


def make_run(root: Path, *, with_doses: bool = True, with_curves: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    recipe = "quickstart" if with_doses else "audit"
    (root / "config.yaml").write_text(yaml.safe_dump({"seed": 7, "model": {"size": "tiny", "vocab_size": 8192},
                                                      "train": {"steps": 60}}))
    manifest = {"recipe": recipe, "seed": 7, "device": "cpu", "mnemoscope": "0.1.0",
                "git_revision": "0123456789abcdef0123", "python": "3.11.0", "torch": "2.13.0",
                "timings_s": {"data": 1.25, "train": 75.0, "audit": 4.5}, "created_unix": 1_700_000_000.0}
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "metrics.json").write_text(json.dumps(_metrics(with_doses)))
    _samples(with_doses).to_parquet(root / "samples.parquet", index=False)
    if with_curves:
        steps = np.arange(60)
        pd.DataFrame({"step": steps, "loss": 9.0 * np.exp(-steps / 20) + 1.0, "lr": np.full(60, 2e-3),
                      "injected_tokens": np.where(steps % 7 == 0, 24, 0)}).to_parquet(root / "curves.parquet",
                                                                                      index=False)
    return root


@pytest.fixture(scope="module")
def dose_report(tmp_path_factory) -> tuple[Path, str]:
    run = make_run(tmp_path_factory.mktemp("dose") / "run")
    path = write_report(run)
    return path, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def audit_report(tmp_path_factory) -> tuple[Path, str]:
    run = make_run(tmp_path_factory.mktemp("audit") / "run", with_doses=False, with_curves=False)
    path = write_report(run)
    return path, path.read_text(encoding="utf-8")


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


class _ResourceParser(HTMLParser):
    """Collects tag names and resource-loading attribute values, as a browser would see them."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "poster", "data", "action")]


def _external_references(page: str) -> list[str]:
    """Resource references that are not inline data or in-page anchors, tags that load or run
    code, and CSS url()/@import; text content (even text that looks like a URL) is ignored."""
    parser = _ResourceParser()
    parser.feed(page)
    refs = [v for v in parser.refs if not v.startswith(("data:", "#"))]
    refs += [t for t in parser.tags if t in ("script", "link", "iframe", "object", "embed")]
    style = "".join(re.findall(r"<style>(.*?)</style>", page, re.S))
    refs += re.findall(r"url\(|@import", style)
    return refs


def _section(page: str, anchor: str) -> str:
    m = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert m, f"section {anchor} missing"
    return m.group(1)


# --------------------------------------------------------------------------- whole report


def test_dose_report_has_every_section_and_images(dose_report):
    path, page = dose_report
    assert path.name == "report.html" and path.exists()
    for title in ("Run", "Summary", "Dose–response", "ROC curves", "Training loss", "Samples",
                  "All metrics", "Configuration"):
        assert f"<h2>{title}</h2>" in page, title
    images = _images(page)
    assert len(images) == 3  # dose–response, ROC, training loss
    assert all(img.startswith(PNG_SIGNATURE) for img in images)
    assert not list(path.parent.glob(".report.html.*"))  # no temp file left behind


def test_report_is_self_contained(dose_report, audit_report):
    for _, page in (dose_report, audit_report):
        assert _external_references(page) == []
        assert "http://" not in page and "https://" not in page


def test_header_facts(dose_report):
    run = _section(dose_report[1], "run")
    for fact in ("quickstart", "size=tiny, vocab_size=8192", "1.23 M", "cpu", "0.1.0 (git 0123456789ab)",
                 "data 1.2 s", "train 1 min 15 s", "total 1 min 21 s", "2.345", "2023-11-14 22:13 UTC"):
        assert fact in run, fact
    assert "<dt>Seed</dt><dd>7</dd>" in run


def test_dose_summary_table_values(dose_report):
    summary = _section(dose_report[1], "summary")
    assert "0.812 [0.700, 0.910]" in summary  # min_k_pp at dose 16
    assert "0.850 [0.750, 0.900]" in summary  # min_k_pp over all doses
    assert "0.875" in summary and "0.938" in summary and "0.750" in summary  # dose-16 exact, memo, NLL
    assert re.search(r"<td>1</td><td class=\"num\">6</td><td class=\"num\">—</td>", summary)  # null rate
    assert "0 (control)" in summary and '<td class="num">22</td>' in summary
    assert "all doses &gt; 0" in summary
    for attack in ATTACKS:
        assert f"AUC {attack} [95% CI]" in summary


def test_underpowered_is_explicit(dose_report, audit_report):
    for _, page in (dose_report, audit_report):
        summary = _section(page, "summary")
        # 4 attacks × 2 underpowered FPRs, and no number is printed for them
        assert summary.count(">underpowered</span>") == 8
        assert "needs ≥ 1000 non-members" in summary and "needs ≥ 100 non-members" in summary
        assert "0.625" in summary  # min_k_pp TPR at 5% FPR is a real number


def test_malicious_text_is_escaped(dose_report):
    page = dose_report[1]
    assert "<script" not in page.lower()
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; &amp; &lt;img src=x" in page


def test_samples_show_extremes_in_order(tmp_path):
    run = load_run(make_run(tmp_path / "run"))
    part = membership_sections.section_samples(run)
    frame = run.samples.dropna(subset=["score/min_k_pp"]).sort_values("score/min_k_pp", ascending=False)
    highest, lowest = part.split("<h3>Lowest")
    ids_high = re.findall(r"<td>(c\d{3})</td>", highest)
    ids_low = re.findall(r"<td>(c\d{3})</td>", lowest)
    assert ids_high == list(frame["id"][:5])
    assert ids_low == list(frame["id"][::-1][:5])
    assert "Highest min_k_pp scores" in part  # best overall AUC (0.85) ranks the samples
    assert "continuation " + "x" * 66 + "…" in part  # generated text truncated to 80 characters


def test_samples_never_repeat_rows_when_few(tmp_path):
    root = make_run(tmp_path / "run")
    pd.read_parquet(root / "samples.parquet").iloc[:7].to_parquet(root / "samples.parquet", index=False)
    part = membership_sections.section_samples(load_run(root))
    ids = re.findall(r"<td>(c\d{3})</td>", part)
    assert len(ids) == 7 and len(set(ids)) == 7


def test_audit_run_without_dose_or_curves(audit_report):
    path, page = audit_report
    for title in ("Summary", "ROC curves", "Samples", "Run"):
        assert f"<h2>{title}</h2>" in page
    assert "Dose–response" not in page and "Training loss" not in page
    assert len(_images(page)) == 1
    summary = _section(page, "summary")
    assert "By dose" not in summary
    assert "<td>zlib</td><td class=\"num\">0.750 [0.650, 0.800]</td>" in summary
    assert "members vs non-members (18 vs 22)" in summary
    assert "audit" in _section(page, "run")


def test_missing_required_files_raise(tmp_path):
    root = make_run(tmp_path / "run")
    (root / "metrics.json").unlink()
    with pytest.raises(MnemoscopeError, match="metrics.json"):
        write_report(root)
    root = make_run(tmp_path / "run2")
    (root / "samples.parquet").unlink()
    with pytest.raises(MnemoscopeError, match="samples.parquet"):
        write_report(root)
    assert not (root / "report.html").exists()
    with pytest.raises(MnemoscopeError, match="does not exist"):
        write_report(tmp_path / "nowhere")


def test_corrupt_files_raise(tmp_path):
    root = make_run(tmp_path / "run")
    (root / "metrics.json").write_text("{not json")
    with pytest.raises(MnemoscopeError, match="metrics.json"):
        write_report(root)
    (root / "metrics.json").write_text("[1, 2]")
    with pytest.raises(MnemoscopeError, match="one JSON object"):
        write_report(root)
    root = make_run(tmp_path / "run2")
    (root / "samples.parquet").write_bytes(b"not parquet")
    with pytest.raises(MnemoscopeError, match="samples.parquet"):
        write_report(root)


def test_failed_render_leaves_old_report_untouched(tmp_path, monkeypatch):
    root = make_run(tmp_path / "run", with_curves=False)
    (root / "report.html").write_text("old report")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(html, "render_report", boom)
    with pytest.raises(KeyboardInterrupt):
        write_report(root)
    assert (root / "report.html").read_text() == "old report"
    assert sorted(p.name for p in root.iterdir()) == ["config.yaml", "manifest.json", "metrics.json",
                                                      "report.html", "samples.parquet"]


# --------------------------------------------------------------------------- section registry


def test_register_section_adds_and_replaces(tmp_path, monkeypatch):
    monkeypatch.setattr(html, "SECTIONS", list(html.SECTIONS))
    n = len(html.SECTIONS)

    def recipe_extra(run: RunData):
        return section_html("Recipe extra", f"<p>{len(run.samples)} rows</p>")

    assert register_section(recipe_extra) is recipe_extra
    assert len(html.SECTIONS) == n + 1 and html.SECTIONS[-1] is recipe_extra

    def recipe_extra(run: RunData):  # noqa: F811 - same name: replaces the first
        return section_html("Recipe extra v2", Markup("<p>{} rows</p>").format(len(run.samples)))

    register_section(recipe_extra)
    assert len(html.SECTIONS) == n + 1
    page = write_report(make_run(tmp_path / "run", with_curves=False)).read_text()
    assert "<h2>Recipe extra v2</h2>" in page and "<p>40 rows</p>" in page
    # appended sections come before the appendix
    assert page.index("Recipe extra v2") < page.index("<h2>All metrics</h2>")
    assert '<a href="#recipe-extra-v2">Recipe extra v2</a>' in page


def test_register_section_index_and_lambdas(monkeypatch):
    monkeypatch.setattr(html, "SECTIONS", list(html.SECTIONS))
    first, second = (lambda run: None), (lambda run: None)
    register_section(first, index=0)
    register_section(second)
    register_section(second)  # same object: no duplicate
    assert html.SECTIONS[0] is first and html.SECTIONS[-1] is second
    assert sum(fn is second for fn in html.SECTIONS) == 1


def test_all_metrics_in_natural_order(dose_report):
    appendix = _section(dose_report[1], "all-metrics")
    keys = re.findall(r"<td>(extraction/exact/rate@dose=\d+)</td>", appendix)
    assert keys == [f"extraction/exact/rate@dose={d}" for d in DOSES]
    assert "<td>model/parameters</td><td class=\"num\">1,234,567</td>" in appendix


def test_section_that_raises_is_shown_not_fatal(tmp_path):
    def broken(run):
        raise ValueError("<bad> data")

    run = load_run(make_run(tmp_path / "run", with_curves=False))
    with pytest.warns(RuntimeWarning, match="broken"):
        page = render_report(run, [html.section_overview, broken, lambda r: None, membership_sections.section_summary])
    assert "<h2>broken (failed)</h2>" in page and "ValueError: &lt;bad&gt; data" in page
    assert "<h2>Run</h2>" in page and "<h2>Summary</h2>" in page


def test_sections_skip_missing_data(tmp_path):
    root = tmp_path / "bare"
    root.mkdir()
    (root / "metrics.json").write_text("{}")
    pd.DataFrame({"text": ["a", "b"]}).to_parquet(root / "samples.parquet", index=False)
    page = write_report(root).read_text()
    assert "<h2>Run</h2>" in page
    for title in ("Summary", "Dose–response", "ROC curves", "Training loss", "Samples", "All metrics",
                  "Configuration"):
        assert f"<h2>{title}</h2>" not in page


# --------------------------------------------------------------------------- RunData


def test_rundata_discovery(tmp_path):
    run = load_run(make_run(tmp_path / "run"))
    assert membership_sections.run_attacks(run) == list(ATTACKS)
    assert membership_sections.run_doses(run) == list(DOSES)
    assert membership_sections.run_fprs(run) == [0.001, 0.01, 0.05]
    assert run.metric("mia/zlib/auc") == pytest.approx(0.75)
    assert run.metric("mia/min_k_pp/auc", 16) == 0.8125
    assert run.metric("extraction/exact/rate", 1) is None  # null
    assert run.metric("no/such/key") is None
    assert run.flagged("mia/loss/tpr@fpr=0.01/underpowered") and not run.flagged("mia/loss/tpr@fpr=0.05/underpowered")
    np.testing.assert_array_equal(membership_sections.run_labels(run), (run.samples["dose"] > 0).astype(float))


def test_rundata_labels_from_dose_and_extra_attacks():
    samples = pd.DataFrame({"dose": [0, 2, 0, 5], "score/a": [1.0, 2, 3, 4]})
    run = RunData(Path("x"), {"mia/b/auc": 0.6, "mia/a/auc": float("nan"), "mia/b/auc@dose=2": 0.7}, samples)
    np.testing.assert_array_equal(membership_sections.run_labels(run), [0, 1, 0, 1])
    assert membership_sections.run_attacks(run) == ["a", "b"]
    assert run.metric("mia/a/auc") is None
    assert membership_sections.run_labels(RunData(Path("x"), {}, pd.DataFrame({"t": [1]}))) is None
    assert membership_sections.run_doses(RunData(Path("x"), {}, pd.DataFrame({"t": [1]}))) is None


# --------------------------------------------------------------------------- formatting


def test_formatting_helpers():
    assert fmt_value(None) == "—" and fmt_value(float("nan")) == "—"
    assert fmt_value(0.12345) == "0.123" and fmt_value(2.0, 1) == "2.0" and fmt_value(12345) == "12,345"
    assert fmt_auc(0.8125, 0.7, 0.91) == "0.812 [0.700, 0.910]"
    assert fmt_auc(0.5) == "0.500" and fmt_auc(None, 0.1, 0.2) == "—"
    assert fmt_tpr(0.25, False) == "0.250"
    assert ">underpowered<" in fmt_tpr(None, True, 0.01) and "needs ≥ 100 non-members" in fmt_tpr(None, True, 0.01)
    assert fmt_count(1234) == "1,234" and fmt_count(2_500_000) == "2.50 M" and fmt_count(7e9) == "7.00 B"
    assert fmt_count(None) == "—"
    assert fmt_seconds(12.34) == "12.3 s" and fmt_seconds(125) == "2 min 5 s" and fmt_seconds(3725) == "1 h 2 min"
    assert fmt_seconds(59.97) == "1 min 0 s" and fmt_seconds(119.7) == "2 min 0 s" and fmt_seconds(3599.6) == "1 h 0 min"


def test_html_table_escapes_unless_markup():
    rows = [["<i>x</i>", 3], [Markup("<b>ok</b>"), 4]]
    table = html_table(["a<b", "n"], rows, numeric=[1], row_classes=["", "total"])
    assert "<th>a&lt;b</th>" in table and "<td>&lt;i&gt;x&lt;/i&gt;</td>" in table
    assert "<td><b>ok</b></td>" in table and '<td class="num">3</td>' in table and '<tr class="total">' in table


def test_section_html_escapes_title():
    part = section_html("A <b> & C", "<p>body</p>", note="n<1")
    assert part.startswith('<section id="a-b-c">') and "<h2>A &lt;b&gt; &amp; C</h2>" in part
    assert "<p>body</p>" in part and '<p class="note">n&lt;1</p>' in part


# --------------------------------------------------------------------------- plots


def test_to_data_uri_is_png():
    fig = plots.new_figure(2, 2)
    fig.subplots().plot([0, 1], [0, 1])
    uri = plots.to_data_uri(fig, dpi=50)
    data = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
    assert uri.startswith("data:image/png;base64,") and data.startswith(PNG_SIGNATURE)
    assert b"matplotlib" not in data  # no software metadata (it carries a URL)


def test_roc_figure_draws_given_points_and_drops_zeros_on_log_axes():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.5, 0.3])
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    fig = plots.roc_figure({"loss": (fpr, tpr)}, labels={"loss": "loss (AUC 0.75)"})
    lin, log = fig.axes
    np.testing.assert_allclose(lin.lines[0].get_xdata(), fpr)
    np.testing.assert_allclose(lin.lines[0].get_ydata(), tpr)
    keep = (fpr > 0) & (tpr > 0)
    np.testing.assert_allclose(log.lines[0].get_xdata(), fpr[keep])
    assert log.get_xscale() == "log" and log.get_yscale() == "log"
    assert lin.get_legend().get_texts()[0].get_text() == "loss (AUC 0.75)"
    assert lin.lines[-1].get_label() == "chance"


def test_dose_response_figure_panels_and_error_bars():
    doses = [0, 1, 4]
    auc = {"loss": ([None, 0.6, 0.9], [None, 0.5, 0.8], [None, 0.7, 0.95])}
    fig = plots.dose_response_figure(doses, extraction={"exact": [0.0, 0.25, 1.0]}, auc=auc, nll=[5.0, 4.0, 2.0])
    ext, auc_ax, nll_ax = fig.axes
    np.testing.assert_allclose(ext.lines[0].get_ydata(), [0.0, 0.25, 1.0])
    (container,) = auc_ax.containers
    np.testing.assert_allclose(container.lines[0].get_ydata(), [np.nan, 0.6, 0.9])
    segments = container.lines[2][0].get_segments()  # vertical CI bars: [lo, hi] per dose
    finite = [seg for seg in segments if seg.size and np.isfinite(seg).all()]
    np.testing.assert_allclose([seg[:, 1] for seg in finite], [[0.5, 0.7], [0.8, 0.95]])
    assert any(line.get_label() == "chance" and list(line.get_ydata()) == [0.5, 0.5] for line in auc_ax.lines)
    assert [t.get_text() for t in auc_ax.get_xticklabels()] == ["0\n(control)", "1", "4"]
    np.testing.assert_allclose(nll_ax.lines[0].get_ydata(), [5.0, 4.0, 2.0])


def test_dose_response_figure_without_data_is_none():
    empty = {"loss": ([None, None],) * 3}
    assert plots.dose_response_figure([0, 1], extraction={"exact": [None, None]}, auc=empty) is None
    fig = plots.dose_response_figure([0, 1], extraction={"exact": [0.0, 1.0]}, auc={})
    assert len(fig.axes) == 1


def test_loss_figure_marks_injections_and_lr():
    steps = np.arange(200)
    fig = plots.loss_figure(steps, np.linspace(5, 1, 200), injected_steps=[3, 50, 120], lr=np.full(200, 1e-3))
    ax, twin = fig.axes
    (marks,) = ax.collections
    assert len(marks.get_segments()) == 3
    np.testing.assert_allclose([seg[0, 0] for seg in marks.get_segments()], [3, 50, 120])
    assert [line.get_label() for line in ax.lines] == ["loss", "loss, mean of last 4 steps"]
    assert twin.lines[0].get_label() == "learning rate"
    fig = plots.loss_figure([0, 1, 2], [3.0, 2.0, 1.0])
    assert len(fig.axes) == 1 and not fig.axes[0].collections


def test_moving_average_hand_computed():
    np.testing.assert_allclose(plots.moving_average([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(plots.moving_average([1, 2, 3], 1), [1, 2, 3])
    with pytest.raises(ValueError):
        plots.moving_average([1.0], 0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), st.integers(1, 50))
def test_moving_average_matches_pandas_rolling(values, window):
    expected = pd.Series(values).rolling(window, min_periods=1).mean().to_numpy()
    np.testing.assert_allclose(plots.moving_average(values, window), expected, rtol=1e-9, atol=1e-6)
