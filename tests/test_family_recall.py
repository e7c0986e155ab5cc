"""families.recall: cued recall of studied texts is exact and scores the continuation only; one batched
call equals forced generation text by text."""

from __future__ import annotations

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.families.recall import recall

from .helpers import Counting


def test_recall_of_studied_texts_is_exact_and_scores_the_continuation_only(memorizer, studied, tokenizer):
    engine = Counting(memorizer)
    texts = studied + ["quartz paddle robin ember lantern violet harbor", "x"]
    samples, metrics, notes = recall(engine, texts)
    assert engine.calls["generate"] == 1
    assert len(notes) == 1 and "1 of 5" in next(iter(notes.values()))
    assert samples["exact"].tolist()[:3] == [1.0, 1.0, 1.0]
    assert samples["exact"].tolist()[3] == 0.0
    ids = tokenizer(texts[3], add_special_tokens=False)["input_ids"]
    row = samples.iloc[3]
    assert row["cue_tokens"] == len(ids) // 2 and row["recall_tokens"] == len(ids) - len(ids) // 2
    assert row["true"] == tokenizer.decode(ids[len(ids) // 2 :])
    assert metrics["recall/exact/rate"] == 0.75
    assert metrics["recall/n"] == 4.0
    assert metrics["recall/rouge_l_f1/mean"] == pytest.approx(samples["rouge_l_f1"].mean())


def test_recall_single_call_equals_per_text_forced_generation(model, tokenizer):
    engine = Engine(model, tokenizer)
    texts = ["Anna was born in Lisbon in 1901 and later moved.", "The museum keeps maps.", "Every spring"]
    samples, _, _ = recall(engine, texts)
    for text, gen in zip(texts, samples["generated"]):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        n = len(ids) - len(ids) // 2
        alone = engine.generate([ids[: len(ids) // 2]], max_new_tokens=n, min_new_tokens=n)[0]
        assert len(alone.token_ids) == n
        assert gen == alone.text
    np.testing.assert_array_less(-1e-12, samples["match_rate"])
