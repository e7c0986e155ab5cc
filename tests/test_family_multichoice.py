"""families.multichoice: WMDP-style multiple choice against lm-evaluation-harness's computation.

The reference below is lm-eval's procedure for a ``multiple_choice`` task on a causal HF model,
written out from its code (``api/task.py``: requests (context, " " + choice) and
``process_results``; ``api/model.py`` ``_encode_pair``: trailing context spaces move to the
continuation, the pair is encoded whole and split at the context's token count; HFLM encodes
without special tokens and scores the continuation's tokens with one forward pass of
(context + continuation)[:-1]), run on the micro model straight through transformers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import FAMILIES, family
from mnemoscope.families.base import Context
from mnemoscope.families.multichoice import cloze_context, letter_context, multiple_choice
from mnemoscope.metrics.multichoice import mc_chance, mc_correct
from mnemoscope.probes.formats import load_multiple_choice

from .helpers import jsonl_file

ITEMS = [
    {"id": "b1", "question": "Which city was Anna Berg born in?", "choices": ["Lisbon", "Paris", "Rome", "Oslo"],
     "answer": 0},
    {"id": "b2", "question": " What does the museum keep? ", "choices": ["old clocks and maps", "apples", "ships",
                                                                          "a very long list of things"], "answer": 3},
    {"id": "b3", "question": "Which year?", "choices": ["1901", "1950"], "answer": 1},
    {"id": "b4", "question": "Who is café owner?", "choices": ["Zoë", "Marco", "Anna"], "answer": 0},
]
WMDP_DESCRIPTION = "The following are multiple choice questions (with answers) about biology.\n\n"


# --------------------------------------------------------------------------- lm-eval, written out


def _lm_eval_loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    spaces = len(context) - len(context.rstrip())
    if spaces:
        continuation, context = context[-spaces:] + continuation, context[:-spaces]
    whole = tokenizer.encode(context + continuation)
    context_ids = tokenizer.encode(context)
    cont = whole[len(context_ids):]
    inp = torch.tensor([(context_ids + cont)[:-1]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=inp).logits[0].double(), -1)
    positions = range(inp.shape[1] - len(cont), inp.shape[1])
    return sum(float(logp[p, t]) for p, t in zip(positions, cont))


def _lm_eval_item(model, tokenizer, context: str, choices: list[str], gold: int) -> dict:
    lls = [_lm_eval_loglikelihood(model, tokenizer, context, " " + c) for c in choices]
    first_max = lambda values: max(range(len(values)), key=lambda j: (values[j], -j))
    return {"lls": lls, "acc": float(first_max(lls) == gold),
            "acc_norm": float(first_max([ll / len(c) for ll, c in zip(lls, choices)]) == gold),
            "acc_bytes": float(first_max([ll / len(c.encode()) for ll, c in zip(lls, choices)]) == gold)}


def _wmdp_context(item, description=""):
    q = item["question"].strip()
    lines = "".join(f"\n{'ABCD'[j]}. {c}" for j, c in enumerate(item["choices"]))
    return f"{description}{q}{lines}\nAnswer:"


# --------------------------------------------------------------------------- the reference test


@pytest.mark.parametrize("description", ["", WMDP_DESCRIPTION])
def test_accuracies_and_loglikelihoods_equal_lm_eval(model, tokenizer, description):
    engine = Engine(model, tokenizer)
    samples, metrics, _ = multiple_choice(engine, ITEMS, description=description)
    letter, cloze = [], []
    for item in ITEMS:
        letter.append(_lm_eval_item(model, tokenizer, _wmdp_context(item, description),
                                    list("ABCD"[: len(item["choices"])]), item["answer"]))
        cloze.append(_lm_eval_item(model, tokenizer, f"Question: {item['question']}\nAnswer:", item["choices"],
                                   item["answer"]))
    assert metrics["multichoice/letter/acc"] == pytest.approx(np.mean([r["acc"] for r in letter]))
    for key in ("acc", "acc_norm", "acc_bytes"):
        assert metrics[f"multichoice/cloze/{key}"] == pytest.approx(np.mean([r[key] for r in cloze]))
        assert samples[f"cloze_{key}"].tolist() == [r[key] for r in cloze]
    assert samples["letter_pred"].tolist() == [int(np.argmax(r["lls"])) for r in letter]
    assert samples["cloze_pred"].tolist() == [int(np.argmax(r["lls"])) for r in cloze]
    # the log-likelihoods themselves, choice by choice
    fam = family("multichoice")
    plan = fam.plan(fam.Inputs(load_items(ITEMS), description), engine)
    got = fam._loglikelihoods(engine, plan.cloze)
    for ours, theirs in zip(got, cloze):
        np.testing.assert_allclose(ours, theirs["lls"], rtol=1e-4, atol=1e-4)
    assert metrics["multichoice/n"] == 4 and metrics["multichoice/chance"] == pytest.approx((0.25 * 2 + 0.5 + 1 / 3) / 4)


def load_items(items):
    return [{"id": it["id"], "question": it["question"], "choices": it["choices"], "answer": it["answer"]}
            for it in items]


def test_bos_tokenizer_equals_lm_eval_default(bos_model, bos_tokenizer):
    """With a Llama-style tokenizer both put the tokenizer's BOS first (lm-eval: ``add_bos_token``
    unset; ours: ``bos="auto"``)."""
    engine = Engine(bos_model, bos_tokenizer)
    assert bos_tokenizer.encode("a")[0] == bos_tokenizer.bos_token_id
    fam = family("multichoice")
    plan = fam.plan(fam.Inputs(load_items(ITEMS[:2])), engine)
    got = fam._loglikelihoods(engine, plan.letter)
    for ours, item in zip(got, ITEMS[:2]):
        theirs = [_lm_eval_loglikelihood(bos_model, bos_tokenizer, _wmdp_context(item), " " + c) for c in "ABCD"]
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_prompts_are_lm_evals_templates():
    assert letter_context(" Q? ", ["x", "y"], "D\n\n") == "D\n\nQ?\nA. x\nB. y\nAnswer:"
    assert cloze_context("Q?") == "Question: Q?\nAnswer:"


# --------------------------------------------------------------------------- the metric by hand


def test_mc_correct_by_hand_norms_and_ties():
    # ll: [-2, -3, -2.5]; chars 1, 10, 2; bytes of "é" = 2
    r = mc_correct([-2.0, -3.0, -2.5], ["a", "abcdefghij", "bb"], 0)
    assert r == {"acc": 1.0, "acc_norm": 0.0, "acc_bytes": 0.0}  # −3/10 = −0.3 beats −2 and −1.25
    r = mc_correct([-2.0, -2.2], ["é", "e"], 1)  # chars: −2 vs −2.2 → 0; bytes: −1 vs −2.2 → 0
    assert r == {"acc": 0.0, "acc_norm": 0.0, "acc_bytes": 0.0}
    r = mc_correct([-3.0, -2.2], ["éé", "e"], 0)  # bytes: −3/4 = −0.75 beats −2.2; chars: −1.5 beats −2.2
    assert r == {"acc": 0.0, "acc_norm": 1.0, "acc_bytes": 1.0}
    assert mc_correct([-1.0, -1.0], ["a", "b"], 0)["acc"] == 1.0  # a tie goes to the first choice
    assert mc_chance([4, 2]) == pytest.approx(0.375)
    with pytest.raises(ValueError):
        mc_correct([-1.0], ["a", "b"], 0)


# --------------------------------------------------------------------------- files, bad input, the audit


def test_reader_accepts_items_and_names_file_and_item_on_bad_answers(tmp_path):
    good = jsonl_file(tmp_path / "mc.jsonl", ITEMS[:2] + [{"question": "Q?", "options": ["a", "b"], "answer": 1.0}])
    items = load_multiple_choice(good)
    assert [it["answer"] for it in items] == [0, 3, 1] and items[2]["choices"] == ["a", "b"]
    cases = [({"id": "x1", "question": "Q?", "choices": ["a", "b"]}, r"mc.jsonl:1: item 'x1' has no 'answer'"),
             ({"id": "x2", "question": "Q?", "choices": ["a", "b"], "answer": 2},
              r"mc.jsonl:1: item 'x2': answer 2 is out of range for 2 choices \(use 0–1\)"),
             ({"id": "x3", "question": "Q?", "choices": ["a", "b"], "answer": -1}, "out of range"),
             ({"id": "x4", "question": "Q?", "choices": ["a", "b"], "answer": "A"}, "'A' is not an integer"),
             ({"id": "x5", "question": "Q?", "choices": ["a", "b"], "answer": True}, "not an integer"),
             ({"id": "x6", "question": "Q?", "choices": ["a"], "answer": 0}, "1 choice"),
             ({"id": "x7", "question": "Q?", "answer": 0}, "missing field 'choices' or 'options'"),
             ({"id": "x8", "question": "Q?", "choices": ["a", ""], "answer": 0}, "non-empty string")]
    for rec, match in cases:
        with pytest.raises(MnemoscopeError, match=match) as err:
            load_multiple_choice(jsonl_file(tmp_path / "mc.jsonl", [rec]))
        assert "\n" not in str(err.value)


def test_library_entry_refuses_bad_items(model, tokenizer):
    engine = Engine(model, tokenizer)
    for bad in ({"question": "Q", "choices": ["a", "b"], "answer": 5}, {"question": "Q", "choices": ["a", "b"]}):
        with pytest.raises(MnemoscopeError, match="multiple-choice item 0"):
            multiple_choice(engine, [bad])


def test_too_long_item_is_refused_naming_it(model, tokenizer):
    long = {"id": "long", "question": "word " * 400, "choices": ["a", "b"], "answer": 0}
    with pytest.raises(MnemoscopeError, match="multiple-choice item 'long'"):
        multiple_choice(Engine(model, tokenizer), [long])


def test_registered_and_runs_through_read_plan_measure(model, tokenizer, tmp_path):
    assert "multichoice" in FAMILIES
    fam = family("multichoice")
    cfg = {"multichoice": {"file": jsonl_file(tmp_path / "mc.jsonl", ITEMS), "description": ""}}
    inputs = fam.read(cfg, Context())
    result = fam.measure(fam.plan(inputs, Engine(model, tokenizer)), Engine(model, tokenizer))
    assert set(fam.HEADLINE) <= set(result.metrics) and len(result.samples) == len(ITEMS)
    assert fam.read({"multichoice": {"file": "", "description": ""}}, Context()) is None
    assert all(0.0 <= result.metrics[k] <= 1.0 for k in result.metrics if "acc" in k)
    assert not math.isnan(result.metrics["multichoice/letter/acc"])


def test_report_section_is_none_without_keys_and_drawn_with_them(tmp_path):
    import pandas as pd

    from mnemoscope.report.html import RunData
    from mnemoscope.report.sections.multichoice import section_multichoice

    run = RunData(tmp_path, {"knowmem/n": 1.0}, pd.DataFrame())
    assert section_multichoice(run) is None
    run = RunData(tmp_path, {"multichoice/letter/acc": 0.25, "multichoice/cloze/acc": 0.75}, pd.DataFrame())
    html = str(section_multichoice(run))
    assert "Multiple choice" in html and "0.75" in html


def test_unlearning_evaluation_keys_beside_knowmem(model, tokenizer):
    import math as _math

    from mnemoscope.unlearn import evaluation as ev

    engine = Engine(model, tokenizer)
    got, notes = ev.multiple_choice_keys(engine, ev.EvalData(mc_forget=ITEMS[:2], mc_description="D\n\n"))
    _, want, _ = multiple_choice(engine, ITEMS[:2], description="D\n\n")
    assert got["mc_forget/letter/acc"] == want["multichoice/letter/acc"]
    assert got["mc_forget/cloze/acc_bytes"] == want["multichoice/cloze/acc_bytes"]
    assert _math.isnan(got["mc_retain/letter/acc"]) and "--mc-retain" in notes["mc_retain/letter/acc"]
    assert ev.multiple_choice_keys(engine, ev.EvalData()) == ({}, {})
