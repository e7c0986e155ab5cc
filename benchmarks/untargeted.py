"""Untargeted extraction benchmark: is it bound by generation, not by matching?

    python -m benchmarks.untargeted [--corpus-tokens 10000000] [--generations 512] [--new-tokens 256]

Generates ``--generations`` sampled continuations (top-k 40) of the start-of-document token with a
fresh tiny lab model (``Engine.generate``, batched), builds the n-gram index (L = 50) of a corpus of
``--corpus-tokens`` tokens (random documents of 100–400 tokens, plus a copy of every tenth
generation planted in it), and finds every verbatim span of ≥ 50 tokens in the generations
(``NGramIndex.find_spans_many``). All three are timed in this process. The planted generations must
all be found (checked). The last line is:

    untargeted: match_vs_generate=X build_vs_generate=Y

(match: the lookups of all generations; build: the one-time index construction for the corpus).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mnemoscope.engine import Engine, Sampling
from mnemoscope.lab.tiny import build_model, count_parameters, train_tokenizer
from mnemoscope.probes.corpus import background_documents
from mnemoscope.probes.ngram_index import NGramIndex


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus-tokens", type=int, default=10_000_000)
    ap.add_argument("--generations", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--min-tokens", type=int, default=50)
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--smoke", action="store_true", help="the smallest size (the test suite runs it)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.size, args.corpus_tokens, args.generations, args.new_tokens, args.min_tokens = "micro", 20000, 20, 60, 20

    tokenizer = train_tokenizer(background_documents(400, seed=0), 8192 if args.size != "micro" else 1024)
    model = build_model(args.size, tokenizer, seed=0).eval()
    engine = Engine(model, tokenizer)
    print(f"model: {count_parameters(model) / 1e6:.2f} M parameters, torch threads {torch.get_num_threads()}")

    t0 = time.perf_counter()
    gens = engine.generate([[tokenizer.eos_token_id]] * args.generations, max_new_tokens=args.new_tokens,
                           min_new_tokens=args.new_tokens, sampling=Sampling(top_k=40, seed=0))
    generate_s = time.perf_counter() - t0
    queries = [np.asarray(g.token_ids, dtype=np.int64) for g in gens]

    rng = np.random.default_rng(0)
    docs, total = [], 0
    vocab = len(tokenizer)
    while total < args.corpus_tokens:
        n = int(rng.integers(100, 400))
        docs.append(rng.integers(3, vocab, size=n))
        total += n
    planted = list(range(0, len(queries), 10))
    for i in planted:  # each planted generation sits inside a random document
        d = int(rng.integers(0, len(docs)))
        docs[d] = np.concatenate([docs[d][:50], queries[i], docs[d][50:]])
    n_tokens = sum(len(d) for d in docs)

    t0 = time.perf_counter()
    index = NGramIndex(docs, args.min_tokens)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    spans = index.find_spans_many(queries)
    match_s = time.perf_counter() - t0

    found = {i for i, s in enumerate(spans) if any(sp.length == len(queries[i]) for sp in s)}
    missing = [i for i in planted if i not in found]
    assert not missing, f"planted generations not found: {missing[:5]}"
    print(f"corpus: {n_tokens:,} tokens in {len(docs):,} documents; {len(queries)} generations × {args.new_tokens} "
          f"tokens; {sum(bool(s) for s in spans)} with a span of ≥ {args.min_tokens} tokens "
          f"({len(planted)} planted)")
    print(f"generate {generate_s:.2f} s, index build {build_s:.2f} s, match {match_s:.3f} s")
    out = {"generate_s": generate_s, "build_s": build_s, "match_s": match_s,
           "match_vs_generate": match_s / generate_s, "build_vs_generate": build_s / generate_s}
    print(f"untargeted: match_vs_generate={out['match_vs_generate']:.4f} build_vs_generate={out['build_vs_generate']:.3f}")
    return out


if __name__ == "__main__":
    main()
