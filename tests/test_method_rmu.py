"""RMU (``unlearn/methods/rmu.py``): its loss by hand, gradient, control vector and layer hook."""

from __future__ import annotations

import pytest
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn.losses import make_control_vector, rmu_loss
from mnemoscope.unlearn.methods.rmu import LayerTap, decoder_layers


def test_rmu_hand_value_and_masks():
    u = torch.tensor([0.6, 0.8])
    h_f = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]])  # ‖h − 5u‖² = 0 and 25
    h_r = torch.tensor([[[1.0, 1.0]]])
    h_r_ref = torch.tensor([[[0.0, 1.0]]])  # ‖·‖² = 1
    assert rmu_loss(h_f, h_r, h_r_ref, u, steering_coef=5.0, alpha=2.0).item() == pytest.approx(12.5 + 2.0)
    masked = rmu_loss(
        h_f, h_r, h_r_ref, u, 5.0, 2.0, forget_mask=torch.tensor([[True, False]]), retain_mask=torch.tensor([[True]])
    )
    assert masked.item() == pytest.approx(0.0 + 2.0)
    with pytest.raises(ValueError, match="hidden size"):
        rmu_loss(h_f, h_r, h_r_ref, torch.ones(3), 5.0, 2.0)
    with pytest.raises(ValueError, match="forget_mask"):
        rmu_loss(h_f, h_r, h_r_ref, u, 5.0, 2.0, forget_mask=torch.tensor([True]))


def test_rmu_gradient_pulls_forget_towards_target_and_detaches_ref():
    u = make_control_vector(4, seed=3)
    h_f = torch.zeros(1, 2, 4, requires_grad=True)
    h_r = torch.ones(1, 2, 4, requires_grad=True)
    h_ref = torch.ones(1, 2, 4, requires_grad=True)
    rmu_loss(h_f, h_r, h_ref, u, steering_coef=2.0, alpha=1.0).backward()
    # dL/dh_F = 2(h_F − c u)/n_tokens = −2·2u/2 → moving against the gradient moves toward c·u.
    assert torch.allclose(h_f.grad[0, 0], -2.0 * u, atol=1e-6)
    assert h_ref.grad is None


def test_make_control_vector_unit_deterministic_seeded():
    a, b, c = make_control_vector(16, seed=1), make_control_vector(16, seed=1), make_control_vector(16, seed=2)
    assert a.shape == (16,) and a.dtype == torch.float32
    assert a.norm().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool((a >= 0).all())
    with pytest.raises(MnemoscopeError, match="dim"):
        make_control_vector(0)


def test_rmu_hook_reads_the_chosen_layer(fresh):
    layers = decoder_layers(fresh)
    tap = LayerTap(layers[0])
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        out = fresh(input_ids=ids, output_hidden_states=True)
    tap.close()
    # hidden_states[0] = embeddings, [1] = output of block 0
    assert torch.allclose(tap.value, out.hidden_states[1], atol=1e-5)
