"""families.tofu: TOFU's truth ratio, probabilities and ROUGE equal the metrics applied by hand, in
two engine calls; the EOS switch; bad items and templates."""

from __future__ import annotations

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.tofu import TOFU_TEMPLATE, tofu
from mnemoscope.metrics import knowledge as km
from mnemoscope.metrics.text import rouge_l_recall

from .helpers import Counting

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
