"""Verbatim extraction: greedy continuation of a text's prefix compared token by token with its
true suffix (Carlini et al.). Only the continuation is scored, never the cue, and the generated
length is forced to the true suffix length so an early EOS cannot shorten it.

Two uses:

- ``extraction_table`` (the quick test the membership family and the recipes run): prompt with
  the first ⌊f·n⌋ tokens of each text, continue for the true suffix (≤ ``max_suffix`` tokens);
- the family (config section ``extraction``): k-extractable rates swept over prefix lengths P —
  for each text with at least P + L tokens, prompt with its first P tokens (a BOS in front under
  the engine's policy, not counted), greedy exactly L, exact iff all L match. One generate call
  for every (text, P). Keys ``extraction/exact/{rate,count,n}@prefix=P``; a P that no text is
  long enough for (or that does not fit the context) is null with the reason.

The Pythia memorization score (``families.pythia``) reads the same config section.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result, plan_and_measure
from mnemoscope.metrics.extraction import (
    exact_match,
    memorization_score,
    rates_by_group,
)
from mnemoscope.probes import formats
from mnemoscope.summary import fmt_metric

NAME = "extraction"
TITLE = "Extraction sweep (k-extractable)"
DEFAULTS = {"extraction": {"texts": "", "prefix_lengths": [], "suffix_len": 50, "pythia": False,
                           "pythia_prefix": 32, "pythia_suffix": 32}}
PATH_KEYS = ("extraction.texts",)
NEEDS = ("generate",)


# --------------------------------------------------------------------------- the quick test


def split_prefixes(engine: Backend, texts: list[str], prefix_fraction: float, max_suffix: int):
    """(prompt ids, true suffix ids) per text: the first ⌊f·n⌋ of its n tokens (BOS included when
    the policy uses one) and the next ≤ ``max_suffix`` tokens."""
    if not 0 < prefix_fraction < 1:
        raise MnemoscopeError(f"extraction prefix_fraction must be in (0, 1), got {prefix_fraction}")
    prompts, suffixes = [], []
    for text in texts:
        ids = engine.prefix_ids() + engine.text_ids(text)
        cut = max(1, int(len(ids) * prefix_fraction))
        suffix = ids[cut : cut + max_suffix]
        if not suffix:
            raise MnemoscopeError(f"text too short to extract from (needs ≥ 2 tokens): {text[:40]!r}")
        prompts.append(ids[:cut])
        suffixes.append(suffix)
    return prompts, suffixes


def compare_continuations(engine: Backend, prompts: list[list[int]], suffixes: list[list[int]]) -> pd.DataFrame:
    """Greedy-continue each prompt for exactly its suffix's length (one generate call per distinct
    length) → ``extraction/exact`` (all tokens match), ``extraction/memorization`` (share that
    match), ``prefix_tokens``, ``suffix_tokens``, ``generated``."""
    rows: list[dict | None] = [None] * len(prompts)
    for length in sorted({len(s) for s in suffixes}):
        idx = [i for i, s in enumerate(suffixes) if len(s) == length]
        outs = engine.generate([prompts[i] for i in idx], max_new_tokens=length, min_new_tokens=length)
        for i, cont in zip(idx, outs):
            rows[i] = {
                "extraction/exact": float(exact_match(cont.token_ids, suffixes[i])),
                "extraction/memorization": memorization_score(cont.token_ids, suffixes[i]),
                "prefix_tokens": len(prompts[i]),
                "suffix_tokens": length,
                "generated": cont.text,
            }
    return pd.DataFrame(rows)


def extraction_table(engine: Backend, texts: list[str], *, prefix_fraction: float = 0.5,
                     max_suffix: int = 32) -> pd.DataFrame:
    """The quick test on ``texts`` (see the module docstring), one row per text."""
    return compare_continuations(engine, *split_prefixes(engine, texts, prefix_fraction, max_suffix))


def forced_continuations(engine: Backend, prompts: list[list[int]], length: int) -> list[list[int]]:
    """Greedy continuations of exactly ``length`` tokens (EOS suppressed), one generate call."""
    if not prompts:
        return []
    return [list(o.token_ids) for o in engine.generate(prompts, max_new_tokens=length, min_new_tokens=length)]


# --------------------------------------------------------------------------- the family


@dataclass
class Inputs:
    texts: list[str]
    ids: list[str]
    prefix_lengths: list[int]
    suffix_len: int


@dataclass
class Plan:
    inputs: Inputs
    jobs: list[tuple[int, int]]  # (text index, prefix length)
    prompts: list[list[int]]
    truths: list[list[int]]
    prefix_lengths: list[int]  # those that fit the context


def read_texts(cfg: dict) -> tuple[list[str], list[str]] | None:
    """(texts, ids) to extract from: ``extraction.texts``, else the members (``data.members`` or
    the members of ``data.wikimia``); None when neither is given."""
    x, d = cfg["extraction"], cfg.get("data", {})
    if x["texts"]:
        records = formats.load_text_records(x["texts"])
    elif d.get("members"):
        records = formats.load_text_records(d["members"])
    elif d.get("wikimia"):
        members, _ = formats.load_wikimia(d["wikimia"])
        records = [{"id": str(i), "text": t} for i, t in enumerate(members)]
    else:
        return None
    return [r["text"] for r in records], [r["id"] for r in records]


def read(cfg: dict, ctx: Context) -> Inputs | None:
    x = cfg["extraction"]
    if not x["prefix_lengths"]:
        if x["texts"] and not x["pythia"]:
            raise MnemoscopeError("extraction.texts is set but neither extraction.prefix_lengths nor "
                                  "extraction.pythia is: say what to measure, e.g. prefix_lengths: [8, 16]")
        return None
    if any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in x["prefix_lengths"]) \
            or isinstance(x["suffix_len"], bool) or not isinstance(x["suffix_len"], int) or x["suffix_len"] < 1:
        raise MnemoscopeError(f"extraction.prefix_lengths {x['prefix_lengths']} and extraction.suffix_len "
                              f"{x['suffix_len']} must be positive integers")
    found = read_texts(cfg)
    if found is None:
        raise MnemoscopeError("extraction: no texts to extract from; set extraction.texts or data.members")
    return Inputs(found[0], found[1], list(x["prefix_lengths"]), x["suffix_len"])


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    ctx = ctx or Context()
    bos, L = engine.prefix_ids(), inputs.suffix_len
    fitting = []
    for p in inputs.prefix_lengths:
        if engine.fits(len(bos) + p + L):
            fitting.append(p)
        else:
            ctx.note(f"extraction/exact/rate@prefix={p}", f"extraction@prefix={p}: not computed: {p} + {L} tokens "
                                                          f"exceed the model's context ({engine.max_length})")
    jobs, prompts, truths = [], [], []
    for i, text in enumerate(inputs.texts):
        ids = engine.text_ids(text)
        for p in fitting:
            if len(ids) >= p + L:
                jobs.append((i, p))
                prompts.append(bos + ids[:p])
                truths.append(ids[p : p + L])
    return Plan(inputs, jobs, prompts, truths, fitting)


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    inputs, L = plan.inputs, plan.inputs.suffix_len
    gens = forced_continuations(engine, plan.prompts, L)
    columns = ["text_index", "id", "text", "prefix_tokens", "suffix_tokens", "exact", "memorization", "generated"]
    samples = pd.DataFrame([
        {"text_index": i, "id": inputs.ids[i], "text": inputs.texts[i], "prefix_tokens": p, "suffix_tokens": L,
         "exact": float(exact_match(g, t)), "memorization": memorization_score(g, t), "generated": engine.decode(g)}
        for (i, p), g, t in zip(plan.jobs, gens, plan.truths)
    ], columns=columns)
    result = Result(samples=samples)
    rates = rates_by_group(samples["exact"].tolist(), samples["prefix_tokens"].tolist())
    n_texts = len(inputs.texts)
    for p in inputs.prefix_lengths:
        if p not in plan.prefix_lengths:
            result.metrics[f"extraction/exact/rate@prefix={p}"] = None
            continue
        n = int((samples["prefix_tokens"] == p).sum())
        if n < n_texts:
            result.note(f"extraction/exact/rate@prefix={p}",
                        f"extraction@prefix={p}: {n_texts - n} of {n_texts} texts have fewer than {p + L} tokens "
                        f"and were skipped")
        if n == 0:
            result.metrics[f"extraction/exact/rate@prefix={p}"] = None
            continue
        result.metrics[f"extraction/exact/rate@prefix={p}"] = rates[p]
        result.metrics[f"extraction/exact/count@prefix={p}"] = float(samples.loc[samples["prefix_tokens"] == p,
                                                                                   "exact"].sum())
        result.metrics[f"extraction/exact/n@prefix={p}"] = float(n)
    return result


def k_extractable(engine: Backend, texts: list[str], *, prefix_lengths: tuple[int, ...] = (8, 16, 32, 64, 128),
                  suffix_len: int = 50) -> Result:
    """The sweep on ``texts`` (ids are their positions)."""
    if suffix_len < 1 or any(p < 1 for p in prefix_lengths):
        raise MnemoscopeError(f"k_extractable: prefix_lengths {list(prefix_lengths)} and suffix_len {suffix_len} "
                              "must be ≥ 1")
    inputs = Inputs(list(texts), [str(i) for i in range(len(texts))], list(prefix_lengths), suffix_len)
    return plan_and_measure(plan, measure, inputs, engine)


def headline(metrics: dict) -> list[str]:
    """``k-extractable rate by prefix: 8 → 0.10, 16 → 0.25``."""
    rates = [(int(k.split("@prefix=")[1]), v) for k, v in metrics.items()
             if k.startswith("extraction/exact/rate@prefix=")]
    if not rates:
        return []
    line = f"{TITLE}: " + ", ".join(f"prefix {p} → {fmt_metric('rate', v)}" for p, v in sorted(rates))
    if all(v is None for _, v in rates):
        line += " (nothing computed: no text is long enough for prefix + extraction.suffix_len; see the notes)"
    return [line]

