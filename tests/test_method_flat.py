"""FLAT (``unlearn/methods/flat.py``): its loss by hand and gradient direction, template pairing,
the method on the loop, and the padded average against the authors' loss."""

from __future__ import annotations

import math

import pytest
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn import runner as R

from .helpers import FORGET, unlearn_cfg


def test_mean_token_prob_and_flat_loss_by_hand():
    # one example, vocab 2, three positions; labels score positions 1 and 2 (position 0 is the prompt)
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]]]))
    labels = torch.tensor([[L.IGNORE_INDEX, 1, 0]])  # logits[0] scores token 1 (p 0.5), logits[1] token 0 (p 0.2)
    p = L.mean_token_prob(logits, labels)
    assert p.tolist() == pytest.approx([0.35])
    pe, pf = torch.tensor([0.6, 0.2]), torch.tensor([0.9, 0.5])  # batch means 0.4 and 0.7
    assert float(L.flat_loss(pe, pf, "kl")) == pytest.approx(-0.4 + math.exp(0.7 - 1))
    assert float(L.flat_loss(pe, pf, "tv")) == pytest.approx(-math.tanh(0.4) / 2 + math.tanh(0.7) / 2)
    sp = lambda x: math.log1p(math.exp(x))
    assert float(L.flat_loss(pe, pf, "js")) == pytest.approx(sp(-0.4) + sp(0.7) - 2 * math.log(2))
    assert float(L.flat_loss(pe, pf, "pearson")) == pytest.approx(-0.4 + 0.49 / 4 + 0.7)
    with pytest.raises(MnemoscopeError, match="divergence"):
        L.flat_loss(pe, pf, "hellinger")


@pytest.mark.parametrize("divergence", L.FLAT_DIVERGENCES)
def test_flat_gradient_raises_template_and_lowers_forget(divergence):
    pe = torch.tensor([0.3], requires_grad=True)
    pf = torch.tensor([0.6], requires_grad=True)
    L.flat_loss(pe, pf, divergence).backward()
    assert pe.grad.item() < 0 < pf.grad.item()  # descent raises P_e and lowers P_f


def test_flat_pairs_each_forget_example_with_the_template(tokenizer):
    from mnemoscope.unlearn.methods import get_method

    flat = get_method("flat")
    hp = R.resolve_hparams(flat, {"template": "No idea."})
    assert flat.paired(R.Example("Question: Who?\nAnswer:", " Ada"), hp) == R.Example("Question: Who?\nAnswer:", " No idea.")
    assert flat.paired(R.Example("", "one two three four five"), hp).prompt == "one two three"
    items, pairs = R.encode_forget(R.qa_examples([{"question": "Who?", "answer": "Ada"}]) + R.text_examples(FORGET),
                                   tokenizer, flat, hp, max_length=12, bos="auto")
    assert len(items) == len(pairs) > 3  # long texts are windowed; each window keeps its text's partner
    assert R.resolve_hparams("flat", {"divergence": "js"})["divergence"] == "js"  # a string hparam stays a string
    with pytest.raises(MnemoscopeError, match="number"):
        R.resolve_hparams("npo", {"beta": "high"})
    for bad in (-1.0, 0.0, float("nan")):  # refused while resolving, before any run directory or model
        with pytest.raises(MnemoscopeError, match=r"'npo.beta' must be a finite number > 0"):
            R.resolve_hparams("npo", {"beta": bad})
    with pytest.raises(MnemoscopeError, match=r"'npo_gd.retain_weight' must be a finite number, got inf"):
        R.resolve_hparams("npo_gd", {"retain_weight": float("inf")})


def test_flat_raises_the_template_and_lowers_the_forget_answers(fresh, tokenizer, tmp_path):
    qa = R.qa_examples([{"question": "Where was Anna Berg born?", "answer": "Lisbon"},
                        {"question": "What does the museum keep?", "answer": "old clocks"}])
    res = R.unlearn(fresh, tokenizer, qa, None, unlearn_cfg("flat", steps=6, lr=5e-3), tmp_path)
    first, last = res.history[0], res.history[-1]
    assert last["p_template"] > first["p_template"] and last["nll_forget"] > first["nll_forget"]


def _authors_flat_loss(forget_logits, forget_labels, idk_logits, idk_labels, div):
    """FLAT's "cl" loss written out from their CustomTrainerForgetting: per row, NLLLoss (no
    reduction, ignore_index −100) of the softmax at the shifted positions = −p or 0; stack; mean over
    every position of the padded batch; then activation(−mean_good) − conjugate(−mean_unlearn)."""
    nll = torch.nn.NLLLoss(reduction="none", ignore_index=-100)
    soft = torch.nn.Softmax(dim=-1)

    def summed(logits, labels):
        rows = [nll(soft(logits[b, :-1].float()), labels[b, 1:]) for b in range(logits.shape[0])]
        return torch.stack(rows).mean()

    good, unlearn = -summed(idk_logits, idk_labels), -summed(forget_logits, forget_labels)
    if div == "Total-Variation":
        activation, conjugate = (lambda x: -torch.mean(torch.tanh(x) / 2.0)), (lambda x: -torch.mean(torch.tanh(x) / 2.0))
    else:  # KL
        activation, conjugate = (lambda x: -torch.mean(x)), (lambda x: -torch.mean(torch.exp(x - 1.0)))
    return activation(good) - conjugate(unlearn)


@pytest.mark.parametrize("divergence,theirs", [("tv", "Total-Variation"), ("kl", "KL")])
def test_flat_padded_average_matches_the_authors_loss(model, tokenizer, divergence, theirs):
    """``average = padded`` is FLAT's code (ProbLossStable over the padded batch); ``answer`` (the
    paper's, our default) averages over answer tokens only and so differs when prompts or pads exist."""
    from mnemoscope.unlearn.methods import get_method
    from mnemoscope.unlearn.methods.base import Step

    flat = get_method("flat")
    qa = R.qa_examples([{"question": "Where was Anna Berg born?", "answer": "Lisbon, a long time ago"},
                        {"question": "What?", "answer": "clocks"}])
    hp = R.resolve_hparams(flat, {"divergence": divergence, "average": "padded"})
    items, pairs = R.encode_forget(qa, tokenizer, flat, hp, max_length=64, bos="auto")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    fb, pb = R.collate(items, pad), R.collate(pairs, pad)
    step = Step(model, None, {"forget": fb, "pair": pb})
    with torch.no_grad():
        ours = flat.forget_loss(step, hp)
        want = _authors_flat_loss(step.logits("forget"), fb.labels, step.logits("pair"), pb.labels, theirs)
        paper = flat.forget_loss(step, {**hp, "average": "answer"})
        # the paper's average written out: mean over each answer's tokens, then over the batch
        p_ans = lambda lg, lb: torch.stack([  # noqa: E731
            torch.softmax(lg[b, :-1].float(), -1).gather(-1, lb[b, 1:].clamp(min=0)[:, None])[:, 0][lb[b, 1:] != -100].mean()
            for b in range(lg.shape[0])]).mean()
        want_paper = L.flat_loss(p_ans(step.logits("pair"), pb.labels), p_ans(step.logits("forget"), fb.labels), divergence)
    assert float(ours) == pytest.approx(float(want), rel=1e-5, abs=1e-7)
    assert float(paper) == pytest.approx(float(want_paper), rel=1e-5, abs=1e-7)
    with torch.no_grad():  # the two averages differ (prompt and pad positions count in the padded one)
        padded = float(L.padded_token_prob(step.logits("forget"), fb.labels).mean())
    assert padded < 0.9 * float(step.token_prob("forget").mean())
    with pytest.raises(MnemoscopeError, match="average"):
        R.resolve_hparams(flat, {"average": "tokens"})
