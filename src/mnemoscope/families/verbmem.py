"""VerbMem (MUSE): does the model continue a training text verbatim?

Greedy continuation of each prompt (up to ``max_new_tokens``, may stop at EOS) against the true
continuation cut to its first ``max_new_tokens`` tokens (tokenized on its own and decoded);
score = 100 · ROUGE-L F1, no stemming. The continuation only, never the prompt. One generate
call for all prompts.

Config section ``verbmem``: ``file`` (records with ``prompt`` and ``gt``/``continuation``),
``max_new_tokens`` [128]. Keys ``verbmem/rouge_l_f1/mean`` (×100) and ``verbmem/n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result, check_generation, plan_and_measure
from mnemoscope.metrics.text import verbmem as verbmem_score
from mnemoscope.probes import formats

NAME = "verbmem"
TITLE = "VerbMem (verbatim continuation)"
DEFAULTS = {"verbmem": {"file": "", "max_new_tokens": 128}}
PATH_KEYS = ("verbmem.file",)
NEEDS = ("generate",)
KEY = "verbmem/rouge_l_f1/mean"
HEADLINE = (KEY,)


@dataclass
class Inputs:
    records: list[dict]  # {id, prompt, continuation}
    max_new_tokens: int = 128


@dataclass
class Plan:
    inputs: Inputs
    prompts: list[list[int]]
    references: list[str]  # the true continuations, cut to max_new_tokens tokens


def read(cfg: dict, ctx: Context) -> Inputs | None:
    v = cfg["verbmem"]
    if not v["file"]:
        return None
    return Inputs(formats.load_prompt_continuations(v["file"]), v["max_new_tokens"])


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    prompts = [engine.encode_prompt(r["prompt"]) for r in inputs.records]
    check_generation(engine, prompts, inputs.max_new_tokens, "verbmem prompt", "verbmem.max_new_tokens",
                     ids=[r["id"] for r in inputs.records])
    refs = [engine.decode(engine.text_ids(r["continuation"])[: inputs.max_new_tokens]) for r in inputs.records]
    return Plan(inputs, prompts, refs)


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    result = Result()
    if not plan.prompts:
        result.not_computed(KEY, "verbmem: no prompts given")
        return result
    outs = engine.generate(plan.prompts, max_new_tokens=plan.inputs.max_new_tokens)
    scores = [verbmem_score(o.text, r) for o, r in zip(outs, plan.references)]
    result.samples = pd.DataFrame({"id": [r["id"] for r in plan.inputs.records],
                                   "prompt": [r["prompt"] for r in plan.inputs.records],
                                   "generated": [o.text for o in outs], "reference": plan.references,
                                   "verbmem": scores})
    result.metrics.update({KEY: float(np.mean(scores)), "verbmem/n": float(len(scores))})
    return result


def verbmem(engine: Backend, prompts: list[str], continuations: list[str], *, max_new_tokens: int = 128) -> Result:
    """VerbMem of ``prompts`` against their true ``continuations`` (ids are positions)."""
    if len(prompts) != len(continuations):
        raise MnemoscopeError(f"verbmem: {len(prompts)} prompts but {len(continuations)} continuations; "
                              "pass one per prompt")
    records = [{"id": str(i), "prompt": p, "continuation": c} for i, (p, c) in enumerate(zip(prompts, continuations))]
    return plan_and_measure(plan, measure, Inputs(records, max_new_tokens), engine)
