"""families.untargeted: verbatim spans found by sampling from document starts or prompts, the
MemFree filter, and bad input."""

from __future__ import annotations

import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import untargeted

from .helpers import family_config, run_family, write_texts


def test_untargeted_finds_verbatim_spans_and_the_filter_removes_them(extraction_lab, tmp_path):
    engine, docs = extraction_lab
    corpus = write_texts(tmp_path / "corpus.jsonl", docs, [f"d{i}" for i in range(len(docs))])
    prompts = write_texts(tmp_path / "prompts.jsonl", [" ".join(d.split()[:2]) for d in docs[:4]])
    cfg = family_config(untargeted, corpus=corpus, prompts=prompts, min_tokens=8, max_new_tokens=24, n_samples=8,
                        start=False, filter=True, filter_n=4)
    res = run_family(untargeted, cfg, engine)
    m, s = res.metrics, res.samples
    assert m["untargeted/extracted/rate@mode=greedy"] > 0
    assert m["untargeted/generations/n"] == 12
    plain = s[s["filter"] == "none"]
    assert len(plain) > 0
    for _, row in plain.iterrows():  # every reported span is verbatim in its corpus document
        doc = engine.text_ids(docs[row["doc"]])
        span = list(row["span_ids"])
        assert len(span) >= 8 and row["doc_id"] == f"d{row['doc']}"
        assert any(doc[i : i + len(span)] == span for i in range(len(doc) - len(span) + 1))
    # MemFree bans every corpus 4-gram: no 8-token verbatim span can survive (no false negatives)
    assert m["untargeted/extracted/count@filter=memfree"] == 0
    assert (s["filter"] == "memfree").sum() == 0


def test_untargeted_bad_input(extraction_lab, tmp_path):
    engine, docs = extraction_lab
    with pytest.raises(MnemoscopeError, match="no such file"):
        untargeted.read(family_config(untargeted, corpus=str(tmp_path / "missing.jsonl")))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(MnemoscopeError, match="holds no texts"):
        untargeted.read(family_config(untargeted, corpus=str(tmp_path / "empty.jsonl")))
    corpus = write_texts(tmp_path / "c.jsonl", docs)
    with pytest.raises(MnemoscopeError, match="larger than the generations"):
        untargeted.read(family_config(untargeted, corpus=corpus, min_tokens=50, max_new_tokens=32))
    assert untargeted.read(family_config(untargeted)) is None
    with pytest.raises(MnemoscopeError, match="exceeds the model's context"):
        cfg = family_config(untargeted, corpus=corpus, max_new_tokens=500, min_tokens=10)
        untargeted.plan(untargeted.read(cfg), engine)


def test_untargeted_default_prompt_is_document_start(extraction_lab, tmp_path):
    engine, docs = extraction_lab
    cfg = family_config(untargeted, corpus=write_texts(tmp_path / "c.jsonl", docs), min_tokens=6, max_new_tokens=12,
                        n_samples=2)
    plan = untargeted.plan(untargeted.read(cfg), engine)
    assert plan.prompts == [[engine.tokenizer.eos_token_id]]
