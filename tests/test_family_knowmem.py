"""families.knowmem: KnowMem equals the metric applied by hand to the engine's outputs; answers
are cut at the next question; bad items; MUSE's ``metrics/knowmem.py`` written out."""

from __future__ import annotations

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.knowmem import knowmem
from mnemoscope.metrics.text import knowmem as knowmem_metric
from mnemoscope.metrics.text import knowmem_prompt

from .helpers import REFERENCE_QA, Counting, Scripted, muse_rouge_l, reference_greedy

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


@pytest.mark.parametrize("n_shots", [0, 1])
@pytest.mark.parametrize("trailing_space", [True, False])
def test_knowmem_equals_muse(reference_trained, tokenizer, trailing_space, n_shots):
    """MUSE metrics/knowmem.py with its prompt string; trailing_space=False is our default
    ("Answer:"), the one documented difference, written into the reference by hand."""
    shots, questions = REFERENCE_QA[:n_shots], REFERENCE_QA[1:]
    samples, _, _ = knowmem(Engine(reference_trained, tokenizer), questions, shots, max_new_tokens=8,
                            trailing_space=trailing_space)
    general = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in shots)
    muse = []
    for q, a in questions:
        prompt = general + f"Question: {q}\nAnswer:" + (" " if trailing_space else "")
        output = reference_greedy(reference_trained, tokenizer, prompt, 8)
        for word in ["\n\n", "\nQuestion", "Question:"]:  # get_prefix_before_words_occur
            output = output.split(word)[0]
        muse.append(muse_rouge_l(a, output).fmeasure * 100)
    np.testing.assert_allclose(samples["knowmem"].to_numpy(), muse, rtol=1e-12, atol=1e-12)
    if not trailing_space and not n_shots:
        assert max(muse) > 0  # the memorised answers come back: the comparison is not 0 == 0
