"""The vLLM backend against the Hugging Face engine (runs where vllm is installed: `make test-vllm`).

Same tokens (shared encoding verbs), per-token log-probs within 1e-4 in float32, the full
distribution's μ/σ/argmax where the backend is opened for it, identical greedy continuations,
seeded sampling; and the refusals: an attack needing the distribution, a banned-token filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnemoscope.engine import Engine, Sampling, open_backend
from mnemoscope.engine.encoding import Encoder
from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.tiny import Preset, build_model

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip("vllm")

# vLLM's CPU attention needs head_dim in {32, 64, 80, 96, 112, 128}: 128 / 4 heads = 32.
WIDE = Preset(hidden=128, layers=2, heads=4, intermediate=256, vocab=600, context=128)
TEXTS = [f"the river {w} runs through the quiet town of {w} and on" * (1 + i % 3)
         for i, w in enumerate(["ash", "oak", "elm", "yew", "fir", "box", "bay", "may"])]
PROMPTS = ["the river runs", "a quiet town in the", "once upon", "and then", "the old road to"]


@pytest.fixture(scope="module")
def wide(tmp_path_factory, tokenizer):
    torch.manual_seed(0)
    model = build_model(WIDE, tokenizer, seed=0)
    with torch.no_grad():  # sharpen the near-uniform random init, as conftest does
        model.get_input_embeddings().weight.mul_(8.0)
    path = tmp_path_factory.mktemp("vllm") / "wide"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, Engine(model.eval(), tokenizer)


@pytest.fixture(scope="module")
def full(wide):
    backend = open_backend("vllm", str(wide[0]), device="cpu", dtype="float32", distribution=True, kv_cache_gib=0.25)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def lean(wide):
    backend = open_backend("vllm", str(wide[0]), device="cpu", dtype="float32", kv_cache_gib=0.25)
    yield backend
    backend.close()


def _close(a, b, atol=1e-4):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=atol, rtol=0)


def test_per_token_logprobs_and_distribution_match_the_hf_engine(wide, full, lean):
    _, hf = wide
    assert full.name == "vllm" and "distribution" in full.provides and full.max_length == hf.max_length
    pairs = [(t[:22], t[22:]) for t in TEXTS]
    for texts, pair in [(TEXTS, None), (None, pairs)]:
        ref = hf.score(texts, pairs=pair)
        for backend in (full, lean):
            got = backend.score(texts, pairs=pair)
            assert len(got) == len(ref)
            for a, b in zip(ref, got):
                np.testing.assert_array_equal(a.token_ids, b.token_ids)
                assert a.n_scored == b.n_scored and a.bos == b.bos
                _close(b.logprobs, a.logprobs)
        for a, b in zip(ref, full.score(texts, pairs=pair)):
            _close(b.mu, a.mu)
            _close(b.sigma, a.sigma)
            np.testing.assert_array_equal(b.argmax, a.argmax)
    # a BOS at position 0 (scored from token 1): the very items the HF engine encodes
    bos_items = [Encoder(hf.tokenizer, bos="always").encode_text(t) for t in TEXTS[:3]]
    for a, b in zip(hf.score_encoded(bos_items), full.score_encoded(bos_items)):
        assert b.bos and a.n_scored == b.n_scored
        _close(b.logprobs, a.logprobs)
        _close(b.mu, a.mu)


def test_attacks_and_a_family_measure_the_same_as_on_the_hf_engine(wide, full, lean):
    from mnemoscope.families.knowmem import knowmem
    from mnemoscope.metrics.membership import membership_scores

    _, hf = wide
    for a, b in zip(hf.score(TEXTS), full.score(TEXTS)):  # every likelihood attack, Min-K%++ included
        sa = membership_scores(a.logprobs, a.mu, a.sigma, hf.decode(a.token_ids), 0.2)
        sb = membership_scores(b.logprobs, b.mu, b.sigma, full.decode(b.token_ids), 0.2)
        for attack in sa:  # Min-K%++ divides by σ (small on this sharpened model): relative tolerance
            assert sb[attack] == pytest.approx(sa[attack], rel=1e-5, abs=1e-4), attack
    qa = [(f"what runs through {w}?", f"the river {w}") for w in ["ash", "oak", "elm", "yew", "fir"]]
    one, two = knowmem(hf, qa[1:], qa[:1], max_new_tokens=8), knowmem(lean, qa[1:], qa[:1], max_new_tokens=8)
    assert one.metrics == two.metrics and one.samples.equals(two.samples)


def test_greedy_continuations_are_identical(wide, lean):
    _, hf = wide
    for kwargs in (dict(max_new_tokens=12, min_new_tokens=12), dict(max_new_tokens=12)):
        ref = hf.generate(PROMPTS, **kwargs)
        got = lean.generate(PROMPTS, **kwargs)
        assert [c.token_ids for c in got] == [c.token_ids for c in ref]
        assert [c.text for c in got] == [c.text for c in ref]
        assert [c.prompt_tokens for c in got] == [c.prompt_tokens for c in ref]
    ids = [hf.encode_prompt(p) for p in PROMPTS]  # token-id prompts are used as given
    assert [c.token_ids for c in lean.generate(ids, max_new_tokens=5, min_new_tokens=5)] == \
        [c.token_ids for c in hf.generate(ids, max_new_tokens=5, min_new_tokens=5)]
    assert all(len(c.token_ids) == 12 for c in lean.generate(PROMPTS, max_new_tokens=12, min_new_tokens=12))


def test_sampling_is_seeded(lean):
    hot = dict(max_new_tokens=8, min_new_tokens=8)  # a hot temperature: the sharpened model is near-deterministic
    a = lean.generate(PROMPTS * 2, **hot, sampling=Sampling(temperature=2.0, seed=7))
    b = lean.generate(PROMPTS * 2, **hot, sampling=Sampling(temperature=2.0, seed=7))
    c = lean.generate(PROMPTS * 2, **hot, sampling=Sampling(temperature=2.0, seed=8))
    greedy = lean.generate(PROMPTS, max_new_tokens=8, min_new_tokens=8)
    top1 = lean.generate(PROMPTS, max_new_tokens=8, min_new_tokens=8, sampling=Sampling(top_k=1, seed=3))
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]
    assert [x.token_ids for x in top1] == [x.token_ids for x in greedy]
    with pytest.raises(MnemoscopeError, match="refuses these sampling settings: temperature"):
        lean.generate(PROMPTS, max_new_tokens=2, sampling=Sampling(temperature=4.0))


def test_what_the_backend_cannot_compute_is_refused_with_a_reason(lean):
    assert "distribution" not in lean.provides and "banned" not in lean.provides
    scores = lean.score(TEXTS[:2])
    assert scores[0].mu is None and scores[0].sigma is None and scores[0].argmax is None
    with pytest.raises(MnemoscopeError, match="min_k_pp needs 'distribution'.*vllm backend.*distribution=True") as err:
        lean.require("distribution", "min_k_pp")
    assert "\n" not in str(err.value)
    with pytest.raises(MnemoscopeError, match="entropy needs the 'distribution' capability"):
        scores[0].entropy
    with pytest.raises(MnemoscopeError, match="banned-token filter during generation needs .banned..*vllm backend"):
        lean.generate(PROMPTS, max_new_tokens=3, banned=lambda ids: [])
    with pytest.raises(MnemoscopeError, match="exceeds the context"):
        lean.generate(["word " * 120], max_new_tokens=64)
    lean.require("logprobs", "the loss attack")


def test_an_unsupported_head_size_on_a_cpu_is_a_one_line_error(saved_model_dir):
    # conftest's MICRO model: 64 wide, 4 heads → head_dim 16
    with pytest.raises(MnemoscopeError, match="attention heads of size 16, which vLLM's CPU attention does not serve") as err:
        open_backend("vllm", str(saved_model_dir), device="cpu")
    assert "\n" not in str(err.value)


def test_the_audit_on_vllm_writes_the_numbers_of_the_hf_path(wide, tmp_path):
    """`mnemoscope audit --backend vllm` on a model saved here, with and without
    --vllm-distribution: the same per-text scores and AUCs as the HF backend; without the
    distribution Min-K%++ is null with a note naming the switch, and everything else is there."""
    import json

    import pandas as pd

    from mnemoscope.cli import main

    members, nonmembers = tmp_path / "m.txt", tmp_path / "n.txt"
    members.write_text("\n".join(TEXTS[:4]) + "\n")
    nonmembers.write_text("\n".join(TEXTS[4:]) + "\n")
    runs, samples, notes = {}, {}, {}
    options = {"hf": [], "vllm": ["--backend", "vllm", "--vllm-distribution"], "vllm-lean": ["--backend", "vllm"]}
    for name, extra in options.items():
        out = tmp_path / name
        assert main(["audit", "--model", str(wide[0]), "--members", str(members), "--nonmembers", str(nonmembers),
                     "--out", str(out), "--device", "cpu", "--dtype", "float32", "--no-extraction", "--n-boot", "50",
                     *extra]) == 0
        runs[name] = json.loads((out / "metrics.json").read_text())
        notes[name] = json.loads((out / "notes.json").read_text())
        samples[name] = pd.read_parquet(out / "samples.parquet")
    for attack in ("loss", "zlib", "min_k", "min_k_pp"):
        assert runs["vllm"][f"mia/{attack}/auc"] == pytest.approx(runs["hf"][f"mia/{attack}/auc"], abs=1e-9), attack
        np.testing.assert_allclose(samples["vllm"][f"score/{attack}"], samples["hf"][f"score/{attack}"],
                                   rtol=1e-5, atol=1e-4, err_msg=attack)
    for attack in ("loss", "zlib", "min_k"):  # without the distribution: the same numbers
        assert runs["vllm-lean"][f"mia/{attack}/auc"] == pytest.approx(runs["hf"][f"mia/{attack}/auc"], abs=1e-9)
        np.testing.assert_allclose(samples["vllm-lean"][f"score/{attack}"], samples["hf"][f"score/{attack}"],
                                   rtol=1e-5, atol=1e-4, err_msg=attack)
    assert runs["vllm-lean"]["mia/min_k_pp/auc"] is None and "score/min_k_pp" not in samples["vllm-lean"]
    assert "--vllm-distribution" in notes["vllm-lean"]["mia/min_k_pp/auc"]
