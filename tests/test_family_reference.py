"""families.reference: ref / ratio / lowercase attacks on top of the engine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.reference import (
    lowercase_scores,
    ref_ratio_scores,
    scored_span_bytes,
    tokenizer_mismatch,
)
from mnemoscope.lab.tiny import Preset, build_model, train_tokenizer

from .conftest import MICRO
from .helpers import Counting

TEXTS = [
    "Anna was born in Lisbon in 1901.",
    "The Museum keeps a collection of old maps and clocks.",
    "Every Spring the market sells apples.",
    "Café Ünter in Zürich sells tea.",
]


@pytest.fixture(scope="module")
def other_model(tokenizer):
    """A second model on the same tokenizer (different init)."""
    return build_model(MICRO, tokenizer, seed=7).eval()


@pytest.fixture(scope="module")
def small_vocab(corpus):
    tok = train_tokenizer(corpus, 400)
    model = build_model(Preset(hidden=32, layers=1, heads=2, intermediate=64, vocab=400, context=128), tok, seed=3)
    return tok, model.eval()


def test_reference_against_itself_is_zero_and_ratio_minus_one(model, tokenizer):
    frame = ref_ratio_scores(Engine(model, tokenizer), Engine(model, tokenizer), TEXTS)
    assert (frame["unit"] == "token").all()
    np.testing.assert_allclose(frame["score/ref"], 0.0, atol=1e-12)
    np.testing.assert_allclose(frame["score/ratio"], -1.0, atol=1e-12)
    np.testing.assert_allclose(frame["score/nll_ratio"], -1.0, atol=1e-12)


def test_reference_scores_equal_hand_computed(model, other_model, tokenizer):
    target, ref = Engine(model, tokenizer), Engine(other_model, tokenizer)
    frame = ref_ratio_scores(target, ref, TEXTS)
    nt = np.array([s.nll for s in target.score(TEXTS)])
    nr = np.array([s.nll for s in ref.score(TEXTS)])
    np.testing.assert_allclose(frame["nll_target"], nt, rtol=1e-6)
    np.testing.assert_allclose(frame["score/ref"], -(nt - nr), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(frame["score/ratio"], -np.exp(nt) / np.exp(nr), rtol=1e-5)
    np.testing.assert_allclose(frame["score/nll_ratio"], -nt / nr, rtol=1e-5)


def test_ratio_ranks_like_ref_and_the_log_perplexity_ratio_does_not():
    """ratio = −exp(Δ) is monotone in ref = −Δ: identical AUC; −NLL_t/NLL_r can reorder texts."""
    from sklearn.metrics import roc_auc_score

    from mnemoscope.metrics.membership import nll_ratio_score, ratio_score, ref_score

    nt = np.array([2.0, 4.0, 3.0, 6.0])
    nr = np.array([1.0, 5.0, 2.5, 4.0])
    labels = np.array([1, 0, 1, 0])
    assert roc_auc_score(labels, ratio_score(nt, nr)) == roc_auc_score(labels, ref_score(nt, nr))
    assert np.argsort(ref_score(nt, nr)).tolist() != np.argsort(nll_ratio_score(nt, nr)).tolist()
    np.testing.assert_allclose(nll_ratio_score(nt, nr), -nt / nr)
    assert np.isnan(nll_ratio_score(1.0, 0.0))


def test_one_score_call_per_engine_and_target_scores_reused(model, other_model, tokenizer):
    texts = TEXTS * 5
    target, ref = Counting(Engine(model, tokenizer)), Counting(Engine(other_model, tokenizer))
    frame = ref_ratio_scores(target, ref, texts)
    assert target.calls["score"] == 1 and ref.calls["score"] == 1
    pre = target._engine.score(texts)
    again = ref_ratio_scores(target, ref, texts, target_scores=pre)
    assert target.calls["score"] == 1 and ref.calls["score"] == 2
    np.testing.assert_allclose(again["score/ref"], frame["score/ref"], rtol=1e-6)
    with pytest.raises(MnemoscopeError, match="target_scores"):
        ref_ratio_scores(target, ref, texts, target_scores=pre[:3])


def test_bos_policy_mismatch_refuses_by_default(model, tokenizer):
    target = Engine(model, tokenizer, bos="never")
    ref = Engine(model, tokenizer, bos="always")
    assert "BOS" in tokenizer_mismatch(target, ref, TEXTS)
    with pytest.raises(MnemoscopeError, match="--ref-mismatch per_byte"):
        ref_ratio_scores(target, ref, TEXTS)
    with pytest.raises(MnemoscopeError, match="unknown ref mismatch"):
        ref_ratio_scores(target, ref, TEXTS, mismatch="ignore")


def test_per_byte_mode_matches_hand_computed_spans(model, tokenizer, bos_model, bos_tokenizer):
    target = Engine(model, tokenizer)  # no BOS: first token unscored
    ref = Engine(bos_model, bos_tokenizer)  # BOS: whole text scored
    frame = ref_ratio_scores(target, ref, TEXTS, mismatch="per_byte")
    assert (frame["unit"] == "byte").all()
    for i, text in enumerate(TEXTS):
        st_ = target.score([text])[0]
        sr_ = ref.score([text])[0]
        first = tokenizer(text, add_special_tokens=False)["input_ids"][0]
        bytes_t = len(text.encode()) - len(tokenizer.decode([first]).encode())
        assert frame["nll_target"][i] == pytest.approx(-st_.logprobs.astype(float).sum() / bytes_t, rel=1e-5)
        assert frame["nll_ref"][i] == pytest.approx(-sr_.logprobs.astype(float).sum() / len(text.encode()), rel=1e-5)
    np.testing.assert_allclose(frame["score/ref"], -(frame["nll_target"] - frame["nll_ref"]), rtol=1e-12)


def test_vocab_mismatch_refuses_and_per_byte_runs(model, tokenizer, small_vocab):
    tok, small = small_vocab
    target, ref = Engine(model, tokenizer), Engine(small, tok)
    assert "vocabularies differ" in tokenizer_mismatch(target, ref, TEXTS)
    with pytest.raises(MnemoscopeError, match="shares the target's tokenizer"):
        ref_ratio_scores(target, ref, TEXTS)
    frame = ref_ratio_scores(target, ref, TEXTS, mismatch="per_byte")
    assert np.isfinite(frame["score/ref"]).all() and (frame["score/ratio"] < 0).all()


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=3, max_size=30))
def test_scored_span_is_whole_text_with_bos_and_a_suffix_without(bos_tokenizer, tokenizer, bos_model, model, text):
    for tok, mdl in ((bos_tokenizer, bos_model), (tokenizer, model)):
        if len(tok(text, add_special_tokens=False)["input_ids"]) < 2:
            continue
        engine = Engine(mdl, tok)
        s = engine.score([text])[0]
        n = scored_span_bytes(engine, text, s)
        if engine.bos:
            assert n == len(text.encode())
        else:
            assert 0 < n <= len(text.encode())


def test_lowercase_scores_hand_computed_and_one_call(model, tokenizer):
    engine = Counting(Engine(model, tokenizer))
    frame = lowercase_scores(engine, TEXTS)
    assert engine.calls["score"] == 1
    nll = np.array([s.nll for s in engine._engine.score(TEXTS)])
    low = np.array([s.nll for s in engine._engine.score([t.lower() for t in TEXTS])])
    np.testing.assert_allclose(frame["score/lowercase"], -nll / low, rtol=1e-5)
    again = lowercase_scores(engine, ["already lower case text"])
    assert again["score/lowercase"][0] == pytest.approx(-1.0)
    reused = lowercase_scores(engine, TEXTS, scores=engine._engine.score(TEXTS))
    np.testing.assert_allclose(reused["score/lowercase"], frame["score/lowercase"], rtol=1e-6)
