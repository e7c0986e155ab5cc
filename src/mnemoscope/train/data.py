"""Training data with controlled injection: background sequences plus planned document injections.

The background rows come from ``train.packing`` (documents + EOS, concatenated in a seeded order
reshuffled every epoch, cut into fixed-length rows). Every planned injection is an exact
(step, row, offset), so a dose is exact and testable. Two ways to put a document into a row:

* ``replace`` (Chang et al. 2024, and the quickstart): ``row[offset : offset+n] = doc;
  row[offset+n] = EOS`` and ``row[offset-1] = EOS`` when ``offset > 0``: the document overwrites
  background tokens and always starts after a separator.
* ``splice``: the row's documents (each + EOS) are inserted at a document boundary of the
  background stream (row start, or just after an EOS) at or before the planned offset; the
  background continues after them and every later row shifts, so no background token is lost:
  removing the injected blocks from the concatenated rows gives back the background stream.

A row may carry several documents; they form one contiguous block ``doc EOS doc EOS ...``.
:func:`schedule_documents` says which documents go in at which steps (modes ``once``,
``duplicate``, ``paraphrase``) and :func:`place_events` turns that into exact injections.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from mnemoscope.errors import MnemoscopeError

MODES = ("once", "duplicate", "paraphrase")
PLACEMENTS = ("replace", "splice")


@dataclass(frozen=True)
class Injection:
    step: int
    row: int
    offset: int
    doc_id: str
    n_tokens: int  # document tokens, EOS excluded

    def to_dict(self) -> dict:
        return asdict(self)


def plan_injections(
    doc_tokens: dict[str, int],
    doses: dict[str, int],
    *,
    steps: int,
    batch_size: int,
    seq_len: int,
    seed: int,
    first_step: int = 0,
) -> list[Injection]:
    """Spread Σ doses copies over distinct random (step, row) slots in [first_step, steps), one per row.

    Raises when a document plus its separators does not fit a row, or when there are more copies
    than rows to carry them.
    """
    rng = random.Random(seed + 1)
    copies = [doc_id for doc_id, dose in sorted(doses.items()) for _ in range(dose)]
    slots = (steps - first_step) * batch_size
    if len(copies) > slots:
        raise MnemoscopeError(
            f"{len(copies)} injected copies but only {slots} training rows: raise train.steps or "
            "train.batch_size, or lower the doses"
        )
    for doc_id in doses:
        if doc_tokens[doc_id] + 2 > seq_len:
            raise MnemoscopeError(
                f"injected document '{doc_id}' has {doc_tokens[doc_id]} tokens, more than fits a row of "
                f"{seq_len} with separators: raise train.seq_len or shorten it"
            )
    rng.shuffle(copies)
    chosen = sorted(rng.sample(range(slots), len(copies)))
    plan = []
    for slot, doc_id in zip(chosen, copies):
        n = doc_tokens[doc_id]
        offset = rng.randint(0, seq_len - n - 1)
        plan.append(Injection(step=first_step + slot // batch_size, row=slot % batch_size, offset=offset, doc_id=doc_id, n_tokens=n))
    return plan


# --------------------------------------------------------------------------- schedules


def injection_steps(relative: Sequence[int], start: int = 0) -> list[int]:
    """Absolute injection steps ``start + r`` for relative steps r (e.g. 0, 100, …, 900)."""
    rel = [int(r) for r in relative]
    if not rel:
        raise MnemoscopeError("injection.steps is empty: give at least one relative injection step")
    if start < 0 or rel[0] < 0 or any(b <= a for a, b in zip(rel, rel[1:])):
        raise MnemoscopeError(
            f"injection steps must be ≥ 0 and strictly increasing (start={start}, relative={rel})"
        )
    return [start + r for r in rel]


def schedule_documents(
    versions: dict[str, list[str]], mode: str, steps: Sequence[int], dose: int = 1
) -> list[tuple[int, str]]:
    """(step, doc_id) events for items with text versions (version 0 = the original).

    once: version 0 at ``steps[0]``; duplicate: version 0 at every step; paraphrase: version i at
    the i-th step, so every injection is a different text. Each event is repeated ``dose`` times.
    """
    if mode not in MODES:
        raise MnemoscopeError(f"unknown injection mode '{mode}': use one of {', '.join(MODES)}")
    if dose < 1:
        raise MnemoscopeError(f"injection dose must be ≥ 1 (got {dose})")
    events: list[tuple[int, str]] = []
    for item, docs in versions.items():
        if not docs:
            raise MnemoscopeError(f"item '{item}' has no document to inject")
        if mode == "once":
            chosen = [(steps[0], docs[0])]
        elif mode == "duplicate":
            chosen = [(s, docs[0]) for s in steps]
        else:
            if len(set(docs)) < len(steps):
                raise MnemoscopeError(
                    f"paraphrase mode needs {len(steps)} different versions of '{item}' (one per injection), "
                    f"it has {len(set(docs))}: raise the number of paraphrases or use fewer injections"
                )
            chosen = list(zip(steps, docs))
        events.extend(e for e in chosen for _ in range(dose))
    return sorted(events, key=lambda e: e[0])


def place_events(
    events: Sequence[tuple[int, str]],
    doc_tokens: dict[str, int],
    *,
    steps: int,
    batch_size: int,
    seq_len: int,
    seed: int,
) -> list[Injection]:
    """Exact injections for (step, doc_id) events.

    Each step's documents go to rows longest first, each to the row with the most room left (ties
    broken in a seeded random row order); a row's documents form one block ``doc EOS doc EOS …``
    of Σ(n+1) tokens starting at a seeded random offset in [0, seq_len − block].
    """
    rng = random.Random(seed + 2)
    by_step: dict[int, list[str]] = {}
    for step, doc_id in events:
        if doc_id not in doc_tokens:
            raise MnemoscopeError(f"injected document '{doc_id}' has no tokens: tokenize it first")
        if not 0 <= step < steps:
            raise MnemoscopeError(
                f"injection of '{doc_id}' at step {step} is beyond training ({steps} steps): raise "
                "train.steps or move the injection steps earlier"
            )
        n = doc_tokens[doc_id]
        if n < 1 or n + 1 > seq_len:
            raise MnemoscopeError(
                f"injected document '{doc_id}' has {n} tokens + EOS, more than fits a sequence of "
                f"{seq_len}: raise train.seq_len or shorten the document"
            )
        by_step.setdefault(step, []).append(doc_id)
    plan: list[Injection] = []
    for step in sorted(by_step):
        docs = sorted(by_step[step], key=lambda d: -doc_tokens[d])
        need = sum(doc_tokens[d] + 1 for d in docs)
        rows = list(range(batch_size))
        rng.shuffle(rows)
        load = {r: 0 for r in rows}
        content: dict[int, list[str]] = {r: [] for r in rows}
        for d in docs:
            row = max(rows, key=lambda r: seq_len - load[r])  # first of the emptiest, in shuffled order
            if load[row] + doc_tokens[d] + 1 > seq_len:
                raise MnemoscopeError(
                    f"step {step}: {len(docs)} injected documents ({need} tokens with EOS) do not fit a batch of "
                    f"{batch_size} × {seq_len}: raise train.batch_size or train.seq_len, or inject fewer documents"
                )
            load[row] += doc_tokens[d] + 1
            content[row].append(d)
        for row in sorted(content):
            if not content[row]:
                continue
            offset = rng.randint(0, seq_len - load[row])
            for d in content[row]:
                plan.append(Injection(step=step, row=row, offset=offset, doc_id=d, n_tokens=doc_tokens[d]))
                offset += doc_tokens[d] + 1
    return plan


# --------------------------------------------------------------------------- batches


class InjectedData:
    """Serves batch ``step`` = background rows with that step's injections applied.

    ``mode="replace"`` overwrites background tokens; ``mode="splice"`` inserts the documents at a
    document boundary and shifts the background (see the module docstring). ``placements`` are the
    injections at their actual offsets (in splice mode the boundary actually used). Every served
    batch is checked: each planned document is in its row at its offset, and a step with
    injections has injected tokens that receive loss; otherwise MnemoscopeError is raised.
    """

    def __init__(
        self,
        background: np.ndarray,
        batch_size: int,
        injections: list[Injection],
        doc_ids: dict[str, list[int]],
        eos_id: int,
        mode: str = "replace",
    ):
        if background.shape[0] % batch_size:
            raise ValueError("background rows must be a multiple of the batch size")
        if mode not in PLACEMENTS:
            raise MnemoscopeError(f"unknown injection placement '{mode}': use one of {', '.join(PLACEMENTS)}")
        self.background = background
        self.batch_size = batch_size
        self.seq_len = background.shape[1]
        self.doc_ids = doc_ids
        self.eos_id = eos_id
        self.mode = mode
        self.steps = background.shape[0] // batch_size
        self.by_step: dict[int, list[Injection]] = {}
        for inj in injections:
            if not 0 <= inj.step < self.steps:
                raise MnemoscopeError(f"injection of '{inj.doc_id}' at step {inj.step} is beyond training ({self.steps} steps)")
            if len(doc_ids[inj.doc_id]) != inj.n_tokens:
                raise MnemoscopeError(f"injection of '{inj.doc_id}': planned {inj.n_tokens} tokens, document has {len(doc_ids[inj.doc_id])}")
            self.by_step.setdefault(inj.step, []).append(inj)
        for step, injs in self.by_step.items():
            injs.sort(key=lambda i: (i.row, i.offset))
            _check_block_layout(step, injs, self.seq_len)
        if mode == "splice":
            self._stream = background.reshape(-1)
            self._inj_steps = sorted(self.by_step)
            inserted = [sum(i.n_tokens + 1 for i in self.by_step[s]) for s in self._inj_steps]
            self._inserted_before = np.concatenate([[0], np.cumsum(inserted)]).astype(np.int64)
            self.placements = [p for s in self._inj_steps for p in self._splice_step(s)[1]]
        else:
            self.placements = [i for s in sorted(self.by_step) for i in self.by_step[s]]
        self._placed = {}
        for p in self.placements:
            self._placed.setdefault(p.step, []).append(p)

    # -- building
    def _splice_step(self, step: int) -> tuple[np.ndarray, list[Injection]]:
        B, L = self.batch_size, self.seq_len
        k = bisect.bisect_left(self._inj_steps, step)
        ptr = step * B * L - int(self._inserted_before[k])
        rows = np.empty((B, L), dtype=self.background.dtype)
        placed: list[Injection] = []
        per_row: dict[int, list[Injection]] = {}
        for inj in self.by_step.get(step, []):
            per_row.setdefault(inj.row, []).append(inj)
        for r in range(B):
            injs = per_row.get(r, [])
            block = sum(i.n_tokens + 1 for i in injs)
            bg = self._stream[ptr : ptr + L - block]
            ptr += L - block
            if not injs:
                rows[r] = bg
                continue
            p = injs[0].offset  # the last document boundary at or before the planned offset
            while p > 0 and bg[p - 1] != self.eos_id:
                p -= 1
            parts, at = [bg[:p]], p
            for inj in injs:
                parts += [np.asarray(self.doc_ids[inj.doc_id], dtype=rows.dtype), np.asarray([self.eos_id], dtype=rows.dtype)]
                placed.append(replace(inj, offset=at))
                at += inj.n_tokens + 1
            parts.append(bg[p:])
            rows[r] = np.concatenate(parts)
        return rows, placed

    def batch(self, step: int) -> np.ndarray:
        if self.mode == "splice":
            rows, _ = self._splice_step(step)
        else:
            rows = self.background[step * self.batch_size : (step + 1) * self.batch_size].copy()
            for inj in self.by_step.get(step, []):
                doc = self.doc_ids[inj.doc_id]
                row = rows[inj.row]
                if inj.offset > 0:
                    row[inj.offset - 1] = self.eos_id
                row[inj.offset : inj.offset + len(doc)] = doc
                row[inj.offset + len(doc)] = self.eos_id
        self._verify(step, rows)
        return rows

    def _verify(self, step: int, rows: np.ndarray) -> None:
        """Every planned document is in place; a step with injections has tokens that receive loss."""
        placed = self._placed.get(step, [])
        for p in placed:
            got = rows[p.row, p.offset : p.offset + p.n_tokens]
            if list(got) != list(self.doc_ids[p.doc_id]) or rows[p.row, p.offset + p.n_tokens] != self.eos_id:
                raise MnemoscopeError(f"step {step}: injected document '{p.doc_id}' is not in row {p.row} at offset {p.offset}")
        if placed and self.injected_tokens_with_loss(step) < 1:
            raise MnemoscopeError(f"step {step}: the injection would put no token under the loss")

    # -- bookkeeping
    def injected_tokens_with_loss(self, step: int) -> int:
        """Injected document tokens that receive loss this step (a row's first token gets none)."""
        return sum(p.n_tokens - (1 if p.offset == 0 else 0) for p in self._placed.get(step, []))

    def injection_log(self) -> list[dict]:
        """Per injection step: documents, injected tokens and those that receive loss."""
        return [
            {"step": s, "n_docs": len(ps), "injected_tokens": sum(p.n_tokens for p in ps),
             "tokens_with_loss": self.injected_tokens_with_loss(s)}
            for s, ps in sorted(self._placed.items())
        ]


def _check_block_layout(step: int, injs: list[Injection], seq_len: int) -> None:
    """A row's injections must not overlap and must fit the row with their EOS."""
    last_row, end = None, 0
    for inj in injs:
        if inj.row != last_row:
            last_row, end = inj.row, 0
        if inj.offset < end or inj.offset < 0 or inj.offset + inj.n_tokens + 1 > seq_len:
            raise MnemoscopeError(
                f"step {step}, row {inj.row}: injection of '{inj.doc_id}' at offset {inj.offset} overlaps another "
                f"or does not fit a sequence of {seq_len}"
            )
        end = inj.offset + inj.n_tokens + 1
