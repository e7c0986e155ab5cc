"""Injection schedules (once / duplicate / paraphrase), placement (replace / splice), bad input."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemoscope.errors import MnemoscopeError
from mnemoscope.train.data import (
    InjectedData,
    Injection,
    injection_steps,
    place_events,
    schedule_documents,
)
from mnemoscope.train.packing import pack_background

EOS = 0
STEPS, BATCH, SEQ = 12, 4, 48


def _docs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(10, 500, size=rng.integers(5, 30))) for _ in range(n)]


# items "x", "y" with 4 text versions each; token ids ≥ 1000 never occur in the background
VERSIONS = {item: [f"{item}/v{k}" for k in range(4)] for item in ("x", "y")}
DOC_IDS = {f"{item}/v{k}": [1000 + 100 * i + 10 * k + j for j in range(5 + k)]
           for i, item in enumerate(("x", "y")) for k in range(4)}


def _occurrences(row, doc) -> int:
    n = len(doc)
    return sum(1 for i in range(len(row) - n + 1) if list(row[i : i + n]) == doc)


def _build(mode, placement, steps=(2, 5, 9), dose=1, seed=0):
    events = schedule_documents(VERSIONS, mode, list(steps), dose)
    plan = place_events(events, {k: len(v) for k, v in DOC_IDS.items()}, steps=STEPS, batch_size=BATCH,
                        seq_len=SEQ, seed=seed)
    bg = pack_background(_docs(), n_rows=STEPS * BATCH, seq_len=SEQ, eos_id=EOS, seed=seed)
    return InjectedData(bg, BATCH, plan, DOC_IDS, EOS, mode=placement), events, bg


def test_schedule_modes_by_hand():
    assert schedule_documents({"x": ["a", "b", "c"]}, "once", [3, 7, 9]) == [(3, "a")]
    assert schedule_documents({"x": ["a", "b", "c"]}, "duplicate", [3, 7, 9]) == [(3, "a"), (7, "a"), (9, "a")]
    assert schedule_documents({"x": ["a", "b", "c"]}, "paraphrase", [3, 7, 9]) == [(3, "a"), (7, "b"), (9, "c")]
    assert schedule_documents({"x": ["a"]}, "duplicate", [1, 2], dose=2) == [(1, "a"), (1, "a"), (2, "a"), (2, "a")]


def test_injection_steps_relative_plus_start():
    assert injection_steps(range(0, 1000, 100), 7) == [7, 107, 207, 307, 407, 507, 607, 707, 807, 907]
    with pytest.raises(MnemoscopeError, match="increasing"):
        injection_steps([0, 100, 50])
    with pytest.raises(MnemoscopeError, match="empty"):
        injection_steps([])


@pytest.mark.parametrize("placement", ["replace", "splice"])
@pytest.mark.parametrize("mode", ["once", "duplicate", "paraphrase"])
def test_documents_appear_at_exactly_the_planned_steps(mode, placement):
    data, events, _ = _build(mode, placement, dose=2)
    planned = Counter(events)
    for step in range(STEPS):
        batch = data.batch(step)
        for doc_id, doc in DOC_IDS.items():
            found = sum(_occurrences(row, doc) for row in batch)
            assert found == planned.get((step, doc_id), 0), (mode, placement, step, doc_id)
    for p in data.placements:  # each document is framed by separators
        row = data.batch(p.step)[p.row]
        assert row[p.offset + p.n_tokens] == EOS
        assert p.offset == 0 or row[p.offset - 1] == EOS
    log = {e["step"]: e for e in data.injection_log()}
    for step in {s for s, _ in events}:
        expected = sum(p.n_tokens - (p.offset == 0) for p in data.placements if p.step == step)
        assert log[step]["tokens_with_loss"] == data.injected_tokens_with_loss(step) == expected > 0


def test_paraphrase_mode_uses_a_different_text_each_time():
    data, events, _ = _build("paraphrase", "replace", steps=(1, 4, 6, 10))
    for item in VERSIONS:
        used = [d for _, d in events if d.startswith(item)]
        assert len(used) == 4 and len(set(used)) == 4
        texts = {tuple(DOC_IDS[d]) for d in used}
        assert len(texts) == 4
    with pytest.raises(MnemoscopeError, match="different versions"):
        schedule_documents(VERSIONS, "paraphrase", [0, 1, 2, 3, 4])


def _strip_injections(data: InjectedData) -> np.ndarray:
    """The concatenated rows with every injected block (doc + EOS) removed."""
    keep = np.ones((data.steps, data.batch_size, data.seq_len), dtype=bool)
    for p in data.placements:
        keep[p.step, p.row, p.offset : p.offset + p.n_tokens + 1] = False
    rows = np.stack([data.batch(s) for s in range(data.steps)])
    return rows[keep]


def test_splice_overwrites_nothing():
    data, _, bg = _build("duplicate", "splice", dose=3)
    kept = _strip_injections(data)
    stream = bg.reshape(-1)
    np.testing.assert_array_equal(kept, stream[: kept.size])
    # the replace mode, by contrast, does overwrite background tokens
    rep, _, _ = _build("duplicate", "replace", dose=3)
    rows = np.stack([rep.batch(s) for s in range(rep.steps)])
    assert not np.array_equal(rows.reshape(-1), stream)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), dose=st.integers(1, 3), start=st.integers(0, 3))
def test_splice_preserves_the_background_stream(seed, dose, start):
    data, events, bg = _build("duplicate", "splice", steps=(start, start + 4, start + 8), dose=dose, seed=seed)
    kept = _strip_injections(data)
    np.testing.assert_array_equal(kept, bg.reshape(-1)[: kept.size])
    assert kept.size == data.steps * BATCH * SEQ - sum(p.n_tokens + 1 for p in data.placements)
    assert len(data.placements) == len(events)


def test_injection_beyond_training_is_an_error():
    events = schedule_documents(VERSIONS, "duplicate", [3, STEPS])
    with pytest.raises(MnemoscopeError, match="beyond training"):
        place_events(events, {k: len(v) for k, v in DOC_IDS.items()}, steps=STEPS, batch_size=BATCH, seq_len=SEQ, seed=0)


def test_more_injected_tokens_than_fit_a_sequence_is_an_error():
    with pytest.raises(MnemoscopeError, match="fits a sequence"):
        place_events([(0, "x/v0")], {"x/v0": SEQ}, steps=STEPS, batch_size=BATCH, seq_len=SEQ, seed=0)
    with pytest.raises(MnemoscopeError, match="do not fit a batch"):
        place_events([(0, "x/v0")] * 9, {"x/v0": 20}, steps=STEPS, batch_size=BATCH, seq_len=SEQ, seed=0)


def test_several_documents_share_a_row_without_overlap():
    plan = place_events([(0, "a")] * 6, {"a": 10}, steps=2, batch_size=2, seq_len=40, seed=0)
    assert Counter(p.row for p in plan) == {0: 3, 1: 3}
    for row in (0, 1):
        spans = sorted((p.offset, p.offset + p.n_tokens + 1) for p in plan if p.row == row)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_a_silent_injection_is_impossible():
    data, _, _ = _build("once", "replace")
    step = data.placements[0].step
    data.doc_ids = {k: [7] * len(v) for k, v in data.doc_ids.items()}  # documents no longer what was planned
    data.by_step = {}  # … and nothing gets written
    with pytest.raises(MnemoscopeError, match="not in row"):
        data.batch(step)
    bg = pack_background(_docs(), n_rows=8, seq_len=16, eos_id=EOS, seed=0)
    with pytest.raises(MnemoscopeError, match="planned 3 tokens"):
        InjectedData(bg, 4, [Injection(step=0, row=0, offset=0, doc_id="a", n_tokens=3)], {"a": [1, 2]}, EOS)
    with pytest.raises(MnemoscopeError, match="overlaps"):
        InjectedData(bg, 4, [Injection(0, 0, 2, "a", 2), Injection(0, 0, 3, "a", 2)], {"a": [1, 2]}, EOS)


def test_unknown_mode_and_placement():
    with pytest.raises(MnemoscopeError, match="injection mode"):
        schedule_documents(VERSIONS, "twice", [0])
    bg = pack_background(_docs(), n_rows=8, seq_len=16, eos_id=EOS, seed=0)
    with pytest.raises(MnemoscopeError, match="placement"):
        InjectedData(bg, 4, [], {}, EOS, mode="insert")
