"""Contamination benchmark: are the overlap lookups a small share of the command's time?

    python -m benchmarks.contamination [--corpus-tokens 10000000] [--items 10000] [--model-items 200]

Builds a training corpus of ``--corpus-tokens`` lab tokens (generated background documents, with a
copy of every tenth benchmark item planted in it), indexes it (``probes.corpus_overlap``: lm-eval
word 13-grams and model-token 8-grams), and looks up ``--items`` multiple-choice items. The model
side of the command (membership against perturbed copies, guided completion under both prompts, the
order test; ``families.contamination`` with its defaults) runs on ``--model-items`` of them with a
fresh tiny lab model — the smallest model the command would meet; a real one makes the lookups'
share smaller still — and its time is scaled linearly to ``--items`` (every signal's work is
linear in the number of items: one pass or generation per item and copy; the order test scores
each item once per permutation). All timed in this process. Every planted item must be flagged by
lm-eval's rule and no other (checked). The last line is:

    contamination: lookup_share=X build_share=Y

(lookup: the share of the command's time spent looking items up; build: tokenizing and indexing
the corpus, once per corpus — skipped when a saved index is given).
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import tokenizer_fingerprint
from mnemoscope.families import contamination as family
from mnemoscope.lab.tiny import build_model, count_parameters, train_tokenizer
from mnemoscope.probes.corpus import background_documents
from mnemoscope.probes.corpus_overlap import CorpusOverlap
from mnemoscope.recipes.contamination.recipe import DEFAULTS, make_items


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus-tokens", type=int, default=10_000_000)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--model-items", type=int, default=200)
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--smoke", action="store_true", help="the smallest size (the test suite runs it)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.size, args.corpus_tokens, args.items, args.model_items = "micro", 30_000, 200, 20
    torch.set_num_threads(1)

    tokenizer = train_tokenizer(background_documents(400, seed=0), 8192 if args.size != "micro" else 1024)
    engine = Engine(build_model(args.size, tokenizer, seed=0).eval(), tokenizer)
    print(f"model: {count_parameters(engine.model) / 1e6:.2f} M parameters, torch threads {torch.get_num_threads()}")
    b = {**DEFAULTS["benchmark"], "question_words": 12, "choices": 4}
    items = make_items(args.items, b, random.Random(0), "q")
    docs, n_tokens, seed = [], 0, 1
    while n_tokens < args.corpus_tokens:  # generated documents until the corpus has the tokens asked for
        batch = background_documents(200 if args.smoke else 2000, seed=seed)
        seed += 1
        docs += batch
        n_tokens += sum(len(x) for x in engine.text_ids(batch))
    planted = set(range(0, len(items), 10))
    for i in planted:  # each planted item sits inside a document
        d = (i * 7919) % len(docs)
        docs[d] = docs[d] + " " + items[i].text
    print(f"corpus: {n_tokens:,} tokens in {len(docs):,} documents; {len(items):,} items ({len(planted)} planted)")

    t0 = time.perf_counter()
    index = CorpusOverlap.build(docs, engine.text_ids(docs), tokenizer_fingerprint(tokenizer))
    build_s = time.perf_counter() - t0
    item_ids = engine.text_ids([it.text for it in items])
    t0 = time.perf_counter()
    table = index.lookup([it.text for it in items], item_ids)
    lookup_s = time.perf_counter() - t0
    flagged = {i for i, v in enumerate(table["overlap/lm_eval"]) if v > 0}
    assert flagged == planted, f"lm-eval flags differ from the planted items: {sorted(flagged ^ planted)[:5]}"

    sample = items[: args.model_items]
    settings = {"signals": ["membership", "guided", "order"]}
    if args.smoke:
        settings.update(order_shards=2, order_permutations=3, n_perturb=3, max_new_tokens=8)
    t0 = time.perf_counter()
    family.contamination(engine, sample, settings=settings)
    model_s = (time.perf_counter() - t0) * len(items) / len(sample)
    total = build_s + lookup_s + model_s
    print(f"index build {build_s:.2f} s, lookups {lookup_s:.3f} s, model signals {model_s:.1f} s "
          f"(measured on {len(sample)} items, scaled to {len(items):,})")
    print(f"contamination: lookup_share={lookup_s / total:.4f} build_share={build_s / total:.4f}")
    return {"lookup_share": lookup_s / total, "build_share": build_s / total}


if __name__ == "__main__":
    main()
