"""Smoke tests of benchmarks/scale.py and benchmarks/workers.py at tiny sizes (the vLLM and
lm-eval columns run where those packages are installed: `make test-vllm`), and the FLOPs count."""

from __future__ import annotations

import pytest

from benchmarks import scale


def test_forward_flops_by_hand():
    from transformers import LlamaConfig

    cfg = LlamaConfig(hidden_size=4, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, vocab_size=10)
    # block = 4·(4 + 2·4) + 4·4 + 3·4·8 = 160; a text of 3 tokens, 2 scored:
    # 2·3·160 + 2·2·10·4 + 2·1·3²·4 = 960 + 160 + 72
    assert scale.forward_flops(cfg, [3]) == 1192
    assert scale.forward_flops(cfg, [3, 3]) == 2 * 1192
    # generation: prefill (head on 1 position) + 2 decode steps attending to 4 and 5 keys
    prefill = 960 + 2 * 1 * 10 * 4 + 72
    step = 2 * 160 + 2 * 10 * 4 + 2 * 1 * 4  # one token's weights + head (+ its own 1-key attention term)
    assert scale.generate_flops(cfg, [3], 3) == prefill + (step + 4 * 4 * 4) + (step + 4 * 5 * 4)


def test_the_gpu_model_is_a_real_architecture_of_at_least_400m_parameters(tokenizer):
    config = scale.model_config("gpu", tokenizer)
    assert type(config).__name__ == "Qwen2Config" and config.vocab_size == 151936
    assert config.hidden_size // config.num_attention_heads == 64
    assert scale.count_config_parameters(config) >= 400e6
    cpu = scale.model_config("cpu", tokenizer)
    assert scale.count_config_parameters(cpu) >= 20e6 and cpu.hidden_size // cpu.num_attention_heads >= 32


TINY = ["--size", "tiny", "--texts", "6", "--prompts", "2", "--new-tokens", "3", "--max-tokens", "40",
        "--repeats", "1", "--threads", "1"]


@pytest.mark.vllm
def test_scale_benchmark_smoke_with_vllm_and_lm_eval():
    pytest.importorskip("vllm")
    pytest.importorskip("lm_eval")
    out = scale.main(TINY + ["--kv-cache-gib", "0.25"])
    assert out["same_tokens"] and out["greedy_identical"] == 2
    assert out["max_logprob_diff"] < 1e-4 and out["lmeval_max_sum_diff"] < 1e-3
    assert out["vllm_score_vs_hf"] > 0 and out["hf_vs_lmeval"] > 0
