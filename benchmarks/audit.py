"""Audit benchmark: the full likelihood family (loss, zlib, min_k, min_k_pp, ref) on the same model
and texts, mnemoscope against a MIMIR-style loop.

    python -m benchmarks.audit [--texts 1000] [--repeats 1] [--model DIR --ref-model DIR] [--smoke]

- mnemoscope: ``families.membership.likelihood_scores`` — one batched pass of the target model feeds
  loss, zlib, min_k and min_k_pp, plus one batched pass of the reference model for ref;
- the loop, as public attack code is commonly structured: one attack at a time, one example at a
  time, each attack its own forward pass (ref: a target pass and a reference pass per example),
  and each attack computing only what it needs (the model's own loss for loss, zlib and ref; a
  float32 log-softmax for min_k; plus μ and σ for min_k_pp).
Default models: a fresh tiny lab model and a second one (another seed) with the same tokenizer.
The two must agree on every score (checked and printed). Each timing is the minimum over
repeats. The last line is:
    audit: speedup_vs_per_attack_loop=X
``--smoke`` runs every code path at the smallest size (micro models, 6 texts; the test suite runs
it); its figures mean nothing, but the agreement check still applies.
"""

from __future__ import annotations

import argparse
import math
import time
import zlib

import numpy as np
import torch

from benchmarks.engine import mixed_length_texts
from mnemoscope.engine import Engine, load_model
from mnemoscope.families.membership import likelihood_scores
from mnemoscope.lab.tiny import (
    build_model,
    count_parameters,
    get_preset,
    train_tokenizer,
)
from mnemoscope.probes.corpus import background_documents

ATTACKS = ("loss", "zlib", "min_k", "min_k_pp", "ref")


def _ids(tokenizer, text: str) -> torch.Tensor:
    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])


@torch.inference_mode()
def _loss(model, ids: torch.Tensor) -> float:
    """Mean NLL from the model's own cross-entropy (labels = inputs), as loss-based attacks do it."""
    return float(model(input_ids=ids, labels=ids).loss)


@torch.inference_mode()
def _logprobs(model, ids: torch.Tensor, with_moments: bool):
    """Per-token log p (and μ, σ of log p under the model when ``with_moments``)."""
    logp_all = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    logp = logp_all.gather(-1, ids[0, 1:, None]).squeeze(-1).double().numpy()
    if not with_moments:
        return logp, None, None
    p = logp_all.exp()
    mu = (p * logp_all).sum(-1)
    sigma = ((p * logp_all**2).sum(-1) - mu**2).clamp(min=0).sqrt()
    return logp, mu.double().numpy(), sigma.double().numpy()


def _lowest_mean(values: np.ndarray, k: float) -> float:
    count = max(1, math.ceil(round(k * len(values), 9)))
    return float(np.sort(values)[:count].mean())


def per_attack_loop(model, ref_model, tokenizer, texts: list[str], k: float = 0.2) -> dict[str, list[float]]:
    """One attack at a time, one text at a time, each attack its own forward pass(es), each
    computing only what it needs (loss, zlib, ref: the model's loss; min_k: log p; min_k_pp: log p, μ, σ)."""
    out: dict[str, list[float]] = {a: [] for a in ATTACKS}
    for attack in ATTACKS:
        for text in texts:
            ids = _ids(tokenizer, text)
            if attack == "loss":
                score = -_loss(model, ids)
            elif attack == "zlib":  # the text as given, as Carlini et al. and MIMIR compress it
                score = -_loss(model, ids) / len(zlib.compress(text.encode("utf-8")))
            elif attack == "min_k":
                score = _lowest_mean(_logprobs(model, ids, False)[0], k)
            elif attack == "min_k_pp":
                logp, mu, sigma = _logprobs(model, ids, True)
                score = _lowest_mean((logp - mu) / np.maximum(sigma, 1e-6), k)
            else:
                score = -(_loss(model, ids) - _loss(ref_model, ids))
            out[attack].append(float(score))
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a local target model directory (default: a fresh tiny lab model)")
    ap.add_argument("--ref-model", default=None, help="a local reference model sharing the target's tokenizer")
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--min-tokens", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--smoke", action="store_true", help="smallest size, for the test suite (figures mean nothing)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.texts, args.min_tokens, args.max_tokens, args.repeats = 6, 8, 16, 1

    torch.manual_seed(0)
    if args.model:
        loaded = load_model(args.model, device=args.device)
        model, tokenizer = loaded.model, loaded.tokenizer
        ref_model = load_model(args.ref_model or args.model, device=args.device).model
    else:
        size = "micro" if args.smoke else "tiny"
        tokenizer = train_tokenizer(background_documents(200 if args.smoke else 800, seed=0), get_preset(size).vocab)
        model = build_model(size, tokenizer, seed=0).to(args.device).eval()
        ref_model = build_model(size, tokenizer, seed=1).to(args.device).eval()
    texts = mixed_length_texts(tokenizer, args.texts, args.min_tokens, args.max_tokens)
    engine, ref_engine = Engine(model, tokenizer, bos="never"), Engine(ref_model, tokenizer, bos="never")
    print(f"model: {count_parameters(model) / 1e6:.2f} M parameters on {args.device}, "
          f"threads={torch.get_num_threads()}; {len(texts)} texts of {args.min_tokens}-{args.max_tokens} tokens; "
          f"attacks: {', '.join(ATTACKS)}")

    likelihood_scores(engine, texts[:8], ref_engine=ref_engine)  # warm-up
    per_attack_loop(model, ref_model, tokenizer, texts[:2])
    times = {"loop": [], "mnemoscope": []}
    for _ in range(args.repeats):
        t, loop = timed(lambda: per_attack_loop(model, ref_model, tokenizer, texts))
        times["loop"].append(t)
        t, frame = timed(lambda: likelihood_scores(engine, texts, ref_engine=ref_engine))
        times["mnemoscope"].append(t)
    diff = max(float(np.max(np.abs(frame[f"score/{a}"].to_numpy() - np.array(loop[a])))) for a in ATTACKS)
    if not diff < 1e-3:
        raise SystemExit(f"audit: mnemoscope and the per-attack loop disagree (largest difference {diff:.2e})")
    best = {k: min(v) for k, v in times.items()}
    print(f"  per-attack loop {best['loop']:8.2f} s ({len(ATTACKS) + 1} forward passes per text)")
    print(f"  mnemoscope      {best['mnemoscope']:8.2f} s (one batched pass per model)")
    print(f"  largest score difference: {diff:.2e}")
    print(f"audit: speedup_vs_per_attack_loop={best['loop'] / best['mnemoscope']:.2f}")


if __name__ == "__main__":
    main()
