"""KnowMem (MUSE): does the model answer questions about what it was trained on?

Few-shot prompt ``metrics.text.knowmem_prompt(shots, question)``, greedy continuation of at most
``max_new_tokens`` tokens, cut at the first stop string (``metrics.text.KNOWMEM_STOPS``), score =
100 · ROUGE-L F1(cut answer, true answer), no stemming. One generate call for all questions.

Config section ``knowmem``: ``file`` (QA records: question/answer), ``shots`` (a second QA file
used as the few-shot examples) or ``n_shots`` (the first n records of ``file`` are the shots),
``trailing_space`` (end the prompt in MUSE's exact ``"Answer: "``; off: see docs/metrics.md).
Keys: ``knowmem/rouge_l_f1/mean`` (×100), ``knowmem/n``, ``knowmem/n_shots``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import (
    Context,
    Result,
    check_generation,
    field_pair,
    plan_and_measure,
)
from mnemoscope.metrics.text import knowmem as knowmem_score
from mnemoscope.metrics.text import knowmem_cut, knowmem_prompt
from mnemoscope.probes import formats

NAME = "knowmem"
TITLE = "KnowMem (question answering)"
DEFAULTS = {"knowmem": {"file": "", "shots": "", "n_shots": 0, "max_new_tokens": 32, "trailing_space": False}}
PATH_KEYS = ("knowmem.file", "knowmem.shots")
NEEDS = ("generate",)
KEY = "knowmem/rouge_l_f1/mean"
HEADLINE = (KEY,)


@dataclass
class Inputs:
    qa: list[dict]  # {id, question, answer}
    shots: list[dict]
    max_new_tokens: int = 32
    trailing_space: bool = False  # end the prompt in MUSE's "Answer: " (see metrics.text.knowmem_prompt)
    prompt: Callable[[list[tuple[str, str]], str], str] | None = None  # (shots, question) -> prompt; e.g. a chat template


@dataclass
class Plan:
    inputs: Inputs
    prompts: list[list[int]]  # token ids, BOS policy applied


def read(cfg: dict, ctx: Context) -> Inputs | None:
    """The QA file and its shots; None (with a note) when every pair is a shot."""
    k = cfg["knowmem"]
    if not k["file"]:
        return None
    qa = formats.load_qa(k["file"])
    if k["shots"]:
        return Inputs(qa, formats.load_qa(k["shots"]), k["max_new_tokens"], k["trailing_space"])
    n = int(k["n_shots"])
    if n < 0:
        raise MnemoscopeError(f"knowmem.n_shots must be ≥ 0, got {n}")
    if not qa[n:]:
        ctx.note(KEY, f"knowmem: not computed: {k['file']} holds {len(qa)} QA pair(s), all used as the {n} "
                      "shots; give more pairs, fewer knowmem.n_shots, or knowmem.shots")
        return None
    return Inputs(qa[n:], qa[:n], k["max_new_tokens"], k["trailing_space"])


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    shots = [(s["question"], s["answer"]) for s in inputs.shots]
    if inputs.prompt is not None:
        prompts = [engine.encode_prompt(inputs.prompt(shots, q["question"])) for q in inputs.qa]
    else:
        prompts = [engine.encode_prompt(knowmem_prompt(shots, q["question"], trailing_space=inputs.trailing_space))
                   for q in inputs.qa]
    check_generation(engine, prompts, inputs.max_new_tokens, "knowmem question", "knowmem.max_new_tokens",
                     ids=[str(q.get("id", i)) for i, q in enumerate(inputs.qa)])
    return Plan(inputs, prompts)


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    qa = plan.inputs.qa
    result = Result(metrics={"knowmem/n_shots": float(len(plan.inputs.shots))})
    if not qa:
        result.not_computed(KEY, "knowmem: no questions to ask")
        return result
    outs = engine.generate(plan.prompts, max_new_tokens=plan.inputs.max_new_tokens)
    scores = [knowmem_score(o.text, q["answer"]) for o, q in zip(outs, qa)]
    result.samples = pd.DataFrame({
        "id": [str(q.get("id", i)) for i, q in enumerate(qa)],
        "question": [q["question"] for q in qa],
        "answer": [q["answer"] for q in qa],
        "generated": [o.text for o in outs],
        "prediction": [knowmem_cut(o.text) for o in outs],
        "knowmem": scores,
    })
    result.metrics.update({KEY: float(np.mean(scores)), "knowmem/n": float(len(scores))})
    return result


def knowmem(engine: Backend, qa: Sequence, shots: Sequence = (), *, max_new_tokens: int = 32,
            trailing_space: bool = False, prompt: Callable | None = None) -> Result:
    """KnowMem of ``qa`` with ``shots`` as the few-shot examples; each a (question, answer) pair
    or an object with ``question``/``answer`` (and optionally ``id``). ``trailing_space=True``:
    the prompt ends in MUSE's ``"Answer: "`` instead of ``"Answer:"``. ``prompt(shots, question)``
    replaces MUSE's prompt (e.g. ``unlearn.chat.chat_prompt`` for chat models)."""
    def records(items, what):
        out = []
        for i, x in enumerate(items):
            q, a = field_pair(x, ("question", "answer"), f"knowmem {what} {i}")
            out.append({"id": str(x.get("id", i)) if isinstance(x, dict) else str(i), "question": q, "answer": a})
        return out

    inputs = Inputs(records(qa, "item"), records(shots, "shot"), max_new_tokens, trailing_space, prompt)
    return plan_and_measure(plan, measure, inputs, engine)
