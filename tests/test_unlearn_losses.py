"""Tests for mnemoscope.unlearn.losses as a module: the shared pieces (sequence log-probabilities, KL to
the reference) and the by-hand checks that span several methods' objectives. Each method's own loss is
tested in tests/test_method_<name>.py; the registry in tests/test_unlearn_methods.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.losses import (
    kl_retain,
    next_token_mask,
    npo_gd_loss,
    npo_kl_loss,
    npo_loss,
    sequence_logprob,
    sequence_nll,
    token_counts,
)

from .helpers import FAST, IGN, kl_fixture


# --------------------------------------------------------------------------- sequence_logprob


def _manual_seq_logprob(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    out = []
    for b in range(labels.shape[0]):
        total = 0.0
        for i in range(labels.shape[1] - 1):
            tok = int(labels[b, i + 1])
            if tok == IGN:
                continue
            row = [float(v) for v in logits[b, i]]
            lse = math.log(sum(math.exp(v) for v in row))
            total += row[tok] - lse
        out.append(total)
    return out


def test_sequence_logprob_matches_manual_gather_with_ignore_index():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, generator=gen)
    labels = torch.tensor([[2, 0, IGN, 1], [IGN, IGN, 2, 2]])
    got = sequence_logprob(logits, labels)
    assert got.dtype == torch.float32 and got.shape == (2,)
    assert got.tolist() == pytest.approx(_manual_seq_logprob(logits, labels), abs=1e-6)
    assert token_counts(labels).tolist() == [2, 2]
    # The first label is never scored (no logits before it).
    labels2 = labels.clone()
    labels2[:, 0] = torch.tensor([1, 0])
    assert torch.equal(sequence_logprob(logits, labels2), got)


def test_sequence_logprob_hand_value_uniform_distribution():
    logits = torch.zeros(1, 3, 4)  # uniform over 4 tokens
    labels = torch.tensor([[IGN, 1, 3]])
    assert sequence_logprob(logits, labels).item() == pytest.approx(2 * math.log(0.25))
    assert sequence_nll(logits, labels).item() == pytest.approx(math.log(4))


def test_sequence_logprob_bf16_logits_scored_in_float32():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 7, generator=gen).to(torch.bfloat16)
    labels = torch.tensor([[0, 1, 2, 3, 4], [6, 5, IGN, 3, IGN]])
    got = sequence_logprob(logits, labels)
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx(_manual_seq_logprob(logits.float(), labels), abs=1e-5)


def test_sequence_logprob_is_differentiable():
    logits = torch.zeros(1, 2, 3, requires_grad=True)
    sequence_logprob(logits, torch.tensor([[0, 2]])).sum().backward()
    # d log softmax_2 / d logits = onehot(2) − p = [−1/3, −1/3, 2/3] at position 0; none at 1.
    assert logits.grad[0, 0].tolist() == pytest.approx([-1 / 3, -1 / 3, 2 / 3])
    assert logits.grad[0, 1].tolist() == [0.0, 0.0, 0.0]


@FAST
@given(
    seed=st.integers(0, 10_000),
    batch=st.integers(1, 3),
    seq=st.integers(2, 6),
    pad=st.integers(1, 3),
)
def test_sequence_logprob_invariant_to_padding_and_batching(seed, batch, seq, pad):
    gen = torch.Generator().manual_seed(seed)
    vocab = 5
    logits = torch.randn(batch, seq, vocab, generator=gen)
    labels = torch.randint(0, vocab, (batch, seq), generator=gen)
    labels[torch.rand(batch, seq, generator=gen) < 0.3] = IGN
    base = sequence_logprob(logits, labels)
    padded_logits = torch.cat([logits, 50 * torch.randn(batch, pad, vocab, generator=gen)], dim=1)
    padded_labels = torch.cat([labels, torch.full((batch, pad), IGN)], dim=1)
    assert torch.allclose(sequence_logprob(padded_logits, padded_labels), base, atol=1e-5)
    rows = torch.cat([sequence_logprob(logits[b : b + 1], labels[b : b + 1]) for b in range(batch)])
    assert torch.allclose(rows, base, atol=1e-5)
    assert bool((base <= 0).all())


def test_sequence_logprob_shape_errors_and_empty_nll():
    with pytest.raises(ValueError, match="logits/labels"):
        sequence_logprob(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(MnemoscopeError, match="no scored tokens"):
        sequence_nll(torch.zeros(1, 3, 4), torch.tensor([[1, IGN, IGN]]))


def test_next_token_mask_aligns_with_shift():
    labels = torch.tensor([[5, IGN, 3, 4]])
    assert next_token_mask(labels).tolist() == [[False, True, True, False]]


# --------------------------------------------------------------------------- KL to the reference (KL, NPO+KL)


def test_kl_retain_hand_formula_on_three_token_vocab():
    theta, ref, mask, expected = kl_fixture()
    assert expected == pytest.approx((0.5 * math.log(1.125) + math.log(32 / 27) / 3) / 2)
    assert kl_retain(theta, ref, mask).item() == pytest.approx(expected, abs=1e-6)


def test_kl_retain_matches_torch_kl_div_and_direction():
    theta, ref, _, _ = kl_fixture()
    mask = torch.tensor([[True, False, False]])  # one position, so the two directions differ
    lt, lr = F.log_softmax(theta[mask], -1), F.log_softmax(ref[mask], -1)
    want = F.kl_div(lt, lr, reduction="batchmean", log_target=True)  # KL(ref ‖ θ)
    reverse = F.kl_div(lr, lt, reduction="batchmean", log_target=True)  # KL(θ ‖ ref)
    got = kl_retain(theta, ref, mask)
    assert got.item() == pytest.approx(want.item(), abs=1e-6)
    assert got.item() == pytest.approx(0.5 * math.log(1.125), abs=1e-6)
    assert abs(got.item() - reverse.item()) > 1e-3  # KL(θ ‖ ref) = log(32/27)/3 would be wrong


@FAST
@given(seed=st.integers(0, 10_000), n=st.integers(1, 4), vocab=st.integers(2, 6))
def test_kl_retain_property_against_kl_div(seed, n, vocab):
    gen = torch.Generator().manual_seed(seed)
    theta = 3 * torch.randn(2, n, vocab, generator=gen)
    ref = 3 * torch.randn(2, n, vocab, generator=gen)
    mask = torch.rand(2, n, generator=gen) < 0.7
    mask[0, 0] = True
    got = kl_retain(theta, ref, mask)
    want = F.kl_div(
        F.log_softmax(theta[mask], -1), F.log_softmax(ref[mask], -1), reduction="batchmean", log_target=True
    )
    assert got.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6)
    assert got.item() >= -1e-7
    assert kl_retain(theta, theta, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_retain_handles_zero_reference_probability_and_detaches_ref():
    theta = torch.tensor([[0.0, 0.0]], requires_grad=True)
    ref = torch.tensor([[0.0, float("-inf")]], requires_grad=True)  # p_ref = [1, 0]
    loss = kl_retain(theta, ref, torch.tensor([True]))
    assert loss.item() == pytest.approx(math.log(2))
    loss.backward()
    assert ref.grad is None and theta.grad is not None


def test_kl_retain_errors():
    theta, ref, mask, _ = kl_fixture()
    with pytest.raises(MnemoscopeError, match="no positions"):
        kl_retain(theta, ref, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="must agree"):
        kl_retain(theta, ref[:, :2], mask)


# --------------------------------------------------------------------------- several methods


def test_npo_variants_add_retain_terms():
    theta = torch.tensor([-2.0, -5.0])
    ref = torch.tensor([-3.0, -5.0])
    base = npo_loss(theta, ref, beta=0.5).item()
    nll_r = torch.tensor([1.0, 2.0])
    assert npo_gd_loss(theta, ref, nll_r, beta=0.5, retain_weight=2.0).item() == pytest.approx(base + 3.0)
    lt, lr, mask, kl = kl_fixture()
    got = npo_kl_loss(theta, ref, lt, lr, mask, beta=0.5, retain_weight=0.5).item()
    assert got == pytest.approx(base + 0.5 * kl, abs=1e-6)


def test_weighted_ascent_by_hand():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.2, 0.2, 0.6], [1 / 3, 1 / 3, 1 / 3]]]))
    labels = torch.tensor([[-100, 0, 2]])  # scores p = 0.5 (position 0) and p = 0.6 (position 1)
    nll = [-math.log(0.5), -math.log(0.6)]
    assert float(L.wga_loss(logits, labels, 2.0)) == pytest.approx(-(0.25 * nll[0] + 0.36 * nll[1]) / 2)
    want = -(0.5**5 * 0.5 * nll[0] + 0.6**5 * 0.4 * nll[1]) / 2
    assert float(L.satimp_loss(logits, labels, 5.0, 1.0)) == pytest.approx(want)


def test_undial_and_ceu_by_hand():
    logits = torch.log(torch.tensor([[[0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3]]]))
    labels = torch.tensor([[-100, 0]])
    # CE-U (nothing ignored): q = (0, 0.6, 0.4); −Σ q log p = −(0.6 log 0.3 + 0.4 log 0.2)
    assert float(L.ceu_loss(logits, labels, 0)) == pytest.approx(-(0.6 * math.log(0.3) + 0.4 * math.log(0.2)))
    # UNDIAL with the reference = the model and β = log 5: q ∝ (0.5/5, 0.3, 0.2) = (0.1, 0.3, 0.2)/0.6
    q = [0.1 / 0.6, 0.3 / 0.6, 0.2 / 0.6]
    want = -sum(qi * math.log(pi) for qi, pi in zip(q, [0.5, 0.3, 0.2]))
    assert float(L.undial_loss(logits, logits, labels, math.log(5))) == pytest.approx(want, rel=1e-6)
