"""Training data plan (exact doses at exact steps), the loop (determinism, resume), bad input."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.tiny import build_model
from mnemoscope.train.data import InjectedData, plan_injections
from mnemoscope.train.packing import pack_background
from mnemoscope.train.loop import TrainConfig, lr_at, train

from .conftest import MICRO

EOS = 0


def _docs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(10, 500, size=rng.integers(5, 30))) for _ in range(n)]


def _data(steps=12, batch=4, seq_len=32, doses=None, seed=0):
    doc_ids = {"a": [501, 502, 503, 504, 505], "b": [506, 507, 508], "c": [509, 510, 511, 512]}
    doses = doses or {"a": 1, "b": 4, "c": 9}
    plan = plan_injections({k: len(v) for k, v in doc_ids.items()}, doses, steps=steps, batch_size=batch,
                           seq_len=seq_len, seed=seed)
    bg = pack_background(_docs(), n_rows=steps * batch, seq_len=seq_len, eos_id=EOS, seed=seed)
    return InjectedData(bg, batch, plan, doc_ids, EOS), plan, doc_ids


def _occurrences(row: np.ndarray, doc: list[int]) -> int:
    n = len(doc)
    return sum(1 for i in range(len(row) - n + 1) if list(row[i : i + n]) == doc)


def test_injected_documents_appear_at_exactly_the_planned_steps():
    data, plan, doc_ids = _data()
    assert Counter(inj.doc_id for inj in plan) == {"a": 1, "b": 4, "c": 9}
    planned = Counter((inj.step, inj.doc_id) for inj in plan)
    for step in range(data.steps):
        batch = data.batch(step)
        for doc_id, doc in doc_ids.items():
            found = sum(_occurrences(row, doc) for row in batch)
            assert found == planned.get((step, doc_id), 0), (step, doc_id)
    # each injected document is framed by EOS separators
    for inj in plan:
        row = data.batch(inj.step)[inj.row]
        assert row[inj.offset + inj.n_tokens] == EOS
        if inj.offset > 0:
            assert row[inj.offset - 1] == EOS


def test_injected_token_count_per_step():
    data, plan, _ = _data()
    total = sum(data.injected_tokens_with_loss(s) for s in range(data.steps))
    expected = sum(inj.n_tokens - (inj.offset == 0) for inj in plan)
    assert total == expected > 0


def test_plan_is_deterministic_for_a_seed():
    _, p1, _ = _data(seed=3)
    _, p2, _ = _data(seed=3)
    _, p3, _ = _data(seed=4)
    assert p1 == p2
    assert p1 != p3


def test_too_many_injections_is_an_error():
    with pytest.raises(MnemoscopeError, match="training rows"):
        _data(steps=2, batch=2, doses={"a": 5})


def test_document_longer_than_a_row_is_an_error():
    with pytest.raises(MnemoscopeError, match="seq_len"):
        _data(seq_len=5)


def test_injection_beyond_training_is_an_error():
    from mnemoscope.train.data import Injection

    bg = pack_background(_docs(), n_rows=8, seq_len=16, eos_id=EOS, seed=0)
    with pytest.raises(MnemoscopeError, match="beyond training"):
        InjectedData(bg, 4, [Injection(step=5, row=0, offset=0, doc_id="a", n_tokens=2)], {"a": [1, 2]}, EOS)


def test_empty_corpus_is_an_error():
    with pytest.raises(MnemoscopeError, match="empty"):
        pack_background([[]], n_rows=2, seq_len=8, eos_id=EOS, seed=0)


def test_lr_schedule():
    cfg = TrainConfig(steps=100, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(55, cfg) == pytest.approx(0.55)
    constant = TrainConfig(steps=100, lr=1.0, warmup=0, schedule="constant")
    assert lr_at(70, constant) == 1.0


def _train(tokenizer, out, steps=6, stop_after=None):
    data, _, _ = _data(steps=steps, batch=2, doses={"a": 2})
    model = build_model(MICRO, tokenizer, seed=0)
    cfg = TrainConfig(steps=steps, batch_size=2, seq_len=32, lr=3e-3, warmup=2, checkpoint_every=2)
    history = train(model, data.batch, cfg, out, stop_after=stop_after)
    return model, history


def test_training_is_deterministic_and_lowers_loss(tokenizer, tmp_path):
    m1, h1 = _train(tokenizer, tmp_path / "a")
    m2, h2 = _train(tokenizer, tmp_path / "b")
    assert [r["loss"] for r in h1] == [r["loss"] for r in h2]
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    assert h1[-1]["loss"] < h1[0]["loss"]


def test_resume_after_interruption_equals_uninterrupted_run(tokenizer, tmp_path):
    full_model, full_history = _train(tokenizer, tmp_path / "full")
    _train(tokenizer, tmp_path / "cut", stop_after=3)  # interrupted after step 3 (checkpoint at 2)
    assert (tmp_path / "cut" / "checkpoints" / "step-000002").exists()
    resumed_model, resumed_history = _train(tokenizer, tmp_path / "cut")
    assert [r["loss"] for r in resumed_history] == pytest.approx([r["loss"] for r in full_history], abs=0)
    for p, q in zip(full_model.parameters(), resumed_model.parameters()):
        torch.testing.assert_close(p, q, atol=0, rtol=0)
    leftovers = [p.name for p in (tmp_path / "cut" / "checkpoints").iterdir() if p.name.startswith(".")]  # no temporary folder left
    assert leftovers == []


def test_bad_train_config():
    with pytest.raises(MnemoscopeError, match="train.steps"):
        TrainConfig(steps=0).validate()
    with pytest.raises(MnemoscopeError, match="schedule"):
        TrainConfig(schedule="linear-ish").validate()
    for lr in (0.0, -1e-3, float("nan"), float("inf")):  # NaN once slipped past `lr <= 0` into AdamW
        with pytest.raises(MnemoscopeError, match="train.lr must be a finite number > 0"):
            TrainConfig(lr=lr).validate()
