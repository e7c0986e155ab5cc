"""Untargeted extraction (Nasr et al. 2023, *Scalable Extraction of Training Data from (Production)
Language Models*): what does the model emit when nobody gives it a prefix?

Generations start from short generic prompts — the start of a document (the BOS token, or EOS for
a tokenizer without one, as Carlini et al. prompt GPT-2; ``start`` [true]) and the texts of the
``prompts`` file, if named — greedy once per prompt and
``n_samples`` sampled ones (top-k 40, temperature 1, seeded). A generation counts as **extracted**
when it contains a span of at least L tokens (``min_tokens`` [50]) found verbatim in the training
corpus the user names (``probes.ngram_index``: every hit verified token by token). Only generated
tokens are searched, never the prompt.

With ``filter: true`` every generation is made a second time under the MemFree verbatim filter
(``probes.bloom``: n-grams of ``filter_n`` tokens of the same corpus banned at decoding), and the
same keys are written with ``@filter=memfree``.

Keys (``@mode=greedy|sampled`` and the total without it): ``untargeted/extracted/rate`` (share of
generations with ≥ 1 span), ``untargeted/extracted/count``, ``untargeted/spans/unique`` (distinct
span texts), ``untargeted/ngrams/unique`` (distinct extracted L-grams, Nasr et al.'s count),
``untargeted/generations/n``; ``untargeted/corpus/tokens``, ``untargeted/index/seconds``,
``untargeted/match/seconds`` and ``untargeted/generate/seconds``. Samples: one row per span
(generation, mode, filter, start, end, corpus document index and id, text).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend, Sampling
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result, check_generation
from mnemoscope.probes.bloom import BloomFilter, MemFree
from mnemoscope.probes.ngram_index import NGramIndex, window_hashes
from mnemoscope.probes.textfile import load_records, load_texts

NAME = "untargeted"
TITLE = "Untargeted extraction"
DEFAULTS = {"untargeted": {
    "corpus": "", "field": "text", "min_tokens": 50, "prompts": "", "start": True, "n_samples": 100,
    "max_new_tokens": 256,
    "greedy": True, "temperature": 1.0, "top_k": 40, "top_p": 1.0,
    "filter": False, "filter_n": 10, "filter_fpr": 0.001,
}}
PATH_KEYS = ("untargeted.corpus", "untargeted.prompts")
NEEDS = ("generate", "sample")
HEADLINE = ("untargeted/extracted/rate", "untargeted/spans/unique")


@dataclass
class Inputs:
    corpus: list[str]
    corpus_ids: list[str]
    prompts: list[str] | None  # None: the start-of-document prompt
    settings: dict


@dataclass
class Plan:
    inputs: Inputs
    index: NGramIndex
    doc_tokens: list[list[int]]
    prompts: list[list[int]]
    index_seconds: float


def read(cfg: dict, ctx: Context | None = None) -> Inputs | None:
    u = cfg["untargeted"]
    if not u["corpus"]:
        return None
    records = load_records(u["corpus"], u["field"])  # missing or empty file: one-line error
    L, new = int(u["min_tokens"]), int(u["max_new_tokens"])
    if L < 1:
        raise MnemoscopeError(f"untargeted.min_tokens must be ≥ 1, got {L}")
    if L > new:
        raise MnemoscopeError(f"untargeted.min_tokens = {L} is larger than the generations (untargeted.max_new_tokens "
                              f"= {new}): no span could ever be found; lower min_tokens or raise max_new_tokens")
    if int(u["n_samples"]) < 0 or (int(u["n_samples"]) == 0 and not u["greedy"]):
        raise MnemoscopeError("untargeted: nothing to generate; set untargeted.n_samples ≥ 1 or untargeted.greedy")
    if u["filter"] and int(u["filter_n"]) < 2:
        raise MnemoscopeError(f"untargeted.filter_n must be ≥ 2, got {u['filter_n']}")
    prompts = load_texts(u["prompts"]) if u["prompts"] else None
    ids = [str(r.get("id", i)) for i, r in enumerate(records)]
    return Inputs([r[u["field"]] for r in records], ids, prompts, dict(u))


def start_prompt(engine: Backend) -> list[int]:
    """The start of a document: [BOS] under a BOS policy, else the EOS token that separates documents."""
    if engine.prefix_ids():
        return engine.prefix_ids()
    eos = engine.tokenizer.eos_token_id
    if eos is None:
        raise MnemoscopeError("untargeted: the tokenizer has neither a BOS nor an EOS token to start a document; "
                              "name generic prompts in untargeted.prompts")
    return [eos]


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    s = inputs.settings
    prompts = [start_prompt(engine)] if s["start"] or not inputs.prompts else []
    prompts += [engine.encode_prompt(p) for p in inputs.prompts or []]
    check_generation(engine, prompts, int(s["max_new_tokens"]), "untargeted prompt", "untargeted.max_new_tokens")
    t0 = time.perf_counter()
    doc_tokens = engine.text_ids(inputs.corpus)
    if sum(len(d) for d in doc_tokens) == 0:
        raise MnemoscopeError(f"{s['corpus']}: the corpus holds no tokens")
    index = NGramIndex(doc_tokens, int(s["min_tokens"]))
    return Plan(inputs, index, doc_tokens, prompts, time.perf_counter() - t0)


def _generate(engine: Backend, plan: Plan, banned, seed: int) -> list[tuple[str, list[int]]]:
    """(mode, generated ids) for every generation: greedy per prompt, then the sampled ones."""
    s = plan.inputs.settings
    new = int(s["max_new_tokens"])
    out = []
    if s["greedy"]:
        out += [("greedy", c.token_ids) for c in engine.generate(plan.prompts, max_new_tokens=new, banned=banned)]
    n = int(s["n_samples"])
    if n:
        prompts = [plan.prompts[i % len(plan.prompts)] for i in range(n)]
        sampling = Sampling(temperature=float(s["temperature"]), top_k=int(s["top_k"]), top_p=float(s["top_p"]),
                            seed=seed)
        out += [("sampled", c.token_ids) for c in engine.generate(prompts, max_new_tokens=new, sampling=sampling,
                                                                   banned=banned)]
    return out


def memfree_for(engine: Backend, doc_tokens: list[list[int]], n: int, fpr: float) -> MemFree:
    """The MemFree filter of every n-gram of the documents, for ``engine.generate(banned=...)``."""
    return MemFree(BloomFilter.of_ngrams(doc_tokens, n, fpr), n, len(engine.tokenizer))


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    s = plan.inputs.settings
    result = Result(metrics={"untargeted/corpus/tokens": float(plan.index.n_tokens),
                             "untargeted/index/seconds": plan.index_seconds})
    rows: list[dict] = []
    variants = [("", None)]
    if s["filter"]:
        engine.require("banned", "untargeted extraction with the verbatim filter")
        variants.append(("memfree", memfree_for(engine, plan.doc_tokens, int(s["filter_n"]), float(s["filter_fpr"]))))
    for tag, banned in variants:
        suffix = "@filter=memfree" if tag else ""
        t0 = time.perf_counter()
        gens = _generate(engine, plan, banned, ctx.seed if ctx else 0)
        t1 = time.perf_counter()
        spans = plan.index.find_spans_many([g for _, g in gens])
        t2 = time.perf_counter()
        result.metrics[f"untargeted/generate/seconds{suffix}"] = t1 - t0
        result.metrics[f"untargeted/match/seconds{suffix}"] = t2 - t1
        for g, ((mode, ids), found) in enumerate(zip(gens, spans)):
            for sp in found:
                piece = ids[sp.start : sp.end]
                rows.append({"generation": g, "mode": mode, "filter": tag or "none", "start": sp.start, "end": sp.end,
                             "tokens": sp.length, "doc": sp.doc, "doc_id": plan.inputs.corpus_ids[sp.doc],
                             "span_ids": list(piece), "text": engine.decode(piece)})
        _summarise(result, gens, spans, plan.index.n, suffix)
    result.samples = pd.DataFrame(rows, columns=["generation", "mode", "filter", "start", "end", "tokens", "doc",
                                                 "doc_id", "span_ids", "text"])
    return result


def _summarise(result: Result, gens, spans, n: int, suffix: str) -> None:
    for mode in ("greedy", "sampled", None):
        idx = [i for i, (m, _) in enumerate(gens) if mode is None or m == mode]
        if not idx:
            continue
        tag = suffix if mode is None else (f"{suffix},mode={mode}" if suffix else f"@mode={mode}")
        found = [spans[i] for i in idx]
        extracted = [bool(f) for f in found]
        texts = {tuple(gens[i][1][sp.start : sp.end]) for i in idx for sp in spans[i]}
        grams = set()
        for i in idx:
            for sp in spans[i]:
                piece = np.asarray(gens[i][1][sp.start : sp.end], dtype=np.int64)
                grams.update(window_hashes(piece, n).tolist())
        result.metrics.update({
            f"untargeted/extracted/rate{tag}": float(np.mean(extracted)),
            f"untargeted/extracted/count{tag}": float(sum(extracted)),
            f"untargeted/spans/unique{tag}": float(len(texts)),
            f"untargeted/ngrams/unique{tag}": float(len(grams)),
            f"untargeted/generations/n{tag}": float(len(idx)),
        })
