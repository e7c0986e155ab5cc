"""Workers benchmark: one heavy scoring job on N workers against one worker, one torch thread each.

    python -m benchmarks.workers [--workers 2] [--texts 600] [--backend hf|vllm] [--executor processes|ray]

Both sides are ``ShardedBackend`` pools opened from the same spec (a fresh 27 M-parameter lab
model saved to a temporary directory, or ``--model DIR``), so they pay the same per-call costs
(items pickled to the workers and back); start-up (each worker loads the model) is timed apart
and not counted. The results must agree (largest per-token difference printed). Each timing is
the minimum over ``--repeats``, the two pools interleaved. Then the machine's own ceiling is
measured: N copies of a fixed one-thread matrix job at once against one alone (N on a quiet
machine; less when other jobs share the cores). The last line is:
    workers: n_vs_one=X ceiling=C max_logprob_diff=D
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time

import numpy as np


def _burn(seconds_hint: float) -> float:
    """A fixed amount of one-thread matrix work; returns its wall time."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(384, 384)
    start = time.perf_counter()
    for _ in range(int(400 * seconds_hint)):
        a = torch.tanh(a @ a)
    return time.perf_counter() - start


def parallel_ceiling(workers: int, seconds: float = 1.0) -> float:
    """What this machine gives ``workers`` one-thread processes right now: the time of one fixed
    job alone over the time of ``workers`` copies run at once (workers on idle cores: ≈ workers;
    cores shared with other jobs: less). Read the benchmark's ratio against it."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(_burn, [0.05] * workers)  # import torch in each process first
        one = min(pool.apply(_burn, (seconds,)) for _ in range(2))
        start = time.perf_counter()
        pool.map(_burn, [seconds] * workers)
        together = time.perf_counter() - start
    return workers * one / together


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--texts", type=int, default=600)
    ap.add_argument("--min-tokens", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    ap.add_argument("--executor", choices=("processes", "ray"), default="processes")
    ap.add_argument("--model", default=None, help="a saved model directory (default: a fresh lab model)")
    ap.add_argument("--size", choices=("cpu", "tiny"), default="cpu", help="size of the fresh model")
    ap.add_argument("--smoke", action="store_true", help="the smallest size (the test suite runs it)")
    args = ap.parse_args(argv)
    ceiling_seconds = 1.0
    if args.smoke:
        args.size, args.texts, args.min_tokens, args.max_tokens, args.repeats = "tiny", 8, 16, 48, 1
        ceiling_seconds = 0.05

    import torch

    from benchmarks.engine import mixed_length_texts
    from benchmarks.scale import model_config
    from mnemoscope.engine.factory import BackendSpec
    from mnemoscope.engine.loading import load_tokenizer
    from mnemoscope.engine.workers import ShardedBackend
    from mnemoscope.lab.tiny import train_tokenizer
    from mnemoscope.probes.corpus import background_documents

    torch.manual_seed(0)
    if args.model:
        path = args.model
        tokenizer = load_tokenizer(path)
    else:
        from transformers import AutoModelForCausalLM

        tokenizer = train_tokenizer(background_documents(600 if args.size == "tiny" else 1500, seed=0),
                                    1024 if args.size == "tiny" else 8192)
        model = AutoModelForCausalLM.from_config(model_config(args.size, tokenizer))
        path = tempfile.mkdtemp(prefix="mnemoscope-workers-")
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        del model
    texts = mixed_length_texts(tokenizer, args.texts, args.min_tokens, args.max_tokens)
    options = {"kv_cache_gib": 0.5} if args.backend == "vllm" else {}
    spec = BackendSpec(args.backend, path, device="cpu", dtype="float32", options=options)
    pools, startup = {}, {}
    for n in (1, args.workers):
        start = time.perf_counter()
        pools[n] = ShardedBackend(spec, n, executor=args.executor, threads=1)
        startup[n] = time.perf_counter() - start
        pools[n].score(texts[:8])  # warm-up
    n_tokens = sum(len(pools[1].encode_text(t).ids) for t in texts)
    print(f"model: {path} ({args.backend}, {args.executor}); {len(texts)} texts of {args.min_tokens}-{args.max_tokens} "
          f"tokens ({n_tokens} tokens); one torch thread per worker; start-up "
          + ", ".join(f"{n} worker(s) {s:.1f} s" for n, s in startup.items()))
    best, results = {}, {}
    for _ in range(args.repeats):
        for n, pool in pools.items():
            start = time.perf_counter()
            results[n] = pool.score(texts)
            best[n] = min(best.get(n, float("inf")), time.perf_counter() - start)
    for pool in pools.values():
        pool.close()
    if not args.model:
        shutil.rmtree(path, ignore_errors=True)
    diff = max(float(np.max(np.abs(a.logprobs.astype(np.float64) - b.logprobs)))
               for a, b in zip(results[1], results[args.workers]))
    for n, seconds in best.items():
        print(f"  {n} worker(s) {seconds:8.3f} s  {n_tokens / seconds:9.0f} tok/s")
    ratio = best[1] / best[args.workers]
    ceiling = parallel_ceiling(args.workers, ceiling_seconds)
    print(f"  machine ceiling: {args.workers} one-thread processes do {ceiling:.2f}× the work of one right now")
    print(f"workers: n_vs_one={ratio:.2f} ceiling={ceiling:.2f} max_logprob_diff={diff:.1e}")
    return {"n_vs_one": ratio, "ceiling": ceiling, "max_logprob_diff": diff, "startup": startup, "seconds": best}


if __name__ == "__main__":
    main(sys.argv[1:])
