import copy

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import attacks
from mnemoscope.metrics.roc import roc_auc
from mnemoscope.probes.corpus import background_documents
from mnemoscope.probes.neighbours import vocabulary_words, word_swap_neighbours

from .helpers import memorize, write_texts


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
    cfg["attacks"].update(recall_prefix=write_texts(tmp / "prefix.jsonl", [d.split(". ")[0] + "." for d in docs[16:20]]),
                          dcpdd_corpus=write_texts(tmp / "ref.jsonl", docs[20:40]), n_neighbours=8, samia_samples=4, recall_shots=1)
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
