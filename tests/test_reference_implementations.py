"""Our numbers against the published code's definitions, item by item.

Each test writes out, independently of mnemoscope (plain transformers calls, one item at a time,
float64 where the published code has no choice to make), what the published implementation
computes, and compares it with mnemoscope per item on a micro model and data built here:

- lm-evaluation-harness ``HFLM.loglikelihood`` (``_encode_pair`` + ``_loglikelihood_tokens``);
- MIMIR's LOSS / zlib / Min-K% attacks and the Min-K%++ authors' ``run.py``;
- MUSE's ``metrics/knowmem.py``, ``metrics/verbmem.py``, ``metrics/privleak.py`` + ``eval.py``;
- TOFU's ``data_module.py`` / ``evaluate_util.py`` / ``aggregate_eval_stat.py`` (probability,
  truth ratio, ROUGE recall, forget quality, model utility over its 9 values);
- the neighbourhood attack (MIMIR), ReCaLL's ``run.py`` and SaMIA's ``sampling.py`` +
  ``eval_samia.py``.

Elsewhere, the same kind of test for: MIMIR's gradnorm and DC-PDD's loop
(``test_family_attacks.py``, ``test_metrics_attacks.py``), gradients against a plain
``loss.backward()`` (``test_engine_gradients.py``), the provenance authors' scipy p-value
(``test_metrics_provenance.py``), ACR's MiniPrompt schedule (``test_families_extraction_beyond.py``),
ULD's ``greedy_search`` and FLAT's ``cl`` loss (``test_unlearn_logit_methods.py``).

Where our default differs from the published code (docs/metrics.md, "Differences from the
published code"), the test runs the switch that reproduces the published code; a drift from the
published definition then fails here.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer
from scipy.stats import hmean, ks_2samp
from sklearn.metrics import auc, roc_curve

from mnemoscope.engine import Engine
from mnemoscope.families.knowmem import knowmem
from mnemoscope.families.membership import score_texts
from mnemoscope.families.tofu import tofu
from mnemoscope.families.verbmem import verbmem
from mnemoscope.metrics import knowledge as km
from mnemoscope.unlearn import evaluation as ev

from .helpers import memorize

TEXTS = [
    "Anna Berg was born in Lisbon in 1901 and studied music at the conservatory.",
    "The museum in Alder keeps a collection of old clocks and maps.",
    "Every spring the market in Fern sells apples from nearby farms.",
    "Marco joined Holt Industries in 1950 as a careful engineer.",
    "Lena Voss was born in Porto in 1933 and studied law in the capital.",
    "The library in Cedar keeps old letters.",
]


@torch.no_grad()
def _logsoftmax(model, ids: list[int]) -> torch.Tensor:
    """Float64 log-softmax of the model's logits for one sequence, [len, vocab]."""
    return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)


@torch.no_grad()
def _greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """MUSE / TOFU: one prompt at a time, special tokens added, greedy, decoded without them."""
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=True).input_ids
    out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True, clean_up_tokenization_spaces=True)[0]


@pytest.fixture(scope="module")
def trained(tokenizer):
    """A micro model that has memorised TEXTS[:4] and QA lines, so scores are far from uniform."""
    qa = [f"Question: {q}\nAnswer: {a}" for q, a in QA]
    return memorize(tokenizer, TEXTS[:4] + qa, steps=120)


QA = [("Where was Anna Berg born?", "Lisbon"), ("What does the museum in Alder keep?", "old clocks and maps"),
      ("Who joined Holt Industries?", "Marco"), ("Where was Lena Voss born?", "Porto")]


# --------------------------------------------------------------------------- lm-evaluation-harness


@pytest.mark.parametrize("which", ["plain", "bos"])
def test_loglikelihood_equals_lm_eval_harness(request, which):
    tok = request.getfixturevalue("tokenizer" if which == "plain" else "bos_tokenizer")
    model = request.getfixturevalue("model" if which == "plain" else "bos_model")
    pairs = [("Anna Berg was born in ", "Lisbon"), ("The museum in Alder keeps", " a collection of old clocks"),
             ("Question: Who joined Holt Industries?\nAnswer:", " Marco"), ("Every spring", " the market")]
    ours = Engine(model, tok).score(pairs=pairs)
    for (context, continuation), s in zip(pairs, ours):
        # _encode_pair: trailing spaces of the context move to the continuation; encode the whole, split at
        # the context's length (tok_encode with the tokenizer's default special tokens)
        n = len(context) - len(context.rstrip())
        if n:
            context, continuation = context[:-n], context[-n:] + continuation
        whole, context_enc = tok.encode(context + continuation), tok.encode(context)
        continuation_enc = whole[len(context_enc):]
        # _loglikelihood_tokens: input = (context + continuation)[:-1]; the last len(continuation) positions
        inp = (context_enc + continuation_enc)[:-1]
        logits = _logsoftmax(model, inp)[-len(continuation_enc):]
        cont = torch.tensor(continuation_enc)
        logprob = float(logits.gather(1, cont[:, None]).sum())
        is_greedy = bool((logits.argmax(-1) == cont).all())
        assert list(s.token_ids) == continuation_enc
        assert float(np.sum(s.logprobs, dtype=np.float64)) == pytest.approx(logprob, abs=1e-4)
        assert bool(s.argmax.all()) == is_greedy


# --------------------------------------------------------------------------- MIMIR / Min-K%++


def test_membership_scores_equal_mimir_and_min_k_pp(trained, tokenizer):
    k = 0.2
    # the published code rounds k·n down: reproduce it with rounding="down"
    frame = score_texts(Engine(trained, tokenizer), TEXTS, k=k, rounding="down")
    for text, (_, row) in zip(TEXTS, frame.iterrows()):
        ids = tokenizer(text).input_ids  # MIMIR: self.tokenizer(text), default special tokens
        lp_all = _logsoftmax(trained, ids)[:-1]
        target = torch.tensor(ids[1:])
        all_prob = lp_all.gather(1, target[:, None]).squeeze(1).numpy()
        # MIMIR get_ll: −mean log p (lower = member); our scores are oriented higher = member
        loss = -np.mean(all_prob)
        assert row["score/loss"] == pytest.approx(-loss, rel=1e-4, abs=1e-6)  # float32 engine
        # MIMIR zlib: loss / len(zlib.compress(bytes(document, "utf-8")))
        assert row["score/zlib"] == pytest.approx(-loss / len(zlib.compress(bytes(text, "utf-8"))), rel=1e-4, abs=1e-8)
        # MIMIR min_k (window 1, stride 1): −mean(sorted(probs)[: int(len · k)])
        assert int(len(all_prob) * k) >= 1
        min_k = -np.mean(sorted(all_prob)[: int(len(all_prob) * k)])
        assert row["score/min_k"] == pytest.approx(-min_k, rel=1e-4, abs=1e-6)
        # Min-K%++ (run.py; MIMIR's min_k_plus_plus is the same): μ = Σ p log p, σ² = Σ p (log p)² − μ²,
        # z = (log p − μ)/σ, mean of the lowest int(len · k)
        p = lp_all.exp()
        mu = (p * lp_all).sum(-1)
        sigma = ((p * lp_all.square()).sum(-1) - mu.square()).sqrt()
        z = ((torch.tensor(all_prob) - mu) / sigma).numpy()
        assert row["score/min_k_pp"] == pytest.approx(np.mean(np.sort(z)[: int(len(z) * k)]), rel=1e-4, abs=1e-4)


# --------------------------------------------------------------------------- MUSE


def _muse_rouge_l(gt: str, output: str) -> dict:
    score = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=False).score(gt, output)
    return score["rougeL"]


@pytest.mark.parametrize("n_shots", [0, 1])
@pytest.mark.parametrize("trailing_space", [True, False])
def test_knowmem_equals_muse(trained, tokenizer, trailing_space, n_shots):
    """MUSE metrics/knowmem.py with its prompt string; trailing_space=False is our default
    ("Answer:"), the one documented difference, written into the reference by hand."""
    shots, questions = QA[:n_shots], QA[1:]
    samples, _, _ = knowmem(Engine(trained, tokenizer), questions, shots, max_new_tokens=8,
                            trailing_space=trailing_space)
    general = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in shots)
    muse = []
    for q, a in questions:
        prompt = general + f"Question: {q}\nAnswer:" + (" " if trailing_space else "")
        output = _greedy(trained, tokenizer, prompt, 8)
        for word in ["\n\n", "\nQuestion", "Question:"]:  # get_prefix_before_words_occur
            output = output.split(word)[0]
        muse.append(_muse_rouge_l(a, output).fmeasure * 100)
    np.testing.assert_allclose(samples["knowmem"].to_numpy(), muse, rtol=1e-12, atol=1e-12)
    if not trailing_space and not n_shots:
        assert max(muse) > 0  # the memorised answers come back: the comparison is not 0 == 0


def test_verbmem_equals_muse(trained, tokenizer):
    """MUSE metrics/verbmem.py: gt cut to its first max_new_tokens tokens (tokenized on its own), greedy
    continuation of the prompt, ROUGE-L F1 × 100 (no BOS here; see docs for a BOS tokenizer)."""
    max_new = 6
    pairs = [(t[: len(t) // 3], t[len(t) // 3:]) for t in TEXTS[:4]]
    pairs = [(p.rstrip(), " " + g.lstrip()) for p, g in pairs]
    samples, _, _ = verbmem(Engine(trained, tokenizer), [p for p, _ in pairs], [g for _, g in pairs],
                            max_new_tokens=max_new)
    muse = []
    for prompt, gt in pairs:
        gt_ids = tokenizer(gt, return_tensors="pt", add_special_tokens=True).input_ids[:, :max_new]
        gt_short = tokenizer.batch_decode(gt_ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)[0]
        output = _greedy(trained, tokenizer, prompt, max_new)
        muse.append(_muse_rouge_l(gt_short, output).fmeasure * 100)
    np.testing.assert_allclose(samples["verbmem"].to_numpy(), muse, rtol=1e-12, atol=1e-12)
    assert max(muse) > 0


def _muse_min_40(model, tokenizer, text: str) -> float:
    """MUSE privleak.compute_ppl + inference: Min-40% = −mean(sorted(all_prob)[: int(len · 0.4)])."""
    ids = tokenizer.encode(text)
    all_prob = _logsoftmax(model, ids)[:-1].gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1).numpy()
    return float(-np.mean(np.sort(all_prob)[: int(len(all_prob) * 0.4)]))


def _muse_auc(forget: list[float], holdout: list[float]) -> float:
    """MUSE privleak.eval, key forget_holdout_Min-40%: forget labelled 0, holdout 1; roc_curve on −ppl."""
    ppl = np.array(forget + holdout)
    y = np.array([0] * len(forget) + [1] * len(holdout))
    fpr, tpr, _ = roc_curve(y, -ppl)
    return auc(fpr, tpr)


def test_privleak_equals_muse(trained, model, tokenizer):
    forget, holdout = TEXTS[:4], TEXTS[4:] + ["Ruth joined Iris Works in 1961 as a patient designer.",
                                              "Every autumn the fair in Grey sells boats from nearby towns."]
    data = ev.EvalData(forget_texts=forget, holdout_texts=holdout, min_k_rounding="down", knowmem_tokens=4,
                       verbmem_tokens=4)
    retrained = Engine(model, tokenizer)  # never saw the forget texts
    reference = ev.reference_from_retrained(retrained, data)
    metrics, _, notes = ev.six_way(Engine(trained, tokenizer), data, reference)
    # per text: our Min-40% score (higher = member) is MUSE's value negated
    for engine_model, scores in ((model, np.r_[reference.mia_forget, reference.mia_holdout]),):
        muse = [_muse_min_40(engine_model, tokenizer, t) for t in forget + holdout]
        np.testing.assert_allclose(scores, -np.array(muse), rtol=1e-5)
    auc_u = _muse_auc([_muse_min_40(trained, tokenizer, t) for t in forget],
                      [_muse_min_40(trained, tokenizer, t) for t in holdout])
    auc_r = _muse_auc([_muse_min_40(model, tokenizer, t) for t in forget],
                      [_muse_min_40(model, tokenizer, t) for t in holdout])
    # eval.py: (auc − AUC_RETRAIN) / AUC_RETRAIN × 100, with the retrained model's AUC measured here
    assert metrics["privleak"] == pytest.approx((auc_u - auc_r) / auc_r * 100, rel=1e-9)
    assert metrics["mia_auc"] == pytest.approx(1 - auc_u) and metrics["mia_auc_retrained"] == pytest.approx(1 - auc_r)
    assert metrics["privleak"] < 0 and "privleak" not in notes  # memorised forget set: under-unlearning


# --------------------------------------------------------------------------- TOFU

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
    logp = _logsoftmax(model, ids)
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
    rouge = np.array([scorer.score(it["answer"], _greedy(model, tokenizer, "Question: " + it["question"] + "\nAnswer:",
                                                         8)).get("rougeL").recall for it in items])
    if options:  # aggregate_eval_stat.get_model_utility, real authors / world facts
        true_p, false_p = np.exp(-gt), np.exp(-pert)
        prob = np.mean(true_p / np.concatenate([true_p[:, None], false_p], axis=1).sum(-1))
    else:
        prob = np.mean(np.exp(-gt))
    curr = np.exp(pert.mean(-1) - para)
    return {"gt": gt, "para": para, "pert": pert, "rouge": rouge, "prob": prob, "curr": curr}


@pytest.mark.parametrize("eos", [True, False])
def test_tofu_per_item_forget_quality_and_model_utility_equal_tofu(trained, model, tokenizer, eos):
    forget = _forget_items()
    ours, m, _ = tofu(Engine(trained, tokenizer), forget, max_new_tokens=8, eos=eos)
    ref = _reference_tofu(trained, tokenizer, forget, eos, options=False)
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
        _, mm, _ = tofu(Engine(trained, tokenizer), items, forget=False, max_new_tokens=8, eos=eos)
        ours_values += [mm["tofu/probability_normalized/mean" if options else "tofu/probability/mean"],
                        mm["tofu/rouge_l_recall/mean"], mm["tofu/truth_ratio/summary"]]
        r = _reference_tofu(trained, tokenizer, items, eos, options=options)
        ref_values += [r["prob"], r["rouge"].mean(), np.mean(np.maximum(0, 1 - 1 / r["curr"]))]
    np.testing.assert_allclose(ours_values, ref_values, rtol=1e-5, atol=1e-12)
    if min(ref_values) > 0:
        assert km.model_utility(ours_values) == pytest.approx(hmean(ref_values), rel=1e-5)
    else:
        assert km.model_utility(ours_values) == 0.0


# --------------------------------------------------------------------------- neighbourhood, ReCaLL, SaMIA


def _hf_loss(model, ids: list[int], labels: list[int] | None = None) -> float:
    """HF's ``model(ids, labels=...).loss``: mean NLL over the shifted, unmasked labels."""
    with torch.no_grad():
        x = torch.tensor([ids])
        y = torch.tensor([labels]) if labels is not None else x
        return float(model(x, labels=y).loss)


def _attack_frame(trained, tokenizer, texts, **settings):
    import copy

    from mnemoscope.families import attacks

    shots = settings.pop("recall_prefix", None)
    cfg = copy.deepcopy(attacks.DEFAULTS)
    cfg["attacks"].update(settings)
    s = attacks.read(cfg, seed=0)
    s.recall_prefix = shots  # the non-member texts themselves, not a file
    return attacks.attack_scores(Engine(trained, tokenizer), texts, s)[0], s


def test_neighbourhood_equals_mattern_and_mimir(trained, tokenizer):
    """Mattern et al. / MIMIR's NeighborhoodAttack: loss(x) − mean_j loss(x̃_j), loss = HF loss of
    ``tokenizer(text)`` (low = member); ours is its negative, on the same neighbours."""
    from mnemoscope.probes.neighbours import vocabulary_words, word_swap_neighbours

    frame, s = _attack_frame(trained, tokenizer, TEXTS, names=["neighbourhood"], n_neighbours=5)
    words = vocabulary_words([tokenizer.decode([i]) for i in range(len(tokenizer))])
    for text, ours in zip(TEXTS, frame["score/neighbourhood"]):
        nbs = word_swap_neighbours(text, words, 5, swaps=1, seed=0)
        loss = _hf_loss(trained, tokenizer(text).input_ids)
        theirs = loss - np.mean([_hf_loss(trained, tokenizer(nb).input_ids) for nb in nbs])
        assert ours == pytest.approx(-theirs, rel=1e-4, abs=1e-5)


def test_recall_equals_the_authors_run_py(trained, tokenizer):
    """ReCaLL's ``run.py``: LL(x) = −HF loss of ``tokenizer.encode(x)``; LL(x | P) = −HF loss of
    ``tokenizer(P) ++ tokenizer(x)`` with P's positions labelled −100, P = "".join(shots); score
    LL(x | P) / LL(x). ``recall_format: authors`` reproduces it; ours (blank-line joiner, P + x
    tokenized as one text) differs."""
    shots = ["Every spring the market in Fern sells apples from nearby farms.",
             "The library in Cedar keeps old letters."]
    texts = TEXTS[:4] + ["Lena Voss was born in Porto in 1933 and studied law in the capital."]
    authors, _ = _attack_frame(trained, tokenizer, texts, names=["recall"], recall_shots=2, recall_format="authors",
                               recall_prefix=shots)
    ours, _ = _attack_frame(trained, tokenizer, texts, names=["recall"], recall_shots=2, recall_prefix=shots)
    prefix_ids = tokenizer("".join(shots)).input_ids
    for text, a, o in zip(texts, authors["score/recall"], ours["score/recall"]):
        ll = -_hf_loss(trained, tokenizer.encode(text))
        x_ids = tokenizer(text).input_ids
        ll_cond = -_hf_loss(trained, prefix_ids + x_ids, [-100] * len(prefix_ids) + x_ids)
        assert a == pytest.approx(ll_cond / ll, rel=1e-4)
        # ours, written out: P joined by blank lines, P + x one text, x's tokens scored
        p = "\n\n".join(shots) + "\n\n"
        whole, n_p = tokenizer(p + text).input_ids, len(tokenizer(p.rstrip()).input_ids)
        ll_ours = -_hf_loss(trained, whole, [-100] * n_p + whole[n_p:])
        assert o == pytest.approx(ll_ours / ll, rel=1e-4)


def test_samia_equals_the_authors_scripts(trained, tokenizer):
    """SaMIA's ``sampling.py`` + ``eval_samia.py``: prompt = first int(n/2) words; the decoded
    prompt + sample, split on spaces, minus its first round(n/2) words, against the text's last
    n − round(n/2) words: ROUGE-1 recall (clipped unigram overlap / |reference|), mean over
    samples. top_k = 1 makes the samples deterministic so both sides see the same ones; N new
    tokens as ``samia_max_new_tokens`` (theirs: up to max_length 1024)."""
    from collections import Counter

    texts = [t for t in TEXTS if len(t.split()) % 2 == 0]  # n even: int(n/2) = round(n/2)
    assert len(texts) >= 3
    frame, _ = _attack_frame(trained, tokenizer, texts, names=["samia"], samia_samples=2, samia_top_k=1,
                             samia_max_new_tokens=12)
    for text, ours in zip(texts, frame["score/samia"]):
        n = len(text.split())
        prefix = " ".join(text.split()[: int(n * 0.5)])
        ids = tokenizer(prefix, return_tensors="pt").input_ids
        with torch.no_grad():
            out = trained.generate(ids, do_sample=False, max_new_tokens=12, pad_token_id=tokenizer.eos_token_id)
        gen = tokenizer.batch_decode(out)[0].replace(tokenizer.eos_token or "\x00", "")
        cand = [w for w in gen.split(" ") if w][round(n * 0.5):]
        ref = [w for w in text.split(" ") if w][round(n * 0.5):]
        recall = sum((Counter(ref) & Counter(cand)).values()) / len(ref) if cand else 0.0
        assert ours == pytest.approx(recall, abs=1e-12)  # both samples are the same greedy text
    assert frame["score/samia"].max() > 0.5  # the memorised texts come back: the comparison is not of zeros
