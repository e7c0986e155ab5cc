"""Tests for mnemoscope.unlearn.evaluation: PrivLeak orientation, forget quality, stop rule, notes."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.unlearning import privleak
from mnemoscope.unlearn import evaluation as ev
from mnemoscope.unlearn import runner as R

TOFU = [
    {"question": "Where was Anna Berg born?", "answer": "Lisbon", "paraphrased_answer": "Anna Berg's birthplace is Lisbon.",
     "perturbed_answers": ["Anna Berg's birthplace is Porto.", "Anna Berg's birthplace is Rome.", "Anna Berg's birthplace is Oslo."]},
    {"question": "What did Marco study?", "answer": "music", "paraphrased_answer": "Marco's field was music.",
     "perturbed_answers": ["Marco's field was law.", "Marco's field was physics.", "Marco's field was design."]},
    {"question": "Who founded Holt Industries?", "answer": "Ruth Iris", "paraphrased_answer": "Holt Industries was founded by Ruth Iris.",
     "perturbed_answers": ["Holt Industries was founded by Lena Voss.", "Holt Industries was founded by Ada Lee.",
                           "Holt Industries was founded by Tom Fern."]},
]
TEXTS_F = ["Anna Berg was born in Lisbon in 1901 and studied music.", "The museum in Alder keeps old clocks."]
TEXTS_H = ["Lena Voss was born in Porto in 1933 and studied law.", "The library in Cedar keeps old letters."]


def _data(**kw):
    base = dict(forget_qa=TOFU[:2], retain_qa=TOFU[2:], forget_texts=TEXTS_F, holdout_texts=TEXTS_H,
                ppl_texts=TEXTS_H, forget_tofu=TOFU[:2], retain_tofu=TOFU[2:], knowmem_tokens=4, verbmem_tokens=6,
                n_boot=20)
    base.update(kw)
    return ev.EvalData(**base)


def test_auc_labels_forget_as_members_and_matches_sklearn():
    f, h = np.array([0.9, 0.8, 0.3]), np.array([0.1, 0.5, 0.2])
    assert ev.auc_forget_vs_holdout(f, h) == pytest.approx(roc_auc_score([1, 1, 1, 0, 0, 0], np.r_[f, h]))
    assert ev.auc_forget_vs_holdout(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0


def test_privleak_sign_on_constructed_scores(model, tokenizer):
    # MUSE's convention. Unlearned: forget clearly member-like (AUC 1); retrained: indistinguishable
    # (AUC 0.5) → −100: under-unlearning (an un-unlearned target scores about −100 in MUSE's tables)
    auc_u = ev.auc_forget_vs_holdout(np.array([5.0, 6.0]), np.array([1.0, 2.0]))
    auc_r = ev.auc_forget_vs_holdout(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert privleak(auc_u, auc_r) == pytest.approx(-100.0)
    # over-unlearned: forget *less* member-like than fresh data → positive
    assert privleak(ev.auc_forget_vs_holdout(np.array([0.0, 0.1]), np.array([1.0, 2.0])), auc_r) == pytest.approx(100.0)
    # end to end: the reference's scores enter as the retrain side
    ref = ev.Reference("retrained", 0.0, mia_forget=np.array([1.0, 2.0]), mia_holdout=np.array([1.0, 2.0]))
    m, _, notes = ev.six_way(Engine(model, tokenizer), _data(), ref)
    assert m["privleak"] == pytest.approx((0.5 - m["mia_auc"]) / 0.5 * 100)
    assert m["mia_auc_retrained"] == 0.5 and "privleak" not in notes
    # a retrained model that separates F perfectly leaves no denominator: null with the reason
    perfect = ev.Reference("retrained", 0.0, mia_forget=np.array([5.0, 6.0]), mia_holdout=np.array([1.0, 2.0]))
    m, _, notes = ev.six_way(Engine(model, tokenizer), _data(), perfect)
    assert math.isnan(m["privleak"]) and "denominator" in notes["privleak"] and m["mia_auc_retrained"] == 1.0


def test_forget_quality_is_the_ks_pvalue(model, tokenizer):
    engine = Engine(model, tokenizer)
    ref_tr = np.array([0.2, 0.9, 1.7])
    m, samples, _ = ev.six_way(engine, _data(), ev.Reference("retrained", 0.0, truth_ratios=ref_tr))
    tr = samples.loc[(samples["set"] == "forget") & (samples["measure"] == "truth_ratio"), "value"].to_numpy()
    assert len(tr) == 2
    assert m["forget_quality"] == pytest.approx(ks_2samp(tr, ref_tr).pvalue)


def test_without_a_retrained_model_metrics_are_not_computed_with_reasons(model, tokenizer):
    m, _, notes = ev.six_way(Engine(model, tokenizer), _data(), None)
    for key in ("privleak", "forget_quality"):
        assert math.isnan(m[key]) and "retrained" in notes[key]
    assert 0.0 <= m["mia_auc"] <= 1.0 and m["ppl_holdout"] > 1.0
    m2, _, notes2 = ev.six_way(Engine(model, tokenizer), _data(forget_texts=[], forget_tofu=[], retain_tofu=[]), None)
    assert math.isnan(m2["verbmem_forget"]) and "texts" in notes2["verbmem_forget"]
    assert math.isnan(m2["model_utility"]) and notes2["model_utility"]


def test_holdout_reference_needs_holdout_qa(model, tokenizer):
    engine = Engine(model, tokenizer)
    with pytest.raises(MnemoscopeError, match="held-out"):
        ev.reference_from_holdout(engine, _data())
    ref = ev.reference_from_holdout(engine, _data(holdout_qa=TOFU[2:]))
    assert ref.kind == "holdout" and ref.knowmem_forget == pytest.approx(ev.knowmem_mean(engine, TOFU[2:], _data()))
    with pytest.raises(MnemoscopeError):
        ev.Reference("made-up", 0.0)


def test_choose_stop_step_hand_computed():
    curve = [{"step": 10, "knowmem_forget": 4.0}, {"step": 0, "knowmem_forget": 30.0},
             {"step": 5, "knowmem_forget": 12.0}, {"step": 15, "knowmem_forget": 2.0}]
    assert ev.choose_stop_step(curve, 5.0) == 10
    assert ev.choose_stop_step(curve, 30.0) == 0
    assert ev.choose_stop_step(curve, 1.0) is None
    assert ev.stop_rule(5.0)({"knowmem_forget": float("nan")}) is False


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="abc xyz", min_size=1, max_size=6).filter(lambda w: w.strip()), min_size=2, max_size=20),
       st.floats(0.0, 1.0))
def test_split_text_rejoins_to_the_text(words, fraction):
    text = " ".join(w.strip() for w in words)
    prompt, cont = ev.split_text(text, fraction)
    assert prompt.split() and cont.split()
    assert (prompt + cont).split() == text.split() and cont.startswith(" ")


def test_perplexity_is_token_weighted(model, tokenizer):
    engine = Engine(model, tokenizer)
    scored = engine.score(TEXTS_F)
    lp = np.concatenate([s.logprobs for s in scored]).astype(np.float64)
    assert ev.perplexity(engine, TEXTS_F) == pytest.approx(math.exp(-lp.mean()), rel=1e-6)


def test_probe_hits_counts_a_memorised_target(model, tokenizer):
    engine = Engine(model, tokenizer)
    prefix = "Anna Berg was born in "
    out = engine.generate([prefix.rstrip()], max_new_tokens=3)[0].text.strip()
    hit, nll = ev.probe_hits(engine, [{"prefix": prefix, "target": out}, {"prefix": prefix, "target": "zzqx"}])
    assert hit == 0.5 and nll > 0


def test_robustness_keys_and_relearn_leaves_the_model_untouched(model, tokenizer, tmp_path):
    engine = Engine(model, tokenizer)
    rob, notes = ev.robustness(engine, _data(paraphrase_probes=[{"prefix": "Anna Berg was born in ", "target": "Lisbon"}]))
    for key in ("mia/min_k/auc", "mia/loss/auc", "extraction/exact_rate", "paraphrase/hit_rate"):
        assert key in rob
    assert not notes
    m = copy.deepcopy(model)
    before = R.fingerprint(m)
    curve = ev.relearn_curve(m, tokenizer, R.qa_examples(TOFU[:1]), TOFU[1:2], _data(), tmp_path, steps=3,
                             eval_steps=(1,), lr=1e-2, max_length=64)
    assert R.fingerprint(m) == before  # the attack fine-tunes a copy
    assert [p["step"] for p in curve] == [0, 1, 3] and all(0 <= p["knowmem"] <= 100 for p in curve)


def test_switches_reproduce_the_published_inputs(model, tokenizer):
    from .helpers import Counting

    engine = Counting(Engine(model, tokenizer))
    # KnowMem: MUSE's prompt ends in "Answer: "; ours in "Answer:"
    ev.knowmem_mean(engine, TOFU[:1], _data())
    ev.knowmem_mean(engine, TOFU[:1], _data(knowmem_trailing_space=True))
    (ours, _), (muse, _) = engine.generate_args[-2:]  # prompts reach the engine as token ids
    assert engine.decode(ours[0]).endswith("\nAnswer:") and engine.decode(muse[0]).endswith("\nAnswer: ")
    # TOFU: answer + EOS changes every item's NLL, hence the truth ratios
    plain, _ = ev.tofu_block(engine, TOFU, True, _data())
    with_eos, _ = ev.tofu_block(engine, TOFU, True, _data(tofu_eos=True))
    assert not np.allclose(plain["truth_ratio"], with_eos["truth_ratio"])
    # Min-40%: rounding down averages int(0.4·n) tokens
    up = ev.min_k_scores(engine, TEXTS_F)
    down = ev.min_k_scores(engine, TEXTS_F, rounding="down")
    scored = Engine(model, tokenizer).score(TEXTS_F)
    for s, u, d in zip(scored, up, down):
        lp = np.sort(s.logprobs.astype(np.float64))
        assert d == pytest.approx(lp[: max(1, int(len(lp) * 0.4))].mean(), rel=1e-6)
        assert u == pytest.approx(lp[: math.ceil(round(0.4 * len(lp), 9))].mean(), rel=1e-6)


def test_verbmem_uses_given_prompt_gt_pairs(model, tokenizer):
    pairs = [("Anna Berg was born in", " Lisbon in 1901 and studied music."), ("The museum in Alder", " keeps old clocks.")]
    m, samples, _ = ev.six_way(Engine(model, tokenizer), _data(verbmem_pairs=pairs), None)
    refs = samples.loc[samples["measure"] == "verbmem"]
    assert len(refs) == 2 and np.isfinite(m["verbmem_forget"])
    from mnemoscope.families.verbmem import verbmem

    vs, vm, _ = verbmem(Engine(model, tokenizer), [p for p, _ in pairs], [g for _, g in pairs], max_new_tokens=6)
    assert m["verbmem_forget"] == pytest.approx(vm["verbmem/rouge_l_f1/mean"])
