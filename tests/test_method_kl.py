"""GA + KL on the retain set (``unlearn/methods/kl.py``): its loss against a hand computation."""

from __future__ import annotations

import pytest
import torch

from mnemoscope.unlearn.losses import kl_loss

from .helpers import kl_fixture


def test_kl_loss_is_ga_plus_weighted_kl():
    theta, ref, mask, kl = kl_fixture()
    nll_f = torch.tensor([1.0, 2.0])
    assert kl_loss(nll_f, theta, ref, mask, retain_weight=2.0).item() == pytest.approx(-1.5 + 2 * kl, abs=1e-6)
