"""families.extraction, families.pythia and families.verbmem: k-extractable sweep, Pythia memorization score, MUSE VerbMem."""

from __future__ import annotations

import numpy as np
import pytest

from mnemoscope.engine import Continuation, Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.extraction import extraction_table, k_extractable
from mnemoscope.families.pythia import pythia_memorization
from mnemoscope.families.verbmem import verbmem
from mnemoscope.metrics.text import rouge_l_f1

from .helpers import Counting, memorize

RANDOM_TEXT = "quartz paddle robin ember lantern violet harbor cobalt meadow tundra falcon ember quill"


class ScriptedGenerator(Counting):
    """A real engine's tokenizer/encoder, but ``generate`` returns ``reply(prompt_ids)`` token ids."""

    def __init__(self, engine, reply):
        super().__init__(engine)
        self._reply = reply

    def generate(self, prompts, **kwargs):
        self.calls["generate"] += 1
        self.generate_args.append((list(prompts), kwargs))
        outs = []
        for p in prompts:
            ids = self._reply(list(p))[: kwargs["max_new_tokens"]]
            outs.append(Continuation(ids, self._engine.tokenizer.decode(ids), len(p)))
        return outs


@pytest.fixture(scope="module")
def studied(corpus):
    return [doc[:150] for doc in corpus[:3]]


@pytest.fixture(scope="module")
def memorizer(tokenizer, studied):
    return Engine(memorize(tokenizer, studied), tokenizer)


def test_k_extractable_memorized_texts_are_exact_random_text_is_not(memorizer, studied):
    samples, metrics, notes = k_extractable(memorizer, studied + [RANDOM_TEXT], prefix_lengths=(4, 8), suffix_len=8)
    assert notes == {}
    for p in (4, 8):
        rows = samples[samples["prefix_tokens"] == p].set_index("text_index")
        assert rows.loc[[0, 1, 2], "exact"].tolist() == [1.0, 1.0, 1.0]
        assert rows.loc[3, "exact"] == 0.0
        assert metrics[f"extraction/exact/rate@prefix={p}"] == 0.75
        assert metrics[f"extraction/exact/count@prefix={p}"] == 3.0
        assert metrics[f"extraction/exact/n@prefix={p}"] == 4.0


def test_k_extractable_prompts_lengths_skips_and_one_call(model, tokenizer):
    engine = Counting(Engine(model, tokenizer))
    texts = ["one two three four five six seven eight nine ten eleven twelve"] * 6 + ["Short."]
    samples, metrics, notes = k_extractable(engine, texts, prefix_lengths=(2, 4, 100, 500), suffix_len=3)
    assert engine.calls["generate"] == 1
    prompts, kwargs = engine.generate_args[0]
    assert kwargs == {"max_new_tokens": 3, "min_new_tokens": 3}
    ids = tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    assert ids[:2] in prompts and ids[:4] in prompts  # no BOS for this tokenizer; the cue is the first P tokens
    assert metrics["extraction/exact/rate@prefix=100"] is None and "extraction/exact/n@prefix=100" not in metrics
    assert metrics["extraction/exact/n@prefix=2"] == 6.0  # "Short." is too short for 2 + 3 tokens
    assert any("prefix=100" in n and "7 of 7" in n for n in notes.values())
    # 500 + 3 tokens cannot fit the micro model's 128-token context: null, and the note says why
    assert metrics["extraction/exact/rate@prefix=500"] is None
    assert "context (128)" in notes["extraction/exact/rate@prefix=500"]
    assert any("prefix=2" in n and "1 of 7" in n for n in notes.values())
    assert (samples["memorization"] >= samples["exact"]).all()
    with pytest.raises(MnemoscopeError):
        k_extractable(engine, texts, prefix_lengths=(0,), suffix_len=3)


def test_k_extractable_uses_bos_prefix(bos_model, bos_tokenizer):
    text = "one two three four five six seven eight nine ten"
    ids = bos_tokenizer(text, add_special_tokens=False)["input_ids"]
    truth = ids[3:5]
    engine = ScriptedGenerator(Engine(bos_model, bos_tokenizer), lambda p: truth if p == [bos_tokenizer.bos_token_id] + ids[:3] else [0, 0])
    samples, metrics, _ = k_extractable(engine, [text], prefix_lengths=(3,), suffix_len=2)
    assert metrics["extraction/exact/rate@prefix=3"] == 1.0


def test_pythia_memorization_score_is_share_of_matching_positions(model, tokenizer):
    texts = ["one two three four five six seven eight nine ten eleven twelve", "Short."]
    ids = tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    truth = ids[4:8]
    wrong_one = truth[:3] + [truth[3] + 1]
    engine = ScriptedGenerator(Engine(model, tokenizer), lambda p: wrong_one)
    samples, metrics, notes = pythia_memorization(engine, texts, prefix=4, suffix=4)
    assert engine.generate_args[0][1] == {"max_new_tokens": 4, "min_new_tokens": 4}
    assert samples["score"].tolist() == [0.75]
    assert metrics["extraction/pythia/score/mean"] == 0.75
    assert metrics["extraction/pythia/memorized/rate"] == 0.0
    assert metrics["extraction/pythia/n"] == 1.0
    assert len(notes) == 1 and "1 of 2" in next(iter(notes.values()))
    right = ScriptedGenerator(Engine(model, tokenizer), lambda p: truth)
    assert pythia_memorization(right, texts, prefix=4, suffix=4).metrics["extraction/pythia/memorized/rate"] == 1.0


def test_pythia_memorization_on_memorizer(memorizer, studied):
    _, metrics, _ = pythia_memorization(memorizer, studied + [RANDOM_TEXT], prefix=8, suffix=8)
    assert metrics["extraction/pythia/memorized/count"] == 3.0
    assert metrics["extraction/pythia/score/mean"] < 1.0


def test_verbmem_equals_rouge_on_engine_output(model, tokenizer):
    engine = Counting(Engine(model, tokenizer))
    prompts = ["Anna was born in", "The museum keeps", "Every spring the"]
    conts = [" Lisbon in 1901 and moved away.", " a collection of maps.", " market sells apples from farms."]
    samples, metrics, notes = verbmem(engine, prompts, conts, max_new_tokens=4)
    assert engine.calls["generate"] == 1
    gens = engine._engine.generate(prompts, max_new_tokens=4)
    refs = [tokenizer.decode(tokenizer(c, add_special_tokens=False)["input_ids"][:4]) for c in conts]
    expected = [100 * rouge_l_f1(g.text, r) for g, r in zip(gens, refs)]
    assert samples["reference"].tolist() == refs
    np.testing.assert_allclose(samples["verbmem"], expected)
    assert metrics["verbmem/rouge_l_f1/mean"] == pytest.approx(np.mean(expected))
    with pytest.raises(MnemoscopeError, match="one per prompt"):
        verbmem(engine, prompts, conts[:2])


def test_verbmem_perfect_continuation_scores_100(model, tokenizer):
    cont = " sells apples from nearby farms"
    ids = tokenizer(cont, add_special_tokens=False)["input_ids"]
    engine = ScriptedGenerator(Engine(model, tokenizer), lambda p: ids)
    _, metrics, _ = verbmem(engine, ["The market"], [cont], max_new_tokens=64)
    assert metrics["verbmem/rouge_l_f1/mean"] == pytest.approx(100.0)
    with pytest.raises(MnemoscopeError, match="verbmem prompt '0'.*exceeds the model's context"):
        verbmem(engine, ["The market"], [cont])  # 3 + 128 new tokens > the micro model's 128


def test_extraction_table_keeps_its_columns(memorizer, studied):
    frame = extraction_table(memorizer, studied, prefix_fraction=0.5, max_suffix=8)
    assert list(frame.columns) == ["extraction/exact", "extraction/memorization", "prefix_tokens", "suffix_tokens", "generated"]
    assert frame["extraction/exact"].tolist() == [1.0, 1.0, 1.0]
