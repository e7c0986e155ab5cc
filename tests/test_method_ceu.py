"""CE-U (``unlearn/methods/ceu.py``) against open-unlearning's compute_batch_ceu."""

from __future__ import annotations

import math

import pytest
import torch

from mnemoscope.unlearn import losses as L

from .helpers import logits64, ou_forget, ou_texts, our_loss, shifted_positions


def _their_ceu(logits, labels, n_ignore):
    """compute_batch_ceu: drop each row's first n labels that are not −100, shift, target =
    softmax(detached logits with the label's logit at −inf), soft CE, mean over kept positions."""
    labels = labels.clone()
    for b in range(labels.shape[0]):
        seen = 0
        for t in range(labels.shape[1]):
            if labels[b, t] != -100 and seen < n_ignore:
                labels[b, t] = -100
                seen += 1
            elif labels[b, t] != -100:
                seen += 1
    values = []
    for b, t, y in shifted_positions(labels):
        if y == -100:
            continue
        target = logits[b, t].clone()
        target[y] = -math.inf
        q = torch.softmax(target, -1)
        values.append(-float((q * torch.log_softmax(logits[b, t], -1)).sum()))
    return sum(values) / len(values)


@pytest.mark.parametrize("n", [1, 0, 3])
def test_ceu_matches_open_unlearning(theta, tokenizer, n):
    for forget in (ou_forget(tokenizer), ou_texts(tokenizer)):
        ours = our_loss("ceu", theta, None, {"forget": forget}, {"ignore_first": n})
        assert ours == pytest.approx(_their_ceu(logits64(theta, forget), forget.labels, n), rel=1e-5)


def test_ceu_batch_with_nothing_left_is_zero_with_a_gradient():
    logits = torch.randn(1, 3, 5, requires_grad=True)
    labels = torch.tensor([[-100, -100, 2]])  # one answer token, dropped by ignore_first = 1
    loss = L.ceu_loss(logits, labels, 1)
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(logits.grad.abs().sum()) == 0.0
