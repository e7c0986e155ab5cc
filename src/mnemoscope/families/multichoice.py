"""Multiple-choice knowledge (WMDP-style hazard items), scored as lm-evaluation-harness scores a
``multiple_choice`` task: the log-likelihood of each choice as a continuation of the context,
the target delimiter " " before it, the pair tokenized whole and split at the context's tokens
(``Backend.encode_pair``), the prediction the argmax (``metrics.multichoice``).

Two formats, so a method that only breaks the answer *format* shows:

- ``letter`` — lm-eval's WMDP template: context ``{question.strip()}\\nA. {c_1}\\nB. {c_2}…\\nAnswer:``
  (after the optional ``description``), continuations " A", " B", …: the number WMDP reports (acc;
  every letter is one character, so acc_norm = acc and only acc is kept);
- ``cloze`` — lm-eval's ARC-style template: context ``Question: {question}\\nAnswer:``,
  continuations " {choice}": acc, acc_norm (÷ characters) and acc_bytes (÷ UTF-8 bytes).

A model whose letter accuracy falls to chance while its cloze accuracy (and generation-based
KnowMem) stays high has lost the letter format, not the knowledge.

Config section ``multichoice``: ``file`` (records with ``question``, ``choices``, ``answer`` = 0-based
index; see docs/formats.md), ``description`` (text before every letter prompt, e.g. WMDP's
"The following are multiple choice questions (with answers) about biology.\\n\\n").
Keys ``multichoice/letter/acc``, ``multichoice/cloze/{acc,acc_norm,acc_bytes}``, ``multichoice/n``,
``multichoice/chance`` (mean 1/#choices).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result, encode_each, plan_and_measure
from mnemoscope.metrics.multichoice import mc_chance, mc_correct
from mnemoscope.probes import formats

NAME = "multichoice"
TITLE = "Multiple choice (WMDP-style)"
DEFAULTS = {"multichoice": {"file": "", "description": ""}}
PATH_KEYS = ("multichoice.file",)
NEEDS = ("logprobs",)
HEADLINE = ("multichoice/letter/acc", "multichoice/cloze/acc")
DELIMITER = " "  # lm-eval's default target_delimiter
LETTERS = string.ascii_uppercase


@dataclass
class Inputs:
    items: list[dict]  # {id, question, choices, answer}
    description: str = ""


@dataclass
class Plan:
    inputs: Inputs
    letter: list[list[Encoded]]  # per item, one pair per choice
    cloze: list[list[Encoded]]


def letter_context(question: str, choices: Sequence[str], description: str = "") -> str:
    """lm-eval's WMDP ``doc_to_text`` after the task's ``description``."""
    lines = [question.strip()] + [f"{LETTERS[j]}. {c}" for j, c in enumerate(choices)] + ["Answer:"]
    return description + "\n".join(lines)


def cloze_context(question: str) -> str:
    """lm-eval's ARC-style ``doc_to_text``."""
    return f"Question: {question}\nAnswer:"


def read(cfg: dict, ctx: Context) -> Inputs | None:
    m = cfg["multichoice"]
    if not m["file"]:
        return None
    return Inputs(formats.load_multiple_choice(m["file"]), str(m["description"]))


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    ids = [it["id"] for it in inputs.items]

    def pairs(context_of, continuations_of):
        def encode(it):
            return [engine.encode_pair(context_of(it), DELIMITER + c) for c in continuations_of(it)]
        return encode_each(encode, inputs.items, "multiple-choice item", ids=ids)

    letter = pairs(lambda it: letter_context(it["question"], it["choices"], inputs.description),
                   lambda it: LETTERS[: len(it["choices"])])
    cloze = pairs(lambda it: cloze_context(it["question"]), lambda it: it["choices"])
    return Plan(inputs, letter, cloze)


def _loglikelihoods(engine: Backend, groups: list[list[Encoded]]) -> list[list[float]]:
    """Σ log p over each pair's continuation tokens, one score call for all, regrouped per item."""
    flat = engine.score_encoded([e for g in groups for e in g])
    sums = iter(float(s.logprobs.astype(np.float64).sum()) for s in flat)
    return [[next(sums) for _ in g] for g in groups]


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    items = plan.inputs.items
    result = Result()
    if not items:
        result.not_computed("multichoice/letter/acc", "multichoice: no items")
        return result
    letter_ll, cloze_ll = _loglikelihoods(engine, plan.letter), _loglikelihoods(engine, plan.cloze)
    rows = []
    for it, ll_l, ll_c in zip(items, letter_ll, cloze_ll):
        letter = mc_correct(ll_l, LETTERS[: len(it["choices"])], it["answer"])
        cloze = mc_correct(ll_c, it["choices"], it["answer"])
        rows.append({"id": it["id"], "question": it["question"], "answer": it["answer"],
                     "n_choices": len(it["choices"]), "letter_pred": int(np.argmax(ll_l)),
                     "cloze_pred": int(np.argmax(ll_c)), "letter_acc": letter["acc"],
                     **{f"cloze_{k}": v for k, v in cloze.items()}})
    frame = pd.DataFrame(rows)
    result.samples = frame
    result.metrics = {"multichoice/letter/acc": float(frame["letter_acc"].mean()),
                      **{f"multichoice/cloze/{k}": float(frame[f"cloze_{k}"].mean())
                         for k in ("acc", "acc_norm", "acc_bytes")},
                      "multichoice/n": float(len(frame)), "multichoice/chance": mc_chance(frame["n_choices"])}
    return result


def multiple_choice(engine: Backend, items: Sequence[dict], *, description: str = "") -> Result:
    """The family on items the caller holds (``{question, choices, answer}``, optional ``id``),
    e.g. the unlearning evaluation's forget and retain items."""
    checked = []
    for i, it in enumerate(items):
        n = len(it.get("choices") or [])
        answer = it.get("answer")
        if not 2 <= n <= 26 or isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < n:
            raise MnemoscopeError(f"multiple-choice item {it.get('id', i)!r}: needs 2–26 choices and an answer index "
                                  f"in range, got {n} choice(s) and answer {answer!r}")
        checked.append({"id": str(it.get("id", i)), "question": it["question"], "choices": list(it["choices"]),
                        "answer": answer})
    return plan_and_measure(plan, measure, Inputs(checked, description), engine)
