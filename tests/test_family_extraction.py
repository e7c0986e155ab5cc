"""families.extraction: the k-extractable sweep over prefix lengths (one generate call, BOS prefix,
skips) and the quick extraction table of the membership family."""

from __future__ import annotations

import pytest

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.extraction import extraction_table, k_extractable

from .helpers import RANDOM_TEXT, Counting, ScriptedGenerator


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


def test_extraction_table_keeps_its_columns(memorizer, studied):
    frame = extraction_table(memorizer, studied, prefix_fraction=0.5, max_suffix=8)
    assert list(frame.columns) == ["extraction/exact", "extraction/memorization", "prefix_tokens", "suffix_tokens", "generated"]
    assert frame["extraction/exact"].tolist() == [1.0, 1.0, 1.0]
