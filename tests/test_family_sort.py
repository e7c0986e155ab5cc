"""families.sort: SORT (which segment came first) from one batched score call."""

from __future__ import annotations

import numpy as np
import pytest

from mnemoscope.engine import Engine, TokenScores
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.sort import sort_in_context
from mnemoscope.probes.sort import make_sort_pairs, sort_prompt

from .helpers import Scripted


@pytest.fixture(scope="module")
def text(corpus):
    return " ".join(corpus[:3])


def _scores(logp: float) -> TokenScores:
    one = np.array([logp], dtype=np.float32)
    return TokenScores(np.array([7]), one, one, one, np.array([False]), False)


def FakeScorer(tokenizer, logp):
    """A scripted backend scoring each (context, choice) pair as ``logp(context, choice)``."""
    return Scripted(tokenizer, logp=logp)


def _segments(context: str) -> tuple[str, str, str]:
    lines = context.split("\n")
    a = next(line for line in lines if line.startswith("Segment A: "))[len("Segment A: ") :]
    b = next(line for line in lines if line.startswith("Segment B: "))[len("Segment B: ") :]
    return lines[2], a, b  # with the excerpt, line 2 is the excerpt


def test_always_a_engine_scores_exactly_chance(text, tokenizer):
    engine = FakeScorer(tokenizer, lambda c, t: 0.0 if t == " A" else -1.0)
    samples, metrics, notes = sort_in_context(engine, text, segment_words=4, excerpt_words=24, n_pairs=10)
    assert engine.calls["score"] == 1 and len(engine.pairs) == 40
    assert metrics["sort/short_term/accuracy"] == 0.5
    assert metrics["sort/short_term/chose_a_rate"] == 1.0
    assert metrics["sort/short_term/pair_accuracy"] == 0.0
    assert metrics["sort/short_term/n"] == 20.0
    assert notes == {}


def test_oracle_engine_is_always_right_in_every_bin(text, tokenizer):
    def logp(context, choice):
        excerpt, a, b = _segments(context)
        a_first = excerpt.find(a) < excerpt.find(b)
        return 0.0 if (choice == " A") == a_first else -5.0

    records = make_sort_pairs(text, 4, 24, n_pairs=12, distance_bins=[0, 4, 17], seed=2)
    samples, metrics, _ = sort_in_context(FakeScorer(tokenizer, logp), records)
    assert metrics["sort/short_term/accuracy"] == 1.0
    assert metrics["sort/short_term/accuracy@bin=0-3"] == 1.0
    assert metrics["sort/short_term/accuracy@bin=4-16"] == 1.0
    assert metrics["sort/short_term/n@bin=0-3"] == 12.0
    assert samples["correct"].all() and "excerpt" not in samples.columns


def test_micro_model_sort_short_and_long_term(model, tokenizer, text):
    engine = Engine(model, tokenizer, max_length=512)
    samples, metrics, _ = sort_in_context(engine, text, segment_words=4, excerpt_words=24, n_pairs=6, seed=1)
    assert 0.0 <= metrics["sort/short_term/accuracy"] <= 1.0
    assert set(samples["a_first"]) == {True, False}
    assert (samples.groupby("pair_id")["a_first"].nunique() == 2).all()
    # the model's choice is the higher-log-probability continuation, checked by hand for one record
    records = make_sort_pairs(text, 4, 24, n_pairs=6, seed=1)
    context, choices = sort_prompt(records[3], True)
    lp = [float(s.logprobs.sum()) for s in engine.score(pairs=[(context, c) for c in choices])]
    assert samples["chose_a"][3] == (lp[0] >= lp[1])
    assert samples["logp_a"][3] == pytest.approx(lp[0], rel=1e-5)
    _, long_term, _ = sort_in_context(engine, records, with_excerpt=False)
    assert "sort/long_term/accuracy" in long_term and not any(k.startswith("sort/short_term") for k in long_term)


def test_long_term_prompts_leave_the_excerpt_out(text, tokenizer):
    engine = FakeScorer(tokenizer, lambda c, t: 0.0)
    records = make_sort_pairs(text, 4, 24, n_pairs=4, seed=0)
    sort_in_context(engine, records, with_excerpt=False)
    assert all(records[0]["excerpt"] not in c for c, _ in engine.pairs)
    assert {t for _, t in engine.pairs} == {" A", " B"}


def test_no_records_is_an_error(tokenizer):
    with pytest.raises(MnemoscopeError, match="no SORT records"):
        sort_in_context(FakeScorer(tokenizer, lambda c, t: 0.0), [])
