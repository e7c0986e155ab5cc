"""Backend benchmark: the HF engine, the vLLM backend and lm-evaluation-harness's HF loglikelihood
path on the same model and texts, in one process.

    python -m benchmarks.scale --mode cpu   # float32, a 29.6 M-parameter Llama (head_dim 64), CPU targets
    python -m benchmarks.scale --mode gpu   # bfloat16, a 494 M-parameter model shaped like Qwen2.5-0.5B

The model is built locally with random weights (``--mode gpu``: the published Qwen2.5-0.5B
architecture — 24 layers, width 896, 14 query / 2 key-value heads, MLP 4864, vocabulary 151,936)
and saved once so vLLM can load it; texts come from the local corpus, tokenized by a locally
trained tokenizer (the model's vocabulary may be larger than the tokenizer's). Measured:

- scoring: ``HFEngine.score`` (log p, μ, σ, argmax of every token) against ``VLLMBackend.score``
  (log p from prompt log-probs) and lm-eval's ``HFLM.loglikelihood`` on (context, continuation)
  pairs; the numbers must agree (max per-token difference vLLM vs HF; max per-pair difference
  of summed log-probs lm-eval vs HF);
- greedy generation with forced length (``min_new_tokens = max_new_tokens``), HF against vLLM
  (continuations must be identical token for token);
- throughput (tokens/s) and model-FLOPs utilisation (MFU = model FLOPs / time / peak FLOP/s;
  the peak is looked up for known GPUs or given with ``--peak-tflops``; FLOPs by
  :func:`forward_flops`).
Each timing is the minimum over ``--repeats``, backends interleaved. Sections whose package is
missing (vllm, lm_eval) are skipped with a line saying so. The last line is:
    scale: vllm_score_vs_hf=X vllm_generate_vs_hf=Y hf_vs_lmeval=Z max_logprob_diff=D greedy_identical=K/N
(hf_vs_lmeval: lm-eval's time over the HF engine's on the same pairs.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

# Dense bf16 peak, TFLOP/s (vendor data sheets; SXM parts).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0,
                    "RTX 4090": 165.0}

# Qwen2.5-0.5B's published architecture (config.json of Qwen/Qwen2.5-0.5B).
QWEN25_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6,
                  rms_norm_eps=1e-6, tie_word_embeddings=True)
# The CPU target model: ≥ 20 M parameters, head_dim 64 (vLLM's CPU attention needs ≥ 32).
CPU_MODEL = dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=8, num_attention_heads=8,
                 num_key_value_heads=8, max_position_embeddings=1024, rms_norm_eps=1e-5, tie_word_embeddings=True)
# Smoke-test size (head_dim 32).
TINY_MODEL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=True)
SIZES = {"gpu": ("qwen2", QWEN25_05B), "cpu": ("llama", CPU_MODEL), "tiny": ("llama", TINY_MODEL)}


def model_config(size: str, tokenizer):
    """A transformers config of ``size`` (gpu | cpu | tiny) matched to the tokenizer's special ids."""
    from transformers import LlamaConfig, Qwen2Config

    arch, fields = SIZES[size]
    fields = dict(fields)
    fields.setdefault("vocab_size", len(tokenizer))
    cls = Qwen2Config if arch == "qwen2" else LlamaConfig
    return cls(**fields, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)


def count_config_parameters(config) -> int:
    """Parameters of the model ``config`` describes, counted on the meta device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def forward_flops(config, lengths, scored=None) -> float:
    """Model FLOPs of teacher-forced passes over texts of ``lengths`` tokens (2 FLOPs per
    multiply-add; the standard decoder count, ignoring norms and softmax):

        per text of L tokens:  2·L·P_block·n_layer  +  2·S·V·d  +  2·n_layer·L²·d_q
        P_block = d·(d_q + 2·d_kv) + d_q·d + 3·d·d_ff     (attention projections + gated MLP)
        d_q = n_heads·head_dim, d_kv = n_kv_heads·head_dim, S = scored positions (default L − 1)

    The last term is causal attention: position i attends to i keys, Σ_i 4·i·d_q ≈ 2·L²·d_q
    (scores plus weighted sum), summed over layers."""
    d, layers = config.hidden_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or d // config.num_attention_heads
    d_q, d_kv = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    block = d * (d_q + 2 * d_kv) + d_q * d + 3 * d * config.intermediate_size
    total = 0.0
    for i, n in enumerate(lengths):
        s = (n - 1) if scored is None else scored[i]
        total += 2.0 * n * block * layers + 2.0 * s * config.vocab_size * d + 2.0 * layers * n * n * d_q
    return total


def generate_flops(config, prompt_lengths, new_tokens: int) -> float:
    """Prefill of each prompt (head on its last position only) plus ``new_tokens`` decode steps,
    step j attending to P + j keys: FLOPs as in :func:`forward_flops`."""
    d, layers = config.hidden_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or d // config.num_attention_heads
    d_q = config.num_attention_heads * head_dim
    total = forward_flops(config, prompt_lengths, scored=[1] * len(prompt_lengths))
    per_token = forward_flops(config, [1], scored=[1])  # weights + head for one token, no attention
    for p in prompt_lengths:
        for j in range(1, new_tokens):
            total += per_token + 4.0 * layers * (p + j) * d_q
    return total


def peak_flops(device: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name()
        for key, tflops in PEAK_BF16_TFLOPS.items():
            if key in name:
                return tflops * 1e12
    return None


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def lm_eval_loglikelihood(model, tokenizer, pairs, batch_size: int, device: str):
    """lm-evaluation-harness's HF path: ``HFLM.loglikelihood`` on (context, continuation) requests.
    Returns a callable running it (None when lm_eval is not installed)."""
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        return None
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device, add_bos_token=False,
              logits_cache=False)
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(c, t), idx=i) for i, (c, t) in enumerate(pairs)]
    return lambda: [r[0] for r in lm.loglikelihood(requests, disable_tqdm=True)]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--size", choices=tuple(SIZES), default=None, help="model size (default: the mode's)")
    ap.add_argument("--texts", type=int, default=None, help="texts to score (default: 1000 cpu, 4000 gpu)")
    ap.add_argument("--min-tokens", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=None, help="default: 128 cpu, 512 gpu")
    ap.add_argument("--prompts", type=int, default=None, help="default: 64 cpu, 256 gpu")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for every backend (cpu; default: all cores)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: vllm, lmeval")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak FLOP/s of the device, for MFU")
    ap.add_argument("--kv-cache-gib", type=float, default=2.0, help="vLLM KV cache on a CPU")
    ap.add_argument("--smoke", action="store_true", help="the smallest size (the test suite runs it); "
                    "vLLM and lm-eval where installed")
    args = ap.parse_args(argv)
    if args.smoke:
        import importlib.util

        args.size, args.texts, args.prompts, args.new_tokens, args.max_tokens = "tiny", 6, 2, 3, 40
        args.repeats, args.threads, args.kv_cache_gib = 1, 1, 0.25
        args.skip = ",".join(name for name, module in (("vllm", "vllm"), ("lmeval", "lm_eval"))
                             if importlib.util.find_spec(module) is None)
    gpu = args.mode == "gpu"
    size = args.size or args.mode
    n_texts = args.texts or (4000 if gpu else 1000)
    max_tokens = args.max_tokens or (512 if gpu else 128)
    n_prompts = args.prompts or (256 if gpu else 64)
    skip = set(filter(None, args.skip.split(",")))
    threads = args.threads or len(os.sched_getaffinity(0))
    # Before torch loads: vLLM keeps an externally set OMP_NUM_THREADS (else it drops the
    # process to one torch thread), so every backend here runs on the same threads.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")

    import torch

    from benchmarks.engine import mixed_length_texts
    from mnemoscope.engine import Engine
    from mnemoscope.lab.tiny import train_tokenizer
    from mnemoscope.probes.corpus import background_documents

    device = "cuda" if gpu else "cpu"
    dtype = torch.bfloat16 if gpu else torch.float32
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tokenizer = train_tokenizer(background_documents(600 if size == "tiny" else 1500, seed=0),
                                1024 if size == "tiny" else 8192)
    config = model_config(size, tokenizer)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config, dtype=dtype).to(device).eval()
    n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    texts = mixed_length_texts(tokenizer, n_texts, args.min_tokens, max_tokens)
    prompts = mixed_length_texts(tokenizer, n_prompts, 8, 48, seed=1)
    # Split at a word boundary: lm-eval feeds context_enc + continuation_enc (each part encoded on
    # its own) where the engine feeds the whole text's encoding, so a split inside a word would
    # give the two different inputs and different numbers.
    pairs = [(t[: t.rfind(" ", 1, len(t) // 2 + 1)], t[t.rfind(" ", 1, len(t) // 2 + 1):])
             if t.rfind(" ", 1, len(t) // 2 + 1) > 0 else (t[: len(t) // 2], t[len(t) // 2:]) for t in texts]
    hf = Engine(model, tokenizer)
    lengths = [len(hf.encode_text(t).ids) for t in texts]
    prompt_lengths = [len(hf.encode_prompt(p)) for p in prompts]
    flops = {"score": forward_flops(config, lengths), "generate": generate_flops(config, prompt_lengths, args.new_tokens)}
    peak = peak_flops(device, args.peak_tflops)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    print(f"model: {type(config).__name__[:-6]} {n_params / 1e6:.1f} M parameters, head_dim {head_dim}, "
          f"{str(dtype)[6:]} on {device}, threads={torch.get_num_threads()}; {n_texts} texts of "
          f"{args.min_tokens}-{max_tokens} tokens ({sum(lengths)} tokens), {n_prompts} prompts × {args.new_tokens} new")

    runs = {"hf_score": lambda: hf.score(texts), "hf_pairs": lambda: hf.score(pairs=pairs),
            "hf_generate": lambda: hf.generate(prompts, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)}
    notes, vllm_backend = [], None
    if "vllm" not in skip:
        try:
            import vllm  # noqa: F401
        except ImportError:
            notes.append("vllm: skipped (not installed: pip install 'mnemoscope[vllm]')")
        else:
            from mnemoscope.engine.vllm import VLLMBackend

            workdir = tempfile.mkdtemp(prefix="mnemoscope-bench-")
            model.save_pretrained(workdir)
            tokenizer.save_pretrained(workdir)
            start = time.perf_counter()
            vllm_backend = VLLMBackend(workdir, device=device, dtype=str(dtype)[6:], kv_cache_gib=args.kv_cache_gib)
            torch.set_num_threads(threads)  # vLLM may have changed it for the process
            print(f"  vllm start-up {time.perf_counter() - start:.1f} s")
            vllm_backend.score(texts[:4])  # warm-up (the first calls build kernels and buffers)
            vllm_backend.generate(prompts[:2], max_new_tokens=2)
            runs["vllm_score"] = lambda: vllm_backend.score(texts)
            runs["vllm_generate"] = lambda: vllm_backend.generate(prompts, max_new_tokens=args.new_tokens,
                                                                  min_new_tokens=args.new_tokens)
    if "lmeval" not in skip:
        run = lm_eval_loglikelihood(model, tokenizer, pairs, batch_size=64 if gpu else 16, device=device)
        if run is None:
            notes.append("lm-eval: skipped (not installed: pip install 'mnemoscope[lm-eval]')")
        else:
            lm_eval_loglikelihood(model, tokenizer, pairs[:4], batch_size=4, device=device)()  # warm-up
            runs["lmeval_pairs"] = run

    hf.score(texts[:4])  # warm-up
    hf.generate(prompts[:2], max_new_tokens=2)
    best: dict[str, float] = {}
    results: dict[str, object] = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            torch.set_num_threads(threads)
            seconds, results[name] = timed(fn)
            best[name] = min(best.get(name, float("inf")), seconds)
    if gpu:
        torch.cuda.synchronize()

    tokens = {"score": sum(lengths), "generate": n_prompts * args.new_tokens}
    for name, seconds in best.items():
        kind = "generate" if "generate" in name else "score"
        line = f"  {name:<14} {seconds:8.3f} s  {tokens[kind] / seconds:10.0f} tok/s"
        if "pairs" not in name:
            achieved = flops[kind] / seconds
            line += f"  {achieved / 1e9:8.1f} GFLOP/s"
            if peak:
                line += f"  MFU {100 * achieved / peak:5.1f}%"
        print(line)
    out: dict[str, float | str | None] = {"params": n_params, "hf_score_s": best["hf_score"]}
    ref = results["hf_score"]
    max_diff = identical = None
    if "vllm_score" in results:
        max_diff = max(float(np.max(np.abs(a.logprobs.astype(np.float64) - b.logprobs))) for a, b in
                       zip(ref, results["vllm_score"]))
        same_tokens = all(np.array_equal(a.token_ids, b.token_ids) for a, b in zip(ref, results["vllm_score"]))
        greedy = [c.token_ids for c in results["hf_generate"]], [c.token_ids for c in results["vllm_generate"]]
        identical = sum(a == b for a, b in zip(*greedy))
        out.update(vllm_score_vs_hf=best["hf_score"] / best["vllm_score"],
                   vllm_generate_vs_hf=best["hf_generate"] / best["vllm_generate"], max_logprob_diff=max_diff,
                   greedy_identical=identical, same_tokens=same_tokens)
        print(f"  vllm vs hf: same scored tokens {same_tokens}, max per-token |Δ log p| {max_diff:.2e}, "
              f"greedy identical {identical}/{n_prompts}")
    if "lmeval_pairs" in results:
        sums = [float(s.logprobs.astype(np.float64).sum()) for s in results["hf_pairs"]]
        lm_diff = max(abs(a - b) for a, b in zip(sums, results["lmeval_pairs"]))
        out.update(hf_vs_lmeval=best["lmeval_pairs"] / best["hf_pairs"], lmeval_max_sum_diff=lm_diff)
        print(f"  lm-eval vs hf (pairs): max |Δ Σ log p| {lm_diff:.2e} over {n_texts} pairs")
    for note in notes:
        print(f"  {note}")
    if vllm_backend is not None:
        vllm_backend.close()
        shutil.rmtree(workdir, ignore_errors=True)

    def fmt(key):
        value = out.get(key)
        return "na" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))

    print(f"scale: vllm_score_vs_hf={fmt('vllm_score_vs_hf')} vllm_generate_vs_hf={fmt('vllm_generate_vs_hf')} "
          f"hf_vs_lmeval={fmt('hf_vs_lmeval')} max_logprob_diff="
          f"{'na' if max_diff is None else f'{max_diff:.1e}'} greedy_identical="
          f"{'na' if identical is None else f'{identical}/{n_prompts}'}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
