import itertools

import numpy as np
import pytest

from mnemoscope.probes.bloom import BloomFilter, MemFree
from mnemoscope.probes.ngram_index import BASE, NGramIndex, window_hashes


def test_window_hashes_are_polynomial():
    t = np.array([3, 0, 7, 2])
    h = window_hashes(t, 2)
    B = int(BASE)
    mod = 2**64
    assert [int(x) for x in h] == [((int(a) + 1) * B + (int(b) + 1)) % mod for a, b in itertools.pairwise(t)]
    assert window_hashes(t, 5).size == 0
    rng = np.random.default_rng(5)
    for n in (1, 3, 17, 50):
        toks = rng.integers(0, 50_000, size=120)
        naive = []
        for i in range(len(toks) - n + 1):
            h = 0
            for x in toks[i : i + n]:
                h = (h * B + int(x) + 1) % mod
            naive.append(h)
        assert [int(x) for x in window_hashes(toks, n)] == naive


def test_planted_spans_found_and_no_false_ones():
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 50, size=int(rng.integers(20, 200))) for _ in range(300)]
    index = NGramIndex(docs, n=12)
    planted_doc = docs[17]
    span = planted_doc[30:70]  # 40 tokens
    query = np.concatenate([rng.integers(1000, 1100, size=25), span, rng.integers(1000, 1100, size=25)])
    spans = index.find_spans(query)
    assert len(spans) == 1
    s = spans[0]
    assert (s.start, s.end) == (25, 65) and s.doc == 17
    assert np.array_equal(index.tokens[s.corpus_start : s.corpus_start + s.length], query[s.start : s.end])
    other = docs[3][5:40]
    many = index.find_spans_many([query, rng.integers(1000, 1100, size=30), other])
    assert many[0] == spans and many[1] == []
    assert [(x.start, x.end, x.doc) for x in many[2]] == [(0, 35, 3)]
    # a query of unseen tokens: nothing
    assert index.find_spans(rng.integers(1000, 1100, size=200)) == []


def test_every_reported_span_is_verbatim_and_maximal():
    rng = np.random.default_rng(1)
    docs = [rng.integers(0, 4, size=60) for _ in range(40)]  # tiny alphabet: many repeats
    index = NGramIndex(docs, n=6)
    for _ in range(30):
        q = rng.integers(0, 4, size=80)
        for s in index.find_spans(q):
            assert s.length >= 6
            piece = index.tokens[s.corpus_start : s.corpus_start + s.length]
            assert np.array_equal(piece, q[s.start : s.end])
            assert index.doc_of(s.corpus_start) == index.doc_of(s.corpus_start + s.length - 1)
        # every window hit is covered by a span, every non-hit window is not a corpus n-gram
        hits = index.hits(q)
        corpus_grams = {tuple(d[i : i + 6]) for d in docs for i in range(len(d) - 5)}
        for i, p in enumerate(hits):
            assert (p >= 0) == (tuple(q[i : i + 6]) in corpus_grams)


def test_no_window_spans_two_documents():
    index = NGramIndex([[1, 2, 3], [4, 5, 6]], n=4)
    assert len(index) == 0
    assert index.find_spans([1, 2, 3, 4, 5, 6]) == []


def test_hash_collision_is_verified(monkeypatch):
    """Force every window to the same hash: lookups must still be exact."""
    import mnemoscope.probes.ngram_index as mod

    monkeypatch.setattr(mod, "window_hashes", lambda t, n: np.zeros(max(0, len(t) - n + 1), dtype=np.uint64))
    index = mod.NGramIndex([[1, 2, 3, 4], [5, 6, 7, 8]], n=3)
    assert list(index.hits([5, 6, 7, 9, 9])) == [index.doc_starts[1], -1, -1]
    spans = index.find_spans([9, 2, 3, 4, 9])
    assert [(s.start, s.end, s.doc) for s in spans] == [(1, 4, 0)]


def test_bloom_no_false_negatives_and_low_fpr():
    rng = np.random.default_rng(2)
    items = rng.integers(0, 2**63, size=20_000, dtype=np.uint64)
    bloom = BloomFilter(items, fpr=0.01)
    assert bloom.contains(items).all()
    others = rng.integers(0, 2**63, size=20_000, dtype=np.uint64)
    assert bloom.contains(others).mean() < 0.03


def test_memfree_bans_exactly_the_completing_tokens():
    docs = [[5, 6, 7, 8], [5, 6, 9]]
    bloom = BloomFilter.of_ngrams(docs, n=3, fpr=1e-6)
    f = MemFree(bloom, n=3, vocab_size=20)
    assert sorted(f([1, 5, 6])) == [7, 9]
    assert f([6, 7]) == [8]
    assert f([7]) == []  # shorter than n − 1: nothing to complete
    with pytest.raises(ValueError):
        MemFree(bloom, n=1, vocab_size=20)
