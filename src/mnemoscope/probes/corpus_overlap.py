"""Overlap of benchmark items with a training corpus: two verified n-gram indexes of the corpus.

- **words**: lm-evaluation-harness's decontamination definition (``metrics.contamination``):
  normalised words, mapped to integer ids, indexed as 13-grams with ``probes.ngram_index`` — an
  item is contaminated when any of its word 13-grams occurs in a corpus document;
- **tokens**: the model's token ids, indexed as ``span_n``-grams, for the longest verbatim span
  (in tokens) each item shares with one corpus document.

Both indexes verify every hit token by token (``NGramIndex.hits``), so a hash collision never
reports overlap. ``save`` / ``load`` keep them in one ``.npz`` with the fingerprint of the
tokenizer that made the token ids: an index built with another tokenizer is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope.errors import MnemoscopeError
from mnemoscope.files import atomic_path
from mnemoscope.metrics.contamination import LM_EVAL_N, lm_eval_words
from mnemoscope.probes.ngram_index import NGramIndex

UNKNOWN_WORD = -3  # never a corpus id (and not the index's separators −1 / −2): a window holding it never matches
FORMAT = "mnemoscope-corpus-overlap-1"


def word_ids(texts: list[str], vocab: dict[str, int], *, grow: bool) -> list[np.ndarray]:
    """Each text's lm-eval words as ids; ``grow`` adds new words to ``vocab``, else they map to
    ``UNKNOWN_WORD``."""
    out = []
    for text in texts:
        words = lm_eval_words(text)
        if grow:
            ids = [vocab.setdefault(w, len(vocab)) for w in words]
        else:
            ids = [vocab.get(w, UNKNOWN_WORD) for w in words]
        out.append(np.asarray(ids, dtype=np.int64))
    return out


def _hit_counts(index: NGramIndex, queries: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(windows found in the corpus, windows) per query, one vectorised lookup for all."""
    n = index.n
    total = np.array([max(0, q.size - n + 1) for q in queries], dtype=np.int64)
    if not queries:
        return total, total
    stream = np.concatenate([np.append(q, -2) for q in queries])  # −2 between queries: no window crosses
    hit = index.hits(stream) >= 0
    starts = np.concatenate([[0], np.cumsum([q.size + 1 for q in queries])[:-1]])
    found = np.array([int(hit[s : s + t].sum()) for s, t in zip(starts, total)], dtype=np.int64)
    return found, total


@dataclass
class CorpusOverlap:
    tokens: NGramIndex  # model-token span_n-grams
    words: NGramIndex  # lm-eval word 13-grams
    vocab: dict[str, int]
    fingerprint: str  # the tokenizer that made ``tokens``
    n_docs: int
    build_seconds: float = 0.0

    @classmethod
    def build(cls, texts: list[str], token_docs: list[list[int]], fingerprint: str, *, span_n: int = 8,
              word_n: int = LM_EVAL_N) -> CorpusOverlap:
        """Index ``texts`` (words) and ``token_docs`` (their model token ids)."""
        if len(texts) != len(token_docs):
            raise ValueError(f"{len(texts)} texts for {len(token_docs)} token documents")
        t0 = time.perf_counter()
        vocab: dict[str, int] = {}
        words = NGramIndex(word_ids(texts, vocab, grow=True), word_n)
        tokens = NGramIndex(token_docs, span_n)
        return cls(tokens, words, vocab, fingerprint, len(texts), time.perf_counter() - t0)

    def lookup(self, texts: list[str], token_ids: list[list[int]]) -> pd.DataFrame:
        """Per item: ``overlap/lm_eval`` (1.0 when any word 13-gram is in the corpus, lm-eval's
        flag), ``overlap/ngrams_found``, ``overlap/ngrams`` (its word n-grams),
        ``overlap/ngram_fraction`` (NaN for an item shorter than n words) and
        ``overlap/longest_span`` (tokens of the longest verbatim span of ≥ span_n tokens, else 0)."""
        found, total = _hit_counts(self.words, word_ids(texts, self.vocab, grow=False))
        spans = self.tokens.find_spans_many([np.asarray(t, dtype=np.int64) for t in token_ids])
        longest = [max((s.length for s in item), default=0) for item in spans]
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = np.where(total > 0, found / np.maximum(total, 1), np.nan)
        return pd.DataFrame({"overlap/lm_eval": (found > 0).astype(float), "overlap/ngrams_found": found,
                             "overlap/ngrams": total, "overlap/ngram_fraction": fraction,
                             "overlap/longest_span": np.asarray(longest, dtype=np.int64)})

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path) -> Path:
        """One ``.npz`` (written to a temporary name, then renamed: never half-written)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise MnemoscopeError(f"{path}: a corpus index is saved as .npz; name the file *.npz")
        words = "\n".join(sorted(self.vocab, key=self.vocab.get)).encode("utf-8")
        arrays = {}
        for name, index in (("tok", self.tokens), ("word", self.words)):
            arrays.update({f"{name}_tokens": index.tokens, f"{name}_doc_starts": index.doc_starts,
                           f"{name}_hashes": index.hashes, f"{name}_positions": index.positions,
                           f"{name}_n": np.int64(index.n)})
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a handle: savez adds no second suffix
            np.savez(handle, format=np.array(FORMAT), fingerprint=np.array(self.fingerprint),
                     n_docs=np.int64(self.n_docs), vocab=np.frombuffer(words, dtype=np.uint8), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, fingerprint: str) -> CorpusOverlap:
        """A saved index; one built with another tokenizer (fingerprint) is refused with the fix."""
        path = Path(path)
        if not path.is_file():
            raise MnemoscopeError(f"{path}: no such corpus index")
        try:
            z = np.load(path, allow_pickle=False)
            fmt = str(z["format"])
        except Exception as exc:  # numpy raises several types for a file that is not an index
            raise MnemoscopeError(f"{path}: not a corpus index written by mnemoscope ({exc.__class__.__name__}); "
                                  "build one with --corpus FILE --save-index FILE.npz") from exc
        if fmt != FORMAT:
            raise MnemoscopeError(f"{path}: index format {fmt!r}, expected {FORMAT!r}; rebuild it with --save-index")
        if str(z["fingerprint"]) != fingerprint:
            raise MnemoscopeError(
                f"{path}: the corpus index was built with another tokenizer (fingerprint {str(z['fingerprint'])[:12]}… "
                f"≠ this model's {fingerprint[:12]}…); rebuild it for this model: --corpus CORPUS_FILE "
                f"--save-index {path.name}")
        words = bytes(z["vocab"]).decode("utf-8")
        vocab = {w: i for i, w in enumerate(words.split("\n"))} if words else {}

        def index(name: str) -> NGramIndex:
            return NGramIndex.from_arrays(z[f"{name}_tokens"], z[f"{name}_doc_starts"], z[f"{name}_hashes"],
                                          z[f"{name}_positions"], int(z[f"{name}_n"]))

        return cls(index("tok"), index("word"), vocab, fingerprint, int(z["n_docs"]))
