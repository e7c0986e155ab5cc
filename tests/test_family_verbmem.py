"""families.verbmem: MUSE's VerbMem equals ROUGE-L on the engine's output, 100 for a perfect
continuation; bad input; MUSE's ``metrics/verbmem.py`` written out."""

from __future__ import annotations

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.verbmem import verbmem
from mnemoscope.metrics.text import rouge_l_f1

from .helpers import REFERENCE_TEXTS, Counting, ScriptedGenerator, muse_rouge_l, reference_greedy


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


def test_verbmem_equals_muse(reference_trained, tokenizer):
    """MUSE metrics/verbmem.py: gt cut to its first max_new_tokens tokens (tokenized on its own), greedy
    continuation of the prompt, ROUGE-L F1 × 100 (no BOS here; see docs for a BOS tokenizer)."""
    max_new = 6
    pairs = [(t[: len(t) // 3], t[len(t) // 3:]) for t in REFERENCE_TEXTS[:4]]
    pairs = [(p.rstrip(), " " + g.lstrip()) for p, g in pairs]
    samples, _, _ = verbmem(Engine(reference_trained, tokenizer), [p for p, _ in pairs], [g for _, g in pairs],
                            max_new_tokens=max_new)
    muse = []
    for prompt, gt in pairs:
        gt_ids = tokenizer(gt, return_tensors="pt", add_special_tokens=True).input_ids[:, :max_new]
        gt_short = tokenizer.batch_decode(gt_ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)[0]
        output = reference_greedy(reference_trained, tokenizer, prompt, max_new)
        muse.append(muse_rouge_l(gt_short, output).fmeasure * 100)
    np.testing.assert_allclose(samples["verbmem"].to_numpy(), muse, rtol=1e-12, atol=1e-12)
    assert max(muse) > 0
