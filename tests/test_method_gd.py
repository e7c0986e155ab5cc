"""Gradient difference (``unlearn/methods/gd.py``): its loss by hand, gradient signs and bad input."""

from __future__ import annotations

import pytest
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn.losses import ga_loss, gd_loss


def test_ga_and_gd_values_and_signs():
    nll_f = torch.tensor([1.0, 3.0], requires_grad=True)
    nll_r = torch.tensor([2.0, 4.0], requires_grad=True)
    assert ga_loss(nll_f).item() == pytest.approx(-2.0)
    loss = gd_loss(nll_f, nll_r, retain_weight=0.5)
    assert loss.item() == pytest.approx(-2.0 + 0.5 * 3.0)
    loss.backward()
    assert nll_f.grad.tolist() == pytest.approx([-0.5, -0.5])  # minimising raises NLL_F
    assert nll_r.grad.tolist() == pytest.approx([0.25, 0.25])  # and lowers NLL_R
    with pytest.raises(MnemoscopeError, match="retain_weight"):
        gd_loss(nll_f, nll_r, retain_weight=-1.0)
