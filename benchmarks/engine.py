"""Engine benchmark: ratios against baselines run in the same process.

    python -m benchmarks.engine [--model DIR] [--texts 128] [--repeats 3] [--smoke]

- score vs (a) a per-example loop as MIMIR does it (one text per forward pass with labels, full
  log-softmax and softmax, target log-probs read token by token; the same statistics), also shown
  against a waste-free per-example loop, and (b) a bare batched forward pass over the same
  length-sorted batches with no log-prob work at all;
- generate (64 prompts × 32 new tokens, batched) vs batch-1 greedy generation.
Each timing is the minimum over repeats, baselines and engine interleaved. The last line is:
    engine: score_vs_per_example=X score_vs_bare_forward=Y generate_vs_batch1=Z
``--smoke`` runs every code path at the smallest size (a micro model, 4 texts, 2 prompts; the
test suite runs it); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from mnemoscope.engine import Engine, load_model
from mnemoscope.lab.tiny import (
    build_model,
    count_parameters,
    get_preset,
    train_tokenizer,
)
from mnemoscope.probes.corpus import background_documents


def mixed_length_texts(tokenizer, n: int, lo: int, hi: int, seed: int = 0) -> list[str]:
    """n texts whose token lengths spread uniformly over [lo, hi]."""
    rng = random.Random(seed)
    stream = tokenizer(" ".join(background_documents(400, seed=seed + 7)), add_special_tokens=False)["input_ids"]
    texts = []
    for _ in range(n):
        length = rng.randint(lo, hi)
        start = rng.randint(0, len(stream) - length - 1)
        texts.append(tokenizer.decode(stream[start : start + length]))
    return texts


@torch.no_grad()
def per_example_loop(model, tokenizer, texts):
    """The pattern of MIMIR's ``get_probabilities`` + Min-K%++ (re-implemented, not copied): one
    text per forward pass with ``labels`` (so the model also computes its loss), a full
    log-softmax and softmax over every position, and target log-probs read token by token."""
    out = []
    for text in texts:
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        logits = model(input_ids=ids, labels=ids).logits[0, :-1].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        probs = torch.softmax(logits, dim=-1)
        targets = [log_probs[i, t].item() for i, t in enumerate(ids[0, 1:].tolist())]
        mu = (probs * log_probs).sum(-1)
        sigma = ((probs * log_probs.square()).sum(-1) - mu.square()).clamp(min=0).sqrt()
        out.append((targets, mu, sigma))
    return out


@torch.inference_mode()
def tight_per_example_loop(model, tokenizer, texts):
    """A per-example loop with no waste: no loss, one log-softmax, vectorised gathers."""
    out = []
    for text in texts:
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        logits = model(input_ids=ids).logits[0, :-1].float()
        logp_all = torch.log_softmax(logits, dim=-1)
        logp = logp_all.gather(-1, ids[0, 1:, None]).squeeze(-1)
        p = logp_all.exp()
        mu = (p * logp_all).sum(-1)
        sigma = ((p * logp_all**2).sum(-1) - mu**2).clamp(min=0).sqrt()
        out.append((logp, mu, sigma))
    return out


@torch.inference_mode()
def bare_forward(module, engine: Engine, texts) -> None:
    """Forward passes only, over the very batches the engine would use (same order, token budget,
    right padding). ``module`` is the model, or its body without the head."""
    items = [engine.encode_text(t) for t in texts]
    order = sorted(range(len(items)), key=lambda i: -len(items[i].ids))
    pad = engine.tokenizer.pad_token_id
    pos = 0
    while pos < len(order):
        longest = len(items[order[pos]].ids)
        n = max(1, min(engine.max_batch_size, engine.max_tokens // longest))
        batch = [items[i] for i in order[pos : pos + n]]
        ids = torch.full((len(batch), longest), pad)
        for b, it in enumerate(batch):
            ids[b, : len(it.ids)] = torch.tensor(it.ids)
        module(input_ids=ids.to(engine.device))  # causal: right padding leaves real positions exact
        pos += n


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a local model directory (default: a fresh tiny lab model)")
    ap.add_argument("--texts", type=int, default=128)
    ap.add_argument("--min-tokens", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--smoke", action="store_true", help="smallest size, for the test suite (figures mean nothing)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.texts, args.min_tokens, args.max_tokens, args.prompts, args.new_tokens, args.repeats = 4, 8, 16, 2, 2, 1

    torch.manual_seed(0)
    if args.model:
        loaded = load_model(args.model, device=args.device)
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        size = "micro" if args.smoke else "tiny"
        tokenizer = train_tokenizer(background_documents(200 if args.smoke else 1500, seed=0), get_preset(size).vocab)
        model = build_model(size, tokenizer).to(args.device).eval()
    texts = mixed_length_texts(tokenizer, args.texts, args.min_tokens, args.max_tokens)
    engine = Engine(model, tokenizer)
    prompts = mixed_length_texts(tokenizer, args.prompts, 8, 48, seed=1)
    single = Engine(model, tokenizer, max_batch_size=1)
    print(f"model: {count_parameters(model) / 1e6:.2f} M parameters on {args.device}, "
          f"threads={torch.get_num_threads()}; {len(texts)} texts of {args.min_tokens}-{args.max_tokens} tokens")

    engine.score(texts[:4])  # warm-up
    t = {"per_example": [], "tight_per_example": [], "bare": [], "score": [], "gen_batched": [], "gen_batch1": []}
    for _ in range(args.repeats):
        t["per_example"].append(timed(lambda: per_example_loop(model, tokenizer, texts)))
        t["tight_per_example"].append(timed(lambda: tight_per_example_loop(model, tokenizer, texts)))
        t["bare"].append(timed(lambda: bare_forward(model, engine, texts)))
        t["score"].append(timed(lambda: engine.score(texts)))
        gen = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
        t["gen_batched"].append(timed(lambda: engine.generate(prompts, **gen)))
        t["gen_batch1"].append(timed(lambda: single.generate(prompts, **gen)))
    best = {k: min(v) for k, v in t.items()}
    for k, v in best.items():
        print(f"  {k:<18} {v:8.3f} s (min of {args.repeats})")
    print(f"  score vs a waste-free per-example loop: {best['tight_per_example'] / best['score']:.2f}")
    print(
        f"engine: score_vs_per_example={best['per_example'] / best['score']:.2f} "
        f"score_vs_bare_forward={best['bare'] / best['score']:.2f} "
        f"generate_vs_batch1={best['gen_batch1'] / best['gen_batched']:.2f}"
    )


if __name__ == "__main__":
    main()
