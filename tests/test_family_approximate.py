"""families.approximate: exact and approximate memorization of a memorized suffix, with and without
the MemFree filter; short texts noted."""

from __future__ import annotations

from mnemoscope.families import approximate
from mnemoscope.families.base import Context

from .helpers import family_config, run_family, write_texts


def test_approximate_exact_vs_filtered(extraction_lab, tmp_path):
    engine, docs = extraction_lab
    texts = write_texts(tmp_path / "t.jsonl", docs[:4])
    cfg = family_config(approximate, texts=texts, prefix_tokens=6, suffix_tokens=16, filter=True, filter_n=4)
    ctx = Context()
    res = run_family(approximate, cfg, engine, ctx)
    m = res.metrics
    assert m["approx/exact/rate"] == 1.0 and m["approx/memorized/rate"] == 1.0
    assert m["approx/exact/rate@filter=memfree"] == 0.0  # every 4-gram of the suffix is banned
    assert 0 < m["approx/edit_similarity/mean@filter=memfree"] < 1
    assert set(res.samples["filter"]) == {"none", "memfree"}
    by = approximate.rates_by(res.samples, {str(i): ("a" if i < 2 else "b") for i in range(4)}, key="group")
    assert by["approx/exact/rate@group=a"] == 1.0 and "approx/bleu/mean@group=b,filter=memfree" in by


def test_approximate_short_texts_noted(extraction_lab, tmp_path):
    engine, docs = extraction_lab
    cfg = family_config(approximate, texts=write_texts(tmp_path / "t.jsonl", ["short text", docs[0]]), prefix_tokens=6,
                        suffix_tokens=16)
    res = run_family(approximate, cfg, engine)
    assert res.metrics["approx/n"] == 1 and "approx/memorized/rate" in res.notes
