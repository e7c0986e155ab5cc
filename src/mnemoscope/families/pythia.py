"""Pythia memorization score (Biderman et al.): prompt with a text's first ``pythia_prefix``
tokens (a BOS in front under the engine's policy, not counted), greedy exactly ``pythia_suffix``
tokens (min_new_tokens forces the length), score = (1/L) Σ_i [generated_i = true_i];
memorized iff score = 1.

Reads the ``extraction`` config section (``extraction.pythia: true`` switches it on; texts as
for ``families.extraction``). Texts shorter than prefix + suffix tokens are skipped (noted).
Keys ``extraction/pythia/score/mean``, ``extraction/pythia/memorized/{rate,count}``,
``extraction/pythia/n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result, plan_and_measure
from mnemoscope.families.extraction import forced_continuations, read_texts
from mnemoscope.metrics.extraction import memorization_score

NAME = "pythia"
TITLE = "Pythia memorization score"
DEFAULTS: dict = {}  # reads extraction.pythia, extraction.pythia_prefix, extraction.pythia_suffix
PATH_KEYS: tuple[str, ...] = ()
NEEDS = ("generate",)
KEY = "extraction/pythia/score/mean"
HEADLINE = (KEY, "extraction/pythia/memorized/rate")


@dataclass
class Inputs:
    texts: list[str]
    ids: list[str]
    prefix: int = 32
    suffix: int = 32


@dataclass
class Plan:
    inputs: Inputs
    kept: list[int]
    prompts: list[list[int]]
    truths: list[list[int]]


def read(cfg: dict, ctx: Context) -> Inputs | None:
    x = cfg["extraction"]
    if not x["pythia"]:
        return None
    found = read_texts(cfg)
    if found is None:
        raise MnemoscopeError("extraction: no texts to extract from; set extraction.texts or data.members")
    return Inputs(found[0], found[1], x["pythia_prefix"], x["pythia_suffix"])


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    ctx = ctx or Context()
    if inputs.prefix < 1 or inputs.suffix < 1:
        raise MnemoscopeError(f"pythia_memorization: prefix ({inputs.prefix}) and suffix ({inputs.suffix}) must be ≥ 1")
    bos = engine.prefix_ids()
    if not engine.fits(len(bos) + inputs.prefix + inputs.suffix):
        ctx.note(KEY, f"extraction/pythia: not computed: {inputs.prefix} + {inputs.suffix} tokens exceed the "
                      f"model's context ({engine.max_length})")
        return Plan(inputs, [], [], [])
    kept, prompts, truths = [], [], []
    for i, text in enumerate(inputs.texts):
        ids = engine.text_ids(text)
        if len(ids) >= inputs.prefix + inputs.suffix:
            kept.append(i)
            prompts.append(bos + ids[: inputs.prefix])
            truths.append(ids[inputs.prefix : inputs.prefix + inputs.suffix])
    return Plan(inputs, kept, prompts, truths)


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    inputs = plan.inputs
    gens = forced_continuations(engine, plan.prompts, inputs.suffix)
    scores = [memorization_score(g, t) for g, t in zip(gens, plan.truths)]
    samples = pd.DataFrame({
        "text_index": plan.kept,
        "id": [inputs.ids[i] for i in plan.kept],
        "text": [inputs.texts[i] for i in plan.kept],
        "score": scores,
        "memorized": [float(s == 1.0) for s in scores],
        "generated": [engine.decode(g) for g in gens],
    })
    result = Result(samples=samples)
    n = len(inputs.texts)
    if len(plan.kept) < n:
        result.note(KEY, f"extraction/pythia: {n - len(plan.kept)} of {n} texts have fewer than "
                         f"{inputs.prefix + inputs.suffix} tokens and were skipped")
    if not plan.kept:
        result.metrics[KEY] = None
        return result
    result.metrics.update({
        KEY: float(np.mean(scores)),
        "extraction/pythia/memorized/rate": float(samples["memorized"].mean()),
        "extraction/pythia/memorized/count": float(samples["memorized"].sum()),
        "extraction/pythia/n": float(len(plan.kept)),
    })
    return result


def pythia_memorization(engine: Backend, texts: list[str], *, prefix: int = 32, suffix: int = 32) -> Result:
    """The score on ``texts`` (ids are their positions)."""
    inputs = Inputs(list(texts), [str(i) for i in range(len(texts))], prefix, suffix)
    return plan_and_measure(plan, measure, inputs, engine)
