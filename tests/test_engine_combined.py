"""The composite model (``engine/combined.py``): one member is that model, mismatched vocabularies
are refused, its state dict holds every member."""

from __future__ import annotations

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.engine.combined import CombinedLogits
from mnemoscope.errors import MnemoscopeError

from .helpers import FORGET, RETAIN, UNLEARN_PROMPTS


def test_combined_logits_with_one_member_is_that_model(model, tokenizer):
    one = CombinedLogits({"m": model}, lambda lg: lg["m"], base="m").eval()
    a, b = Engine(model, tokenizer), Engine(one, tokenizer)
    for x, y in zip(a.score(FORGET + RETAIN), b.score(FORGET + RETAIN)):
        np.testing.assert_allclose(x.logprobs, y.logprobs, atol=1e-5)
        np.testing.assert_allclose(x.mu, y.mu, atol=1e-5)
    for kw in ({}, {"min_new_tokens": 10}):
        ga = [c.token_ids for c in a.generate(UNLEARN_PROMPTS, max_new_tokens=10, **kw)]
        gb = [c.token_ids for c in b.generate(UNLEARN_PROMPTS, max_new_tokens=10, **kw)]
        assert ga == gb


def test_combined_logits_refuses_mismatched_vocabularies(model):
    from transformers import LlamaConfig, LlamaForCausalLM

    small = LlamaForCausalLM(LlamaConfig(vocab_size=77, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    with pytest.raises(MnemoscopeError, match="vocabular"):
        CombinedLogits({"a": model, "b": small}, lambda lg: lg["a"], base="a")


def test_composite_state_dict_holds_both_members(model, other_micro):
    comb = CombinedLogits({"target": model, "reinforced": other_micro}, lambda lg: lg["target"], base="target")
    keys = set(comb.state_dict())
    assert any(k.startswith("members.target.") for k in keys) and any(k.startswith("members.reinforced.") for k in keys)
