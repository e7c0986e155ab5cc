"""TOFU (Maini et al.): probability, ROUGE-L recall and truth ratio of question-answer items.

Per item, with context c = ``template.format(question=q)`` (default :data:`TOFU_TEMPLATE`,
``"Question: {q}\\nAnswer:"``) and each answer scored as the target ``" " + answer`` of the pair
(c, target) — the answer's tokens only:

- probability = exp(−mean NLL(answer | c));
- truth ratio TR = exp(NLL_paraphrased − mean_j NLL_perturbed_j) (``metrics.knowledge.truth_ratio``);
- ROUGE-L recall (stemmed) of the greedy answer generated from c against the answer;
- the probability normalised over the answer options, P̃(a) / (P̃(a) + Σ_j P̃(perturbed_j))
  (TOFU's "Prob." on its real-authors and world-facts sets).

``tofu.eos: true`` scores the tokenizer's EOS after every answer as part of it (mean NLL over the
answer tokens + EOS), as TOFU's and open-unlearning's code do; the default scores the answer's
tokens only (docs/metrics.md, "Differences from the published code").

One score call (answer, paraphrase and every perturbed answer of every item) and one generate
call. Config section ``tofu``: ``file`` (TOFU records), ``forget`` (the set is a forget set:
the truth-ratio summary is mean(min(TR, 1/TR)), else mean(max(0, 1 − TR))), ``max_new_tokens``.
Keys (suffix ``@split=<split>`` when given): ``tofu/probability/mean``,
``tofu/probability_normalized/mean``, ``tofu/rouge_l_recall/mean``, ``tofu/truth_ratio/summary``,
``tofu/n``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import (
    Context,
    Result,
    check_generation,
    encode_each,
    plan_and_measure,
)
from mnemoscope.metrics import knowledge as km
from mnemoscope.metrics.text import QA_TEMPLATE, rouge_l_recall
from mnemoscope.probes import formats

NAME = "tofu"
TITLE = "TOFU"
DEFAULTS = {"tofu": {"file": "", "forget": True, "max_new_tokens": 64, "eos": False}}
PATH_KEYS = ("tofu.file",)
NEEDS = ("logprobs", "generate")
TOFU_TEMPLATE = QA_TEMPLATE
HEADLINE = ("tofu/probability/mean", "tofu/rouge_l_recall/mean", "tofu/truth_ratio/summary")


@dataclass
class Inputs:
    items: list[dict]  # {id, question, answer, paraphrased_answer, perturbed_answers}
    forget: bool = True
    max_new_tokens: int = 64
    template: str = TOFU_TEMPLATE
    split: str | None = None
    eos: bool = False  # score the EOS after each answer as part of it (TOFU's and open-unlearning's code)


@dataclass
class Plan:
    inputs: Inputs
    pairs: list[Encoded]  # per item: answer, paraphrase, perturbed answers
    prompts: list[list[int]]


def read(cfg: dict, ctx: Context) -> Inputs | None:
    t = cfg["tofu"]
    if not t["file"]:
        return None
    return Inputs(formats.load_tofu(t["file"]), t["forget"], t["max_new_tokens"], eos=t["eos"])


def _answers(item: dict) -> list[str]:
    return [item["answer"], item["paraphrased_answer"], *item["perturbed_answers"]]


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    if "{question}" not in inputs.template:
        raise MnemoscopeError(f"tofu template {inputs.template!r} has no {{question}} field; add one")
    contexts = [inputs.template.format(question=it["question"]) for it in inputs.items]
    encoded = encode_each(lambda ci: [engine.encode_pair(ci[0], " " + a, eos=inputs.eos) for a in _answers(ci[1])],
                          list(zip(contexts, inputs.items)), "tofu item", [it["id"] for it in inputs.items])
    pairs = [item for answers in encoded for item in answers]
    prompts = [engine.encode_prompt(c.rstrip()) for c in contexts]
    check_generation(engine, prompts, inputs.max_new_tokens, "tofu item", "tofu.max_new_tokens",
                     ids=[it["id"] for it in inputs.items])
    return Plan(inputs, pairs, prompts)


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    inputs = plan.inputs
    group = f"@split={inputs.split}" if inputs.split else ""
    result = Result()
    if not inputs.items:
        result.not_computed(f"tofu/probability/mean{group}", "tofu: no items")
        return result
    scored = engine.score_encoded(plan.pairs)
    outs = engine.generate(plan.prompts, max_new_tokens=inputs.max_new_tokens)
    rows, pos = [], 0
    for item, out in zip(inputs.items, outs):
        n_pert = len(item["perturbed_answers"])
        nll_ans, nll_para = scored[pos].nll, scored[pos + 1].nll
        nll_pert = [s.nll for s in scored[pos + 2 : pos + 2 + n_pert]]
        pos += 2 + n_pert
        rows.append({
            "id": item["id"],
            "question": item["question"],
            "answer": item["answer"],
            "nll_answer": nll_ans,
            "probability": km.probability(nll_ans),
            "probability_normalized": km.probability(nll_ans) / (
                km.probability(nll_ans) + float(np.sum(km.probability(nll_pert)))),
            "nll_paraphrased": nll_para,
            "nll_perturbed_mean": float(np.mean(nll_pert)),
            "truth_ratio": km.truth_ratio(nll_pert, nll_para),
            "generated": out.text,
            "rouge_l_recall": rouge_l_recall(out.text, item["answer"], stem=True),
        })
    samples = pd.DataFrame(rows)
    result.samples = samples
    result.metrics.update({
        f"tofu/probability/mean{group}": float(samples["probability"].mean()),
        f"tofu/probability_normalized/mean{group}": float(samples["probability_normalized"].mean()),
        f"tofu/rouge_l_recall/mean{group}": float(samples["rouge_l_recall"].mean()),
        f"tofu/truth_ratio/summary{group}": km.truth_ratio_summary(samples["truth_ratio"].to_numpy(), inputs.forget),
        f"tofu/n{group}": float(len(samples)),
    })
    return result


def _tofu_item(item, i: int) -> dict:
    where = f"tofu item {i}"
    if not isinstance(item, Mapping):
        raise MnemoscopeError(f"{where}: expected an object with question, answer, paraphrased_answer, perturbed_answers")
    for key in ("question", "answer", "paraphrased_answer", "perturbed_answers"):
        if key not in item:
            raise MnemoscopeError(f"{where}: missing field '{key}'")
    pert = item["perturbed_answers"]
    if isinstance(pert, str) or not isinstance(pert, (Sequence, np.ndarray)) or len(pert) == 0:
        raise MnemoscopeError(f"{where}: field 'perturbed_answers' must be a non-empty list of strings")
    return {"id": str(item.get("id", i)), "question": item["question"], "answer": item["answer"],
            "paraphrased_answer": item["paraphrased_answer"], "perturbed_answers": list(pert)}


def tofu(engine: Backend, items: Sequence[Mapping], *, forget: bool = True, template: str = TOFU_TEMPLATE,
         max_new_tokens: int = 64, split: str | None = None, eos: bool = False) -> Result:
    """TOFU on ``items`` (objects with question, answer, paraphrased_answer, perturbed_answers);
    ``eos=True`` scores the EOS after every answer as part of it, as TOFU's code does."""
    inputs = Inputs([_tofu_item(x, i) for i, x in enumerate(items)], forget, max_new_tokens, template, split, eos)
    return plan_and_measure(plan, measure, inputs, engine)
