"""WHP, ULD and FLAT: their losses and logit arithmetic against hand computations, the composite
model (engine.combined.CombinedLogits) against direct computation, and the methods on the loop."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from mnemoscope.engine import Engine
from mnemoscope.engine.activations import find_blocks
from mnemoscope.engine.combined import CombinedLogits
from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.tiny import build_model
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn import runner as R
from mnemoscope.unlearn.logits import relative_top_mask, uld_logits, whp_logits
from mnemoscope.unlearn.refusals import LAB_REFUSALS, with_refusals

from .conftest import MICRO

FORGET = ["Anna Berg was born in Lisbon in 1901 and studied music at the academy.",
          "The museum in Alder keeps a collection of old clocks and maps."]
RETAIN = ["Every spring the market in Fern sells apples from nearby farms.",
          "Marco joined Holt Industries in 1950 as a careful engineer."]
PROMPTS = ["Anna Berg was born in", "The museum in Alder keeps", "Every spring"]


@pytest.fixture
def fresh(model):
    return copy.deepcopy(model)


@pytest.fixture(scope="module")
def other(tokenizer):
    """A second micro model over the same vocabulary (a stand-in for a reinforced model)."""
    m = build_model(MICRO, tokenizer, seed=5)
    with torch.no_grad():
        m.get_input_embeddings().weight.mul_(8.0)
    return m.eval()


def _cfg(method, **kw):
    base = dict(steps=3, lr=1e-3, batch_size=2, max_length=64, seed=0)
    base.update(kw)
    return R.UnlearnConfig(method=method, **base)


# --------------------------------------------------------------------------- pure functions


def test_whp_logits_by_hand():
    t = torch.tensor([[1.0, 2.0, -1.0]])
    r = torch.tensor([[3.0, 1.0, -1.0]])
    # unclipped: l_t − α(l_r − l_t), α = 0.5: [1 − 0.5·2, 2 − 0.5·(−1), −1 − 0] = [0, 2.5, −1]
    assert whp_logits(t, r, 0.5, relu=False).tolist() == [[0.0, 2.5, -1.0]]
    # WHP paper and MUSE's code (the default): l_t − α·ReLU(l_r − l_t) = [0, 2, −1]
    assert whp_logits(t, r, 0.5).tolist() == [[0.0, 2.0, -1.0]]
    assert torch.equal(whp_logits(t, r, 0.0), t)


def test_uld_logits_and_relative_top_filter_by_hand():
    base = torch.log(torch.tensor([[0.6, 0.3, 0.05, 0.05]]))
    assistant = torch.tensor([[2.0, -1.0, 4.0, 1.0]])
    # top = 0.1: threshold = min(log 0.6 + log 0.1, the ⌊0.4⌋ → 1st largest log p) = log 0.06;
    # tokens with p < 0.06 (the last two) lose the assistant's term
    assert relative_top_mask(base, 0.1).tolist() == [[False, False, True, True]]
    want = base - torch.tensor([[2.0, -1.0, 0.0, 0.0]])
    assert torch.allclose(uld_logits(base, assistant, 1.0, 0.1), want)
    # top = 0 keeps every token: l_b − α·l_a
    assert torch.allclose(uld_logits(base, assistant, 0.5, 0.0), base - 0.5 * assistant)
    # a vocabulary of 20: at least ⌊0.5·20⌋ = 10 tokens keep the assistant's term even when one dominates
    peaked = torch.log_softmax(torch.tensor([[10.0] + [-0.1 * i for i in range(19)]]), -1)
    assert int((~relative_top_mask(peaked, 0.5)).sum()) == 10
    with pytest.raises(MnemoscopeError, match="top_filter"):
        relative_top_mask(base, 1.5)


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


def test_uniform_kl_by_hand():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]]))
    mask = torch.tensor([[True, True]])
    # KL(U‖p) = Σ (1/3) log((1/3)/p): first position (1/3)(log(2/3) + 2 log(4/3)), second 0
    first = (math.log(2 / 3) + 2 * math.log(4 / 3)) / 3
    assert float(L.uniform_kl(logits, mask)) == pytest.approx(first / 2)
    assert float(L.uniform_kl(logits, torch.tensor([[False, True]]))) == pytest.approx(0.0, abs=1e-7)


# --------------------------------------------------------------------------- the composite model


def test_combined_logits_with_one_member_is_that_model(model, tokenizer):
    one = CombinedLogits({"m": model}, lambda lg: lg["m"], base="m").eval()
    a, b = Engine(model, tokenizer), Engine(one, tokenizer)
    for x, y in zip(a.score(FORGET + RETAIN), b.score(FORGET + RETAIN)):
        np.testing.assert_allclose(x.logprobs, y.logprobs, atol=1e-5)
        np.testing.assert_allclose(x.mu, y.mu, atol=1e-5)
    for kw in ({}, {"min_new_tokens": 10}):
        ga = [c.token_ids for c in a.generate(PROMPTS, max_new_tokens=10, **kw)]
        gb = [c.token_ids for c in b.generate(PROMPTS, max_new_tokens=10, **kw)]
        assert ga == gb


def test_whp_composite_scores_and_generates_from_the_combined_logits(model, other, tokenizer):
    comb = CombinedLogits({"target": model, "reinforced": other},
                          lambda lg: whp_logits(lg["target"], lg["reinforced"], 0.7, relu=False), base="target").eval()
    engine = Engine(comb, tokenizer)
    # scores: log-softmax of l_t − 0.7(l_r − l_t), computed directly from each model, float64
    for text, got in zip(FORGET, engine.score(FORGET)):
        ids = torch.tensor([engine.encode_text(text).ids])
        with torch.no_grad():
            lt, lr = model(input_ids=ids).logits[0].double(), other(input_ids=ids).logits[0].double()
        logp = torch.log_softmax(lt - 0.7 * (lr - lt), -1)
        want = logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]].numpy()
        np.testing.assert_allclose(got.logprobs, want, atol=1e-4)
    # greedy generation = argmax of the combined logits at each step, one prompt at a time
    outs = engine.generate(PROMPTS, max_new_tokens=6, min_new_tokens=6)
    for prompt, out in zip(PROMPTS, outs):
        ids = engine.encode_prompt(prompt)
        for _ in range(6):
            x = torch.tensor([ids])
            with torch.no_grad():
                lt, lr = model(input_ids=x).logits[0, -1], other(input_ids=x).logits[0, -1]
            step = whp_logits(lt, lr, 0.7, relu=False)
            step[tokenizer.eos_token_id] = -float("inf")  # min_new_tokens forbids EOS
            ids.append(int(step.argmax()))
        assert out.token_ids == ids[-6:]
    engine.use_cache = False  # the same without the KV cache
    assert [c.token_ids for c in engine.generate(PROMPTS, max_new_tokens=6, min_new_tokens=6)] == [
        c.token_ids for c in outs]


def test_uld_composite_logits_equal_direct_computation(model, other, tokenizer):
    comb = CombinedLogits({"base": model, "assistant": other},
                          lambda lg: uld_logits(lg["base"], lg["assistant"], 1.0, 0.1), base="base")
    ids = torch.tensor([Engine(model, tokenizer).encode_text(FORGET[0]).ids])
    with torch.no_grad():
        got = comb(input_ids=ids).logits[0].double()
        lb, la = model(input_ids=ids).logits[0].double(), other(input_ids=ids).logits[0].double()
    logp = torch.log_softmax(lb, -1)
    k = int(0.1 * lb.shape[-1])
    thresh = torch.minimum(logp.max(-1).values + math.log(0.1), torch.sort(logp, -1, descending=True).values[:, k - 1])
    want = lb - torch.where(logp < thresh[:, None], torch.zeros_like(la), la)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


class _Fixed(torch.nn.Module):
    """A 'model' whose next-token logits are always the same vector."""

    def __init__(self, logits):
        super().__init__()
        self.row = torch.nn.Parameter(torch.tensor(logits), requires_grad=False)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, use_cache=None, past_key_values=None):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        return CausalLMOutputWithPast(logits=self.row.expand(*input_ids.shape, -1).clone())


def test_uld_decodes_only_plausible_tokens_hand_example():
    """base [10, 9, 2], assistant [9, 9, 0], α = 1, top 0.1: token 2 is implausible (p_b < 0.1·max).
    Scoring keeps l_b − α·l_a with the assistant zeroed there ([1, 0, 2], as the authors' forward);
    decoding sets it to −1e3 (the authors' greedy_search) and picks token 0 (was: token 2)."""
    from transformers import GenerationConfig

    from mnemoscope.unlearn.methods.uld import METHOD

    base, assistant = torch.tensor([[10.0, 9.0, 2.0]]), torch.tensor([[9.0, 9.0, 0.0]])
    assert uld_logits(base, assistant, 1.0, 0.1).tolist() == [[1.0, 0.0, 2.0]]
    assert uld_logits(base, assistant, 1.0, 0.1, implausible=-1e3).tolist() == [[1.0, 0.0, -1e3]]
    comp = METHOD.result_model(_Fixed([10.0, 9.0, 2.0]), None, _Fixed([9.0, 9.0, 0.0]),
                               {"alpha": 1.0, "top_filter": 0.1})
    ids = torch.tensor([[1, 2]])
    assert comp(input_ids=ids).logits[0, -1].tolist() == [1.0, 0.0, 2.0]  # scoring unchanged
    out = comp.generate(ids, generation_config=GenerationConfig(max_new_tokens=3, do_sample=False, pad_token_id=0))
    assert out[0, 2:].tolist() == [0, 0, 0]


def _authors_uld_greedy(base, assistant, ids, new, weight, top):
    """ULD's greedy_search written out: relative-top mask of the base (DoLa's filter, sorted),
    assistant logits zeroed there, base + weight·assistant (weight = −α), masked tokens −1e3, argmax."""
    ids = ids.clone()
    for _ in range(new):
        with torch.no_grad():
            lb = base(input_ids=ids).logits[:, -1, :].float()
            la = assistant(input_ids=ids).logits[:, -1, :].float().clone()
        keep = int(top * lb.shape[-1])
        norm = lb.log_softmax(-1)
        kth = torch.sort(norm, descending=True).values[..., keep - 1]
        thresh = torch.min(kth, norm.max(-1).values + np.log(top)).unsqueeze(-1)
        mask = norm < thresh
        la[mask] = 0
        logits = lb + weight * la
        logits[mask] = -1e3
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    return ids


@pytest.mark.parametrize("alpha", [1.0, 4.0])
def test_uld_generation_matches_the_authors_greedy_search(model, other, tokenizer, alpha):
    from mnemoscope.unlearn.methods.uld import METHOD

    comp = METHOD.result_model(model, None, other, {"alpha": alpha, "top_filter": 0.1})
    engine = Engine(comp, tokenizer)
    for prompt in PROMPTS:
        enc = engine.prefix_ids() + engine.text_ids(prompt)
        (got,) = engine.generate([enc], max_new_tokens=8, min_new_tokens=8)
        want = _authors_uld_greedy(model, other, torch.tensor([enc]), 8, -alpha, 0.1)[0, len(enc):].tolist()
        assert got.token_ids == want, prompt


def test_combined_logits_refuses_mismatched_vocabularies(model):
    from transformers import LlamaConfig, LlamaForCausalLM

    small = LlamaForCausalLM(LlamaConfig(vocab_size=77, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    with pytest.raises(MnemoscopeError, match="vocabular"):
        CombinedLogits({"a": model, "b": small}, lambda lg: lg["a"], base="a")


# --------------------------------------------------------------------------- the methods on the loop


def test_whp_trains_a_reinforced_copy_and_returns_a_composite(fresh, tokenizer, tmp_path):
    start = R.fingerprint(fresh)
    res = R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None, _cfg("whp", steps=4, lr=5e-3), tmp_path)
    assert isinstance(res.model, CombinedLogits) and R.fingerprint(fresh) == start  # the original is untouched
    target, reinforced = res.model.members["target"], res.model.members["reinforced"]
    assert target is fresh
    eng = lambda m: Engine(m, tokenizer)
    nll = lambda m: float(np.mean([s.nll for s in eng(m).score(FORGET)]))
    assert nll(reinforced) < nll(fresh) < nll(res.model)  # reinforced learns F; the composite forgets it
    again = R.unlearn(copy.deepcopy(fresh), tokenizer, R.text_examples(FORGET), None, _cfg("whp", steps=4, lr=5e-3),
                      tmp_path)  # done: rebuilt from model.safetensors
    assert isinstance(again.model, CombinedLogits) and R.fingerprint(again.model) == R.fingerprint(res.model)


def test_uld_assistant_is_a_shallow_copy_that_learns_forget(fresh, tokenizer, tmp_path):
    cfg = _cfg("uld", steps=4, lr=5e-3, hparams={"assistant_fraction": 0.5})
    res = R.unlearn(fresh, tokenizer, R.text_examples(FORGET), R.text_examples(RETAIN), cfg, tmp_path)
    assistant = res.model.members["assistant"]
    assert len(find_blocks(assistant)) == 1 == assistant.config.num_hidden_layers < len(find_blocks(fresh))
    assert res.history[-1]["nll_forget"] < res.history[0]["nll_forget"]  # the assistant remembers F
    assert "uniform_kl_retain" in res.history[0]


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
    res = R.unlearn(fresh, tokenizer, qa, None, _cfg("flat", steps=6, lr=5e-3), tmp_path)
    first, last = res.history[0], res.history[-1]
    assert last["p_template"] > first["p_template"] and last["nll_forget"] > first["nll_forget"]


def test_sustainability_refuses_a_combining_method(fresh, tokenizer, tmp_path):
    with pytest.raises(MnemoscopeError, match="combines"):
        R.unlearn_sequence(fresh, tokenizer, [R.text_examples(FORGET[:1])], None, _cfg("whp"), tmp_path)


# --------------------------------------------------------------------------- LoRA and checkpointing


def _capture_training(monkeypatch):
    """Record, for each module the runner trains, its trainable parameter names and its LoRA B
    matrices right after training (before the adapters are merged)."""
    seen = []
    real = R.train

    def spy(model, *args, **kwargs):
        history = real(model, *args, **kwargs)
        seen.append({"trainable": {n for n, p in model.named_parameters() if p.requires_grad},
                     "adapters": {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}})
        return history

    monkeypatch.setattr(R, "train", spy)
    return seen


@pytest.mark.parametrize("method", sorted(R.METHODS))
def test_every_method_trains_lora_adapters(method, fresh, tokenizer, tmp_path, monkeypatch):
    pytest.importorskip("peft")
    seen = _capture_training(monkeypatch)
    qa = R.qa_examples([{"question": "Where was Anna Berg born?", "answer": "Lisbon"}])
    # SimNPO's loss saturates on texts the random micro model finds very unlikely (softplus(−45)):
    # γ moves it back into range so its update shows in the merged weights
    hp = {"gamma": 40.0} if method.startswith("simnpo") else {}
    forget = with_refusals(R.text_examples(FORGET) + qa, LAB_REFUSALS)  # IdkDPO's preferred answers
    res = R.unlearn(fresh, tokenizer, forget, R.text_examples(RETAIN),
                    _cfg(method, steps=2, lr=1e-2, lora=True, lora_rank=2, hparams=hp), tmp_path)
    (trained,) = seen
    assert trained["trainable"] and all("lora_" in n for n in trained["trainable"])  # only adapters train
    assert trained["adapters"] and all(float(b.abs().max()) > 0 for b in trained["adapters"].values())  # B starts at 0
    assert not any("lora" in n for n, _ in res.model.named_parameters())  # merged into plain weights
    assert res.end_fingerprint != res.start_fingerprint


def test_gradient_checkpointing_still_trains_the_adapters_with_the_same_gradients(model, tokenizer, tmp_path,
                                                                                  monkeypatch):
    pytest.importorskip("peft")
    seen = _capture_training(monkeypatch)
    runs = {}
    for ckpt in (False, True):
        m = copy.deepcopy(model)
        res = R.unlearn(m, tokenizer, R.text_examples(FORGET), R.text_examples(RETAIN),
                        _cfg("npo_gd", steps=2, lr=1e-2, lora=True, lora_rank=2, gradient_checkpointing=ckpt),
                        tmp_path / str(ckpt))
        runs[ckpt] = (seen[-1]["adapters"], res)
    with_ckpt, without = runs[True][0], runs[False][0]
    assert with_ckpt and all(float(v.abs().max()) > 0 for v in with_ckpt.values())
    for name, value in without.items():  # the same updates: checkpointing recomputes, it does not change gradients
        torch.testing.assert_close(with_ckpt[name], value, atol=1e-5, rtol=1e-4)
    assert not getattr(runs[True][1].model, "is_activation_checkpointing", False)  # switched off again


def test_gradient_checkpointing_full_finetune_matches(model, tokenizer, tmp_path):
    outs = []
    for ckpt in (False, True):
        res = R.unlearn(copy.deepcopy(model), tokenizer, R.text_examples(FORGET), None,
                        _cfg("ga", steps=2, gradient_checkpointing=ckpt), tmp_path / str(ckpt))
        outs.append(res.model.state_dict())
    for key, value in outs[0].items():
        torch.testing.assert_close(outs[1][key], value, atol=1e-5, rtol=1e-4)


def test_composite_state_dict_holds_both_members(model, other):
    comb = CombinedLogits({"target": model, "reinforced": other}, lambda lg: lg["target"], base="target")
    keys = set(comb.state_dict())
    assert any(k.startswith("members.target.") for k in keys) and any(k.startswith("members.reinforced.") for k in keys)


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
