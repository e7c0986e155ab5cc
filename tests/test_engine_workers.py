"""Data-parallel measurement: sharding, two worker processes against one engine, bad input,
and a worker that dies mid-call."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnemoscope.engine import BackendSpec, Engine, open_backend
from mnemoscope.engine.workers import (
    ShardedBackend,
    assign_devices,
    shard,
    usable_cores,
)
from mnemoscope.errors import MnemoscopeError

from .helpers import DyingSpec

TEXTS = [f"the river {w} runs through the quiet town of {w} and on" * (1 + i % 3)
         for i, w in enumerate(["ash", "oak", "elm", "yew", "fir", "box", "bay", "may", "rue"])]
PROMPTS = ["the river runs", "a quiet town in the", "once upon", "and then", "the old road to"]


@given(st.lists(st.integers(1, 500), max_size=60), st.integers(1, 5))
def test_shards_partition_the_items_and_balance_their_cost(costs, parts):
    shards = shard(costs, parts)
    assert len(shards) == parts
    assert sorted(i for s in shards for i in s) == list(range(len(costs)))
    assert all(s == sorted(s) for s in shards)
    loads = [sum(costs[i] for i in s) for s in shards]
    if costs:  # greedy LPT: no part exceeds another by more than one item's cost
        assert max(loads) - min(loads) <= max(costs)


def test_more_workers_than_cores_or_gpus_is_refused():
    with pytest.raises(MnemoscopeError, match=r"--workers \d+ .* CPU core"):
        assign_devices("cpu", usable_cores() + 1)
    with pytest.raises(MnemoscopeError, match="--workers"):
        assign_devices("cpu", 1, threads=usable_cores() + 1)
    with pytest.raises(MnemoscopeError, match="--workers must be"):
        open_backend("hf", "unused", workers=0)
    with pytest.raises(MnemoscopeError, match="unknown backend 'onnx'"):
        open_backend("onnx", "unused")
    with pytest.raises(MnemoscopeError, match="unknown executor"):
        open_backend("hf", "unused", workers=2, executor="mpi")


@pytest.fixture(scope="module")
def two_workers(saved_model_dir):
    if usable_cores() < 2:
        pytest.skip("two workers need two cores")
    backend = open_backend("hf", str(saved_model_dir), workers=2, device="cpu")
    yield backend
    backend.close()


@pytest.mark.slow
def test_two_workers_score_and_generate_as_one_engine(two_workers, saved_model_dir):
    single = open_backend("hf", str(saved_model_dir), device="cpu")
    assert isinstance(single, Engine) and isinstance(two_workers, ShardedBackend)
    # every sharable verb of one engine, and none of those that touch one model's insides
    assert two_workers.provides == single.provides & {"logprobs", "distribution", "generate", "sample", "banned"}
    assert not two_workers.provides & {"activations", "steer", "gradients"}
    assert two_workers.max_length == single.max_length
    assert "×2" in two_workers.name.replace(" ", "")
    pairs = [(t[:20], t[20:]) for t in TEXTS]
    for one, many in [(single.score(TEXTS), two_workers.score(TEXTS)),
                      (single.score(pairs=pairs), two_workers.score(pairs=pairs))]:
        assert len(one) == len(many) == len(TEXTS)
        for a, b in zip(one, many):  # caller's order kept: same tokens item by item
            np.testing.assert_array_equal(a.token_ids, b.token_ids)
            np.testing.assert_allclose(b.logprobs, a.logprobs, atol=1e-5)
            np.testing.assert_allclose(b.mu, a.mu, atol=1e-5)
            np.testing.assert_allclose(b.sigma, a.sigma, atol=1e-5)
            np.testing.assert_array_equal(a.argmax, b.argmax)
    g1 = single.generate(PROMPTS, max_new_tokens=6, min_new_tokens=6)
    g2 = two_workers.generate(PROMPTS, max_new_tokens=6, min_new_tokens=6)
    assert [c.token_ids for c in g2] == [c.token_ids for c in g1]
    assert [c.text for c in g2] == [c.text for c in g1]
    assert two_workers.score([]) == [] and two_workers.generate([], max_new_tokens=2) == []
    one_item = two_workers.score(TEXTS[:1])  # fewer items than workers
    np.testing.assert_allclose(one_item[0].logprobs, single.score(TEXTS[:1])[0].logprobs, atol=1e-5)


@pytest.mark.slow
def test_a_worker_error_reaches_the_caller_and_the_pool_survives(two_workers):
    from mnemoscope.engine.encoding import Encoded

    bad = Encoded(ids=[1, 2, 10**6], score_from=1, bos=False)  # a token id beyond the vocabulary
    with pytest.raises(RuntimeError, match=r"worker \d \(cpu\) score_encoded failed"):
        two_workers.score_encoded([bad])
    with pytest.raises(MnemoscopeError, match="not picklable"):
        two_workers.generate(PROMPTS, max_new_tokens=2, banned=lambda ids: [])
    assert len(two_workers.score(TEXTS[:3])) == 3


@pytest.mark.slow
def test_a_worker_that_dies_mid_call_fails_the_call_and_stops_every_worker(saved_model_dir):
    if usable_cores() < 2:
        pytest.skip("two workers need two cores")
    spec = BackendSpec("hf", str(saved_model_dir), device="cpu")
    probe = spec.open()
    die_at = len(probe.encode_text(TEXTS[4]).ids)
    backend = ShardedBackend(DyingSpec(spec, die_at), 2)
    procs = list(backend.pool.procs)
    with pytest.raises(MnemoscopeError, match=r"worker \d \(cpu\) died \(exit code 7\) while score_encoded.*nothing was written") as err:
        backend.score(TEXTS)
    assert "\n" not in str(err.value)
    assert not any(p.is_alive() for p in procs)
    with pytest.raises(MnemoscopeError, match="closed"):
        backend.score(TEXTS[:1])
    backend.close()  # idempotent


def test_the_vllm_backend_without_vllm_is_a_one_line_error(monkeypatch, saved_model_dir):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed (import raises ImportError)
    with pytest.raises(MnemoscopeError, match=r"--backend vllm needs the 'vllm' package.*mnemoscope\[vllm\]") as err:
        open_backend("vllm", str(saved_model_dir))
    assert "\n" not in str(err.value)


def _attack_scores(backend, texts):
    """Every likelihood attack per text (metrics.membership), from one score call."""
    from mnemoscope.metrics.membership import membership_scores

    return [membership_scores(s.logprobs, s.mu, s.sigma, backend.decode(s.token_ids), 0.2)
            for s in backend.score(texts)]


@pytest.mark.slow
def test_families_measure_the_same_through_two_workers(two_workers, saved_model_dir):
    from mnemoscope.families.knowmem import knowmem

    single = open_backend("hf", str(saved_model_dir), device="cpu")
    for a, b in zip(_attack_scores(single, TEXTS), _attack_scores(two_workers, TEXTS)):
        assert a.keys() == b.keys()
        for attack in a:
            assert b[attack] == pytest.approx(a[attack], abs=1e-5), attack
    qa = [(f"what runs through {w}?", f"the river {w}") for w in ["ash", "oak", "elm", "yew", "fir"]]
    one, two = knowmem(single, qa[1:], qa[:1], max_new_tokens=8), knowmem(two_workers, qa[1:], qa[:1], max_new_tokens=8)
    assert one.metrics == two.metrics
    assert one.samples.equals(two.samples)


@pytest.mark.slow
def test_the_audit_with_two_workers_writes_the_numbers_of_one(saved_model_dir, tmp_path):
    """`mnemoscope audit --workers 2` on a model saved here: the same run-directory numbers."""
    import json

    from mnemoscope.cli import main

    members, nonmembers = tmp_path / "m.txt", tmp_path / "n.txt"
    members.write_text("\n".join(TEXTS[:4]) + "\n")
    nonmembers.write_text("\n".join(TEXTS[4:8]) + "\n")
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        assert main(["audit", "--model", str(saved_model_dir), "--members", str(members), "--nonmembers",
                     str(nonmembers), "--out", str(out), "--device", "cpu", "--n-boot", "50",
                     "--workers", str(workers)]) == 0
        runs[workers] = json.loads((out / "metrics.json").read_text())
        assert json.loads((out / "manifest.json").read_text())["backend"] == ("hf" if workers == 1 else "hf ×2")
    assert runs[1].keys() == runs[2].keys()
    for key, value in runs[1].items():
        assert runs[2][key] == pytest.approx(value, abs=1e-5), key
