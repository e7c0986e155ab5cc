"""The engine contract: encoding verbs, capability refusals, sampled and filtered generation."""

from __future__ import annotations

import pytest
import torch

from mnemoscope.engine import CAPABILITIES, Backend, Engine, Sampling
from mnemoscope.errors import MnemoscopeError

PROMPTS = ["the river runs", "a quiet town in the", "once upon"]


def test_encoding_verbs_agree_with_the_encoder(bos_model, bos_tokenizer):
    engine = Engine(bos_model, bos_tokenizer)
    text = "the river runs through the town"
    assert engine.prefix_ids() == [bos_tokenizer.bos_token_id]
    assert engine.text_ids(text) == bos_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert engine.encode_prompt(text) == engine.prefix_ids() + engine.text_ids(text)
    assert engine.encode_text(text).ids == engine.encode_prompt(text)
    spans = engine.char_spans(text)
    assert len(spans) == len(engine.text_ids(text)) and text[spans[0][0]: spans[-1][1]].strip() == text
    assert engine.decode(engine.text_ids(text)) == text
    assert engine.fits(engine.max_length) and not engine.fits(engine.max_length + 1)


def test_the_hf_engine_provides_every_verb_it_implements(model, tokenizer):
    engine = Engine(model, tokenizer)
    assert {"logprobs", "distribution", "generate", "sample", "banned"} <= engine.provides
    assert engine.provides <= set(CAPABILITIES)


class _LogprobsOnly(Backend):
    name = "toy"
    provides = frozenset({"logprobs"})


def test_a_missing_capability_is_refused_in_one_line(tokenizer):
    backend = _LogprobsOnly(tokenizer)
    backend.require("logprobs", "the loss attack")
    with pytest.raises(MnemoscopeError, match="min_k_pp needs 'distribution'.*toy backend") as err:
        backend.require("distribution", "min_k_pp")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError):
        backend.require("telepathy", "x")


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(model, tokenizer):
    engine = Engine(model, tokenizer)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = engine.generate(PROMPTS * 4, max_new_tokens=8, min_new_tokens=8, sampling=Sampling(seed=7))
    after = torch.rand(1)
    assert torch.equal(before, after)  # the engine forked the RNG
    b = engine.generate(PROMPTS * 4, max_new_tokens=8, min_new_tokens=8, sampling=Sampling(seed=7))
    c = engine.generate(PROMPTS * 4, max_new_tokens=8, min_new_tokens=8, sampling=Sampling(seed=8))
    greedy = engine.generate(PROMPTS * 4, max_new_tokens=8, min_new_tokens=8)
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]
    assert [x.token_ids for x in a] != [x.token_ids for x in greedy]
    assert all(len(x.token_ids) == 8 for x in a)


def test_top_k_one_sampling_is_greedy(model, tokenizer):
    engine = Engine(model, tokenizer)
    greedy = engine.generate(PROMPTS, max_new_tokens=6, min_new_tokens=6)
    top1 = engine.generate(PROMPTS, max_new_tokens=6, min_new_tokens=6, sampling=Sampling(top_k=1, seed=3))
    assert [x.token_ids for x in top1] == [x.token_ids for x in greedy]


def test_bad_sampling_settings_are_refused():
    with pytest.raises(MnemoscopeError, match="temperature"):
        Sampling(temperature=0)
    with pytest.raises(MnemoscopeError, match="top_p"):
        Sampling(top_p=0)


def test_banned_tokens_never_appear_and_see_the_unpadded_sequence(model, tokenizer):
    engine = Engine(model, tokenizer)
    greedy = engine.generate(PROMPTS, max_new_tokens=6, min_new_tokens=6)
    ban = {greedy[0].token_ids[0], greedy[1].token_ids[1]}
    seen: list[list[int]] = []

    def banned(ids):
        seen.append(ids)
        return ban

    filtered = engine.generate(PROMPTS, max_new_tokens=6, min_new_tokens=6, banned=banned)
    assert all(not ban & set(x.token_ids) for x in filtered)
    assert filtered[0].token_ids[0] != greedy[0].token_ids[0]
    prompt_ids = [engine.encode_prompt(p) for p in PROMPTS]
    first_calls = seen[: len(PROMPTS)]  # one batch: the first step sees each prompt, pads removed
    assert sorted(map(tuple, first_calls)) == sorted(map(tuple, prompt_ids))
