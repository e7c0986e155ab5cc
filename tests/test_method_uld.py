"""ULD (``unlearn/methods/uld.py``): its logits and relative-top filter by hand, the uniform-KL retain
term, the composite against direct computation and the authors' greedy search, and the method on the loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mnemoscope.engine import Engine
from mnemoscope.engine.activations import find_blocks
from mnemoscope.engine.combined import CombinedLogits
from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn import runner as R
from mnemoscope.unlearn.logits import relative_top_mask, uld_logits

from .helpers import FORGET, RETAIN, UNLEARN_PROMPTS, unlearn_cfg


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


def test_uniform_kl_by_hand():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]]))
    mask = torch.tensor([[True, True]])
    # KL(U‖p) = Σ (1/3) log((1/3)/p): first position (1/3)(log(2/3) + 2 log(4/3)), second 0
    first = (math.log(2 / 3) + 2 * math.log(4 / 3)) / 3
    assert float(L.uniform_kl(logits, mask)) == pytest.approx(first / 2)
    assert float(L.uniform_kl(logits, torch.tensor([[False, True]]))) == pytest.approx(0.0, abs=1e-7)


def test_uld_composite_logits_equal_direct_computation(model, other_micro, tokenizer):
    comb = CombinedLogits({"base": model, "assistant": other_micro},
                          lambda lg: uld_logits(lg["base"], lg["assistant"], 1.0, 0.1), base="base")
    ids = torch.tensor([Engine(model, tokenizer).encode_text(FORGET[0]).ids])
    with torch.no_grad():
        got = comb(input_ids=ids).logits[0].double()
        lb, la = model(input_ids=ids).logits[0].double(), other_micro(input_ids=ids).logits[0].double()
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
def test_uld_generation_matches_the_authors_greedy_search(model, other_micro, tokenizer, alpha):
    from mnemoscope.unlearn.methods.uld import METHOD

    comp = METHOD.result_model(model, None, other_micro, {"alpha": alpha, "top_filter": 0.1})
    engine = Engine(comp, tokenizer)
    for prompt in UNLEARN_PROMPTS:
        enc = engine.prefix_ids() + engine.text_ids(prompt)
        (got,) = engine.generate([enc], max_new_tokens=8, min_new_tokens=8)
        want = _authors_uld_greedy(model, other_micro, torch.tensor([enc]), 8, -alpha, 0.1)[0, len(enc):].tolist()
        assert got.token_ids == want, prompt


def test_uld_assistant_is_a_shallow_copy_that_learns_forget(fresh, tokenizer, tmp_path):
    cfg = unlearn_cfg("uld", steps=4, lr=5e-3, hparams={"assistant_fraction": 0.5})
    res = R.unlearn(fresh, tokenizer, R.text_examples(FORGET), R.text_examples(RETAIN), cfg, tmp_path)
    assistant = res.model.members["assistant"]
    assert len(find_blocks(assistant)) == 1 == assistant.config.num_hidden_layers < len(find_blocks(fresh))
    assert res.history[-1]["nll_forget"] < res.history[0]["nll_forget"]  # the assistant remembers F
    assert "uniform_kl_retain" in res.history[0]
