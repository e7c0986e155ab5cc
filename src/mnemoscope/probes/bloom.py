"""A Bloom filter of a corpus's n-grams and the MemFree decoding filter built on it.

MemFree (Ippolito et al. 2023, *Preventing Verbatim Memorization in Language Models Gives a False
Sense of Privacy*): at each decoding step, a token that would complete an n-gram present in the
training set is banned, and decoding takes the next-best token. The filter is a Bloom filter, so
it never misses a training n-gram (no false negatives) and bans a few harmless tokens (false
positives at rate ≈ ``fpr``).

It is a *blocked* Bloom filter (Putze, Sanders, Singler 2007): a key's k bits all lie in one
512-bit block (one cache line), so a lookup costs one memory access instead of k. For N n-grams
and a target ``fpr``: m₀ = ⌈−N ln(fpr) / ln(2)²⌉, k = max(1, round(m₀/N · ln 2)), and the filter
gets at least 2·m₀ bits (a power-of-two number of blocks) to make up for blocking's higher
false-positive rate. Key h (``ngram_index.window_hashes``) → block h mod blocks, bits
(g + i·g′) mod 512 for i < k, with g, g′ further (odd) mixes of h (double hashing). ``MemFree(ids)`` checks every vocabulary token as the
next one at once: hash(prefix + v) = hash(prefix)·B + (v + 1).
"""

from __future__ import annotations

import math

import numpy as np

from mnemoscope.probes.ngram_index import BASE, window_hashes

__all__ = ["BloomFilter", "MemFree"]

_BLOCK = 512  # bits per block: one cache line


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a second hash, made odd so double hashing visits distinct bits."""
    with np.errstate(over="ignore"):
        z = h ^ (h >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> np.uint64(27))
        z = z * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z | np.uint64(1)


class BloomFilter:
    """A set of 64-bit hashes with no false negatives and about ``fpr`` false positives (or fewer:
    m is rounded up to a power of two so a bit index is a mask, not a division)."""

    def __init__(self, hashes: np.ndarray, fpr: float = 1e-3):
        if not 0 < fpr < 1:
            raise ValueError(f"Bloom filter fpr must be in (0, 1), got {fpr}")
        hashes = np.asarray(hashes, dtype=np.uint64)
        n = max(1, hashes.size)
        need = max(_BLOCK, math.ceil(-n * math.log(fpr) / math.log(2) ** 2))
        self.k = max(1, round(need / n * math.log(2)))  # k for the requested size: fewer lookups
        blocks = 1 << (2 * need // _BLOCK).bit_length()  # ≥ 2× the bits: blocking costs some accuracy
        self.m = blocks * _BLOCK
        self.n_items = int(hashes.size)
        self._block_mask = np.uint64(blocks - 1)
        self._steps = np.arange(self.k, dtype=np.uint64)[:, None]
        bits = np.zeros(self.m, dtype=bool)
        for start in range(0, hashes.size, 1 << 18):
            bits[self._positions(hashes[start : start + (1 << 18)]).ravel()] = True
        self.bits = np.packbits(bits, bitorder="little")

    def _positions(self, h: np.ndarray) -> np.ndarray:
        """[k, len(h)] bit indices: block ``h mod blocks``, and inside it ``(g + i·g') mod 512``
        with g = mix(h), g' = mix(g) — all k bits of a key share one 64-byte cache line."""
        g = _mix(h)
        g2 = _mix(g)
        with np.errstate(over="ignore"):
            inner = (g[None, :] + self._steps * g2[None, :]) & np.uint64(_BLOCK - 1)
            return ((h & self._block_mask)[None, :] * np.uint64(_BLOCK) + inner).astype(np.int64)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean array: each hash possibly in the set (True) or certainly not (False)."""
        h = np.atleast_1d(np.asarray(hashes, dtype=np.uint64))
        pos = self._positions(h)
        return np.all((self.bits[pos >> 3] >> (pos & 7)) & 1, axis=0).astype(bool)

    @classmethod
    def of_ngrams(cls, docs, n: int, fpr: float = 1e-3) -> BloomFilter:
        """The filter of every n-gram inside each document (none spans two documents)."""
        parts = [window_hashes(np.asarray(d, dtype=np.int64), n) for d in docs if len(d) >= n]
        return cls(np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64), fpr)


class MemFree:
    """The ``banned=`` callback of ``Backend.generate``: ``MemFree(bloom, n, vocab_size)(ids)`` →
    the token ids v for which ``ids[-(n−1):] + [v]`` is (possibly) a training n-gram."""

    def __init__(self, bloom: BloomFilter, n: int, vocab_size: int):
        if n < 2:
            raise ValueError(f"MemFree needs n ≥ 2 (an n-gram completed by the next token), got {n}")
        self.bloom, self.n = bloom, n
        self.candidates = np.arange(vocab_size, dtype=np.uint64) + np.uint64(1)
        self.calls = 0
        self.banned_total = 0

    def __call__(self, ids) -> list[int]:
        self.calls += 1
        if len(ids) < self.n - 1:
            return []
        prefix = window_hashes(np.asarray(ids[len(ids) - (self.n - 1):], dtype=np.int64), self.n - 1)[0]
        with np.errstate(over="ignore"):
            hashes = prefix * BASE + self.candidates
        banned = np.nonzero(self.bloom.contains(hashes))[0]
        self.banned_total += int(banned.size)
        return banned.tolist()
