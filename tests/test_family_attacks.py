"""families.attacks: every further membership attack scores members higher on a micro model that
memorized them; missing files noted; bad settings; gradnorm, the neighbourhood attack, ReCaLL and
SaMIA against their authors' procedures written out."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import attacks
from mnemoscope.metrics.roc import roc_auc
from mnemoscope.probes.corpus import background_documents
from mnemoscope.probes.neighbours import vocabulary_words, word_swap_neighbours

from .helpers import REFERENCE_TEXTS, memorize, write_texts


def test_word_swap_neighbours():
    words = vocabulary_words([" apple", " pear", "x", " a1", " plum", "plum"])
    assert words == ["apple", "pear", "plum"]
    nbs = word_swap_neighbours("the cat sat on the mat", words, 5, seed=1)
    assert len(nbs) == 5
    for nb in nbs:
        diff = [(a, b) for a, b in zip(["the", "cat", "sat", "on", "the", "mat"], nb.split()) if a != b]
        assert len(diff) == 1 and diff[0][1] in words
    assert nbs == word_swap_neighbours("the cat sat on the mat", words, 5, seed=1)  # seeded
    assert word_swap_neighbours("12 34", words, 3) == []


@pytest.fixture(scope="module")
def setup(tokenizer, tmp_path_factory):
    docs = background_documents(40, seed=11, sentences_per_doc=(1, 2))
    members, nonmembers = docs[:8], docs[8:16]
    model = memorize(tokenizer, members, steps=120)
    tmp = tmp_path_factory.mktemp("attacks")
    cfg = copy.deepcopy(attacks.DEFAULTS)
    prefix = write_texts(tmp / "prefix.jsonl", [d.split(". ")[0] + "." for d in docs[16:20]])
    cfg["attacks"].update(recall_prefix=prefix, dcpdd_corpus=write_texts(tmp / "ref.jsonl", docs[20:40]), n_neighbours=8,
                          samia_samples=4, recall_shots=1)
    return Engine(model, tokenizer), members, nonmembers, cfg


def test_every_attack_scores_members_higher(setup):
    engine, members, nonmembers, cfg = setup
    s = attacks.read(cfg, seed=0)
    calls = []
    real = engine.score_encoded
    engine.score_encoded = lambda items: calls.append(len(items)) or real(items)
    try:
        frame, notes = attacks.attack_scores(engine, members + nonmembers, s)
    finally:
        del engine.score_encoded
    assert calls == [16 + 16 * 8 + 16]  # texts, neighbours and ReCaLL pairs in one call
    assert sorted(frame.columns) == sorted(f"score/{a}" for a in attacks.ATTACKS)
    assert notes == {}
    labels = np.array([1] * 8 + [0] * 8)
    for col in frame.columns:
        assert roc_auc(labels, frame[col].to_numpy()) >= 0.75, col


def test_missing_files_are_noted_not_invented(setup):
    engine, members, _, cfg = setup
    cfg = copy.deepcopy(cfg)
    cfg["attacks"].update(recall_prefix="", dcpdd_corpus="", names=["recall", "dcpdd", "neighbourhood"], n_neighbours=2)
    frame, notes = attacks.attack_scores(engine, members[:2], attacks.read(cfg))
    assert list(frame.columns) == ["score/neighbourhood"]
    assert set(notes) == {"mia/recall/auc", "mia/dcpdd/auc"}


def test_bad_settings(setup, tmp_path):
    engine, members, _, cfg = setup
    for key, value in [("names", ["nope"]), ("gradnorm_p", 3), ("gradnorm_orientation", "up"),
                       ("recall_format", "mimir"), ("samia_max_new_tokens", -1), ("n_neighbours", 0), ("samia_prefix_ratio", 1.0)]:
        bad = copy.deepcopy(cfg)
        bad["attacks"][key] = value
        with pytest.raises(MnemoscopeError, match=f"attacks.{key}"):
            attacks.read(bad)
    bad = copy.deepcopy(cfg)
    bad["attacks"]["recall_prefix"] = str(tmp_path / "missing.jsonl")
    with pytest.raises(MnemoscopeError, match="no such file"):
        attacks.read(bad)
    long = copy.deepcopy(cfg)
    long["attacks"]["recall_prefix"] = write_texts(tmp_path / "long.jsonl", [" ".join(["word"] * 200)] * 5)
    with pytest.raises(MnemoscopeError, match="recall_shots"):
        attacks.attack_scores(engine, members[:2], attacks.read(long))


def _mimir_gradnorm(model, tokenizer, text, p=float("inf")):
    """MIMIR's GradNormAttack written out: zero_grad; loss = −mean(token log-probs); loss.backward();
    mean over parameters with a gradient of ‖grad‖_p; return −that."""
    import torch

    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    model.zero_grad()
    logits = model(ids).logits[0, :-1]
    logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[0, 1:, None])[:, 0]
    (-logp.mean()).backward()
    norms = [q.grad.detach().norm(p) for q in model.parameters() if q.grad is not None]
    out = -float(torch.stack(norms).mean())
    model.zero_grad(set_to_none=True)
    return out


def test_gradnorm_against_mimir_procedure_and_orientation(setup):
    """Per text, our score = MIMIR's returned value (−mean norm, embedding table's full gradient
    included); with gradnorm_orientation = mimir it is the value MIMIR ranks (negated), and the AUC
    flips to 1 − ours. On the memorized lab members have the smaller norms (ours > 0.5)."""
    engine, members, nonmembers, cfg = setup
    texts = members + nonmembers
    labels = np.array([1] * 8 + [0] * 8)
    cfg = copy.deepcopy(cfg)
    cfg["attacks"]["names"] = ["gradnorm"]
    ours = attacks.attack_scores(engine, texts, attacks.read(cfg))[0]["score/gradnorm"].to_numpy()
    cfg["attacks"]["gradnorm_orientation"] = "mimir"
    theirs = attacks.attack_scores(engine, texts, attacks.read(cfg))[0]["score/gradnorm"].to_numpy()
    reference = np.array([_mimir_gradnorm(engine.model, engine.tokenizer, t) for t in texts])
    np.testing.assert_allclose(ours, reference, rtol=1e-4)
    np.testing.assert_allclose(theirs, -reference, rtol=1e-4)
    assert roc_auc(labels, ours) > 0.5
    assert roc_auc(labels, theirs) == pytest.approx(1 - roc_auc(labels, ours))


def _hf_loss(model, ids: list[int], labels: list[int] | None = None) -> float:
    """HF's ``model(ids, labels=...).loss``: mean NLL over the shifted, unmasked labels."""
    with torch.no_grad():
        x = torch.tensor([ids])
        y = torch.tensor([labels]) if labels is not None else x
        return float(model(x, labels=y).loss)


def _attack_frame(reference_trained, tokenizer, texts, **settings):
    shots = settings.pop("recall_prefix", None)
    cfg = copy.deepcopy(attacks.DEFAULTS)
    cfg["attacks"].update(settings)
    s = attacks.read(cfg, seed=0)
    s.recall_prefix = shots  # the non-member texts themselves, not a file
    return attacks.attack_scores(Engine(reference_trained, tokenizer), texts, s)[0], s


def test_neighbourhood_equals_mattern_and_mimir(reference_trained, tokenizer):
    """Mattern et al. / MIMIR's NeighborhoodAttack: loss(x) − mean_j loss(x̃_j), loss = HF loss of
    ``tokenizer(text)`` (low = member); ours is its negative, on the same neighbours."""
    frame, s = _attack_frame(reference_trained, tokenizer, REFERENCE_TEXTS, names=["neighbourhood"], n_neighbours=5)
    words = vocabulary_words([tokenizer.decode([i]) for i in range(len(tokenizer))])
    for text, ours in zip(REFERENCE_TEXTS, frame["score/neighbourhood"]):
        nbs = word_swap_neighbours(text, words, 5, swaps=1, seed=0)
        loss = _hf_loss(reference_trained, tokenizer(text).input_ids)
        theirs = loss - np.mean([_hf_loss(reference_trained, tokenizer(nb).input_ids) for nb in nbs])
        assert ours == pytest.approx(-theirs, rel=1e-4, abs=1e-5)


def test_recall_equals_the_authors_run_py(reference_trained, tokenizer):
    """ReCaLL's ``run.py``: LL(x) = −HF loss of ``tokenizer.encode(x)``; LL(x | P) = −HF loss of
    ``tokenizer(P) ++ tokenizer(x)`` with P's positions labelled −100, P = "".join(shots); score
    LL(x | P) / LL(x). ``recall_format: authors`` reproduces it; ours (blank-line joiner, P + x
    tokenized as one text) differs."""
    shots = ["Every spring the market in Fern sells apples from nearby farms.",
             "The library in Cedar keeps old letters."]
    texts = REFERENCE_TEXTS[:4] + ["Lena Voss was born in Porto in 1933 and studied law in the capital."]
    authors, _ = _attack_frame(reference_trained, tokenizer, texts, names=["recall"], recall_shots=2,
                               recall_format="authors", recall_prefix=shots)
    ours, _ = _attack_frame(reference_trained, tokenizer, texts, names=["recall"], recall_shots=2, recall_prefix=shots)
    prefix_ids = tokenizer("".join(shots)).input_ids
    for text, a, o in zip(texts, authors["score/recall"], ours["score/recall"]):
        ll = -_hf_loss(reference_trained, tokenizer.encode(text))
        x_ids = tokenizer(text).input_ids
        ll_cond = -_hf_loss(reference_trained, prefix_ids + x_ids, [-100] * len(prefix_ids) + x_ids)
        assert a == pytest.approx(ll_cond / ll, rel=1e-4)
        # ours, written out: P joined by blank lines, P + x one text, x's tokens scored
        p = "\n\n".join(shots) + "\n\n"
        whole, n_p = tokenizer(p + text).input_ids, len(tokenizer(p.rstrip()).input_ids)
        ll_ours = -_hf_loss(reference_trained, whole, [-100] * n_p + whole[n_p:])
        assert o == pytest.approx(ll_ours / ll, rel=1e-4)


def test_samia_equals_the_authors_scripts(reference_trained, tokenizer):
    """SaMIA's ``sampling.py`` + ``eval_samia.py``: prompt = first int(n/2) words; the decoded
    prompt + sample, split on spaces, minus its first round(n/2) words, against the text's last
    n − round(n/2) words: ROUGE-1 recall (clipped unigram overlap / |reference|), mean over
    samples. top_k = 1 makes the samples deterministic so both sides see the same ones; N new
    tokens as ``samia_max_new_tokens`` (theirs: up to max_length 1024)."""
    from collections import Counter

    texts = [t for t in REFERENCE_TEXTS if len(t.split()) % 2 == 0]  # n even: int(n/2) = round(n/2)
    assert len(texts) >= 3
    frame, _ = _attack_frame(reference_trained, tokenizer, texts, names=["samia"], samia_samples=2, samia_top_k=1,
                             samia_max_new_tokens=12)
    for text, ours in zip(texts, frame["score/samia"]):
        n = len(text.split())
        prefix = " ".join(text.split()[: int(n * 0.5)])
        ids = tokenizer(prefix, return_tensors="pt").input_ids
        with torch.no_grad():
            out = reference_trained.generate(ids, do_sample=False, max_new_tokens=12,
                                             pad_token_id=tokenizer.eos_token_id)
        gen = tokenizer.batch_decode(out)[0].replace(tokenizer.eos_token or "\x00", "")
        cand = [w for w in gen.split(" ") if w][round(n * 0.5):]
        ref = [w for w in text.split(" ") if w][round(n * 0.5):]
        recall = sum((Counter(ref) & Counter(cand)).values()) / len(ref) if cand else 0.0
        assert ours == pytest.approx(recall, abs=1e-12)  # both samples are the same greedy text
    assert frame["score/samia"].max() > 0.5  # the memorised texts come back: the comparison is not of zeros
