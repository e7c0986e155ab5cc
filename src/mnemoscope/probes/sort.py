"""Sequence Order Recall Task (SORT) probes for episodic memory (docs/metrics.md).

A text is cut into consecutive, non-overlapping excerpts of L_E words (the whole text when
``excerpt_words`` is None). A *pair* is two non-overlapping segments of L_S words from one
excerpt; the question is which came first. Words are whitespace-separated tokens and segments
are re-joined with single spaces.

Distance of a pair = number of words strictly between the two segments:
``start_later − (start_earlier + L_S)`` (0 = adjacent). Distance bins are half-open intervals
``[edges[k], edges[k+1])`` of that distance; pairs are spread round-robin over the bins, then
drawn uniformly within a bin, so every bin gets n_pairs / K pairs (±1).

Counterbalancing: every pair yields two records, one showing the earlier segment as A
(answer " A") and one showing it as B (answer " B").

Record fields: ``pair_id, excerpt_id, excerpt_start`` (word offset of the excerpt in the text),
``excerpt, segment_a, segment_b, start_a, start_b`` (word offsets inside the excerpt),
``distance, bin, bin_label, a_first, answer`` (" A" or " B"), ``answer_index`` (0 or 1).
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np

from mnemoscope.errors import MnemoscopeError

CHOICES = (" A", " B")
QUESTION = "Which of the two segments appeared first in the text, A or B?"
READ_INSTRUCTION = (
    "Read the following text carefully. Afterwards you will see two segments taken from it "
    "and will be asked which of them came first."
)
RECALL_INSTRUCTION = (
    "Here are two segments taken from a text you have read. Decide which of them came first."
)


def _default_edges(max_gap: int, n_bins: int = 4) -> list[int]:
    """``n_bins`` equal-width integer bins covering distances 0..max_gap."""
    n_bins = max(1, min(n_bins, max_gap + 1))
    edges = np.linspace(0, max_gap + 1, n_bins + 1).round().astype(int).tolist()
    return sorted(set(edges))


def _bin_label(lo: int, hi: int) -> str:
    return f"{lo}-{hi - 1}"


def make_sort_pairs(
    text: str,
    segment_words: int = 20,
    excerpt_words: int | None = None,
    *,
    n_pairs: int = 100,
    distance_bins: Sequence[int] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """``2 · n_pairs`` counterbalanced SORT records (see the module docstring).

    ``distance_bins``: ascending bin edges on the gap in words, e.g. ``[0, 50, 200, 1000]``
    gives bins 0-49, 50-199, 200-999; default: 4 equal-width bins over the feasible gaps
    0..L_E − 2·L_S. Pairs are distinct (same excerpt and starts never repeat).
    """
    words = text.split()
    if segment_words < 1:
        raise MnemoscopeError(f"segment_words={segment_words}: must be >= 1")
    excerpt_len = len(words) if excerpt_words is None else excerpt_words
    if excerpt_len < 2 * segment_words:
        raise MnemoscopeError(
            f"excerpt_words={excerpt_len}: must be >= 2 · segment_words = {2 * segment_words} "
            f"(the text has {len(words)} words)"
        )
    if len(words) < excerpt_len:
        raise MnemoscopeError(
            f"text has {len(words)} words, fewer than excerpt_words={excerpt_len}; "
            "use a longer text or a smaller excerpt"
        )
    if n_pairs < 1:
        raise MnemoscopeError(f"n_pairs={n_pairs}: must be >= 1")
    n_excerpts = len(words) // excerpt_len
    max_gap = excerpt_len - 2 * segment_words
    edges = list(distance_bins) if distance_bins is not None else _default_edges(max_gap)
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] < 0:
        raise MnemoscopeError(
            f"distance_bins={edges}: need >= 2 strictly increasing edges starting at >= 0"
        )
    bins = [(lo, min(hi, max_gap + 1)) for lo, hi in zip(edges, edges[1:])]
    for k, (lo, hi) in enumerate(bins):
        if lo >= hi:
            raise MnemoscopeError(
                f"distance_bins: bin {_bin_label(edges[k], edges[k + 1])} "
                f"is out of reach; the largest gap in an excerpt of {excerpt_len} words with "
                f"segments of {segment_words} words is {max_gap}"
            )
    # how many distinct (excerpt, start, gap) triples each bin holds, to cap the demand
    capacity = [
        n_excerpts * sum(max_gap - g + 1 for g in range(lo, hi)) for lo, hi in bins
    ]
    demand = [n_pairs // len(bins) + (k < n_pairs % len(bins)) for k in range(len(bins))]
    for k, (need, have) in enumerate(zip(demand, capacity)):
        if need > have:
            raise MnemoscopeError(
                f"n_pairs={n_pairs}: bin {_bin_label(edges[k], edges[k + 1])} holds only {have} "
                "distinct pairs; ask for fewer pairs or use wider bins"
            )

    rng = random.Random(seed)
    seen: set[tuple[int, int, int]] = set()
    records: list[dict[str, Any]] = []
    for pair_id in range(n_pairs):
        k = pair_id % len(bins)
        lo, hi = bins[k]
        while True:  # terminates: capacity check above guarantees an unused triple exists
            excerpt_id = rng.randrange(n_excerpts)
            gap = rng.randrange(lo, hi)
            first = rng.randrange(0, max_gap - gap + 1)
            if (excerpt_id, first, gap) not in seen:
                seen.add((excerpt_id, first, gap))
                break
        second = first + segment_words + gap
        offset = excerpt_id * excerpt_len
        excerpt = words[offset : offset + excerpt_len]

        def segment(start: int) -> str:
            return " ".join(excerpt[start : start + segment_words])

        for a_first in (True, False):
            start_a, start_b = (first, second) if a_first else (second, first)
            records.append(
                {
                    "pair_id": pair_id,
                    "excerpt_id": excerpt_id,
                    "excerpt_start": offset,
                    "excerpt": " ".join(excerpt),
                    "segment_a": segment(start_a),
                    "segment_b": segment(start_b),
                    "start_a": start_a,
                    "start_b": start_b,
                    "distance": gap,
                    "bin": k,
                    "bin_label": _bin_label(edges[k], edges[k + 1]),
                    "a_first": a_first,
                    "answer": CHOICES[0] if a_first else CHOICES[1],
                    "answer_index": 0 if a_first else 1,
                }
            )
    return records


def sort_prompt(record: dict[str, Any], with_excerpt: bool) -> tuple[str, tuple[str, str]]:
    """(context, choices) for one record; the model's answer is the choice of higher
    log-probability after the context, and ``record["answer"]`` is the correct one.

    With the excerpt (short-term condition)::

        Read the following text carefully. ...
        <blank line> <excerpt> <blank line>
        Segment A: ...
        Segment B: ...
        Which of the two segments appeared first in the text, A or B?
        Answer: Segment

    Without it (long-term condition: the excerpt was only seen in training) the first block is
    replaced by a one-line :data:`RECALL_INSTRUCTION`.
    """
    if with_excerpt:
        head = f"{READ_INSTRUCTION}\n\n{record['excerpt']}\n\n"
    else:
        head = f"{RECALL_INSTRUCTION}\n\n"
    context = (
        f"{head}Segment A: {record['segment_a']}\n"
        f"Segment B: {record['segment_b']}\n"
        f"{QUESTION}\n"
        "Answer: Segment"
    )
    return context, CHOICES


def sort_accuracy_by_bin(
    records: Sequence[dict[str, Any]], chose_a: Sequence[bool]
) -> dict[str, float]:
    """Accuracy overall and per distance bin (chance = 0.5).

    Record i is correct iff ``chose_a[i] == records[i]["a_first"]``. Keys: ``accuracy``, ``n``,
    ``accuracy@bin=<label>``, ``n@bin=<label>``, ``chose_a_rate`` (position bias; 0.5 is
    unbiased on counterbalanced records) and ``pair_accuracy`` (share of pairs answered
    correctly in every order shown, which cancels a constant A/B preference).
    """
    chose = np.asarray(chose_a)
    if chose.ndim != 1 or len(chose) != len(records):
        raise MnemoscopeError(
            f"chose_a has shape {chose.shape} but there are {len(records)} records; "
            "pass one choice per record"
        )
    if len(records) == 0:
        raise MnemoscopeError("sort_accuracy_by_bin: no records")
    if chose.dtype != bool:
        if not np.isin(chose, (0, 1)).all():
            raise MnemoscopeError("chose_a: values must be booleans or 0/1")
        chose = chose.astype(bool)
    truth = np.array([bool(r["a_first"]) for r in records])
    correct = chose == truth
    out: dict[str, float] = {
        "accuracy": float(correct.mean()),
        "n": int(len(records)),
        "chose_a_rate": float(chose.mean()),
    }
    by_pair: dict[Any, bool] = {}
    for r, ok in zip(records, correct):
        by_pair[r["pair_id"]] = by_pair.get(r["pair_id"], True) and bool(ok)
    out["pair_accuracy"] = float(np.mean(list(by_pair.values())))
    order = sorted({(r["bin"], r["bin_label"]) for r in records})
    for b, label in order:
        mask = np.array([r["bin"] == b for r in records])
        out[f"accuracy@bin={label}"] = float(correct[mask].mean())
        out[f"n@bin={label}"] = int(mask.sum())
    return out
