"""UNDIAL (``unlearn/methods/undial.py``) against open-unlearning's compute_undial_loss, and where
we differ on purpose (the mean over answer tokens only)."""

from __future__ import annotations

import pytest
import torch

from .helpers import logits64, ou_forget, ou_texts, our_loss, shifted_positions


def _their_undial(theta_logits, ref_logits, labels, beta):
    """compute_undial_loss: every shifted position (no −100 mask); the label indexes the last axis
    directly, so −100 lowers token V − 100; soft-label CE; mean over all positions."""
    vocab = theta_logits.shape[-1]
    values = []
    for b, t, y in shifted_positions(labels):
        adjusted = ref_logits[b, t].clone()
        adjusted[y % vocab] -= beta
        q = torch.softmax(adjusted, -1)
        values.append(-float((q * torch.log_softmax(theta_logits[b, t], -1)).sum()))
    return sum(values) / len(values)


@pytest.mark.parametrize("beta", [10.0, 3.0])
def test_undial_matches_open_unlearning_where_every_position_is_scored(theta, ref_model, tokenizer, beta):
    texts = ou_texts(tokenizer)
    assert bool((texts.labels != -100).all())  # plain texts, no padding
    ours = our_loss("undial", theta, ref_model, {"forget": texts}, {"beta": beta})
    assert ours == pytest.approx(_their_undial(logits64(theta, texts), logits64(ref_model, texts), texts.labels, beta),
                                 rel=1e-5)


def test_undial_differs_from_open_unlearning_on_prompts_and_padding(theta, ref_model, tokenizer):
    """open-unlearning averages over prompt and pad positions too (their label −100 lowers token
    V − 100); ours averages over the answer tokens only: the same formula on those positions."""
    forget = ou_forget(tokenizer)
    lt, lr = logits64(theta, forget), logits64(ref_model, forget)
    ours = our_loss("undial", theta, ref_model, {"forget": forget})
    theirs = _their_undial(lt, lr, forget.labels, 10.0)
    assert abs(ours - theirs) > 1e-3
    scored = [(b, t, y) for b, t, y in shifted_positions(forget.labels) if y != -100]
    on_answers = []
    for b, t, y in scored:
        adjusted = lr[b, t].clone()
        adjusted[y] -= 10.0
        on_answers.append(-float((torch.softmax(adjusted, -1) * torch.log_softmax(lt[b, t], -1)).sum()))
    assert ours == pytest.approx(sum(on_answers) / len(on_answers), rel=1e-5)
