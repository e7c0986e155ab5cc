"""Did the model see this benchmark? Four signals on a benchmark's items (``mnemoscope contamination``).

1. **overlap** (needs the training corpus or its saved index, ``probes.corpus_overlap``):
   lm-evaluation-harness's 13-gram flag and share of word 13-grams found, and the longest verbatim
   span in model tokens (≥ ``span_n``) shared with one corpus document;
2. **membership**: a likelihood attack (``families.membership.likelihood_scores``) on each item
   against the ``reference`` set when one is given (empirical p = (1 + #{reference ≥ item}) /
   (1 + n_ref); AUC of items vs reference under ``contam/mia/``), else against ``n_perturb``
   perturbed copies of the item itself — its answer options in other orders, or (no options)
   adjacent words swapped — with p = (1 + #{copies ≥ item}) / (1 + m); flagged when p ≤ alpha;
3. **guided** completion (Golchin & Surdeanu 2024): the item's first ``prefix_fraction`` of tokens
   under the guided template (naming dataset and split) and the general one, greedy for exactly as
   many tokens as the true rest (≤ ``max_new_tokens``); exact match, token BLEU
   (``metrics.approximate``), ROUGE-L F1 (``metrics.text``); flagged when the guided completion is
   exact or BLEU ≥ ``bleu_threshold``; the dataset-level signal is mean ROUGE-L guided − general
   with a one-sided bootstrap p-value;
4. **order** test (Oren et al. 2024): log-likelihood of each shard's items in canonical (file)
   order vs ``order_permutations`` random orders, windows of ``order_context`` tokens sliding by
   ``order_stride`` for long shards; their t-test p-value and our exact Monte-Carlo one
   (``metrics.contamination``).

A signal an item lacks the fields for is skipped for it with a note; a signal no item can take is
null with a note; the others run. Keys ``contam/<signal>/...``; the per-item table carries each
signal's columns, ``flag/<signal>`` and ``flags`` (how many signals each item trips).
"""

from __future__ import annotations

import itertools
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.engine.encoding import Encoded, tokenizer_fingerprint
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result, check_generation
from mnemoscope.families.membership import ATTACKS, likelihood_scores, membership_metrics
from mnemoscope.metrics.approximate import bleu
from mnemoscope.metrics.contamination import (
    guided_bootstrap_pvalue,
    order_pvalue_exact,
    order_pvalue_t,
    order_statistics,
    shard_sizes,
)
from mnemoscope.metrics.text import rouge_l_f1
from mnemoscope.probes.benchmark import BenchmarkItem, load_benchmark
from mnemoscope.probes.corpus_overlap import CorpusOverlap
from mnemoscope.probes.textfile import load_texts
from mnemoscope.summary import fmt

NAME = "contamination"
TITLE = "Benchmark contamination"
SIGNALS = ("overlap", "membership", "guided", "order")
GUIDED = ("You are given the first piece of an instance from the {split} split of the {dataset} dataset. "
          "Finish it exactly as it appears in the dataset.\n{first}")
GENERAL = "Finish the following text.\n{first}"
DEFAULTS = {"contamination": {
    "benchmark": "", "corpus": "", "corpus_field": "text", "corpus_index": "", "save_index": "", "reference": "",
    "dataset": "", "split": "", "signals": list(SIGNALS), "span_n": 8,
    "attack": "loss", "n_perturb": 19, "alpha": 0.05,
    "prefix_fraction": 0.5, "max_new_tokens": 32, "bleu_threshold": 0.75,
    "guided_template": GUIDED, "general_template": GENERAL,
    "order_shards": 10, "order_permutations": 25, "order_resamples": 9999, "order_context": 0, "order_stride": 0,
}}
PATH_KEYS = ("contamination.benchmark", "contamination.corpus", "contamination.corpus_index",
             "contamination.save_index", "contamination.reference")
NEEDS = ("logprobs", "generate")
HEADLINE = ("contam/overlap/rate", "contam/membership/flagged/rate", "contam/guided/rouge_l/diff",
            "contam/order/p_value")


@dataclass
class Inputs:
    items: list[BenchmarkItem]
    settings: dict
    corpus: list[str] | None = None
    reference: list[str] | None = None
    signals: tuple[str, ...] = SIGNALS


@dataclass
class Plan:
    inputs: Inputs
    item_ids: list[list[int]]
    overlap: CorpusOverlap | None = None
    perturbed: list[list[str]] | None = None  # per item, its perturbed copies (no reference set)
    guided: dict | None = None  # kept item positions, prompts per condition, true rest
    order: dict | None = None  # shard windows and permutations
    skipped: dict[str, str] = field(default_factory=dict)  # signal → why it does not run


# --------------------------------------------------------------------------- read


def _check_settings(s: dict) -> tuple[str, ...]:
    signals = tuple(s["signals"])
    unknown = [x for x in signals if x not in SIGNALS]
    if unknown:
        raise MnemoscopeError(f"contamination.signals: unknown {unknown}; use any of {', '.join(SIGNALS)}")
    if s["attack"] not in ATTACKS:
        raise MnemoscopeError(f"contamination.attack '{s['attack']}': use one of {', '.join(ATTACKS)}")
    checks = [("span_n", s["span_n"] >= 2, "≥ 2"), ("n_perturb", s["n_perturb"] >= 1, "≥ 1"),
              ("alpha", 0 < s["alpha"] < 1, "in (0, 1)"),
              ("prefix_fraction", 0 < s["prefix_fraction"] < 1, "in (0, 1)"),
              ("max_new_tokens", s["max_new_tokens"] >= 1, "≥ 1"), ("order_shards", s["order_shards"] >= 1, "≥ 1"),
              ("order_permutations", s["order_permutations"] >= 1, "≥ 1"),
              ("order_resamples", s["order_resamples"] >= 1, "≥ 1"),
              ("order_context", s["order_context"] >= 0, "≥ 0"), ("order_stride", s["order_stride"] >= 0, "≥ 0")]
    for key, ok, rule in checks:
        if not ok:
            raise MnemoscopeError(f"contamination.{key} must be {rule}, got {s[key]}")
    for key, needs in (("guided_template", ("{first}", "{dataset}", "{split}")), ("general_template", ("{first}",))):
        missing = [x for x in needs if x not in s[key]]
        if missing or not s[key].endswith("{first}"):
            raise MnemoscopeError(f"contamination.{key} must contain {', '.join(needs)} and end with {{first}} "
                                  f"(the item's first piece is appended as tokens); got {s[key]!r}")
    return signals


def read(cfg: dict, ctx: Context) -> Inputs | None:
    s = dict(cfg["contamination"])
    if not s["benchmark"]:
        named = [k for k in ("corpus", "corpus_index", "reference") if s[k]]
        if named:
            raise MnemoscopeError(f"contamination.{named[0]} is set but contamination.benchmark is not: give "
                                  "--benchmark FILE")
        return None
    signals = _check_settings(s)
    if s["corpus"] and s["corpus_index"]:
        raise MnemoscopeError("give either contamination.corpus (--corpus) or contamination.corpus_index "
                              "(--corpus-index), not both")
    if s["save_index"] and not s["corpus"]:
        raise MnemoscopeError("contamination.save_index (--save-index) needs the corpus to index: add --corpus FILE")
    if s["save_index"] and (not s["save_index"].endswith(".npz") or not Path(s["save_index"]).parent.is_dir()):
        raise MnemoscopeError(f"contamination.save_index '{s['save_index']}': name a .npz file in an existing folder")
    items = load_benchmark(s["benchmark"])
    items = [BenchmarkItem(it.id, it.question, it.choices, it.answer, it.split or s["split"],
                           it.dataset or s["dataset"]) for it in items]
    corpus = load_texts(s["corpus"], s["corpus_field"]) if s["corpus"] and "overlap" in signals else None
    reference = [it.text for it in load_benchmark(s["reference"])] if s["reference"] else None
    return Inputs(items, s, corpus, reference, signals)


# --------------------------------------------------------------------------- plan


def perturbed_copies(item: BenchmarkItem, m: int, rng: random.Random) -> list[str]:
    """Up to ``m`` copies of the item's text in other forms: its options in other orders (all of
    them when there are fewer than m), else — without options — the question with adjacent words
    swapped (⌈words/10⌉ swaps per copy)."""
    k = len(item.choices)
    if k >= 2:
        if math.factorial(k) - 1 <= m:
            orders = [list(p) for p in itertools.permutations(range(k))][1:]
        else:
            seen, orders = {tuple(range(k))}, []
            while len(orders) < m:
                o = rng.sample(range(k), k)
                if tuple(o) not in seen:
                    seen.add(tuple(o))
                    orders.append(o)
        return [item.with_choices(o).text for o in orders[:m]]
    words = item.question.split(" ")
    if len(words) < 2:
        return []
    copies = []
    for _ in range(m):
        w = list(words)
        for _ in range(max(1, math.ceil(len(w) / 10))):
            i = rng.randrange(len(w) - 1)
            w[i], w[i + 1] = w[i + 1], w[i]
        copies.append(BenchmarkItem(item.id, " ".join(w), item.choices, item.answer).text)
    return copies


def _plan_guided(inputs: Inputs, engine: Backend, item_ids: list[list[int]]) -> dict | str:
    s = inputs.settings
    kept = [i for i, it in enumerate(inputs.items) if it.dataset and it.split and len(item_ids[i]) >= 2]
    if not kept:
        return ("no item has both a dataset name and a split (fields 'dataset' and 'split', or "
                "contamination.dataset / contamination.split) and ≥ 2 tokens")
    prompts: dict[str, list[list[int]]] = {"guided": [], "general": []}
    rest = []
    for i in kept:
        it, ids = inputs.items[i], item_ids[i]
        cut = max(1, int(len(ids) * s["prefix_fraction"]))
        rest.append(ids[cut : cut + s["max_new_tokens"]])
        for cond, template in (("guided", s["guided_template"]), ("general", s["general_template"])):
            header = template.removesuffix("{first}").format(dataset=it.dataset, split=it.split)
            prompts[cond].append(engine.prefix_ids() + (engine.text_ids(header) if header else []) + ids[:cut])
    for cond in prompts:
        check_generation(engine, prompts[cond], s["max_new_tokens"], f"{cond} prompt of item",
                         "contamination.max_new_tokens", [inputs.items[i].id for i in kept])
    return {"kept": kept, "prompts": prompts, "rest": rest}


def sequence_windows(ids: list[int], prefix: list[int], context: int | None, stride: int) -> list[Encoded]:
    """``prefix + ids`` as windows of ≤ ``context`` tokens starting every ``stride`` tokens, each
    token scored once: the first window from its first scorable token, later ones from where the
    previous window ended (their context is the overlap). One window when the sequence fits."""
    full = list(prefix) + list(ids)
    first = len(prefix) if prefix else 1
    if context is None or len(full) <= context:
        return [Encoded(full, first, bool(prefix))]
    windows, start, done = [], 0, first
    while done < len(full):
        end = min(start + context, len(full))
        windows.append(Encoded(full[start:end], done - start, bool(prefix) and start == 0))
        done = end
        start += stride
    return windows


def _plan_order(inputs: Inputs, engine: Backend, seed: int) -> dict | str:
    s = inputs.settings
    n, shards = len(inputs.items), s["order_shards"]
    if n < 2 * shards:
        return (f"the benchmark has {n} items; the order test needs at least 2 per shard, i.e. ≥ {2 * shards} for "
                f"contamination.order_shards = {shards} (lower it for a small benchmark)")
    context = s["order_context"] or engine.max_length
    stride = s["order_stride"] or (context // 2 if context else 0)
    if context is not None and not 0 < stride <= context - 1:
        raise MnemoscopeError(f"contamination.order_stride must be in [1, {context - 1}] for a context of {context}")
    pieces = engine.text_ids([it.text + "\n" for it in inputs.items])
    rng = random.Random(seed)
    sequences = []  # (shard, canonical?, windows, item order)
    start = 0
    for shard, size in enumerate(shard_sizes(n, shards)):
        idx = list(range(start, start + size))
        start += size
        orders = [idx] + [rng.sample(idx, size) for _ in range(s["order_permutations"])]
        for j, order in enumerate(orders):
            ids = [t for i in order for t in pieces[i]]
            sequences.append((shard, j == 0, sequence_windows(ids, engine.prefix_ids(), context, stride), order))
    return {"sequences": sequences, "shards": shards, "context": context, "stride": stride}


def plan(inputs: Inputs, engine: Backend, ctx: Context) -> Plan:
    s = inputs.settings
    item_ids = engine.text_ids([it.text for it in inputs.items])
    p = Plan(inputs, item_ids)
    if "overlap" in inputs.signals:
        fingerprint = tokenizer_fingerprint(engine.tokenizer)
        if inputs.corpus is not None:
            p.overlap = CorpusOverlap.build(inputs.corpus, engine.text_ids(inputs.corpus), fingerprint,
                                            span_n=s["span_n"])
        elif s["corpus_index"]:
            p.overlap = CorpusOverlap.load(s["corpus_index"], fingerprint)
        else:
            p.skipped["overlap"] = ("no training corpus given (--corpus FILE or --corpus-index FILE.npz): overlap "
                                    "needs the corpus; the other signals do not")
    if "membership" in inputs.signals:
        engine.encode_texts([it.text for it in inputs.items])  # too long / nothing to score fails here
        if inputs.reference is None:
            rng = random.Random(ctx.seed)
            p.perturbed = [perturbed_copies(it, s["n_perturb"], rng) for it in inputs.items]
            engine.encode_texts([t for copies in p.perturbed for t in copies])
        else:
            engine.encode_texts(inputs.reference)
    if "guided" in inputs.signals:
        g = _plan_guided(inputs, engine, item_ids)
        p.guided, why = (g, None) if isinstance(g, dict) else (None, g)
        if why:
            p.skipped["guided"] = why
    if "order" in inputs.signals:
        o = _plan_order(inputs, engine, ctx.seed)
        p.order, why = (o, None) if isinstance(o, dict) else (None, o)
        if why:
            p.skipped["order"] = why
    return p


# --------------------------------------------------------------------------- measure


def _overlap(plan: Plan, result: Result, samples: pd.DataFrame) -> pd.DataFrame:
    t0 = time.perf_counter()
    table = plan.overlap.lookup([it.text for it in plan.inputs.items], plan.item_ids)
    seconds = time.perf_counter() - t0
    short = int((table["overlap/ngrams"] == 0).sum())
    m = result.metrics
    m["contam/overlap/rate"] = float(table["overlap/lm_eval"].mean())
    if short:
        result.note("contam/overlap/rate", f"overlap: {short} item(s) have fewer than 13 words, so no 13-gram: never "
                                           "contaminated under lm-eval's definition (their longest span still counts)")
    if short < len(table):
        m["contam/overlap/ngram_fraction/mean"] = float(np.nanmean(table["overlap/ngram_fraction"]))
    else:
        result.not_computed("contam/overlap/ngram_fraction/mean", "overlap: no item has 13 words")
    m["contam/overlap/longest_span/mean"] = float(table["overlap/longest_span"].mean())
    m["contam/overlap/longest_span/max"] = float(table["overlap/longest_span"].max())
    m["contam/overlap/corpus_docs"] = float(plan.overlap.n_docs)
    m["contam/overlap/lookup_seconds"] = seconds
    table["flag/overlap"] = table["overlap/lm_eval"] > 0
    return pd.concat([samples, table], axis=1)


def _blind(result: Result, texts: list[str], labels: np.ndarray, ctx: Context) -> None:
    """The blind baseline (``families.blind``: no model) on items vs reference, as ``contam/blind/...``;
    when it says the two sets differ without the model, a note on the membership AUC says so."""
    from mnemoscope.families.blind import blind_baseline
    from mnemoscope.metrics.blind import verdict

    blind = blind_baseline(texts, labels, n_boot=ctx.n_boot, seed=ctx.seed)
    result.metrics.update({f"contam/{k}": v for k, v in blind.metrics.items()})
    for key, why in blind.notes.items():
        result.note(f"contam/{key}", why)
    said = verdict({k.removeprefix("contam/"): v for k, v in result.metrics.items() if k.startswith("contam/")})
    if said:
        result.note("contam/mia/loss/auc", f"membership: {said}")


def _membership(plan: Plan, engine: Backend, ctx: Context, result: Result, samples: pd.DataFrame) -> pd.DataFrame:
    s, items = plan.inputs.settings, plan.inputs.items
    col = f"score/{s['attack']}"
    frame = likelihood_scores(engine, [it.text for it in items])
    if col not in frame:
        raise MnemoscopeError(f"contamination.attack '{s['attack']}' needs what the {engine.name} backend does not "
                              "provide; use loss, zlib or min_k")
    score = frame[col].to_numpy(dtype=float)
    out = pd.DataFrame({"membership/score": score})
    if plan.inputs.reference is not None:
        ref = likelihood_scores(engine, plan.inputs.reference)
        ref_scores = ref[col].to_numpy(dtype=float)
        out["membership/p_value"] = [(1 + int((ref_scores >= x).sum())) / (1 + ref_scores.size) for x in score]
        both = pd.concat([frame, ref], ignore_index=True)
        labels = np.r_[np.ones(len(frame)), np.zeros(len(ref))]
        result.metrics.update(membership_metrics(labels, both[[c for c in both if c.startswith("score/")]],
                                                 prefix="contam/mia", n_boot=ctx.n_boot, seed=ctx.seed))
        result.metrics["contam/membership/reference_n"] = float(ref_scores.size)
        _blind(result, [it.text for it in items] + list(plan.inputs.reference), labels, ctx)
        resolution = 1 / (1 + ref_scores.size)
    else:
        copies = [t for c in plan.perturbed for t in c]
        copy_scores = likelihood_scores(engine, copies)[col].to_numpy(dtype=float) if copies else np.zeros(0)
        pvals, margins, start = [], [], 0
        for x, c in zip(score, plan.perturbed):
            mine = copy_scores[start : start + len(c)]
            start += len(c)
            pvals.append((1 + int((mine >= x).sum())) / (1 + mine.size) if mine.size else math.nan)
            margins.append(x - mine.mean() if mine.size else math.nan)
        out["membership/p_value"], out["membership/margin"] = pvals, margins
        out["membership/copies"] = [len(c) for c in plan.perturbed]
        if np.isfinite(margins).any():
            result.metrics["contam/membership/margin/mean"] = float(np.nanmean(margins))
        else:
            result.not_computed("contam/membership/margin/mean", "membership: no item has a perturbed copy")
        result.metrics["contam/membership/reference_n"] = 0.0
        result.note("contam/membership/flagged/rate", _NO_REFERENCE)
        resolution = 1 / (1 + max((len(c) for c in plan.perturbed), default=0))
    if resolution > s["alpha"]:
        result.note("contam/membership/flagged/rate", f"membership: the smallest attainable p-value is {resolution:.3g} "
                                                      f"> alpha = {s['alpha']}: no item can be flagged (give more "
                                                      "reference texts, or raise contamination.n_perturb)")
    out["flag/membership"] = out["membership/p_value"] <= s["alpha"]
    result.metrics["contam/membership/flagged/rate"] = float(out["flag/membership"].mean())
    return pd.concat([samples, out], axis=1)


_NO_REFERENCE = ("membership: no reference set was given (--reference), so each item is compared only with perturbed "
                 "copies of itself (options reordered, or adjacent words swapped); this says whether the model prefers "
                 "the item's exact form, not how it scores against unseen items of the same benchmark; no AUC is "
                 "computed")


def _continue(engine: Backend, prompts: list[list[int]], rest: list[list[int]]) -> list[list[int]]:
    """Greedy continuations of exactly ``len(rest[i])`` tokens, one generate call per length."""
    out: list[list[int]] = [[] for _ in prompts]
    for length in sorted({len(r) for r in rest}):
        idx = [i for i, r in enumerate(rest) if len(r) == length]
        for i, c in zip(idx, engine.generate([prompts[i] for i in idx], max_new_tokens=length, min_new_tokens=length)):
            out[i] = list(c.token_ids)
    return out


def _guided(plan: Plan, engine: Backend, ctx: Context, result: Result, samples: pd.DataFrame) -> pd.DataFrame:
    g, s = plan.guided, plan.inputs.settings
    kept, rest = g["kept"], g["rest"]
    columns: dict[str, list] = {}
    truth = [engine.decode(r) for r in rest]
    for cond in ("guided", "general"):
        gens = _continue(engine, g["prompts"][cond], rest)
        columns[f"{cond}/exact"] = [float(list(a) == list(b)) for a, b in zip(gens, rest)]
        columns[f"{cond}/bleu"] = [bleu(a, b) for a, b in zip(gens, rest)]
        columns[f"{cond}/rouge_l"] = [rouge_l_f1(engine.decode(a), t) for a, t in zip(gens, truth)]
        columns[f"{cond}/generated"] = [engine.decode(a) for a in gens]
        for stat in ("exact", "bleu", "rouge_l"):
            key = "rate" if stat == "exact" else "mean"
            result.metrics[f"contam/guided/{stat}/{key}@prompt={cond}"] = float(np.mean(columns[f"{cond}/{stat}"]))
    table = pd.DataFrame(columns, index=kept)
    table["guided/rouge_l_diff"] = table["guided/rouge_l"] - table["general/rouge_l"]
    table["flag/guided"] = (table["guided/exact"] > 0) | (table["guided/bleu"] >= s["bleu_threshold"])
    m = result.metrics
    m["contam/guided/rouge_l/diff"] = float(table["guided/rouge_l_diff"].mean())
    m["contam/guided/bleu/diff"] = float((table["guided/bleu"] - table["general/bleu"]).mean())
    m["contam/guided/p_value"] = guided_bootstrap_pvalue(table["guided/rouge_l"], table["general/rouge_l"],
                                                         n_boot=max(ctx.n_boot, 1000), seed=ctx.seed)
    m["contam/guided/flagged/rate"] = float(table["flag/guided"].mean())
    m["contam/guided/n"] = float(len(kept))
    if len(kept) < len(plan.inputs.items):
        result.note("contam/guided/n", f"guided completion: {len(plan.inputs.items) - len(kept)} item(s) without a "
                                       "dataset name and split (or too short) were skipped")
    table = table.reindex(range(len(samples)))
    table["flag/guided"] = table["flag/guided"].astype("boolean")
    return pd.concat([samples, table], axis=1)


def _order(plan: Plan, engine: Backend, ctx: Context, result: Result) -> None:
    o, s = plan.order, plan.inputs.settings
    windows = [w for _, _, ws, _ in o["sequences"] for w in ws]
    scored = iter(engine.score_encoded(windows))
    canonical = np.zeros(o["shards"])
    permuted: list[list[float]] = [[] for _ in range(o["shards"])]
    for shard, is_canonical, ws, _ in o["sequences"]:
        total = float(sum(float(np.sum(next(scored).logprobs, dtype=np.float64)) for _ in ws))
        if is_canonical:
            canonical[shard] = total
        else:
            permuted[shard].append(total)
    m = result.metrics
    m["contam/order/p_value"] = order_pvalue_exact(canonical, permuted, n_resamples=s["order_resamples"], seed=ctx.seed)
    m["contam/order/p_value_t"] = order_pvalue_t(canonical, permuted)
    m["contam/order/mean_diff"] = float(order_statistics(canonical, permuted).mean())
    m["contam/order/shards"] = float(o["shards"])
    m["contam/order/permutations"] = float(s["order_permutations"])
    if not math.isfinite(m["contam/order/p_value_t"]):
        why = ("one shard: the t-test needs ≥ 2" if o["shards"] == 1 else
               "every shard gave the same difference")
        result.not_computed("contam/order/p_value_t", f"order test: {why}; the t-test is undefined (p_value is exact)")


def measure(plan: Plan, engine: Backend, ctx: Context) -> Result:
    items = plan.inputs.items
    result = Result()
    samples = pd.DataFrame({"id": [it.id for it in items], "dataset": [it.dataset for it in items],
                            "split": [it.split for it in items], "text": [it.text for it in items]})
    result.metrics["contam/items/n"] = float(len(items))
    for signal, why in plan.skipped.items():
        result.not_computed(HEADLINE[SIGNALS.index(signal)], f"{signal}: skipped: {why}")
    if plan.overlap is not None:
        samples = _overlap(plan, result, samples)
        if plan.inputs.settings["save_index"]:
            plan.overlap.save(plan.inputs.settings["save_index"])
    if "membership" in plan.inputs.signals:
        samples = _membership(plan, engine, ctx, result, samples)
    if plan.guided is not None:
        samples = _guided(plan, engine, ctx, result, samples)
    if plan.order is not None:
        _order(plan, engine, ctx, result)
    flags = [c for c in samples if c.startswith("flag/")]
    samples["flags"] = samples[flags].fillna(False).astype(int).sum(axis=1) if flags else 0
    result.metrics["contam/multi/n"] = float((samples["flags"] >= 2).sum())
    result.samples = samples
    return result


def contamination(engine: Backend, items: list[BenchmarkItem], *, corpus: list[str] | None = None,
                  corpus_index: str = "", reference: list[str] | None = None, settings: dict | None = None,
                  ctx: Context | None = None) -> Result:
    """The Python call: every signal on ``items`` (``probes.benchmark.load_benchmark``) with the
    given corpus texts or saved index and reference texts; ``settings`` override ``DEFAULTS``."""
    ctx = ctx or Context()
    s = {**DEFAULTS["contamination"], **(settings or {}), "corpus_index": corpus_index}
    signals = _check_settings(s)
    inputs = Inputs(list(items), s, list(corpus) if corpus is not None else None,
                    list(reference) if reference is not None else None, signals)
    result = measure(plan(inputs, engine, ctx), engine, ctx)
    for key, reason in ctx.notes.items():
        result.note(key, reason)
    return result


def headline(metrics: dict) -> list[str]:
    """One line per signal that ran."""
    def v(key: str, digits: int = 3) -> str:
        return fmt(metrics.get(key), digits, significant=True, whole="none")

    if metrics.get("contam/items/n") is None:
        return []
    return [f"contamination: {int(metrics['contam/items/n'])} items; overlap (lm-eval 13-gram) rate "
            f"{v('contam/overlap/rate')}; membership flagged {v('contam/membership/flagged/rate')}; guided − general "
            f"ROUGE-L {v('contam/guided/rouge_l/diff')} (p {v('contam/guided/p_value')}); order test p "
            f"{v('contam/order/p_value')} (t-test {v('contam/order/p_value_t')}); items tripping ≥ 2 signals "
            f"{v('contam/multi/n', 6)}"]
