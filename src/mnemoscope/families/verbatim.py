"""Verbatim memorization: greedy continuation of a text's prefix compared token by token
with its true suffix (PROTOCOLS §3). Only the continuation is scored, never the cue, and the
generated length is forced to the true suffix length so an early EOS cannot shorten it.

``extraction_table`` returns a per-text frame. The sweep functions below (``k_extractable``,
``pythia_memorization``, ``verbmem``) return ``(samples, metrics, notes)``: metrics hold only
what could be computed (no nan placeholders) and ``notes`` says, in words, what was skipped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.extraction import (
    exact_match,
    memorization_score,
    rates_by_group,
)
from mnemoscope.metrics.text import verbmem as verbmem_score


def extraction_table(engine: Engine, texts: list[str], *, prefix_fraction: float = 0.5, max_suffix: int = 32) -> pd.DataFrame:
    """Prompt with the first ⌊f·n⌋ tokens of each text, greedy-decode exactly the true suffix length
    (≤ max_suffix), and compare tokens: exact (all match) and memorization score (share matching)."""
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
    # group by suffix length so every generation is forced to exactly its true length
    rows: list[dict | None] = [None] * len(texts)
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


# ---------------------------------------------------------------------------------------------
# Sweeps and published variants. These return ``(samples, metrics, notes)``: a per-item frame, a
# flat ``{"family/metric[/stat][@group]": float}`` dict holding only what could be computed, and
# human-readable notes on what was skipped and why. Prefix lengths count the text's own tokens;
# a BOS (when the engine's policy uses one) is put in front of the prompt and is not counted.


def _forced_continuations(engine: Engine, prompts: list[list[int]], length: int) -> list[list[int]]:
    """Greedy continuations of exactly ``length`` tokens (EOS suppressed), one generate call."""
    outs = engine.generate(prompts, max_new_tokens=length, min_new_tokens=length)
    return [list(o.token_ids) for o in outs]


def k_extractable(
    engine: Engine,
    texts: list[str],
    *,
    prefix_lengths: tuple[int, ...] = (8, 16, 32, 64, 128),
    suffix_len: int = 50,
) -> tuple[pd.DataFrame, dict[str, float], list[str]]:
    """Exact extraction swept over prefix length (Carlini et al.; PROTOCOLS §3).

    For each P with ``n_tokens(text) ≥ P + L``: prompt with the first P tokens, greedy exactly L,
    exact iff all L equal the true tokens P..P+L−1. One generate call for every (text, P).
    Keys ``extraction/exact/{rate,count,n}@prefix=P`` (rate = count / n); a P no text is long
    enough for gets no keys and a note.
    """
    if suffix_len < 1 or any(p < 1 for p in prefix_lengths):
        raise MnemoscopeError(
            f"k_extractable: prefix_lengths {list(prefix_lengths)} and suffix_len {suffix_len} must be ≥ 1"
        )
    bos = engine.prefix_ids()
    jobs, prompts, truths = [], [], []
    for i, text in enumerate(texts):
        ids = engine.text_ids(text)
        for p in prefix_lengths:
            if len(ids) >= p + suffix_len:
                jobs.append((i, p))
                prompts.append(bos + ids[:p])
                truths.append(ids[p : p + suffix_len])
    gens = _forced_continuations(engine, prompts, suffix_len) if prompts else []
    rows = [
        {
            "text_index": i,
            "prefix_tokens": p,
            "suffix_tokens": suffix_len,
            "exact": float(exact_match(g, t)),
            "memorization": memorization_score(g, t),
            "generated": engine.decode(g),
        }
        for (i, p), g, t in zip(jobs, gens, truths)
    ]
    columns = ["text_index", "prefix_tokens", "suffix_tokens", "exact", "memorization", "generated"]
    samples = pd.DataFrame(rows, columns=columns)
    metrics: dict[str, float] = {}
    notes: list[str] = []
    rates = rates_by_group(samples["exact"].tolist(), samples["prefix_tokens"].tolist())
    for p in prefix_lengths:
        n = int((samples["prefix_tokens"] == p).sum())
        if n < len(texts):
            notes.append(
                f"extraction@prefix={p}: {len(texts) - n} of {len(texts)} texts have fewer than "
                f"{p + suffix_len} tokens and were skipped"
            )
        if n == 0:
            continue
        metrics[f"extraction/exact/rate@prefix={p}"] = rates[p]
        metrics[f"extraction/exact/count@prefix={p}"] = float(samples.loc[samples["prefix_tokens"] == p, "exact"].sum())
        metrics[f"extraction/exact/n@prefix={p}"] = float(n)
    return samples, metrics, notes


def pythia_memorization(
    engine: Engine, texts: list[str], *, prefix: int = 32, suffix: int = 32
) -> tuple[pd.DataFrame, dict[str, float], list[str]]:
    """Pythia memorization score: prompt with the first ``prefix`` tokens, greedy exactly ``suffix``
    (min_new_tokens forces it), score = (1/L) Σ [gen_i = true_i]; memorized iff score = 1.

    Texts shorter than prefix + suffix tokens are skipped (noted). Keys
    ``extraction/pythia/score/mean``, ``extraction/pythia/memorized/{rate,count}``, ``extraction/pythia/n``.
    """
    if prefix < 1 or suffix < 1:
        raise MnemoscopeError(f"pythia_memorization: prefix ({prefix}) and suffix ({suffix}) must be ≥ 1")
    bos = engine.prefix_ids()
    kept, prompts, truths = [], [], []
    for i, text in enumerate(texts):
        ids = engine.text_ids(text)
        if len(ids) >= prefix + suffix:
            kept.append(i)
            prompts.append(bos + ids[:prefix])
            truths.append(ids[prefix : prefix + suffix])
    gens = _forced_continuations(engine, prompts, suffix) if prompts else []
    scores = [memorization_score(g, t) for g, t in zip(gens, truths)]
    samples = pd.DataFrame(
        {
            "text_index": kept,
            "score": scores,
            "memorized": [float(s == 1.0) for s in scores],
            "generated": [engine.decode(g) for g in gens],
        }
    )
    notes = []
    if len(kept) < len(texts):
        notes.append(
            f"extraction/pythia: {len(texts) - len(kept)} of {len(texts)} texts have fewer than "
            f"{prefix + suffix} tokens and were skipped"
        )
    metrics: dict[str, float] = {}
    if kept:
        metrics = {
            "extraction/pythia/score/mean": float(np.mean(scores)),
            "extraction/pythia/memorized/rate": float(samples["memorized"].mean()),
            "extraction/pythia/memorized/count": float(samples["memorized"].sum()),
            "extraction/pythia/n": float(len(kept)),
        }
    return samples, metrics, notes


def verbmem(
    engine: Engine, prompts: list[str], continuations: list[str], *, max_new_tokens: int = 128
) -> tuple[pd.DataFrame, dict[str, float], list[str]]:
    """MUSE VerbMem: greedy continuation of each prompt (up to ``max_new_tokens``, may stop at EOS)
    vs the true continuation cut to its first ``max_new_tokens`` tokens (tokenized on its own and
    decoded); score = 100 · ROUGE-L F1, no stemming. Continuation only, never the prompt.
    Keys ``verbmem/rouge_l_f1/mean`` (×100) and ``verbmem/n``.
    """
    if len(prompts) != len(continuations):
        raise MnemoscopeError(f"verbmem: {len(prompts)} prompts but {len(continuations)} continuations; pass one per prompt")
    refs = [
        engine.decode(engine.text_ids(c)[:max_new_tokens]) for c in continuations
    ]
    outs = engine.generate(list(prompts), max_new_tokens=max_new_tokens) if prompts else []
    scores = [verbmem_score(o.text, r) for o, r in zip(outs, refs)]
    samples = pd.DataFrame({"generated": [o.text for o in outs], "reference": refs, "verbmem": scores})
    metrics = {"verbmem/rouge_l_f1/mean": float(np.mean(scores)), "verbmem/n": float(len(scores))} if scores else {}
    notes = [] if scores else ["verbmem: no prompts given"]
    return samples, metrics, notes
