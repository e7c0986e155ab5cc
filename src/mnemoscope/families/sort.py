"""Episodic memory: Sequence Order Recall (SORT; Pink et al. 2024).

Two segments of ``segment_words`` words from one excerpt; the question asks which came first.
Each counterbalanced record (``probes.sort.make_sort_pairs``) becomes a context
(``probes.sort.sort_prompt``) ending in ``"Answer: Segment"``; both choices `` A`` and `` B`` are
scored as (context, choice) pairs in ONE batched score call, and the model's answer is the choice
of higher log-probability (summed over the choice's tokens; a tie counts as choosing A, which
counterbalancing turns into chance). Two conditions: the excerpt in the context (short-term) or
only in training (long-term, ``sort.long_term: true``).

Config section ``sort``: ``texts``, ``segment_words`` [20], ``excerpt_words`` [whole text],
``n_pairs`` [20], ``distance_bins`` [equal-width bins over the gaps every text offers],
``long_term``. Keys ``sort/<short_term|long_term>/<stat>[@bin=<label>]`` with the stats of
``probes.sort.sort_accuracy_by_bin`` (``accuracy``, ``n``, ``chose_a_rate``, ``pair_accuracy``,
``accuracy@bin=..``, ``n@bin=..``); chance accuracy = 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mnemoscope.config import Typed
from mnemoscope.engine import Backend
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result, encode_each, plan_and_measure
from mnemoscope.probes import formats
from mnemoscope.probes.sort import make_sort_pairs, sort_accuracy_by_bin, sort_prompt

NAME = "sort"
TITLE = "Sequence order recall (SORT)"
DEFAULTS = {"sort": {"texts": "", "segment_words": 20, "excerpt_words": Typed(int), "n_pairs": 20, "distance_bins": Typed(list),
                     "long_term": False}}
PATH_KEYS = ("sort.texts",)
NEEDS = ("logprobs",)
HEADLINE = ("sort/short_term/accuracy", "sort/long_term/accuracy")
_DROP = ("excerpt",)  # long and repeated across records: kept out of the per-sample frame


@dataclass
class Inputs:
    records: list[dict[str, Any]]
    conditions: tuple[bool, ...] = (True,)  # with_excerpt per condition


@dataclass
class Plan:
    inputs: Inputs
    pairs: dict[bool, list[Encoded]]  # per condition: (context, " A"), (context, " B") per record


def _condition(with_excerpt: bool) -> str:
    return "short_term" if with_excerpt else "long_term"


def read(cfg: dict, ctx: Context) -> Inputs | None:
    """Counterbalanced SORT records from every text, on common distance bins; a text too short for
    the segment/excerpt sizes is left out with a note (None, with a note, when no text yields any)."""
    s = cfg["sort"]
    if not s["texts"]:
        return None
    texts = formats.load_texts_any(s["texts"])
    conditions = (True, False) if s["long_term"] else (True,)
    key = f"sort/{_condition(True)}/accuracy"
    seg, exc = int(s["segment_words"]), s["excerpt_words"]
    if seg < 1 or (exc is not None and exc < 2):
        raise MnemoscopeError(f"sort.segment_words must be ≥ 1 and sort.excerpt_words ≥ 2 (or null); "
                              f"got {seg} and {exc}")
    need = max(2 * seg, exc or 0)
    usable = [(i, t) for i, t in enumerate(texts) if len(t.split()) >= need]
    for i, t in enumerate(texts):
        if all(i != j for j, _ in usable):
            ctx.note(key, f"sort: text {i} not used: {len(t.split())} words, needs ≥ {need} "
                          "(2 × sort.segment_words, and sort.excerpt_words)")
    if not usable:
        ctx.note(key, "sort: not computed: no text is long enough for two segments")
        return None
    bins = s["distance_bins"]
    if bins is None:  # equal-width bins over the gaps every text can offer
        max_gap = min((exc or len(t.split())) - 2 * seg for _, t in usable)
        n_bins = max(1, min(4, max_gap + 1))
        bins = sorted(set(np.linspace(0, max_gap + 1, n_bins + 1).round().astype(int).tolist()))
    records = []
    for i, text in usable:
        try:
            recs = make_sort_pairs(text, seg, exc, n_pairs=int(s["n_pairs"]), distance_bins=bins, seed=ctx.seed + i)
        except MnemoscopeError as err:
            ctx.note(key, f"sort: text {i} not used: {err}")
            continue
        for r in recs:
            r["text_index"] = i
            r["pair_id"] = f"{i}:{r['pair_id']}"
        records += recs
    if not records:
        ctx.note(key, "sort: not computed: no text yielded SORT pairs")
        return None
    return Inputs(records, conditions)


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    pairs = {}
    for with_excerpt in inputs.conditions:
        def both(record, with_excerpt=with_excerpt):
            context, choices = sort_prompt(record, with_excerpt)
            return [engine.encode_pair(context, choices[0]), engine.encode_pair(context, choices[1])]

        encoded = encode_each(both, inputs.records, "sort record", [r["pair_id"] for r in inputs.records],
                              hint="lower sort.excerpt_words or sort.segment_words; the model's context limits "
                                   "how long an excerpt can be")
        pairs[with_excerpt] = [item for two in encoded for item in two]
    return Plan(inputs, pairs)


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    records = plan.inputs.records
    result = Result()
    for with_excerpt, items in plan.pairs.items():
        condition = _condition(with_excerpt)
        if not records:
            result.not_computed(f"sort/{condition}/accuracy", "sort: no SORT records")
            continue
        scored = engine.score_encoded(items)
        logp = np.array([float(s.logprobs.astype(np.float64).sum()) for s in scored]).reshape(-1, 2)
        chose_a = logp[:, 0] >= logp[:, 1]
        stats = sort_accuracy_by_bin(records, chose_a)
        samples = pd.DataFrame([{k: v for k, v in r.items() if k not in _DROP} for r in records])
        samples["condition"] = condition
        samples["logp_a"], samples["logp_b"] = logp[:, 0], logp[:, 1]
        samples["chose_a"] = chose_a
        samples["correct"] = chose_a == samples["a_first"].to_numpy(dtype=bool)
        result.update(Result(samples, {f"sort/{condition}/{k}": float(v) for k, v in stats.items()}))
    return result


def sort_in_context(
    engine: Backend,
    text_or_records: str | Sequence[dict[str, Any]],
    *,
    with_excerpt: bool = True,
    segment_words: int = 20,
    excerpt_words: int | None = None,
    n_pairs: int = 100,
    distance_bins: Sequence[int] | None = None,
    seed: int = 0,
) -> Result:
    """SORT accuracy overall and by distance bin in one condition. A text is cut into records
    with ``make_sort_pairs(text, segment_words, excerpt_words, n_pairs=, distance_bins=, seed=)``;
    a list of records is used as given."""
    if isinstance(text_or_records, str):
        records = make_sort_pairs(text_or_records, segment_words, excerpt_words, n_pairs=n_pairs,
                                  distance_bins=distance_bins, seed=seed)
    else:
        records = list(text_or_records)
    if not records:
        raise MnemoscopeError("sort_in_context: no SORT records; pass a text or records from make_sort_pairs")
    return plan_and_measure(plan, measure, Inputs(records, (with_excerpt,)), engine)
