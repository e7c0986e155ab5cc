"""IdkDPO (``unlearn/methods/idkdpo.py``) against open-unlearning's DPO loss (procedure written out
in float64 on the same micro model and batch), its loss by hand, refusal pairing and bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn import runner as R
from mnemoscope.unlearn.methods import get_method
from mnemoscope.unlearn.refusals import LAB_REFUSALS, with_refusals

from .helpers import OU_QA, OU_RETAIN, OU_TEXTS, logits64, ou_batch, our_loss, their_hf_nll


def _their_seq_nll_sum(logits, labels):
    """compute_batch_nll: per row, Σ of −log p(label) over positions whose next label is not −100."""
    out = []
    for b in range(labels.shape[0]):
        total = 0.0
        for t in range(labels.shape[1] - 1):
            y = int(labels[b, t + 1])
            if y != -100:
                total -= float(torch.log_softmax(logits[b, t], -1)[y])
        out.append(total)
    return out


def _their_dpo(theta, ref, win, lose, beta):
    lw, lw_ref = (_their_seq_nll_sum(logits64(theta, win), win.labels),
                  _their_seq_nll_sum(logits64(ref, win), win.labels))
    ll, ll_ref = (_their_seq_nll_sum(logits64(theta, lose), lose.labels),
                  _their_seq_nll_sum(logits64(ref, lose), lose.labels))
    terms = []
    for a, a_ref, c, c_ref in zip(lw, lw_ref, ll, ll_ref):
        z = beta * (-(a - a_ref) + (c - c_ref))
        terms.append(-2 / beta * -math.log1p(math.exp(-z)))  # −(2/β)·log σ(z)
    return sum(terms) / len(terms)


def test_idkdpo_matches_open_unlearning_dpo_with_retain(theta, ref_model, tokenizer):
    forget_ex = with_refusals(R.qa_examples(OU_QA), LAB_REFUSALS, seed=0)
    method = get_method("idkdpo")
    hp = R.resolve_hparams(method, {})
    pairs = ou_batch([method.paired(e, hp) for e in forget_ex], tokenizer)
    forget, retain = ou_batch(forget_ex, tokenizer), ou_batch(R.text_examples(OU_RETAIN), tokenizer)
    ours = our_loss("idkdpo", theta, ref_model, {"forget": forget, "pair": pairs, "retain": retain})
    theirs = 1.0 * _their_dpo(theta, ref_model, pairs, forget, 0.1) + 1.0 * their_hf_nll(theta, retain)
    assert ours == pytest.approx(theirs, rel=1e-5)
    # β changes the number the same way in both
    ours_b = our_loss("idkdpo", theta, ref_model, {"forget": forget, "pair": pairs, "retain": retain},
                   {"beta": 2.0, "retain_weight": 0.0})
    assert ours_b == pytest.approx(_their_dpo(theta, ref_model, pairs, forget, 2.0), rel=1e-5)


def test_dpo_loss_by_hand_and_direction():
    win, lose = torch.tensor([-2.0], requires_grad=True), torch.tensor([-1.0], requires_grad=True)
    loss = L.dpo_loss(win, torch.tensor([-3.0]), lose, torch.tensor([-1.5]), beta=0.5)
    # margin = (−2 + 3) − (−1 + 1.5) = 0.5; (2/β)·softplus(−β·margin) = 4·log(1 + e^{−0.25})
    assert float(loss.detach()) == pytest.approx(4 * math.log1p(math.exp(-0.25)))
    loss.backward()
    assert win.grad.item() < 0 < lose.grad.item()  # descent raises the refusal, lowers the answer


def test_idkdpo_without_refusals_is_refused_in_one_line(model, tokenizer, tmp_path):
    with pytest.raises(MnemoscopeError, match="needs a refusal answer.*--refusals") as err:
        R.unlearn(copy.deepcopy(model), tokenizer, R.qa_examples(OU_QA), R.text_examples(OU_RETAIN),
                  R.UnlearnConfig("idkdpo", steps=1, batch_size=2, max_length=64), tmp_path)
    assert "\n" not in str(err.value) and "'q1'" in str(err.value)
    assert not (tmp_path / R.FINAL).exists()


def test_idkdpo_pairs_prompts_and_texts_with_the_refusal():
    method = get_method("idkdpo")
    qa, text = with_refusals(R.qa_examples(OU_QA[:1]) + R.text_examples(OU_TEXTS[:1]), ["I don't know."], 0)
    assert method.paired(qa, {}) == R.Example(qa.prompt, " I don't know.", "q1")
    assert method.paired(text, {}) == R.Example("Every spring the market in Fern", " I don't know.", "0")  # ⌈11/2⌉ words
