"""Gradient ascent (``unlearn/methods/ga.py``): forget NLL rises on a tiny model and on the loop."""

from __future__ import annotations

import torch

from mnemoscope.unlearn import runner as R
from mnemoscope.unlearn.losses import ga_loss, sequence_nll

from .helpers import FORGET, TinyLM, mean_nll, tiny_forget_batch, unlearn_cfg


def test_ga_steps_raise_forget_nll_on_tiny_model():
    torch.manual_seed(0)
    model = TinyLM()
    ids, labels = tiny_forget_batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with torch.no_grad():
        before = sequence_nll(model(ids), labels).mean().item()
    for _ in range(5):
        opt.zero_grad()
        ga_loss(sequence_nll(model(ids), labels)).backward()
        opt.step()
    with torch.no_grad():
        after = sequence_nll(model(ids), labels).mean().item()
    assert after > before + 0.05


def test_gradient_ascent_raises_forget_nll(fresh, tokenizer, tmp_path):
    before = mean_nll(fresh, tokenizer, FORGET)
    res = R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("ga", steps=5), tmp_path)
    assert mean_nll(res.model, tokenizer, FORGET) > before + 0.05
    assert res.steps_run == 5 and res.diverged_at is None
