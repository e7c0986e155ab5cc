"""Exact and approximate memorization of prefix-prompted continuations, with and without a verbatim
filter (Ippolito et al. 2023, *Preventing Verbatim Memorization in Language Models Gives a False
Sense of Privacy*).

Each text is cut into a prompt (its first ``prefix_tokens`` tokens, or its first ⌊f·n⌋ tokens when
``prefix_tokens`` is 0, f = ``prefix_fraction``) and a true suffix (the next ≤ ``suffix_tokens``
tokens); the model greedy-decodes exactly as many tokens as the suffix has (EOS suppressed). Per
text: exact match (all tokens equal), BLEU and normalised edit similarity against the true suffix
(``metrics.approximate``), approximately memorized iff BLEU ≥ ``threshold`` [0.75].

With ``filter: true`` the continuations are generated a second time under MemFree (n-grams of
``filter_n`` tokens of ``filter_corpus`` banned; by default the texts themselves, i.e. the
training data under audit) and the keys are repeated with ``@filter=memfree``: the paper's point
is that exact matches fall to ~0 while approximate memorization stays high.

Keys: ``approx/exact/rate``, ``approx/memorized/rate`` (BLEU ≥ threshold), ``approx/bleu/mean``,
``approx/edit_similarity/mean``, ``approx/n``. Samples: one row per (text, filter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result, check_generation
from mnemoscope.families.untargeted import memfree_for
from mnemoscope.metrics.approximate import bleu, edit_similarity
from mnemoscope.metrics.extraction import exact_match
from mnemoscope.probes.textfile import load_records, load_texts

NAME = "approximate"
TITLE = "Exact and approximate memorization"
DEFAULTS = {"approximate": {
    "texts": "", "prefix_tokens": 32, "prefix_fraction": 0.5, "suffix_tokens": 32, "threshold": 0.75,
    "filter": False, "filter_corpus": "", "filter_n": 10, "filter_fpr": 0.001,
}}
PATH_KEYS = ("approximate.texts", "approximate.filter_corpus")
NEEDS = ("generate",)
HEADLINE = ("approx/exact/rate", "approx/memorized/rate", "approx/edit_similarity/mean")
KEY = "approx/memorized/rate"


@dataclass
class Inputs:
    texts: list[str]
    ids: list[str]
    filter_corpus: list[str] | None
    settings: dict


@dataclass
class Plan:
    inputs: Inputs
    kept: list[int]
    prompts: list[list[int]]
    suffixes: list[list[int]]
    filter_docs: list[list[int]] | None


def read(cfg: dict, ctx: Context | None = None) -> Inputs | None:
    a = cfg["approximate"]
    if not a["texts"]:
        return None
    records = load_records(a["texts"])
    if int(a["prefix_tokens"]) < 0 or int(a["suffix_tokens"]) < 1:
        raise MnemoscopeError(f"approximate.prefix_tokens must be ≥ 0 and approximate.suffix_tokens ≥ 1, got "
                              f"{a['prefix_tokens']} and {a['suffix_tokens']}")
    if int(a["prefix_tokens"]) == 0 and not 0 < float(a["prefix_fraction"]) < 1:
        raise MnemoscopeError(f"approximate.prefix_fraction must be in (0, 1), got {a['prefix_fraction']}")
    if not 0 < float(a["threshold"]) <= 1:
        raise MnemoscopeError(f"approximate.threshold must be in (0, 1], got {a['threshold']}")
    if a["filter"] and int(a["filter_n"]) < 2:
        raise MnemoscopeError(f"approximate.filter_n must be ≥ 2, got {a['filter_n']}")
    corpus = load_texts(a["filter_corpus"]) if a["filter"] and a["filter_corpus"] else None
    return Inputs([r["text"] for r in records], [str(r.get("id", i)) for i, r in enumerate(records)], corpus, dict(a))


def split(ids: list[int], prefix_tokens: int, prefix_fraction: float, suffix_tokens: int) -> tuple[list[int], list[int]]:
    """(prompt, true suffix) token lists of a text's own ids."""
    cut = prefix_tokens if prefix_tokens > 0 else max(1, int(len(ids) * prefix_fraction))
    return ids[:cut], ids[cut : cut + suffix_tokens]


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    s = inputs.settings
    ctx = ctx or Context()
    kept, prompts, suffixes = [], [], []
    for i, text in enumerate(inputs.texts):
        prompt, suffix = split(engine.text_ids(text), int(s["prefix_tokens"]), float(s["prefix_fraction"]),
                               int(s["suffix_tokens"]))
        if not prompt or not suffix or (int(s["prefix_tokens"]) > 0 and len(suffix) < int(s["suffix_tokens"])):
            continue
        kept.append(i)
        prompts.append(engine.prefix_ids() + prompt)
        suffixes.append(suffix)
    if len(kept) < len(inputs.texts):
        ctx.note(KEY, f"approx: {len(inputs.texts) - len(kept)} of {len(inputs.texts)} texts are too short for a "
                      "prompt and a suffix and were skipped")
    for p, sfx, i in zip(prompts, suffixes, kept):
        check_generation(engine, [p], len(sfx), "approximate text", "approximate.suffix_tokens", ids=[inputs.ids[i]])
    docs = None
    if s["filter"]:
        engine.require("banned", "approximate memorization with the verbatim filter")
        docs = engine.text_ids(inputs.filter_corpus if inputs.filter_corpus is not None else inputs.texts)
    return Plan(inputs, kept, prompts, suffixes, docs)


def _continuations(engine: Backend, plan: Plan, banned) -> list[list[int]]:
    """Greedy continuations forced to each suffix's length, one generate call per distinct length."""
    out: list[list[int] | None] = [None] * len(plan.prompts)
    for length in sorted({len(x) for x in plan.suffixes}):
        idx = [j for j, x in enumerate(plan.suffixes) if len(x) == length]
        gens = engine.generate([plan.prompts[j] for j in idx], max_new_tokens=length, min_new_tokens=length,
                               banned=banned)
        for j, g in zip(idx, gens):
            out[j] = list(g.token_ids)
    return out


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    s = plan.inputs.settings
    result = Result()
    if not plan.kept:
        result.not_computed(KEY, "approx: no text is long enough for a prompt and a suffix")
        return result
    variants = [("none", None)]
    if plan.filter_docs is not None:
        variants.append(("memfree", memfree_for(engine, plan.filter_docs, int(s["filter_n"]), float(s["filter_fpr"]))))
    rows = []
    for tag, banned in variants:
        gens = _continuations(engine, plan, banned)
        part = []
        for j, (g, t) in enumerate(zip(gens, plan.suffixes)):
            b = bleu(g, t)
            part.append({"id": plan.inputs.ids[plan.kept[j]], "text_index": plan.kept[j], "filter": tag,
                         "prefix_tokens": len(plan.prompts[j]) - len(engine.prefix_ids()), "suffix_tokens": len(t),
                         "exact": float(exact_match(g, t)) if len(g) == len(t) else 0.0, "bleu": b,
                         "edit_similarity": edit_similarity(g, t), "approx": float(b >= float(s["threshold"])),
                         "generated": engine.decode(g)})
        rows += part
        suffix = "@filter=memfree" if tag == "memfree" else ""
        frame = pd.DataFrame(part)
        result.metrics.update({
            f"approx/exact/rate{suffix}": float(frame["exact"].mean()),
            f"approx/memorized/rate{suffix}": float(frame["approx"].mean()),
            f"approx/bleu/mean{suffix}": float(frame["bleu"].mean()),
            f"approx/edit_similarity/mean{suffix}": float(frame["edit_similarity"].mean()),
            f"approx/n{suffix}": float(len(frame)),
        })
    result.samples = pd.DataFrame(rows)
    return result


def rates_by(samples: pd.DataFrame, groups: dict[str, object], key: str = "dose") -> dict[str, float]:
    """``approx/<stat>@<key>=G[,filter=memfree]`` for a mapping from sample id to group (recipes)."""
    out: dict[str, float] = {}
    frame = samples.assign(group=samples["id"].map(groups))
    for (tag, g), part in frame.groupby(["filter", "group"]):
        suffix = f"@{key}={g}" + (",filter=memfree" if tag == "memfree" else "")
        for col, name in (("exact", "exact/rate"), ("approx", "memorized/rate"), ("bleu", "bleu/mean"),
                          ("edit_similarity", "edit_similarity/mean")):
            out[f"approx/{name}{suffix}"] = float(np.mean(part[col]))
    return out
