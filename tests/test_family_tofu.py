"""families.tofu: TOFU's truth ratio, probabilities and ROUGE equal the metrics applied by hand, in
two engine calls; the EOS switch; bad items and templates; per item, forget quality and model
utility against TOFU's own code written out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer
from scipy.stats import hmean, ks_2samp

from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.tofu import TOFU_TEMPLATE, tofu
from mnemoscope.metrics import knowledge as km
from mnemoscope.metrics.text import rouge_l_recall

from .helpers import Counting, reference_greedy, reference_log_softmax

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


TOFU_TAGS = {"question_start_tag": "Question: ", "question_end_tag": "\nAnswer:", "answer_tag": " "}  # our template


def _tofu_avg_loss(model, tokenizer, question: str, answer: str, eos: bool) -> float:
    """TOFU data_module.convert_raw_data_to_model_format + get_batch_loss, divided by the number of
    scored labels (evaluate_util): the question's tokens are masked, the EOS after the answer is a label.
    ``eos=False`` drops that EOS label (our default)."""
    new_question = TOFU_TAGS["question_start_tag"] + question + TOFU_TAGS["question_end_tag"]
    full_text = new_question + TOFU_TAGS["answer_tag"] + answer
    num_question_tokens = len(tokenizer.tokenize(new_question, add_special_tokens=True))
    encoded = tokenizer(full_text, add_special_tokens=True).input_ids
    # label = input_ids + [eos], the question's labels −100; TOFU pads the input with EOS (masked), and
    # the EOS label is predicted from the last answer token, so feeding input_ids + [eos] is the same
    ids = encoded + ([tokenizer.eos_token_id] if eos else [])
    label = [-100] * num_question_tokens + ids[num_question_tokens:]
    logp = reference_log_softmax(model, ids)
    shifted = torch.tensor(label[1:])  # get_batch_loss: logits[:-1] against labels[1:], summed
    keep = shifted != -100
    loss = -logp[:-1][keep].gather(1, shifted[keep][:, None]).sum()
    return float(loss) / int(keep.sum())


def _tofu_items(questions, answers_of) -> list[dict]:
    return [{"question": q, "answer": a, "paraphrased_answer": answers_of(q, a)[0], "perturbed_answers": answers_of(q, a)[1]}
            for q, a in questions]


FORGET = [("Where was Anna Berg born?", "Anna Berg was born in Lisbon."),
          ("What does the museum in Alder keep?", "It keeps old clocks and maps."),
          ("Who joined Holt Industries?", "Marco joined Holt Industries.")]


PARA = {"Where was Anna Berg born?": ("Lisbon is where Anna Berg was born.", ["Porto", "Rome", "Oslo"]),
        "What does the museum in Alder keep?": ("Old clocks and maps are kept there.", ["letters", "boats", "apples"]),
        "Who joined Holt Industries?": ("Holt Industries hired Marco.", ["Lena", "Ruth", "Anna"])}


def _forget_items():
    return _tofu_items(FORGET, lambda q, a: (PARA[q][0], [PARA[q][0].split()[0] + " " + w + "." for w in PARA[q][1]]))


def _reference_tofu(model, tokenizer, items, eos, *, options: bool):
    """Per item: avg_gt_loss, avg_paraphrased_loss, average_perturb_loss (list), ROUGE-L recall; and TOFU's
    Prob. (normalised over the options when ``options``), Truth Ratio statistic and ROUGE for the split."""
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    gt = np.array([_tofu_avg_loss(model, tokenizer, it["question"], it["answer"], eos) for it in items])
    para = np.array([_tofu_avg_loss(model, tokenizer, it["question"], it["paraphrased_answer"], eos) for it in items])
    pert = np.array([[_tofu_avg_loss(model, tokenizer, it["question"], p, eos) for p in it["perturbed_answers"]]
                     for it in items])
    rouge = np.array([scorer.score(it["answer"],
                                   reference_greedy(model, tokenizer, "Question: " + it["question"] + "\nAnswer:", 8)
                                   ).get("rougeL").recall for it in items])
    if options:  # aggregate_eval_stat.get_model_utility, real authors / world facts
        true_p, false_p = np.exp(-gt), np.exp(-pert)
        prob = np.mean(true_p / np.concatenate([true_p[:, None], false_p], axis=1).sum(-1))
    else:
        prob = np.mean(np.exp(-gt))
    curr = np.exp(pert.mean(-1) - para)
    return {"gt": gt, "para": para, "pert": pert, "rouge": rouge, "prob": prob, "curr": curr}


@pytest.mark.parametrize("eos", [True, False])
def test_tofu_per_item_forget_quality_and_model_utility_equal_tofu(reference_trained, model, tokenizer, eos):
    forget = _forget_items()
    ours, m, _ = tofu(Engine(reference_trained, tokenizer), forget, max_new_tokens=8, eos=eos)
    ref = _reference_tofu(reference_trained, tokenizer, forget, eos, options=False)
    np.testing.assert_allclose(ours["nll_answer"], ref["gt"], rtol=1e-5)
    np.testing.assert_allclose(ours["probability"], np.exp(-ref["gt"]), rtol=1e-5)
    # evaluate_util: truth_ratio = exp(para − mean pert); aggregate: curr = exp(mean pert − para) = 1 / ours
    np.testing.assert_allclose(ours["truth_ratio"], 1 / ref["curr"], rtol=1e-5)
    np.testing.assert_allclose(ours["rouge_l_recall"], ref["rouge"], rtol=1e-12)
    assert m["tofu/truth_ratio/summary"] == pytest.approx(np.mean(np.minimum(ref["curr"], 1 / ref["curr"])), rel=1e-5)

    # forget quality: ks_2samp on the aggregate's exp(pert − para) of the unlearned and the retain model
    retain_model = _reference_tofu(model, tokenizer, forget, eos, options=False)
    ours_r, _, _ = tofu(Engine(model, tokenizer), forget, max_new_tokens=8, eos=eos)
    fq = km.forget_quality(ours["truth_ratio"].to_numpy(), ours_r["truth_ratio"].to_numpy())
    assert fq == pytest.approx(ks_2samp(ref["curr"], retain_model["curr"]).pvalue, rel=1e-9)

    # model utility: hmean of Prob., ROUGE and Truth Ratio on retain, real authors and world facts (9 values);
    # real authors / world facts have no paraphrase (TOFU scores the answer itself there) and Prob. is
    # normalised over the answer options
    retain = forget[1:] + forget[:1]
    real = [dict(it, paraphrased_answer=it["answer"]) for it in forget[:2]]
    world = [dict(it, paraphrased_answer=it["answer"]) for it in forget[1:]]
    ours_values, ref_values = [], []
    for items, options in ((retain, False), (real, True), (world, True)):
        _, mm, _ = tofu(Engine(reference_trained, tokenizer), items, forget=False, max_new_tokens=8, eos=eos)
        ours_values += [mm["tofu/probability_normalized/mean" if options else "tofu/probability/mean"],
                        mm["tofu/rouge_l_recall/mean"], mm["tofu/truth_ratio/summary"]]
        r = _reference_tofu(reference_trained, tokenizer, items, eos, options=options)
        ref_values += [r["prob"], r["rouge"].mean(), np.mean(np.maximum(0, 1 - 1 / r["curr"]))]
    np.testing.assert_allclose(ours_values, ref_values, rtol=1e-5, atol=1e-12)
    if min(ref_values) > 0:
        assert km.model_utility(ours_values) == pytest.approx(hmean(ref_values), rel=1e-5)
    else:
        assert km.model_utility(ours_values) == 0.0
