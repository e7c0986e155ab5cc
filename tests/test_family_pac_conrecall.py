"""PAC and Con-ReCall: hand values, and reference tests that run each authors' procedure written
out independently (PAC: yyy01/PAC `attack.py`, `src/eda.py`, `src/prob.py`; Con-ReCall:
WangCheng0116/CON-RECALL `run.py`, `eval.py`) on a micro model trained here, item by item."""

from __future__ import annotations

import copy
import json
import math
import random

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, roc_auc_score, roc_curve

from mnemoscope.cli import main
from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import attacks
from mnemoscope.families.membership import attack_metrics
from mnemoscope.metrics.pac_conrecall import conrecall_score, eda_swaps, pac_score, polarized_distance
from mnemoscope.probes.corpus import background_documents

from .helpers import memorize, write_texts


# --------------------------------------------------------------------------- hand values


def test_polarized_distance_by_hand():
    lp = [-5.0, -1.0, -0.5, -3.0, -0.1, -2.0, -4.0, -0.2, -0.3, -6.0]  # n = 10
    # far: max(1, int(0.5)) = 1 largest → −0.1; local: int(3) = 3 smallest → mean(−6, −5, −4) = −5
    assert polarized_distance(lp) == pytest.approx(-0.1 - (-5.0))
    # local 0.5 → 5 smallest: mean(−6, −5, −4, −3, −2) = −4; far 0.2 → 2 largest: mean(−0.1, −0.2)
    assert polarized_distance(lp, local=0.5, far=0.2) == pytest.approx(-0.15 + 4.0)
    assert polarized_distance([-2.0]) == 0.0  # one token: it is both ends
    assert math.isnan(polarized_distance([]))
    with pytest.raises(ValueError, match="local"):
        polarized_distance(lp, local=0)


def test_pac_and_conrecall_by_hand():
    assert pac_score(4.0, [3.0, 2.0, 1.0]) == pytest.approx(2.0 - 4.0)  # the authors' PAC is 2, low = member
    assert math.isnan(pac_score(4.0, []))
    # (LL_non − γ·LL_mem) / LL = (−3 − 0.5·(−1)) / (−2) = 1.25
    assert conrecall_score(-3.0, -1.0, -2.0, 0.5) == pytest.approx(1.25)
    assert conrecall_score(-3.0, -1.0, -2.0, 0.0) == pytest.approx(1.5)  # γ = 0: ReCaLL's ratio
    assert math.isnan(conrecall_score(-3.0, -1.0, 0.0))


def test_eda_swaps_permute_words_and_are_seeded():
    text = "the quiet river runs past the old mill and on to the sea"
    copies = eda_swaps(text, 5, 0.3, random.Random(3))
    assert len(copies) == 5
    for c in copies:
        assert sorted(c.split(" ")) == sorted(text.split(" "))
    assert any(c != text for c in copies)
    assert copies == eda_swaps(text, 5, 0.3, random.Random(3))
    assert eda_swaps("alone", 2, 0.3, random.Random(0)) == ["alone", "alone"]  # nothing to swap with
    with pytest.raises(ValueError, match="alpha"):
        eda_swaps(text, 5, 0.0, random.Random(0))


# --------------------------------------------------------------------------- the authors' procedures


def _their_eda(sentence: str, rnd: random.Random, alpha=0.3, num_aug=5) -> list[str]:
    """PAC's `src/eda.py` (random swap only), on an explicit generator instead of the module's."""
    words = sentence.split(" ")
    n_rs = max(1, int(alpha * len(words)))
    out = []
    for _ in range(num_aug):
        new_words = words.copy()
        for _ in range(n_rs):
            a = rnd.randint(0, len(new_words) - 1)
            b, counter, skipped = a, 0, False
            while b == a:
                b = rnd.randint(0, len(new_words) - 1)
                counter += 1
                if counter > 3:
                    skipped = True
                    break
            if not skipped:
                new_words[a], new_words[b] = new_words[b], new_words[a]
        out.append(" ".join(new_words))
    rnd.shuffle(out)
    return out[:num_aug]


def _their_token_logprobs(model, tokenizer, text: str) -> list[float]:
    """`calculate_probs_others`: encode with special tokens, log_softmax, log p of tokens 1..n−1."""
    ids = torch.tensor(tokenizer.encode(text)).unsqueeze(0)
    with torch.no_grad():
        logits = model(ids, labels=ids)[1]
    logp = torch.nn.functional.log_softmax(logits, dim=-1)
    return [logp[0, i, t].item() for i, t in enumerate(ids[0][1:])]


def _their_polarized(prob_list, ratio_local=0.3, ratio_far=0.05) -> float:
    local = np.sort(prob_list)[: max(int(len(prob_list) * ratio_local), 1)]
    far = np.sort(prob_list)[::-1][: max(int(len(prob_list) * ratio_far), 1)]
    return float(np.mean(far) - np.mean(local))


def _their_pac(model, tokenizer, prompts: list[str], seed=0, n=5) -> np.ndarray:
    """`calculate_PAC`: all copies first (one generator over the prompts in order), then PD."""
    rnd = random.Random(seed)
    augmented = [c for p in prompts for c in _their_eda(p, rnd, num_aug=n)]
    pds = [_their_polarized(_their_token_logprobs(model, tokenizer, p)) for p in prompts]
    new = [_their_polarized(_their_token_logprobs(model, tokenizer, p)) for p in augmented]
    calibrated = [np.mean(new[i:i + n]) for i in range(0, len(new), n)]
    return np.array(pds) - np.array(calibrated)


def _their_ll(model, tokenizer, text: str) -> float:
    """Con-ReCall's `get_ll`: −loss of the text, labels = input ids."""
    ids = torch.tensor(tokenizer.encode(text)).unsqueeze(0)
    with torch.no_grad():
        return -model(ids, labels=ids).loss.item()


def _their_conditional_ll(model, tokenizer, prefix: str, target: str) -> float:
    """`get_conditional_ll`: the two encodings concatenated, the prefix's labels −100."""
    a = tokenizer(prefix, return_tensors="pt").input_ids
    b = tokenizer(target, return_tensors="pt").input_ids
    ids = torch.cat((a, b), dim=1)
    labels = ids.clone()
    labels[:, : a.size(1)] = -100
    with torch.no_grad():
        return -model(ids, labels=labels).loss.item()


@pytest.fixture(scope="module")
def lab(tokenizer):
    docs = background_documents(40, seed=23, sentences_per_doc=(1, 1))
    members, nonmembers = docs[:10], docs[10:20]
    shots = [d.split(". ")[0].rstrip(".") + ". " for d in docs[20:28]]  # one sentence each
    model = memorize(tokenizer, members + shots[:4], steps=120)  # shots[:4]: Con-ReCall's member shots
    return model, members, nonmembers, shots[:4], shots[4:]


def _settings(tmp_path, names, **more):
    cfg = copy.deepcopy(attacks.DEFAULTS)
    cfg["attacks"].update(names=names, **more)
    return attacks.read(cfg, seed=0)


def test_pac_equals_the_authors_procedure(lab, tokenizer, tmp_path):
    model, members, nonmembers, _, _ = lab
    texts, labels = members + nonmembers, np.array([1] * len(members) + [0] * len(nonmembers))
    frame, notes = attacks.attack_scores(Engine(model, tokenizer), texts, _settings(tmp_path, ["pac"]))
    theirs = _their_pac(model, tokenizer, texts)
    assert notes == {}
    np.testing.assert_allclose(frame["score/pac"].to_numpy(), -theirs, rtol=1e-5, atol=1e-5)
    ours_auc = attack_metrics(labels, frame, n_boot=10, seed=0).metrics["mia/pac/auc"]
    assert ours_auc == pytest.approx(roc_auc_score(labels, [-p for p in theirs]))  # `calculate_auc`
    # other settings reach the computation: fewer copies, other fractions
    other = attacks.attack_scores(Engine(model, tokenizer), texts,
                                  _settings(tmp_path, ["pac"], pac_augmentations=2, pac_local=0.5))[0]
    assert not np.allclose(other["score/pac"], frame["score/pac"])


def test_conrecall_equals_the_authors_procedure(lab, tokenizer, tmp_path):
    model, members, nonmembers, member_shots, nonmember_shots = lab
    texts, labels = members + nonmembers, np.array([1] * len(members) + [0] * len(nonmembers))
    s = _settings(tmp_path, ["conrecall", "recall"], recall_prefix=write_texts(tmp_path / "non.jsonl", nonmember_shots),
                  conrecall_members=write_texts(tmp_path / "mem.jsonl", member_shots), recall_shots=2,
                  conrecall_gamma=0.3)
    frame, notes = attacks.attack_scores(Engine(model, tokenizer), texts, s)
    assert notes == {}
    p_non, p_mem = "".join(nonmember_shots[:2]), "".join(member_shots[:2])
    theirs = []
    for t in texts:
        ll = _their_ll(model, tokenizer, t)
        theirs.append((_their_conditional_ll(model, tokenizer, p_non, t)
                       - 0.3 * _their_conditional_ll(model, tokenizer, p_mem, t)) / ll)
    # float32 log-probs; a memorised member's LL(x) is ~ −1e-3, so the ratio carries ~1e-5 relative noise
    np.testing.assert_allclose(frame["score/conrecall"].to_numpy(), theirs, rtol=1e-4)
    fpr, tpr, _ = roc_curve(labels, theirs)  # `eval.py`: roc_curve on the raw score, high = member
    assert attack_metrics(labels, frame[["score/conrecall"]], n_boot=10, seed=0).metrics["mia/conrecall/auc"] == \
        pytest.approx(auc(fpr, tpr))
    assert roc_auc_score(labels, theirs) >= 0.75  # memorised members stand out on this lab


def test_conrecall_without_its_files_is_noted_and_bad_settings_refused(lab, tokenizer, tmp_path):
    model, members, _, member_shots, _ = lab
    s = _settings(tmp_path, ["conrecall", "pac"], conrecall_members=write_texts(tmp_path / "mem.jsonl", member_shots))
    frame, notes = attacks.attack_scores(Engine(model, tokenizer), members[:3], s)
    assert list(frame.columns) == ["score/pac"]
    assert "attacks.recall_prefix" in notes["mia/conrecall/auc"] and "conrecall_members" not in notes["mia/conrecall/auc"]
    for key, value in [("pac_augmentations", 0), ("pac_alpha", 0.0), ("pac_far", 1.5), ("conrecall_gamma", -1),
                       ("conrecall_gamma", float("nan"))]:
        with pytest.raises(MnemoscopeError, match=f"attacks.{key}"):
            _settings(tmp_path, ["pac"], **{key: value})
    long = _settings(tmp_path, ["conrecall"], recall_prefix=write_texts(tmp_path / "long.jsonl", [" word" * 60] * 3),
                     conrecall_members=write_texts(tmp_path / "m2.jsonl", member_shots), recall_shots=3)
    with pytest.raises(MnemoscopeError, match="recall_shots"):
        attacks.check(Engine(model, tokenizer), members[:2], long)


def test_audit_runs_pac_and_conrecall_from_a_yaml(lab, tokenizer, tmp_path, capsys):
    import yaml

    model, members, nonmembers, member_shots, nonmember_shots = lab
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    write_texts(tmp_path / "m.jsonl", members)
    write_texts(tmp_path / "n.jsonl", nonmembers)
    write_texts(tmp_path / "shots_m.jsonl", member_shots)
    write_texts(tmp_path / "shots_n.jsonl", nonmember_shots)
    config = {"data": {"members": "m.jsonl", "nonmembers": "n.jsonl"}, "audit": {"extraction": False},
              "attacks": {"names": ["pac", "conrecall"], "recall_prefix": "shots_n.jsonl",
                          "conrecall_members": "shots_m.jsonl", "recall_shots": 2, "pac_augmentations": 3}}
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["audit", "--model", str(tmp_path / "model"), "--config", str(tmp_path / "audit.yaml"),
                 "--out", str(out), "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mia/pac/auc"] is not None and metrics["mia/conrecall/auc"] >= 0.75
    config["attacks"]["pac_alpha"] = 2
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["audit", "--model", str(tmp_path / "model"), "--config", str(tmp_path / "audit.yaml"),
                 "--out", str(tmp_path / "bad"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "attacks.pac_alpha" in err and err.count("\n") == 0 and not (tmp_path / "bad").exists()


def test_with_a_bos_tokenizer_pac_matches_and_conrecall_drops_only_the_second_bos(bos_model, bos_tokenizer, tmp_path):
    """Llama-style tokenizers: PAC is the authors' number; Con-ReCall's prefixed items are the
    authors' with the BOS they put between prefix and text removed (docs/metrics.md, differences)."""
    docs = background_documents(12, seed=5, sentences_per_doc=(1, 1))
    texts, shots = docs[:6], [d.split(". ")[0].rstrip(".") + ". " for d in docs[6:10]]
    engine = Engine(bos_model, bos_tokenizer)
    assert engine.bos
    frame = attacks.attack_scores(engine, texts, _settings(tmp_path, ["pac"]))[0]
    np.testing.assert_allclose(frame["score/pac"], -_their_pac(bos_model, bos_tokenizer, texts), rtol=1e-5, atol=1e-5)
    s = _settings(tmp_path, ["conrecall"], recall_prefix=write_texts(tmp_path / "non.jsonl", shots[:2]),
                  conrecall_members=write_texts(tmp_path / "mem.jsonl", shots[2:]), recall_shots=2)
    got = attacks.attack_scores(engine, texts, s)[0]["score/conrecall"].to_numpy()
    bos = bos_tokenizer.bos_token_id

    def one_bos(prefix, target):  # the authors' concatenation without the target's own BOS
        a = bos_tokenizer(prefix, return_tensors="pt").input_ids
        b = bos_tokenizer(target, return_tensors="pt").input_ids
        assert b[0, 0].item() == bos  # theirs has it
        ids = torch.cat((a, b[:, 1:]), dim=1)
        labels = ids.clone()
        labels[:, : a.size(1)] = -100
        with torch.no_grad():
            return -bos_model(ids, labels=labels).loss.item()

    p_non, p_mem = "".join(shots[:2]), "".join(shots[2:])
    want = [(one_bos(p_non, t) - 0.5 * one_bos(p_mem, t)) / _their_ll(bos_model, bos_tokenizer, t) for t in texts]
    np.testing.assert_allclose(got, want, rtol=1e-4)
    theirs = [(_their_conditional_ll(bos_model, bos_tokenizer, p_non, t)
               - 0.5 * _their_conditional_ll(bos_model, bos_tokenizer, p_mem, t)) / _their_ll(bos_model, bos_tokenizer, t)
              for t in texts]
    assert not np.allclose(got, theirs, rtol=1e-4)  # the documented difference is real
