"""Cued recall of studied texts (Orhan 2023), scored on the continuation only.

Cue = the first ⌊n/2⌋ tokens of a text of n tokens (a BOS in front under the engine's policy,
not counted); greedy continuation of exactly the remaining n − ⌊n/2⌋ tokens; scores of the
continuation against the true second half (``metrics.recognition.recall_scores``: token match
rate, exact, ROUGE-L F1 of the decoded texts). (The original code scored the cue too, which
inflates recall.)

One generate call: every text is continued for the longest remaining length with EOS suppressed
and cut to its own length (greedy decoding makes the first k tokens equal to a forced k-token
run). Texts with fewer than 2 tokens are skipped (noted). Config section ``recall``: ``texts``.
Keys ``recall/match_rate/mean``, ``recall/exact/rate``, ``recall/rouge_l_f1/mean``, ``recall/n``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.families.base import Context, Result, check_generation, plan_and_measure
from mnemoscope.metrics.recognition import recall_scores
from mnemoscope.probes import formats

NAME = "recall"
TITLE = "Recall"
DEFAULTS = {"recall": {"texts": ""}}
PATH_KEYS = ("recall.texts",)
NEEDS = ("generate",)
KEY = "recall/match_rate/mean"
HEADLINE = (KEY, "recall/exact/rate")


@dataclass
class Inputs:
    texts: list[str]
    ids: list[str]


@dataclass
class Plan:
    inputs: Inputs
    kept: list[int]
    cues: list[list[int]]
    truths: list[list[int]]


def read(cfg: dict, ctx: Context) -> Inputs | None:
    if not cfg["recall"]["texts"]:
        return None
    records = formats.load_text_records(cfg["recall"]["texts"])
    return Inputs([r["text"] for r in records], [r["id"] for r in records])


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    bos = engine.prefix_ids()
    kept, cues, truths = [], [], []
    for i, text in enumerate(inputs.texts):
        ids = engine.text_ids(text)
        if len(ids) < 2:
            continue
        half = len(ids) // 2
        kept.append(i)
        cues.append(bos + ids[:half])
        truths.append(ids[half:])
    if truths:
        longest = max(len(t) for t in truths)
        check_generation(engine, cues, longest, "recall text", "the recall length",
                         ids=[inputs.ids[i] for i in kept])
    return Plan(inputs, kept, cues, truths)


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    inputs, bos = plan.inputs, len(engine.prefix_ids())
    result = Result()
    n = len(inputs.texts)
    if len(plan.kept) < n:
        result.note(KEY, f"recall: {n - len(plan.kept)} of {n} texts have fewer than 2 tokens and were skipped")
    if not plan.kept:
        result.metrics[KEY] = None
        return result
    longest = max(len(t) for t in plan.truths)
    outs = engine.generate(plan.cues, max_new_tokens=longest, min_new_tokens=longest)
    rows = []
    for i, cue, truth, out in zip(plan.kept, plan.cues, plan.truths, outs):
        gen = list(out.token_ids)[: len(truth)]
        gen_text, true_text = engine.decode(gen), engine.decode(truth)
        row = {"text_index": i, "id": inputs.ids[i], "text": inputs.texts[i], "cue_tokens": len(cue) - bos,
               "recall_tokens": len(truth), "generated": gen_text, "true": true_text}
        row.update(recall_scores(gen, truth, gen_text, true_text))
        rows.append(row)
    samples = pd.DataFrame(rows)
    result.samples = samples
    result.metrics.update({
        KEY: float(samples["match_rate"].mean()),
        "recall/exact/rate": float(samples["exact"].mean()),
        "recall/rouge_l_f1/mean": float(samples["rouge_l_f1"].mean()),
        "recall/n": float(len(samples)),
    })
    return result


def recall(engine: Backend, texts: Sequence[str]) -> Result:
    """Cued recall of ``texts`` (ids are their positions)."""
    texts = list(texts)
    return plan_and_measure(plan, measure, Inputs(texts, [str(i) for i in range(len(texts))]), engine)
