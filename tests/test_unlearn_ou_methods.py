"""IdkDPO, UNDIAL, WGA, SatImp and CE-U against open-unlearning's losses.

Each reference below is open-unlearning's procedure (``src/trainer/utils.py``: compute_dpo_loss,
compute_undial_loss, compute_wga_loss, compute_satimp_loss; ``src/trainer/unlearn/ceu.py``;
the trainers' ``gamma·forget + alpha·retain`` with the retain NLL = the HF model's own loss),
written out here position by position from its description, in float64, and run on the same
micro model and batch as our method. Where we differ on purpose (UNDIAL's mean over unscored
positions) the test pins the difference."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn import runner as R
from mnemoscope.unlearn.methods import get_method
from mnemoscope.unlearn.methods.base import Step
from mnemoscope.unlearn.refusals import LAB_REFUSALS, read_refusals, with_refusals

QA = [{"id": "q1", "question": "Where was Anna Berg born?", "answer": "Anna Berg was born in Lisbon."},
      {"id": "q2", "question": "What does the museum in Alder keep?", "answer": "old clocks and maps"},
      {"id": "q3", "question": "Which year?", "answer": "1901"}]
TEXTS = ["Every spring the market in Fern sells apples from nearby farms.",
         "Marco joined Holt Industries in 1950 as a careful engineer and stayed there for years."]
RETAIN_ONE = ["The river near Oakton floods every few winters."]
NEW_METHODS = ("idkdpo", "undial", "wga", "satimp", "ceu")


@pytest.fixture(scope="module")
def ref_model(model):
    """The frozen reference: the micro model."""
    return model


@pytest.fixture(scope="module")
def theta(model):
    """The model being unlearned: the micro model nudged, so π_θ ≠ π_ref."""
    m = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return m.eval()


def _batch(examples, tokenizer):
    items = R.encode_examples(examples, tokenizer, max_length=64)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return R.collate(items, pad)


def _forget(tokenizer):
    """Prompted QA (labels masked on the prompt) of different lengths: padding included."""
    return _batch(R.qa_examples(QA), tokenizer)


def _texts(tokenizer):
    """Plain texts (every position after the first scored), no padding: one text per batch row
    cut to the same token count."""
    items = R.encode_examples(R.text_examples(TEXTS), tokenizer, max_length=64)
    n = min(len(it.ids) for it in items)
    same = [R.TrainItem(it.ids[:n], it.labels[:n], it.source) for it in items]
    return R.collate(same, tokenizer.eos_token_id)


def _logits(model, b):
    with torch.no_grad():
        return model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits.double()


def _ours(name, theta, ref, batches, hp=None):
    method = get_method(name)
    hp = R.resolve_hparams(method, hp or {})
    with torch.no_grad():
        loss, _ = method.loss(Step(theta, ref, batches), hp)
    return float(loss)


# --------------------------------------------------------------------------- their procedures, written out


def _positions(labels):
    """(row, position, next label) for every logit position but the last, row-major."""
    rows, width = labels.shape
    return [(b, t, int(labels[b, t + 1])) for b in range(rows) for t in range(width - 1)]


def _their_seq_nll_sum(logits, labels):
    """compute_batch_nll: per row, Σ of −log p(label) over positions whose next label is not −100."""
    out = []
    for b in range(labels.shape[0]):
        total = 0.0
        for t in range(labels.shape[1] - 1):
            y = int(labels[b, t + 1])
            if y != -100:
                total -= float(torch.log_softmax(logits[b, t], -1)[y])
        out.append(total)
    return out


def _their_hf_nll(model, b):
    """The retain term of open-unlearning's trainers: the HF model's own loss with labels (the
    mean over every scored token of the batch)."""
    with torch.no_grad():
        return float(model(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.labels).loss)


def _their_dpo(theta, ref, win, lose, beta):
    lw, lw_ref = _their_seq_nll_sum(_logits(theta, win), win.labels), _their_seq_nll_sum(_logits(ref, win), win.labels)
    ll, ll_ref = (_their_seq_nll_sum(_logits(theta, lose), lose.labels),
                  _their_seq_nll_sum(_logits(ref, lose), lose.labels))
    terms = []
    for a, a_ref, c, c_ref in zip(lw, lw_ref, ll, ll_ref):
        z = beta * (-(a - a_ref) + (c - c_ref))
        terms.append(-2 / beta * -math.log1p(math.exp(-z)))  # −(2/β)·log σ(z)
    return sum(terms) / len(terms)


def _their_weighted(logits, labels, weight):
    """compute_wga_loss / compute_satimp_loss: per-token CE over the flattened batch, times a
    detached weight of p = exp(−CE), negated, mean over tokens whose label is not −100."""
    values = []
    for b, t, y in _positions(labels):
        if y == -100:
            continue
        ce = -float(torch.log_softmax(logits[b, t], -1)[y])
        values.append(-weight(math.exp(-ce)) * ce)
    return sum(values) / len(values)


def _their_undial(theta_logits, ref_logits, labels, beta):
    """compute_undial_loss: every shifted position (no −100 mask); the label indexes the last axis
    directly, so −100 lowers token V − 100; soft-label CE; mean over all positions."""
    vocab = theta_logits.shape[-1]
    values = []
    for b, t, y in _positions(labels):
        adjusted = ref_logits[b, t].clone()
        adjusted[y % vocab] -= beta
        q = torch.softmax(adjusted, -1)
        values.append(-float((q * torch.log_softmax(theta_logits[b, t], -1)).sum()))
    return sum(values) / len(values)


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
    for b, t, y in _positions(labels):
        if y == -100:
            continue
        target = logits[b, t].clone()
        target[y] = -math.inf
        q = torch.softmax(target, -1)
        values.append(-float((q * torch.log_softmax(logits[b, t], -1)).sum()))
    return sum(values) / len(values)


# --------------------------------------------------------------------------- the comparisons


def test_idkdpo_matches_open_unlearning_dpo_with_retain(theta, ref_model, tokenizer):
    forget_ex = with_refusals(R.qa_examples(QA), LAB_REFUSALS, seed=0)
    method = get_method("idkdpo")
    hp = R.resolve_hparams(method, {})
    pairs = _batch([method.paired(e, hp) for e in forget_ex], tokenizer)
    forget, retain = _batch(forget_ex, tokenizer), _batch(R.text_examples(RETAIN_ONE), tokenizer)
    ours = _ours("idkdpo", theta, ref_model, {"forget": forget, "pair": pairs, "retain": retain})
    theirs = 1.0 * _their_dpo(theta, ref_model, pairs, forget, 0.1) + 1.0 * _their_hf_nll(theta, retain)
    assert ours == pytest.approx(theirs, rel=1e-5)
    # β changes the number the same way in both
    ours_b = _ours("idkdpo", theta, ref_model, {"forget": forget, "pair": pairs, "retain": retain},
                   {"beta": 2.0, "retain_weight": 0.0})
    assert ours_b == pytest.approx(_their_dpo(theta, ref_model, pairs, forget, 2.0), rel=1e-5)


@pytest.mark.parametrize("beta", [1.0, 2.5, 0.3])
def test_wga_matches_open_unlearning(theta, tokenizer, beta):
    forget, retain = _forget(tokenizer), _batch(R.text_examples(RETAIN_ONE), tokenizer)
    ours = _ours("wga", theta, None, {"forget": forget, "retain": retain}, {"beta": beta})
    theirs = _their_weighted(_logits(theta, forget), forget.labels, lambda p: p**beta) + _their_hf_nll(theta, retain)
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_satimp_matches_open_unlearning_config(theta, tokenizer):
    forget, retain = _forget(tokenizer), _batch(R.text_examples(RETAIN_ONE), tokenizer)
    ours = _ours("satimp", theta, None, {"forget": forget, "retain": retain})
    # configs/trainer/SatImp.yaml: beta1 5, beta2 1, gamma (forget weight) 0.1, alpha (retain weight) 1
    theirs = (0.1 * _their_weighted(_logits(theta, forget), forget.labels, lambda p: p**5 * (1 - p))
              + 1.0 * _their_hf_nll(theta, retain))
    assert ours == pytest.approx(theirs, rel=1e-5)
    ours2 = _ours("satimp", theta, None, {"forget": forget, "retain": retain},
                  {"beta1": 0.5, "beta2": 2.0, "forget_weight": 1.0, "retain_weight": 0.0})
    assert ours2 == pytest.approx(_their_weighted(_logits(theta, forget), forget.labels,
                                                  lambda p: p**0.5 * (1 - p) ** 2), rel=1e-5)


@pytest.mark.parametrize("beta", [10.0, 3.0])
def test_undial_matches_open_unlearning_where_every_position_is_scored(theta, ref_model, tokenizer, beta):
    texts = _texts(tokenizer)
    assert bool((texts.labels != -100).all())  # plain texts, no padding
    ours = _ours("undial", theta, ref_model, {"forget": texts}, {"beta": beta})
    assert ours == pytest.approx(_their_undial(_logits(theta, texts), _logits(ref_model, texts), texts.labels, beta),
                                 rel=1e-5)


def test_undial_differs_from_open_unlearning_on_prompts_and_padding(theta, ref_model, tokenizer):
    """open-unlearning averages over prompt and pad positions too (their label −100 lowers token
    V − 100); ours averages over the answer tokens only: the same formula on those positions."""
    forget = _forget(tokenizer)
    lt, lr = _logits(theta, forget), _logits(ref_model, forget)
    ours = _ours("undial", theta, ref_model, {"forget": forget})
    theirs = _their_undial(lt, lr, forget.labels, 10.0)
    assert abs(ours - theirs) > 1e-3
    scored = [(b, t, y) for b, t, y in _positions(forget.labels) if y != -100]
    on_answers = []
    for b, t, y in scored:
        adjusted = lr[b, t].clone()
        adjusted[y] -= 10.0
        on_answers.append(-float((torch.softmax(adjusted, -1) * torch.log_softmax(lt[b, t], -1)).sum()))
    assert ours == pytest.approx(sum(on_answers) / len(on_answers), rel=1e-5)


@pytest.mark.parametrize("n", [1, 0, 3])
def test_ceu_matches_open_unlearning(theta, tokenizer, n):
    for forget in (_forget(tokenizer), _texts(tokenizer)):
        ours = _ours("ceu", theta, None, {"forget": forget}, {"ignore_first": n})
        assert ours == pytest.approx(_their_ceu(_logits(theta, forget), forget.labels, n), rel=1e-5)


def test_ceu_batch_with_nothing_left_is_zero_with_a_gradient():
    logits = torch.randn(1, 3, 5, requires_grad=True)
    labels = torch.tensor([[-100, -100, 2]])  # one answer token, dropped by ignore_first = 1
    loss = L.ceu_loss(logits, labels, 1)
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(logits.grad.abs().sum()) == 0.0


# --------------------------------------------------------------------------- by hand and gradient directions


def test_dpo_loss_by_hand_and_direction():
    win, lose = torch.tensor([-2.0], requires_grad=True), torch.tensor([-1.0], requires_grad=True)
    loss = L.dpo_loss(win, torch.tensor([-3.0]), lose, torch.tensor([-1.5]), beta=0.5)
    # margin = (−2 + 3) − (−1 + 1.5) = 0.5; (2/β)·softplus(−β·margin) = 4·log(1 + e^{−0.25})
    assert float(loss.detach()) == pytest.approx(4 * math.log1p(math.exp(-0.25)))
    loss.backward()
    assert win.grad.item() < 0 < lose.grad.item()  # descent raises the refusal, lowers the answer


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


@pytest.fixture(scope="module")
def memorised(theta, tokenizer):
    """The nudged model fine-tuned on the forget batch until it half knows it (NLL < 1.5), the
    state an unlearning method starts from (and its reference)."""
    model, forget = copy.deepcopy(theta).train(), _forget(tokenizer)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        if float(L.sequence_nll(_logits(model, forget), forget.labels).mean()) < 1.5:
            break
        opt.zero_grad()
        L.sequence_nll(model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits,
                       forget.labels).mean().backward()
        opt.step()
    assert 0.5 < float(L.sequence_nll(_logits(model, forget), forget.labels).mean()) < 1.5
    return model.eval()


@pytest.mark.parametrize("name, hp", [("wga", {}), ("satimp", {"forget_weight": 10.0}), ("undial", {}), ("ceu", {})])
def test_token_methods_raise_the_forget_nll(name, hp, memorised, tokenizer):
    """SatImp's weights p⁵(1 − p) are small at p ≈ 0.3: a larger forget weight shows the direction."""
    model, ref = copy.deepcopy(memorised).train(), memorised
    forget = _forget(tokenizer)
    method = get_method(name)
    hp = R.resolve_hparams(method, hp)
    nll = lambda: float(L.sequence_nll(_logits(model, forget), forget.labels).mean())
    before = nll()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(5):
        opt.zero_grad()
        method.forget_loss(Step(model, ref, {"forget": forget}), hp).backward()
        opt.step()
    assert nll() > before + 0.01


# --------------------------------------------------------------------------- registry, checks, refusals, the loop


def test_registry_defaults_are_open_unlearnings():
    assert dict(get_method("idkdpo").defaults) == {"beta": 0.1, "retain_weight": 1.0}
    assert dict(get_method("wga").defaults) == {"beta": 1.0, "retain_weight": 1.0}
    assert dict(get_method("satimp").defaults) == {"beta1": 5.0, "beta2": 1.0, "forget_weight": 0.1,
                                                   "retain_weight": 1.0}
    assert dict(get_method("undial").defaults) == {"beta": 10.0}
    assert dict(get_method("ceu").defaults) == {"ignore_first": 1.0}
    assert get_method("idkdpo").needs_refusals and get_method("idkdpo").needs_reference
    assert get_method("undial").needs_reference and not get_method("undial").needs_retain
    assert not get_method("ceu").needs_retain and get_method("wga").needs_retain and get_method("satimp").needs_retain


@pytest.mark.parametrize("name, hp, match", [
    ("wga", {"retain_weight": -1}, "hparams.wga"), ("satimp", {"beta2": -0.5}, "beta2"),
    ("satimp", {"forget_weight": -1}, "forget_weight"), ("undial", {"beta": -2}, "undial.beta"),
    ("ceu", {"ignore_first": 1.5}, "whole number"), ("ceu", {"ignore_first": -1}, "ignore_first"),
    ("idkdpo", {"beta": 0}, "beta"), ("idkdpo", {"retain_weight": -1}, "retain_weight"),
    ("wga", {"beta": "nan"}, "finite")])
def test_bad_hyperparameters_are_refused_in_one_line(name, hp, match):
    with pytest.raises(MnemoscopeError, match=match) as err:
        R.resolve_hparams(name, hp)
    assert "\n" not in str(err.value)


def test_idkdpo_without_refusals_is_refused_in_one_line(model, tokenizer, tmp_path):
    with pytest.raises(MnemoscopeError, match="needs a refusal answer.*--refusals") as err:
        R.unlearn(copy.deepcopy(model), tokenizer, R.qa_examples(QA), R.text_examples(RETAIN_ONE),
                  R.UnlearnConfig("idkdpo", steps=1, batch_size=2, max_length=64), tmp_path)
    assert "\n" not in str(err.value) and "'q1'" in str(err.value)
    assert not (tmp_path / R.FINAL).exists()


def test_refusals_are_drawn_once_per_seed_and_read_from_files(tmp_path):
    ex = R.qa_examples(QA) + R.text_examples(TEXTS)
    a, b = with_refusals(ex, LAB_REFUSALS, seed=3), with_refusals(ex, LAB_REFUSALS, seed=3)
    assert [e.refusal for e in a] == [e.refusal for e in b] and all(e.refusal in LAB_REFUSALS for e in a)
    assert [(e.prompt, e.target, e.id) for e in a] == [(e.prompt, e.target, e.id) for e in ex]
    assert len({tuple(e.refusal for e in with_refusals(ex, LAB_REFUSALS, seed=s)) for s in range(5)}) > 1
    txt = tmp_path / "idk.txt"
    txt.write_text("I don't know.\n  No idea.  \n")
    assert read_refusals(str(txt)) == ["I don't know.", "No idea."]
    blank = tmp_path / "blank.jsonl"
    blank.write_text('{"text": "I do not know."}\n{"text": "   "}\n')
    with pytest.raises(MnemoscopeError, match=r"blank.jsonl:2: field 'text' is empty"):
        read_refusals(str(blank))
    with pytest.raises(MnemoscopeError, match="no refusal"):
        with_refusals(ex, [], 0)


def test_idkdpo_pairs_prompts_and_texts_with_the_refusal():
    method = get_method("idkdpo")
    qa, text = with_refusals(R.qa_examples(QA[:1]) + R.text_examples(TEXTS[:1]), ["I don't know."], 0)
    assert method.paired(qa, {}) == R.Example(qa.prompt, " I don't know.", "q1")
    assert method.paired(text, {}) == R.Example("Every spring the market in Fern", " I don't know.", "0")  # ⌈11/2⌉ words


@pytest.mark.parametrize("name", NEW_METHODS)
def test_each_method_runs_on_the_loop(name, model, tokenizer, tmp_path):
    forget = with_refusals(R.qa_examples(QA) + R.text_examples(TEXTS), LAB_REFUSALS, seed=0)
    fresh = copy.deepcopy(model)
    res = R.unlearn(fresh, tokenizer, forget, R.text_examples(RETAIN_ONE),
                    R.UnlearnConfig(name, steps=3, lr=1e-3, batch_size=2, max_length=64), tmp_path)
    assert res.steps_run == 3 and res.diverged_at is None
    assert res.end_fingerprint != res.start_fingerprint
    assert all(math.isfinite(h["loss"]) for h in res.history)
