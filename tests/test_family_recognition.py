"""families.recognition: 2AFC recognition of studied texts against foils (ties count half), and the
foil makers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.recognition import make_foils, two_afc
from mnemoscope.metrics.recognition import two_afc_accuracy

from .helpers import Counting, Scripted


def test_two_afc_recognizes_studied_texts(memorizer, studied, corpus):
    foils, notes = make_foils(studied, ["shuffled_words", "novel"], seed=1, pool=[d[:150] for d in corpus[50:60]])
    assert notes == [] and len(foils) == 6
    engine = Counting(memorizer)
    samples, metrics, _ = two_afc(engine, foils["seen"], foils["foil"], foils["kind"])
    assert engine.calls["score"] == 1
    assert metrics["recognition/2afc/accuracy"] == 1.0
    assert metrics["recognition/2afc/accuracy@foil=novel"] == 1.0
    assert metrics["recognition/2afc/n@foil=shuffled_words"] == 3.0
    assert samples["correct"].tolist() == [1.0] * 6


def test_two_afc_equals_metric_on_engine_nlls_and_ties_count_half(model, tokenizer):
    engine = Engine(model, tokenizer)
    seen = ["Anna was born in Lisbon.", "The museum keeps maps.", "Apples are sold here."]
    foils = ["Lisbon in born was Anna.", "The museum keeps maps.", "Bridges cross the river."]
    samples, metrics, _ = two_afc(engine, seen, foils)
    nll = {t: engine.score([t])[0].nll for t in set(seen + foils)}
    expected = two_afc_accuracy([nll[t] for t in seen], [nll[t] for t in foils])
    assert metrics["recognition/2afc/accuracy"] == pytest.approx(expected)
    assert samples["correct"][1] == 0.5  # identical texts tie
    assert "recognition/2afc/accuracy@foil=all" not in metrics
    with pytest.raises(MnemoscopeError, match="one foil per seen"):
        two_afc(engine, seen, foils[:2])


def test_make_foils_is_deterministic_and_notes_skips():
    texts = ["the big dog ran home", "alone", "a small cat walked"]
    a, notes = make_foils(texts, ["shuffled_words", "swap_word"], seed=3, vocab=["tree", "stone"])
    b, _ = make_foils(texts, ["shuffled_words", "swap_word"], seed=3, vocab=["tree", "stone"])
    assert a.equals(b)
    assert (a["foil"] != a["seen"]).all()
    assert len(notes) == 1 and "shuffled_words" in notes[0] and "1 of 3" in notes[0]
    assert a[a["kind"] == "swap_word"]["seen_index"].tolist() == [0, 1, 2]
    para, _ = make_foils(texts[:1], ["paraphrase"], paraphrases={texts[0]: "a large dog went home"})
    assert para["foil"].tolist() == ["a large dog went home"]
    with pytest.raises(MnemoscopeError, match="unknown foil kind"):
        make_foils(texts, ["antonym"])


def TableScorer(tokenizer, table):
    """A scripted backend whose NLL of each text is ``table[text]``."""
    return Scripted(tokenizer, logp_text=lambda text: -table[text])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=12))
def test_swapping_seen_and_foil_mirrors_accuracy(tokenizer, nlls):
    """acc(seen, foil) + acc(foil, seen) = 1 (ties count ½ both ways)."""
    seen = [f"s{i}" for i in range(len(nlls))]
    foils = [f"f{i}" for i in range(len(nlls))]
    engine = TableScorer(tokenizer, {**{s: a for s, (a, _) in zip(seen, nlls)}, **{f: b for f, (_, b) in zip(foils, nlls)}})
    forward = two_afc(engine, seen, foils).metrics["recognition/2afc/accuracy"]
    backward = two_afc(engine, foils, seen).metrics["recognition/2afc/accuracy"]
    assert forward + backward == pytest.approx(1.0)
    assert forward == pytest.approx(np.mean([1.0 if a < b else 0.5 if a == b else 0.0 for a, b in nlls]))
