"""Family report sections: drawn from flat keys, None when their keys are absent."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mnemoscope.report.html import RunData, write_report
from mnemoscope.report.sections import families as fam

SECTIONS = {
    fam.section_extraction: {"extraction/exact/rate@prefix=8": 0.25, "extraction/exact/n@prefix=8": 4.0,
                             "extraction/exact/count@prefix=8": 1.0, "extraction/exact/rate@prefix=16": 0.5},
    fam.section_verbmem: {"verbmem/rouge_l_f1/mean": 41.0, "verbmem/n": 2.0},
    fam.section_knowmem: {"knowmem/rouge_l_f1/mean": 12.5, "knowmem/n": 3.0},
    fam.section_tofu: {"tofu/probability/mean": 0.1, "tofu/truth_ratio/summary": 0.7, "tofu/n": 2.0},
    fam.section_target: {"target/nll/mean": 3.2, "target/n": 5.0},
    fam.section_recognition: {"recognition/2afc/accuracy": 0.75, "recognition/2afc/n": 8.0,
                              "recognition/2afc/accuracy@foil=novel": 1.0, "recognition/2afc/n@foil=novel": 4.0,
                              "recognition/2afc/accuracy@foil=swap_word": 0.5, "recognition/2afc/n@foil=swap_word": 4.0},
    fam.section_recall: {"recall/match_rate/mean": 0.3, "recall/n": 4.0},
    fam.section_sort: {"sort/short_term/accuracy": 0.6, "sort/short_term/n": 8.0,
                       "sort/short_term/accuracy@bin=0-9": 0.5, "sort/short_term/n@bin=0-9": 4.0,
                       "sort/short_term/accuracy@bin=10-19": 0.75, "sort/short_term/n@bin=10-19": 4.0},
    fam.section_reasoning: {"reasoning/kk/accuracy": 0.5, "reasoning/kk/n": 2.0},
}


def _run(tmp_path: Path, metrics: dict, notes: dict | None = None) -> RunData:
    tmp_path.mkdir(parents=True, exist_ok=True)
    if notes is not None:
        (tmp_path / "notes.json").write_text(json.dumps(notes))
    return RunData(tmp_path, metrics, pd.DataFrame())


@pytest.mark.parametrize("section", list(SECTIONS), ids=lambda f: f.__name__)
def test_each_section_is_none_without_its_keys_and_drawn_with_them(tmp_path, section):
    others = {k: v for s, keys in SECTIONS.items() if s is not section for k, v in keys.items()}
    assert section(_run(tmp_path / "without", others)) is None
    html = str(section(_run(tmp_path / "with", SECTIONS[section])))
    assert html.startswith("<section") and "<table>" in html


def test_recognition_table_and_chance_plot_by_foil_kind(tmp_path):
    html = str(fam.section_recognition(_run(tmp_path, SECTIONS[fam.section_recognition])))
    assert "swap_word" in html and "novel" in html and "<img" in html and "0.500" in html


def test_sort_rows_per_bin_and_extraction_plot(tmp_path):
    html = str(fam.section_sort(_run(tmp_path, SECTIONS[fam.section_sort])))
    assert "10-19" in html and "0.750" in html and "<img" in html
    html = str(fam.section_extraction(_run(tmp_path, SECTIONS[fam.section_extraction])))
    assert "<img" in html and "0.250" in html


def test_family_notes_show_in_their_section_and_in_the_notes_section(tmp_path):
    notes = {"verbmem/rouge_l_f1/mean": "verbmem: 1 prompt <b>skipped</b>",
             "sort/short_term/accuracy": "sort: not computed: too short"}
    run = _run(tmp_path, SECTIONS[fam.section_verbmem], notes)
    assert "1 prompt &lt;b&gt;skipped&lt;/b&gt;" in str(fam.section_verbmem(run))  # escaped
    html = str(fam.section_notes(run))
    assert "sort: not computed: too short" in html and "verbmem" in html
    assert fam.section_notes(_run(tmp_path / "none", {})) is None


def test_notes_of_runs_written_before_notes_were_keyed_by_metric(tmp_path):
    """Older runs hold {family: [note, ...]}: still listed, keyed by family."""
    run = _run(tmp_path, SECTIONS[fam.section_verbmem], {"sort": ["sort: not computed: too short", "second"]})
    assert fam.run_notes(run) == {"sort": "sort: not computed: too short · second"}
    assert "sort: not computed: too short" in str(fam.section_notes(run))


def test_grouped_reads_labels_in_natural_order(tmp_path):
    run = _run(tmp_path, {"a/x@prefix=16": 2.0, "a/x@prefix=8": 1.0, "a/x@prefix=128": None, "a/y@prefix=8": 9.0})
    assert fam.grouped(run, "a/x", "prefix") == {"8": 1.0, "16": 2.0, "128": None}


def test_examples_come_from_family_samples(tmp_path):
    (tmp_path / "family_samples").mkdir(parents=True)
    pd.DataFrame({"question": ["Where?"], "answer": ["Lisbon"], "prediction": ["Porto"], "knowmem": [0.0]}) \
        .to_parquet(tmp_path / "family_samples" / "knowmem.parquet")
    html = str(fam.section_knowmem(_run(tmp_path, SECTIONS[fam.section_knowmem])))
    assert "Examples" in html and "Porto" in html


def test_full_report_holds_every_family_section(tmp_path):
    metrics = {k: v for keys in SECTIONS.values() for k, v in keys.items()}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame().to_parquet(tmp_path / "samples.parquet")
    html = write_report(tmp_path).read_text()
    for title in ("Extraction by prefix length", "VerbMem", "KnowMem", "TOFU", "Target log-probability",
                  "Recognition", "Recall", "Sequence order recall", "Knights and Knaves"):
        assert title in html, title
    assert "(failed)" not in html
