"""families.pythia: the Pythia memorization score is the share of matching suffix positions (scripted
generations), and the memorized count on a model that learned its texts."""

from __future__ import annotations

from mnemoscope.engine import Engine
from mnemoscope.families.pythia import pythia_memorization

from .helpers import RANDOM_TEXT, ScriptedGenerator


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
