"""An index of every n-gram of a token corpus, for finding where generations repeat it verbatim.

Each window of n tokens gets a 64-bit polynomial rolling hash ``h = Σ_k (t_k + 1)·B^(n−1−k) mod 2^64``
(numpy's wrapping uint64 arithmetic). The corpus's hashes are sorted once; a query hashes its own
windows and looks them up with ``searchsorted``, and every hit is **verified token by token**
against the corpus, so a hash collision can never report a false match. Documents are separated by
a sentinel, so no window spans two documents.

Why not a suffix array library: the lookups here are fixed-length windows, which sorted hashes
answer with the same O(log N) searches and no extra dependency; building costs one sort of N
64-bit keys (≈ 1 s for 10 M tokens).

``find_spans`` turns hits into maximal spans: a span is a stretch of a query that occurs verbatim
(contiguously) in one corpus document and is at least n tokens long.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BASE", "NGramIndex", "Span", "window_hashes"]

BASE = np.uint64(0x9E3779B97F4A7C15)  # an odd 64-bit constant (the golden-ratio multiplier)
SEP = -1
_BASE_INV = pow(int(BASE), -1, 2**64)


def _powers(base: int, count: int) -> np.ndarray:
    """base^0 .. base^(count−1) mod 2^64."""
    p = np.full(count, base, dtype=np.uint64)
    p[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(p, dtype=np.uint64)


def window_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """Rolling hashes of every n-token window of ``tokens`` (length len − n + 1, uint64).

    B is odd, so it has an inverse B⁻¹ mod 2^64, and with S_i = Σ_{j<i} v_j·B^(−j) every window is
    h_i = B^(n−1+i)·(S_{i+n} − S_i): a few passes whatever n is (all arithmetic mod 2^64)."""
    t = np.asarray(tokens, dtype=np.int64)
    m = t.size - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    v = (t + 1).astype(np.uint64)  # + 1 so that token 0 still moves the hash
    with np.errstate(over="ignore"):
        s = np.zeros(t.size + 1, dtype=np.uint64)
        np.cumsum(v * _powers(_BASE_INV, t.size), dtype=np.uint64, out=s[1:])
        return (s[n:] - s[:m]) * _powers(int(BASE), m) * np.uint64(pow(int(BASE), n - 1, 2**64))


@dataclass(frozen=True)
class Span:
    """``query[start:end]`` equals ``corpus[corpus_start : corpus_start + end − start]`` in document ``doc``."""

    start: int
    end: int
    corpus_start: int
    doc: int

    @property
    def length(self) -> int:
        return self.end - self.start


class NGramIndex:
    """Every n-gram of a list of token documents (lists or arrays of non-negative ids)."""

    def __init__(self, docs, n: int):
        if n < 1:
            raise ValueError(f"n-gram length must be ≥ 1, got {n}")
        self.n = n
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64)
        self.doc_starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
        tokens = np.full(int(lengths.sum() + lengths.size), SEP, dtype=np.int64)
        for start, d in zip(self.doc_starts, docs):
            tokens[start : start + len(d)] = d
        self.tokens = tokens
        h = window_hashes(tokens, n)
        sep = np.concatenate([[0], np.cumsum(tokens == SEP)])
        valid = np.nonzero(sep[n : n + h.size] - sep[: h.size] == 0)[0]  # windows without a separator
        order = np.argsort(h[valid])
        self.hashes = h[valid][order]
        self.positions = valid[order]

    @classmethod
    def from_arrays(cls, tokens: np.ndarray, doc_starts: np.ndarray, hashes: np.ndarray, positions: np.ndarray,
                    n: int) -> NGramIndex:
        """An index rebuilt from the arrays of a saved one (``tokens``, ``doc_starts``, ``hashes``,
        ``positions``), without sorting again; lookups are still verified against ``tokens``."""
        index = cls.__new__(cls)
        index.n = int(n)
        index.tokens = np.asarray(tokens, dtype=np.int64)
        index.doc_starts = np.asarray(doc_starts, dtype=np.int64)
        index.hashes = np.asarray(hashes, dtype=np.uint64)
        index.positions = np.asarray(positions, dtype=np.int64)
        return index

    def __len__(self) -> int:
        return int(self.hashes.size)

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.size - self.doc_starts.size)

    def doc_of(self, corpus_pos) -> np.ndarray | int:
        """Index of the document holding corpus position(s) ``corpus_pos``."""
        return np.searchsorted(self.doc_starts, corpus_pos, side="right") - 1

    def _candidates(self, h: np.uint64) -> np.ndarray:
        lo, hi = np.searchsorted(self.hashes, [h, h], side="left")[0], np.searchsorted(self.hashes, h, side="right")
        return self.positions[lo:hi]

    def hits(self, query) -> np.ndarray:
        """For each window start i of ``query``, a corpus position where ``query[i:i+n]`` occurs
        verbatim, or −1."""
        q = np.asarray(query, dtype=np.int64)
        out = np.full(max(0, q.size - self.n + 1), -1, dtype=np.int64)
        if out.size == 0 or len(self) == 0:
            return out
        qh = window_hashes(q, self.n)
        idx = np.minimum(np.searchsorted(self.hashes, qh), len(self) - 1)
        found = np.nonzero(self.hashes[idx] == qh)[0]
        if found.size == 0:
            return out
        pos = self.positions[idx[found]]
        offsets = np.arange(self.n)
        same = np.all(self.tokens[pos[:, None] + offsets] == q[found[:, None] + offsets], axis=1)
        out[found[same]] = pos[same]
        for i in found[~same]:  # a hash collision with the first entry: check the others
            for p in self._candidates(qh[i]):
                if np.array_equal(self.tokens[p : p + self.n], q[i : i + self.n]):
                    out[i] = p
                    break
        return out

    def _extend(self, q: np.ndarray, i: int, p: int) -> int:
        """Length of the common run of ``q[i:]`` and ``corpus[p:]`` (stops at a separator)."""
        k = self.n
        while i + k < q.size and self.tokens[p + k] == q[i + k]:
            k += 1
        return k

    def find_spans(self, query, max_candidates: int = 64) -> list[Span]:
        """Maximal verbatim spans of ≥ n tokens of ``query``, left to right (consecutive spans may
        overlap by < n tokens when the query stitches two corpus places together)."""
        q = np.asarray(query, dtype=np.int64)
        return self._spans(q, self.hits(q), max_candidates)

    def find_spans_many(self, queries, max_candidates: int = 64) -> list[list[Span]]:
        """``find_spans`` of each query, with one vectorised lookup for all of them."""
        qs = [np.asarray(q, dtype=np.int64) for q in queries]
        if not qs:
            return []
        # one stream with a sentinel between queries (it never equals a corpus token: no window
        # containing it can be verified), then each query's own windows
        starts = np.concatenate([[0], np.cumsum([q.size + 1 for q in qs])[:-1]])
        stream = np.full(int(sum(q.size + 1 for q in qs)), -2, dtype=np.int64)
        for st, q in zip(starts, qs):
            stream[st : st + q.size] = q
        hit = self.hits(stream)
        out = []
        for st, q in zip(starts, qs):
            h = hit[st : st + max(0, q.size - self.n + 1)]
            out.append(self._spans(q, h, max_candidates) if (h >= 0).any() else [])
        return out

    def _spans(self, q: np.ndarray, hit: np.ndarray, max_candidates: int) -> list[Span]:
        spans: list[Span] = []
        i = 0
        while i < hit.size:
            if hit[i] < 0:
                i += 1
                continue
            best_len, best_pos = -1, int(hit[i])
            cands = self._candidates(window_hashes(q[i : i + self.n], self.n)[0])[:max_candidates]
            for p in cands:
                if np.array_equal(self.tokens[p : p + self.n], q[i : i + self.n]):
                    length = self._extend(q, i, int(p))
                    if length > best_len:
                        best_len, best_pos = length, int(p)
            spans.append(Span(i, i + best_len, best_pos, int(self.doc_of(best_pos))))
            i = i + best_len - self.n + 1  # the next window not inside this span
        return spans
