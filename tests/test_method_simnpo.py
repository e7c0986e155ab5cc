"""SimNPO (``unlearn/methods/simnpo.py``): its loss by hand, properties, gradient and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn.losses import simnpo_gd_loss, simnpo_loss

from .helpers import FAST, sigmoid


def test_simnpo_hand_values_with_and_without_gamma():
    logp = torch.tensor([-6.0, -2.0])
    lengths = torch.tensor([3, 4])
    beta = 2.0
    # args of σ: −(β/|y|)·log π − γ = [4, 1] − γ
    for gamma, literal in ((0.0, 0.16570580771801627), (0.5, 0.25191370122636364)):
        by_hand = -(2 / beta) * (math.log(sigmoid(4 - gamma)) + math.log(sigmoid(1 - gamma))) / 2
        got = simnpo_loss(logp, lengths, beta=beta, gamma=gamma).item()
        assert got == pytest.approx(by_hand, rel=1e-6)
        assert got == pytest.approx(literal, rel=1e-6)


@FAST
@given(
    logp=st.floats(-100, -0.01),
    length=st.integers(1, 50),
    beta=st.floats(0.1, 10),
    gamma=st.floats(0, 0.5),
    step=st.floats(0.01, 5),
)
def test_simnpo_positive_increasing_in_likelihood_and_gamma(logp, length, beta, gamma, step):
    n = torch.tensor([length])
    lo = simnpo_loss(torch.tensor([logp]), n, beta, gamma).item()
    hi = simnpo_loss(torch.tensor([logp + step]), n, beta, gamma).item()
    more_gamma = simnpo_loss(torch.tensor([logp]), n, beta, gamma + 0.1).item()
    assert lo >= 0 and hi >= lo and more_gamma >= lo


def test_simnpo_gradient_and_gd_variant_and_errors():
    logp = torch.tensor([-6.0, -2.0], requires_grad=True)
    lengths = torch.tensor([3, 4])
    simnpo_loss(logp, lengths, beta=2.0).backward()
    # dL/dlogπ = (2/β)(1/N) σ(β logπ/|y| + γ) · β/|y| = σ(z)/(N·|y|)·2
    expected = [2 * sigmoid(-4) / (2 * 3), 2 * sigmoid(-1) / (2 * 4)]
    assert logp.grad.tolist() == pytest.approx(expected, rel=1e-6)
    base = simnpo_loss(logp.detach(), lengths, beta=2.0).item()
    got = simnpo_gd_loss(logp.detach(), lengths, torch.tensor([2.0]), beta=2.0, retain_weight=0.5)
    assert got.item() == pytest.approx(base + 1.0)
    with pytest.raises(MnemoscopeError, match="lengths"):
        simnpo_loss(logp.detach(), torch.tensor([3, 0]))
    with pytest.raises(MnemoscopeError, match="beta"):
        simnpo_loss(logp.detach(), lengths, beta=-1.0)
