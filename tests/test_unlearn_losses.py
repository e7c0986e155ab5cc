"""Tests for mnemoscope.unlearn.losses, the method registry and task-vector negation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn.losses import (
    ga_loss,
    gd_loss,
    kl_loss,
    kl_retain,
    make_control_vector,
    next_token_mask,
    npo_gd_loss,
    npo_kl_loss,
    npo_loss,
    rmu_loss,
    sequence_logprob,
    sequence_nll,
    simnpo_gd_loss,
    simnpo_loss,
    token_counts,
)
from mnemoscope.unlearn.methods import METHODS, get_method
from mnemoscope.unlearn.methods.base import Method
from mnemoscope.unlearn.methods.task_vector import negate_task_vector

IGN = -100
FAST = settings(max_examples=40, deadline=None)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


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


# --------------------------------------------------------------------------- GA / GD / KL


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


def _kl_fixture():
    # Position 0: θ uniform, ref ∝ [1, 2, 1]; position 1: θ ∝ [1, 1, 2], ref uniform;
    # position 2 differs wildly but is masked out.
    ln = math.log
    theta = torch.tensor([[[0.0, 0.0, 0.0], [ln(1), ln(1), ln(2)], [9.0, -9.0, 0.0]]])
    ref = torch.tensor([[[ln(1), ln(2), ln(1)], [0.0, 0.0, 0.0], [-9.0, 9.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    kl0 = 0.25 * ln(0.25 / (1 / 3)) + 0.5 * ln(0.5 / (1 / 3)) + 0.25 * ln(0.25 / (1 / 3))
    kl1 = (1 / 3) * (ln((1 / 3) / 0.25) * 2 + ln((1 / 3) / 0.5))
    return theta, ref, mask, (kl0 + kl1) / 2


def test_kl_retain_hand_formula_on_three_token_vocab():
    theta, ref, mask, expected = _kl_fixture()
    assert expected == pytest.approx((0.5 * math.log(1.125) + math.log(32 / 27) / 3) / 2)
    assert kl_retain(theta, ref, mask).item() == pytest.approx(expected, abs=1e-6)


def test_kl_retain_matches_torch_kl_div_and_direction():
    theta, ref, _, _ = _kl_fixture()
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
    theta, ref, mask, _ = _kl_fixture()
    with pytest.raises(MnemoscopeError, match="no positions"):
        kl_retain(theta, ref, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="must agree"):
        kl_retain(theta, ref[:, :2], mask)


def test_kl_loss_is_ga_plus_weighted_kl():
    theta, ref, mask, kl = _kl_fixture()
    nll_f = torch.tensor([1.0, 2.0])
    assert kl_loss(nll_f, theta, ref, mask, retain_weight=2.0).item() == pytest.approx(-1.5 + 2 * kl, abs=1e-6)


# --------------------------------------------------------------------------- NPO


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
    expected = [(2 / 2) * _sigmoid(beta * 1.0), (2 / 2) * _sigmoid(0.0)]
    assert theta.grad.tolist() == pytest.approx(expected, rel=1e-6)
    assert bool((theta.grad > 0).all())
    assert ref.grad is None
    # GA written on sequence log-likelihoods has the same sign: L = mean log π_θ / |y|.
    t2 = theta.detach().clone().requires_grad_(True)
    ga_loss(-t2 / torch.tensor([2.0, 3.0])).backward()
    assert bool((t2.grad > 0).all())


def test_npo_variants_add_retain_terms():
    theta = torch.tensor([-2.0, -5.0])
    ref = torch.tensor([-3.0, -5.0])
    base = npo_loss(theta, ref, beta=0.5).item()
    nll_r = torch.tensor([1.0, 2.0])
    assert npo_gd_loss(theta, ref, nll_r, beta=0.5, retain_weight=2.0).item() == pytest.approx(base + 3.0)
    lt, lr, mask, kl = _kl_fixture()
    got = npo_kl_loss(theta, ref, lt, lr, mask, beta=0.5, retain_weight=0.5).item()
    assert got == pytest.approx(base + 0.5 * kl, abs=1e-6)


def test_npo_errors():
    with pytest.raises(MnemoscopeError, match="beta"):
        npo_loss(torch.zeros(2), torch.zeros(2), beta=0.0)
    with pytest.raises(ValueError, match="same shape"):
        npo_loss(torch.zeros(2), torch.zeros(3))


# --------------------------------------------------------------------------- SimNPO


def test_simnpo_hand_values_with_and_without_gamma():
    logp = torch.tensor([-6.0, -2.0])
    lengths = torch.tensor([3, 4])
    beta = 2.0
    # args of σ: −(β/|y|)·log π − γ = [4, 1] − γ
    for gamma, literal in ((0.0, 0.16570580771801627), (0.5, 0.25191370122636364)):
        by_hand = -(2 / beta) * (math.log(_sigmoid(4 - gamma)) + math.log(_sigmoid(1 - gamma))) / 2
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
    expected = [2 * _sigmoid(-4) / (2 * 3), 2 * _sigmoid(-1) / (2 * 4)]
    assert logp.grad.tolist() == pytest.approx(expected, rel=1e-6)
    base = simnpo_loss(logp.detach(), lengths, beta=2.0).item()
    got = simnpo_gd_loss(logp.detach(), lengths, torch.tensor([2.0]), beta=2.0, retain_weight=0.5)
    assert got.item() == pytest.approx(base + 1.0)
    with pytest.raises(MnemoscopeError, match="lengths"):
        simnpo_loss(logp.detach(), torch.tensor([3, 0]))
    with pytest.raises(MnemoscopeError, match="beta"):
        simnpo_loss(logp.detach(), lengths, beta=-1.0)


# --------------------------------------------------------------------------- RMU


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


# --------------------------------------------------------------------------- registry


def test_registry_specs_and_lookup():
    assert set(METHODS) >= {"ga", "gd", "kl", "npo", "npo_gd", "npo_kl", "simnpo", "rmu", "task_vector"}
    for name in METHODS:
        spec = get_method(name)
        assert isinstance(spec, Method) and spec.name == name and spec.description
    assert get_method("npo").defaults["beta"] == 0.1 and get_method("npo").needs_reference
    assert get_method("simnpo").defaults == {"beta": 4.5, "gamma": 0.0}
    assert not get_method("simnpo").needs_reference
    assert get_method("kl").needs_retain and not get_method("ga").needs_retain
    assert get_method("task_vector").defaults["alpha"] == 5.0
    with pytest.raises(TypeError):
        get_method("npo").defaults["beta"] = 1.0  # the registry cannot be mutated by a caller


def test_unknown_method_lists_sorted_names_and_suggests():
    with pytest.raises(MnemoscopeError) as err:
        get_method("nop")
    msg = str(err.value)
    assert "'nop'" in msg and "Did you mean 'npo'?" in msg
    assert ", ".join(sorted(METHODS)) in msg
    assert "\n" not in msg
    with pytest.raises(MnemoscopeError) as err2:
        get_method("zzzzzzzz")
    assert "Did you mean" not in str(err2.value)


# --------------------------------------------------------------------------- task vector


def test_negate_task_vector_arithmetic_and_non_float_copy():
    base = {
        "w": torch.tensor([1.0, 2.0]),
        "steps": torch.tensor([3, 4]),
        "h": torch.tensor([1.0, -1.0], dtype=torch.bfloat16),
    }
    ft = {
        "w": torch.tensor([2.0, 0.0]),
        "steps": torch.tensor([9, 9]),
        "h": torch.tensor([1.5, -1.0], dtype=torch.bfloat16),
    }
    base_before = copy.deepcopy(base)
    out = negate_task_vector(base, ft, alpha=5.0)
    assert out["w"].tolist() == [1.0 - 5.0 * 1.0, 2.0 - 5.0 * (-2.0)]
    assert out["steps"].tolist() == [3, 4] and out["steps"].data_ptr() != base["steps"].data_ptr()
    assert out["h"].dtype == torch.bfloat16 and out["h"].tolist() == [1.0 - 5.0 * 0.5, -1.0]
    for k in base:
        assert torch.equal(base[k], base_before[k])


@FAST
@given(seed=st.integers(0, 10_000), alpha=st.floats(-3, 10))
def test_negate_task_vector_properties(seed, alpha):
    gen = torch.Generator().manual_seed(seed)
    base = {"a": torch.randn(3, 2, generator=gen, dtype=torch.float64)}
    ft = {"a": torch.randn(3, 2, generator=gen, dtype=torch.float64)}
    assert torch.allclose(negate_task_vector(base, ft, alpha=0.0)["a"], base["a"])
    assert torch.allclose(negate_task_vector(base, ft, alpha=-1.0)["a"], ft["a"])
    got = negate_task_vector(base, ft, alpha=alpha)["a"]
    assert torch.allclose(got, (1 + alpha) * base["a"] - alpha * ft["a"], atol=1e-9)


def test_negate_task_vector_errors():
    base = {"a": torch.zeros(2), "b": torch.zeros(2)}
    with pytest.raises(MnemoscopeError, match="keys differ"):
        negate_task_vector(base, {"a": torch.zeros(2)})
    with pytest.raises(MnemoscopeError, match="shape"):
        negate_task_vector(base, {"a": torch.zeros(2), "b": torch.zeros(3)})
    with pytest.raises(MnemoscopeError, match="dtype"):
        negate_task_vector(base, {"a": torch.zeros(2), "b": torch.zeros(2, dtype=torch.long)})
    with pytest.raises(MnemoscopeError, match="alpha"):
        negate_task_vector(base, base, alpha=float("nan"))


# --------------------------------------------------------------------------- tiny model


class _TinyLM(torch.nn.Module):
    def __init__(self, vocab: int = 11, dim: int = 8):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.out = torch.nn.Linear(dim, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(ids))


def _forget_batch():
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 11, (4, 6), generator=gen)
    labels = ids.clone()
    labels[:, :2] = IGN  # score only the "answer" part
    return ids, labels


def test_ga_steps_raise_forget_nll_on_tiny_model():
    torch.manual_seed(0)
    model = _TinyLM()
    ids, labels = _forget_batch()
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


def test_npo_steps_raise_forget_nll_on_tiny_model():
    torch.manual_seed(0)
    model = _TinyLM()
    ref = copy.deepcopy(model).eval()
    ids, labels = _forget_batch()
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
