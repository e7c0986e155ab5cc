"""NPO (``unlearn/methods/npo.py``): its loss by hand, its ratio form, stability, gradient direction,
bad input, and steps on a tiny model."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn.losses import ga_loss, npo_loss, sequence_logprob, sequence_nll

from .helpers import FAST, TinyLM, sigmoid, tiny_forget_batch


def test_npo_hand_value_and_ratio_form():
    theta = torch.tensor([-2.0, -5.0])
    ref = torch.tensor([-3.0, -5.0])
    beta = 0.5
    # ratio π_θ/π_ref = e and 1 → (2/β)·mean log(1 + ratio^β)
    ratio = [math.exp(-2.0) / math.exp(-3.0), math.exp(-5.0) / math.exp(-5.0)]
    by_ratio = (2 / beta) * sum(math.log(1 + r**beta) for r in ratio) / 2
    got = npo_loss(theta, ref, beta=beta).item()
    assert got == pytest.approx(by_ratio, rel=1e-6)
    assert got == pytest.approx(3.3344483294801037, rel=1e-6)


@FAST
@given(
    theta=st.lists(st.floats(-60, 0), min_size=1, max_size=4),
    shift=st.floats(-5, 5),
    beta=st.floats(0.05, 3.0),
)
def test_npo_equals_log_one_plus_ratio_form(theta, shift, beta):
    t = torch.tensor(theta, dtype=torch.float64)
    r = t + shift
    expected = (2 / beta) * sum(math.log1p(math.exp(beta * (a - b))) for a, b in zip(theta, r.tolist())) / len(theta)
    assert npo_loss(t, r, beta=beta).item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_npo_is_stable_for_extreme_ratios():
    loss = npo_loss(torch.tensor([0.0, -1e4]), torch.tensor([-1e4, 0.0]), beta=1.0)
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx((2 / 1.0) * (1e4 + 0.0) / 2, rel=1e-6)


def test_npo_gradient_direction_is_ga_like():
    theta = torch.tensor([-2.0, -5.0], requires_grad=True)
    ref = torch.tensor([-3.0, -5.0], requires_grad=True)
    beta = 0.5
    npo_loss(theta, ref, beta=beta).backward()
    # dL/dlog π_θ = (2/N)·σ(βΔ) > 0: descent lowers the forget likelihood, like GA.
    expected = [(2 / 2) * sigmoid(beta * 1.0), (2 / 2) * sigmoid(0.0)]
    assert theta.grad.tolist() == pytest.approx(expected, rel=1e-6)
    assert bool((theta.grad > 0).all())
    assert ref.grad is None
    # GA written on sequence log-likelihoods has the same sign: L = mean log π_θ / |y|.
    t2 = theta.detach().clone().requires_grad_(True)
    ga_loss(-t2 / torch.tensor([2.0, 3.0])).backward()
    assert bool((t2.grad > 0).all())


def test_npo_errors():
    with pytest.raises(MnemoscopeError, match="beta"):
        npo_loss(torch.zeros(2), torch.zeros(2), beta=0.0)
    with pytest.raises(ValueError, match="same shape"):
        npo_loss(torch.zeros(2), torch.zeros(3))


def test_npo_steps_raise_forget_nll_on_tiny_model():
    torch.manual_seed(0)
    model = TinyLM()
    ref = copy.deepcopy(model).eval()
    ids, labels = tiny_forget_batch()
    with torch.no_grad():
        ref_logp = sequence_logprob(ref(ids), labels)
        before = sequence_nll(model(ids), labels).mean().item()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(5):
        opt.zero_grad()
        npo_loss(sequence_logprob(model(ids), labels), ref_logp, beta=0.1).backward()
        opt.step()
    with torch.no_grad():
        after = sequence_nll(model(ids), labels).mean().item()
    assert after > before + 0.05
