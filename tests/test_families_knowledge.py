"""families.knowmem, families.tofu and families.target: KnowMem, TOFU and target NLL equal the metrics applied by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.knowmem import knowmem
from mnemoscope.families.target import target_nll
from mnemoscope.families.tofu import TOFU_TEMPLATE, tofu
from mnemoscope.metrics import knowledge as km
from mnemoscope.metrics.text import knowmem as knowmem_metric
from mnemoscope.metrics.text import knowmem_prompt, rouge_l_recall

from .helpers import Counting, Scripted

SHOTS = [("Where was Anna born?", "Lisbon"), ("What does the museum keep?", "old maps")]
QA = [
    ("Where did Reyes work?", "Reyes Inc"),
    {"question": "When was the office opened?", "answer": "in 1931"},
    ("What did Morgan study?", "chemistry at the University of Laurenton"),
]
TOFU_ITEMS = [
    {
        "question": "Where was Anna born?",
        "answer": "Anna was born in Lisbon.",
        "paraphrased_answer": "Lisbon is Anna's birthplace.",
        "perturbed_answers": ["Anna was born in Paris.", "Anna was born in Rome.", "Anna was born in Oslo."],
    },
    {
        "question": "What did Morgan study?",
        "answer": "Morgan studied chemistry.",
        "paraphrased_answer": "Chemistry was Morgan's subject.",
        "perturbed_answers": ["Morgan studied law."],
    },
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


def test_tofu_equals_metrics_by_hand_in_two_engine_calls(model, tokenizer):
    engine = Counting(Engine(model, tokenizer))
    samples, metrics, _ = tofu(engine, TOFU_ITEMS, forget=True, max_new_tokens=6)
    assert engine.calls == {"score": 1, "generate": 1}
    raw = engine._engine
    for i, item in enumerate(TOFU_ITEMS):
        ctx = TOFU_TEMPLATE.format(question=item["question"])
        nll = lambda answer: raw.score(pairs=[(ctx, " " + answer)])[0].nll  # noqa: E731
        pert = [nll(p) for p in item["perturbed_answers"]]
        assert samples["probability"][i] == pytest.approx(np.exp(-nll(item["answer"])), rel=1e-5)
        assert samples["truth_ratio"][i] == pytest.approx(km.truth_ratio(pert, nll(item["paraphrased_answer"])), rel=1e-5)
        gen = raw.generate([ctx], max_new_tokens=6)[0].text
        assert samples["rouge_l_recall"][i] == pytest.approx(rouge_l_recall(gen, item["answer"], stem=True))
    assert metrics["tofu/probability/mean"] == pytest.approx(samples["probability"].mean())
    assert metrics["tofu/truth_ratio/summary"] == pytest.approx(km.truth_ratio_summary(samples["truth_ratio"], True))
    _, retain, _ = tofu(engine, TOFU_ITEMS, forget=False, max_new_tokens=6, split="retain")
    assert retain["tofu/truth_ratio/summary@split=retain"] == pytest.approx(
        km.truth_ratio_summary(samples["truth_ratio"], False)
    )
    assert retain["tofu/n@split=retain"] == 2.0


def test_tofu_eos_switch_scores_the_eos_after_each_answer(model, tokenizer):
    engine = Engine(model, tokenizer)
    plain, _, _ = tofu(engine, TOFU_ITEMS, max_new_tokens=2)
    with_eos, metrics, _ = tofu(engine, TOFU_ITEMS, max_new_tokens=2, eos=True)
    eos = tokenizer.eos_token_id
    for i, item in enumerate(TOFU_ITEMS):
        ctx = TOFU_TEMPLATE.format(question=item["question"])
        answer = engine.score(pairs=[(ctx, " " + item["answer"])])[0]
        n = answer.n_scored
        # log p(EOS | question, answer), from the whole sequence scored as a text
        ids = tokenizer(ctx + " " + item["answer"], add_special_tokens=False)["input_ids"] + [eos]
        whole = engine.score_encoded([Encoded(ids=ids, score_from=1, bos=False)])[0]
        assert int(whole.token_ids[-1]) == eos
        expected = -(float(np.sum(answer.logprobs, dtype=np.float64)) + float(whole.logprobs[-1])) / (n + 1)
        assert with_eos["nll_answer"][i] == pytest.approx(expected, rel=1e-5)
        assert plain["nll_answer"][i] == pytest.approx(answer.nll, rel=1e-6)
    assert not np.allclose(plain["nll_answer"], with_eos["nll_answer"])
    # the normalised probability: P̃(a) / (P̃(a) + Σ_j P̃(perturbed_j))
    ctx = TOFU_TEMPLATE.format(question=TOFU_ITEMS[0]["question"])
    p = [np.exp(-engine.score_encoded([engine.encode_pair(ctx, " " + a, eos=True)])[0].nll)
         for a in [TOFU_ITEMS[0]["answer"], *TOFU_ITEMS[0]["perturbed_answers"]]]
    assert with_eos["probability_normalized"][0] == pytest.approx(p[0] / sum(p), rel=1e-5)
    assert metrics["tofu/probability_normalized/mean"] == pytest.approx(with_eos["probability_normalized"].mean())


def test_tofu_batching_is_independent_of_item_count(model, tokenizer):
    engine = Counting(Engine(model, tokenizer))
    tofu(engine, TOFU_ITEMS * 6, max_new_tokens=2)
    assert engine.calls == {"score": 1, "generate": 1}


def test_tofu_rejects_bad_items_and_templates(model, tokenizer):
    engine = Engine(model, tokenizer)
    bad = dict(TOFU_ITEMS[0], perturbed_answers=[])
    with pytest.raises(MnemoscopeError, match="perturbed_answers"):
        tofu(engine, [bad])
    with pytest.raises(MnemoscopeError, match="question"):
        tofu(engine, TOFU_ITEMS, template="Q: A:")


def test_target_nll_equals_engine_logprobs(model, tokenizer):
    engine = Counting(Engine(model, tokenizer))
    probes = [("Anna was born in", " Lisbon"), {"prefix": "Reyes Inc focused on", "target": " economics and letters"}] * 3
    groups = ["memorization", "semantic"] * 3
    samples, metrics, _ = target_nll(engine, probes, groups=groups)
    assert engine.calls["score"] == 1
    s = engine._engine.score(pairs=[("Reyes Inc focused on", " economics and letters")])[0]
    assert samples["target_nll"][1] == pytest.approx(-float(np.mean(s.logprobs.astype(float))), rel=1e-5)
    assert samples["first_token_nll"][1] == pytest.approx(-float(s.logprobs[0]), rel=1e-5)
    assert metrics["target/nll/mean"] == pytest.approx(samples["target_nll"].mean())
    assert metrics["target/nll/mean@group=semantic"] == pytest.approx(samples["target_nll"][1])
    assert metrics["target/n@group=memorization"] == 3.0
    with pytest.raises(MnemoscopeError, match="one per probe"):
        target_nll(engine, probes, groups=groups[:2])
