"""Cost of reading and steering the residual stream: time ratios against baselines run in the same
process, on the same model, texts and batches.

    python -m benchmarks.mechanisms [--model DIR] [--texts 128] [--repeats 3]

- capture: ``Engine.activations`` at every layer (embeddings and each block, ``mean`` position rule,
  so no early stop) against a bare forward pass of the model body over the very same length-sorted,
  right-padded batches (what capture runs, minus the hooks and reductions), and against a bare
  forward of the whole model (body + output head, as ``benchmarks.engine`` times it);
- steered generation: ``Engine.generate`` (batched, forced length) inside
  ``steer(Add(middle layer, r̂, α, start=-1))`` against the same call unsteered.
Each timing is the minimum over repeats, the calls interleaved in alternating order. The last line is:
    mechanisms: capture_over_body_forward=X capture_over_forward=Y steered_over_plain_generate=Z
(time ratios: lower is cheaper; targets ≤ 1.15 for capture, ≤ 1.10 for steering).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mnemoscope.engine import Engine, load_model
from mnemoscope.engine.steering import Add
from mnemoscope.lab.tiny import build_model, count_parameters, train_tokenizer
from mnemoscope.probes.corpus import background_documents

from .engine import bare_forward, mixed_length_texts


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a local model directory (default: a fresh lab model)")
    ap.add_argument("--size", default="tiny", help="lab model size preset when --model is not given")
    ap.add_argument("--texts", type=int, default=128)
    ap.add_argument("--min-tokens", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--smoke", action="store_true", help="the smallest size (the test suite runs it)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.size, args.texts, args.prompts, args.new_tokens, args.repeats = "micro", 6, 3, 2, 1
        args.min_tokens, args.max_tokens = 4, 12

    torch.manual_seed(0)
    if args.model:
        loaded = load_model(args.model, device=args.device)
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        vocab = 8192 if args.size != "micro" else 1024
        tokenizer = train_tokenizer(background_documents(1500 if args.size != "micro" else 200, seed=0), vocab)
        model = build_model(args.size, tokenizer).to(args.device).eval()
    engine = Engine(model, tokenizer)
    texts = mixed_length_texts(tokenizer, args.texts, args.min_tokens, args.max_tokens)
    prompts = mixed_length_texts(tokenizer, args.prompts, 8, 48, seed=1)
    body = model.base_model
    layer = engine.n_layers // 2
    r = np.random.default_rng(0).standard_normal(engine.hidden_size)
    alpha = float(np.linalg.norm(engine.activations(prompts[:8], layers=[layer]).at(layer), axis=1).mean())
    print(f"model: {count_parameters(model) / 1e6:.2f} M parameters, {engine.n_layers} layers on {args.device}, "
          f"threads={torch.get_num_threads()}; {len(texts)} texts of {args.min_tokens}-{args.max_tokens} tokens; "
          f"{len(prompts)} prompts × {args.new_tokens} new tokens, steering layer {layer} with α = {alpha:.2f}")

    gen = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens}
    engine.activations(texts[:4])  # warm-up (and the engine's one-off body/head check)
    t = {"body_forward": [], "forward": [], "capture": [], "generate": [], "steered_generate": []}
    def steered():
        with engine.steer(Add(layer, r, alpha, start=-1)):
            engine.generate(prompts, **gen)

    runs = {"body_forward": lambda: bare_forward(body, engine, texts),
            "capture": lambda: engine.activations(texts, position="mean"),
            "forward": lambda: bare_forward(model, engine, texts),
            "generate": lambda: engine.generate(prompts, **gen),
            "steered_generate": steered}
    for i in range(args.repeats):
        # alternate the order (ABC…, …CBA) so no call always runs right after the same one
        for name in (list(runs) if i % 2 == 0 else list(runs)[::-1]):
            t[name].append(timed(runs[name]))
    best = {k: min(v) for k, v in t.items()}
    for k, v in best.items():
        print(f"  {k:<18} {v:8.3f} s (min of {args.repeats})")
    ratios = {"capture_over_body_forward": best["capture"] / best["body_forward"],
              "capture_over_forward": best["capture"] / best["forward"],
              "steered_over_plain_generate": best["steered_generate"] / best["generate"]}
    print("mechanisms: " + " ".join(f"{k}={v:.3f}" for k, v in ratios.items()))
    return ratios


if __name__ == "__main__":
    main()
