"""The one packer module (train.packing). The expected arrays below were produced by the packers it
replaced (``train.data.pack_background``, ``recipes.extraction.ordered_rows``) on the same inputs
before they were removed, and are re-derived by hand in the comments: packed rows must not change."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.train.packing import (
    concatenate,
    pack_background,
    pack_corpus,
    pack_in_order,
    pack_stream,
    shuffled_epochs,
)

DOCS = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [14]]


def test_pack_background_is_the_old_packer_on_fixed_input():
    # random.Random(3) shuffles 0..3 as [3, 0, 2, 1], then [0, 1, 3, 2], then [1, ...]:
    # 14 0 | 5 6 7 0 | 10 11 12 13 0 | 8 9 0 | 5 6 7 0 | 8 9 0 | 14 0 | 10 11 12 13 0 | 8 9 …
    rows = pack_background(DOCS, n_rows=6, seq_len=5, eos_id=0, seed=3)
    assert rows.dtype == np.int64
    assert rows.tolist() == [[14, 0, 5, 6, 7], [0, 10, 11, 12, 13], [0, 8, 9, 0, 5], [6, 7, 0, 8, 9],
                             [0, 14, 0, 10, 11], [12, 13, 0, 8, 9]]
    rng = random.Random(3)
    first = list(range(4))
    rng.shuffle(first)
    assert first == [3, 0, 2, 1]


def test_shuffled_epochs_reshuffles_each_epoch_from_one_generator():
    rng = random.Random(11)
    expected = []
    for _ in range(3):
        order = list(range(5))
        rng.shuffle(order)
        expected += order
    it = shuffled_epochs(5, 11)
    assert [next(it) for _ in range(15)] == expected


def test_pack_background_refuses_an_empty_corpus():
    with pytest.raises(MnemoscopeError, match="background corpus is empty"):
        pack_background([[], []], n_rows=2, seq_len=4, eos_id=0, seed=0)


def test_pack_in_order_is_the_old_packer_on_fixed_input():
    # order 2, 0, 3, 1: 10 11 12 13 | 0 5 6 7 | 0 14 0 8 (| 9 0 dropped); starts: rows 0, 1, 2, 2
    rows, starts = pack_in_order(DOCS, [2, 0, 3, 1], 3, 4, 0)
    assert rows.dtype == np.int64
    assert rows.tolist() == [[10, 11, 12, 13], [0, 5, 6, 7], [0, 14, 0, 8]]
    assert starts == {2: 0, 0: 1, 3: 2, 1: 2}
    rows, starts = pack_in_order(DOCS, [0, 1, 2, 3], 1, 4, 0)  # the stream stops once it is long enough
    assert rows.tolist() == [[5, 6, 7, 0]] and starts == {0: 0}


def test_pack_in_order_refuses_a_corpus_shorter_than_training():
    with pytest.raises(MnemoscopeError, match="has 14 tokens but training needs 16"):
        pack_in_order(DOCS, [0, 1, 2, 3], 4, 4, 0)


def test_pack_stream_pads_the_last_row_and_names_each_rows_documents():
    tokens = {"a": [5, 6, 7], "b": [8, 9], "c": [10]}
    rows, owners = pack_stream(["b", "a", "c"], tokens, 3, eos=0)
    # 8 9 0 | 5 6 7 | 0 10 0 | pad
    assert rows.tolist() == [[8, 9, 0], [5, 6, 7], [0, 10, 0]]
    assert owners == [{"b"}, {"a"}, {"a", "c"}]
    rows, owners = pack_stream(["a"], tokens, 3, eos=2)
    assert rows.tolist() == [[5, 6, 7], [2, 2, 2]] and owners == [{"a"}, {"a"}]
    rows, owners = pack_stream([], tokens, 3, eos=0)
    assert rows.shape == (0, 3) and owners == []


def test_concatenate_stops_after_the_document_that_reaches_the_limit():
    stream, starts = concatenate(DOCS, [0, 1, 2], 0, limit=5)
    assert stream == [5, 6, 7, 0, 8, 9, 0] and starts == [(0, 0), (1, 4)]
    stream, starts = concatenate(DOCS, [3, 3], 0)
    assert stream == [14, 0, 14, 0] and starts == [(3, 0), (3, 2)]


def test_pack_corpus_packs_the_non_empty_documents_like_pack_background(tokenizer):
    from mnemoscope.engine.encoding import text_ids

    texts = ["alpha beta gamma delta", "", "epsilon zeta eta theta iota", "kappa lambda mu"] * 4
    rows = pack_corpus(texts, tokenizer, n_rows=6, seq_len=8, batch_size=2, seed=5)
    docs = [d for d in text_ids(tokenizer, texts) if d]
    assert np.array_equal(rows, pack_background(docs, n_rows=6, seq_len=8, eos_id=tokenizer.eos_token_id, seed=5))
    with pytest.raises(MnemoscopeError, match="fewer than one batch"):
        pack_corpus(texts[:1], tokenizer, n_rows=2, seq_len=64, batch_size=4, seed=0)
