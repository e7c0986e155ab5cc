"""families.knowmem: KnowMem equals the metric applied by hand to the engine's outputs; answers
are cut at the next question; bad items."""

from __future__ import annotations

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.knowmem import knowmem
from mnemoscope.metrics.text import knowmem as knowmem_metric
from mnemoscope.metrics.text import knowmem_prompt

from .helpers import Counting, Scripted

SHOTS = [("Where was Anna born?", "Lisbon"), ("What does the museum keep?", "old maps")]
QA = [
    ("Where did Reyes work?", "Reyes Inc"),
    {"question": "When was the office opened?", "answer": "in 1931"},
    ("What did Morgan study?", "chemistry at the University of Laurenton"),
]


def FixedReply(tokenizer, text):
    """A scripted backend answering every prompt with the same text."""
    return Scripted(tokenizer, reply=lambda prompt: text)


def test_knowmem_equals_metric_on_engine_outputs(model, tokenizer):
    engine = Counting(Engine(model, tokenizer))
    samples, metrics, notes = knowmem(engine, QA * 4, SHOTS, max_new_tokens=8)
    assert engine.calls == {"score": 0, "generate": 1}
    questions = [q if isinstance(q, tuple) else (q["question"], q["answer"]) for q in QA * 4]
    outs = engine._engine.generate([knowmem_prompt(SHOTS, q) for q, _ in questions], max_new_tokens=8)
    expected = [knowmem_metric(o.text, a) for o, (_, a) in zip(outs, questions)]
    np.testing.assert_allclose(samples["knowmem"], expected)
    assert metrics == {"knowmem/rouge_l_f1/mean": pytest.approx(np.mean(expected)), "knowmem/n": 12.0,
                       "knowmem/n_shots": 2.0}
    assert notes == {}


def test_knowmem_cuts_at_the_next_question(tokenizer):
    engine = FixedReply(tokenizer, " in 1931\n\nQuestion: What else?\nAnswer: nothing")
    samples, metrics, _ = knowmem(engine, [("When was the office opened?", "in 1931")], SHOTS)
    assert samples["prediction"][0] == "in 1931"
    assert metrics["knowmem/rouge_l_f1/mean"] == pytest.approx(100.0)
    assert engine.prompts[0].startswith("Question: Where was Anna born?\nAnswer: Lisbon\n\n")
    assert engine.prompts[0].endswith("Question: When was the office opened?\nAnswer:")
    with pytest.raises(MnemoscopeError, match="knowmem item 0"):
        knowmem(engine, [{"question": "q"}], SHOTS)
