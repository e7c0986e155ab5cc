"""The sort recipe end to end at micro size, its book cutting and its paired analysis."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.recipes import get_recipe
from mnemoscope.recipes.sort import recipe as sort

MICRO = {
    "model.hidden": 64, "model.layers": 2, "model.intermediate": 172, "model.vocab_size": 1024,
    "corpus.n_docs": 600, "book.n_excerpts": 4, "book.excerpt_words": 40, "book.segment_words": 8,
    "book.n_pairs": 24, "train.seq_len": 128, "phases.pretrain_steps": 60, "phases.study_steps": 40,
    "phases.exposures": 5, "phases.format_steps": 40, "phases.practice_excerpts": 8, "train.lr": 3e-3,
    "analysis.n_boot": 50,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("sort") / "run"
    sort.run(out, dict(MICRO), log=lambda *_: None)
    return out


def test_run_directory(finished):
    for name in ("config.yaml", "manifest.json", "metrics.json", "samples.parquet", "curves.parquet",
                 "excerpts.parquet", "report.html"):
        assert (finished / name).is_file(), name
    samples = pd.read_parquet(finished / "samples.parquet")
    assert set(samples["condition"]) == {"short_term", "long_term"} and set(samples["phase"]) == {"before", "after"}
    assert len(samples) == 2 * 2 * 2 * 24  # conditions × phases × counterbalanced records
    html = (finished / "report.html").read_text()
    assert "Episodic order memory (SORT)" in html and "(failed)" not in html
    log = json.loads((finished / "manifest.json").read_text())["injection_log"]
    assert sum(e["n_docs"] for e in log) == 4 * 5
    assert get_recipe("sort") is sort


def test_both_conditions_before_and_after_are_accuracies(finished):
    m = json.loads((finished / "metrics.json").read_text())
    for cond in ("short_term", "long_term"):
        for phase in ("before", "after"):
            acc = m[f"sort/{cond}/accuracy@phase={phase}"]
            assert 0.0 <= acc <= 1.0
            assert m[f"sort/{cond}/accuracy/ci_lo@phase={phase}"] <= acc <= m[f"sort/{cond}/accuracy/ci_hi@phase={phase}"]
        assert -1.0 <= m[f"sort/{cond}/accuracy_change"] <= 1.0
    assert m["sort/excerpt_nll@phase=after"] < m["sort/excerpt_nll@phase=before"]  # the book was learned


def test_book_and_excerpts():
    texts = ["a b c", "d e", "f g h i"] + [f"w{i}" for i in range(10)]
    book, rest = sort.make_book(texts, 6)
    assert book == "a b c d e f" and rest == texts[3:]
    assert sort.excerpt_texts("a b c d e f g", 3) == ["a b c", "d e f"]
    with pytest.raises(MnemoscopeError, match="corpus"):
        sort.make_book(texts[:3], 6)


def test_analysis_by_hand():
    rows = []
    for phase, correct in (("before", [False, True, False, True]), ("after", [True, True, True, False])):
        for i, c in enumerate(correct):
            rows.append({"condition": "long_term", "phase": phase, "pair_id": i // 2, "a_first": i % 2 == 0,
                         "correct": c, "chose_a": c == (i % 2 == 0), "bin_label": "0-9"})
    nll = pd.DataFrame({"nll_before": [2.0, 4.0], "nll_after": [1.0, 2.0]})
    m = sort.analyze(pd.DataFrame(rows), nll, n_boot=20, seed=0)
    assert m["sort/long_term/accuracy@phase=before"] == 0.5 and m["sort/long_term/accuracy@phase=after"] == 0.75
    assert m["sort/long_term/pair_accuracy@phase=after"] == 0.5
    # pair 0: (1 + 1)/2 − (0 + 1)/2 = 0.5; pair 1: (1 + 0)/2 − (0 + 1)/2 = 0 → mean 0.25
    assert m["sort/long_term/accuracy_change"] == pytest.approx(0.25)
    assert m["sort/excerpt_nll@phase=before"] == 3.0 and m["sort/excerpt_nll@phase=after"] == 1.5


def test_the_claim_is_computed_and_opens_the_report(finished):
    from tests.helpers import claim_effects

    effects = claim_effects("sort", finished)
    # recomputed from the per-question rows: accuracy = mean of ``correct`` per condition after training
    samples = pd.read_parquet(finished / "samples.parquet")
    after = samples[samples["phase"] == "after"]
    short = after.loc[after["condition"] == "short_term", "correct"].mean()
    long = after.loc[after["condition"] == "long_term", "correct"].mean()
    assert effects["in-context SORT accuracy vs chance"] == pytest.approx(short)
    assert effects["SORT accuracy, in context − from training (long-term)"] == pytest.approx(short - long)


def test_format_batches_label_the_answer_of_questions_and_all_of_background(tokenizer):
    import numpy as np

    from mnemoscope.probes.sort import make_sort_pairs

    text = " ".join(f"w{i}" for i in range(80))
    records = make_sort_pairs(text, 8, 40, n_pairs=4, seed=0)
    background = np.arange(4 * 12, dtype=np.int64).reshape(4, 12) % 50 + 5
    fmt = sort.FormatBatches(tokenizer, records, background, batch_size=4, seed=0)
    assert len(fmt.rows) == 2 * len(records)  # every record in both conditions
    for k, r in enumerate(records):  # the labelled answer is the right one
        for row in (fmt.labels[2 * k], fmt.labels[2 * k + 1]):
            assert tokenizer.decode([t for t in row if t != -100][:-1]).strip() == r["answer"].strip()
    b = fmt.batch(1)
    ids, labels = b["input_ids"], b["labels"]
    eos = tokenizer.eos_token_id
    for r in range(2):  # questions: labelled on the answer token(s) and the EOS only
        labelled = labels[r][labels[r] != -100].tolist()
        assert labelled[-1] == eos and len(labelled) <= 3
        answer = tokenizer.decode(labelled[:-1])
        assert answer.strip() in ("A", "B")
    assert (labels[2:, :12] == ids[2:, :12]).all() and (labels[2:, 12:] == -100).all()  # background: every token
    assert (ids[2:, :12] == background[2:4]).all()  # step 1 takes background rows 2, 3
