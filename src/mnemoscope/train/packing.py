"""Packing tokenized documents into fixed-length training rows: the one packer every recipe uses.

Every packer does the same thing at its core (:func:`concatenate`): each document's tokens followed by
EOS, concatenated in some order, cut into rows of ``seq_len`` tokens. They differ only in the order
and in where the stream stops:

* :func:`pack_background` — a seeded order reshuffled every epoch, the first ``n_rows × seq_len``
  tokens (the background of an injection run; ``train.data.InjectedData`` puts documents into it);
* :func:`pack_corpus` — the same from texts and a tokenizer, refusing a corpus smaller than a batch;
* :func:`pack_in_order` — the documents in a given order, one pass, the first ``n_rows × seq_len``
  tokens, and the row where each document starts (its training position: row // batch = step);
* :func:`pack_stream` — every document in a given order, the last row EOS-padded, and per row the
  ids of the documents with tokens in it (the unlearning lab's provenance check).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from mnemoscope.errors import MnemoscopeError


def concatenate(token_docs: Sequence[Sequence[int]], order: Iterable[int], eos_id: int, *,
                limit: int | None = None) -> tuple[list[int], list[tuple[int, int]]]:
    """``token_docs[i] + [EOS]`` for each ``i`` in ``order``, concatenated; stops as soon as the stream
    holds ≥ ``limit`` tokens (None: all of ``order``). Returns the stream (possibly longer than
    ``limit``: the last document is whole) and (i, offset of its first token) per document that went in."""
    stream: list[int] = []
    starts: list[tuple[int, int]] = []
    for i in order:
        if limit is not None and len(stream) >= limit:
            break
        starts.append((i, len(stream)))
        stream.extend(token_docs[i])
        stream.append(eos_id)
    return stream, starts


def shuffled_epochs(n_docs: int, seed: int) -> Iterator[int]:
    """Document indices, epoch after epoch, each epoch a fresh ``random.Random(seed)`` shuffle of 0..n−1."""
    rng = random.Random(seed)
    while True:
        order = list(range(n_docs))
        rng.shuffle(order)
        yield from order


def _rows(stream: list[int], n_rows: int, seq_len: int) -> np.ndarray:
    return np.asarray(stream[: n_rows * seq_len], dtype=np.int64).reshape(n_rows, seq_len)


def background_stream(token_docs: list[list[int]], *, n_tokens: int, eos_id: int, seed: int) -> np.ndarray:
    """The first ``n_tokens`` of the documents (+EOS each) in a seeded order reshuffled each epoch."""
    if not token_docs or sum(len(d) for d in token_docs) == 0:
        raise MnemoscopeError("the background corpus is empty: give it at least one non-empty document")
    stream, _ = concatenate(token_docs, shuffled_epochs(len(token_docs), seed), eos_id, limit=n_tokens)
    return np.asarray(stream[:n_tokens], dtype=np.int64)


def pack_background(token_docs: list[list[int]], *, n_rows: int, seq_len: int, eos_id: int, seed: int) -> np.ndarray:
    """``n_rows`` × ``seq_len`` token rows from documents (+EOS), reshuffled each epoch."""
    stream = background_stream(token_docs, n_tokens=n_rows * seq_len, eos_id=eos_id, seed=seed)
    return stream.reshape(n_rows, seq_len)


def pack_corpus(texts: list[str], tokenizer, *, n_rows: int, seq_len: int, batch_size: int, seed: int) -> np.ndarray:
    """``n_rows`` × ``seq_len`` rows of the tokenized documents (+EOS), reshuffled each epoch
    (:func:`pack_background` of the non-empty documents).

    A corpus with fewer tokens (EOS included) than one batch (batch_size × seq_len) is an error:
    it would repeat inside a single batch.
    """
    from mnemoscope.engine.encoding import text_ids

    eos = tokenizer.eos_token_id
    if eos is None:
        raise MnemoscopeError("the tokenizer has no eos_token: documents need a separator")
    token_docs = text_ids(tokenizer, list(texts)) if texts else []
    total = sum(len(d) + 1 for d in token_docs if d)
    if total < batch_size * seq_len:
        raise MnemoscopeError(
            f"the corpus has {total} tokens, fewer than one batch ({batch_size} × {seq_len} = "
            f"{batch_size * seq_len}): give more text, or lower train.batch_size / train.seq_len"
        )
    return pack_background([d for d in token_docs if d], n_rows=n_rows, seq_len=seq_len, eos_id=eos, seed=seed)


def pack_in_order(doc_tokens: list[list[int]], order: list[int], n_rows: int, seq_len: int,
                  eos: int) -> tuple[np.ndarray, dict[int, int]]:
    """Rows of ``seq_len`` tokens from the documents in ``order`` (each + EOS), one pass, and for each
    document that made it in, the row where it starts: its training position (row // batch = step)."""
    need = n_rows * seq_len
    stream, starts = concatenate(doc_tokens, order, eos, limit=need)
    if len(stream) < need:
        raise MnemoscopeError(f"the corpus has {len(stream)} tokens but training needs {need}: raise corpus.n_docs or "
                              "lower train.steps")
    return _rows(stream, n_rows, seq_len), {i: offset // seq_len for i, offset in starts}


def pack_stream(order: list[str], tokens: dict[str, list[int]], seq_len: int, eos: int) -> tuple[np.ndarray, list[set[str]]]:
    """Concatenate documents (+EOS) in ``order`` and cut into rows of ``seq_len`` (the last row
    EOS-padded). Returns the rows and, per row, the ids of the documents with tokens in it."""
    stream, starts = concatenate([tokens[doc] for doc in order], range(len(order)), eos)
    n_rows = -(-len(stream) // seq_len)
    rows = _rows(stream + [eos] * (n_rows * seq_len - len(stream)), n_rows, seq_len)
    provenance: list[set[str]] = [set() for _ in range(n_rows)]
    for i, offset in starts:
        last = offset + len(tokens[order[i]])  # its EOS
        for r in range(offset // seq_len, last // seq_len + 1):
            provenance[r].add(order[i])
    return rows, provenance
