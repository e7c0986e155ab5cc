"""Examples as token batches: tokenized under the engine's BOS policy, right-padded, and drawn in a
seeded epoch-wise shuffle that a resumed run replays exactly."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mnemoscope.engine.encoding import Encoder, text_ids
from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.examples import Example


@dataclass(frozen=True)
class TrainItem:
    """Token ids and labels (``IGNORE_INDEX`` on prompt tokens) of one example window."""

    ids: tuple[int, ...]
    labels: tuple[int, ...]
    source: str


def encode_examples(examples: Sequence[Example], tokenizer, *, max_length: int, bos: str = "auto") -> list[TrainItem]:
    """Tokenize under the engine's BOS policy. Texts longer than ``max_length`` are cut into
    consecutive windows (each a new sequence; a BOS, when used, only at position 0); a prompted
    example keeps its target and drops the oldest prompt tokens. Windows with no target token
    after the first position are dropped."""
    if max_length < 2:
        raise MnemoscopeError(f"unlearn.max_length must be ≥ 2, got {max_length}")
    enc = Encoder(tokenizer, bos=bos, max_length=max_length, truncation="truncate")
    prefix = enc.prefix_ids()
    out: list[TrainItem] = []
    for e in examples:
        if not e.target:
            raise MnemoscopeError(f"example {e.id or '?'}: empty target; every example needs text to unlearn")
        if e.prompt:
            item = enc.encode_pair(e.prompt, e.target)
            labels = [L.IGNORE_INDEX] * item.score_from + list(item.ids[item.score_from:])
            out.append(TrainItem(tuple(item.ids), tuple(labels), e.id))
            continue
        body = text_ids(tokenizer, e.target)
        width = max_length - len(prefix)
        for start in range(0, len(body), width):
            ids = prefix + body[start : start + width]
            if len(ids) >= 2:
                out.append(TrainItem(tuple(ids), tuple(ids), e.id))
    if not out:
        raise MnemoscopeError("no example has a token to unlearn after tokenization; check the forget file")
    return out


@dataclass
class TokenBatch:
    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    labels: torch.Tensor  # [B, T], IGNORE_INDEX on prompt and pad
    sources: list[str]

    def split_rows(self, parts: int) -> list["TokenBatch"]:
        """``parts`` equal slices of rows (for gradient accumulation and data-parallel processes)."""
        n = self.input_ids.shape[0]
        if n % parts:
            raise MnemoscopeError(f"an unlearning batch of {n} rows does not split into {parts} equal parts "
                                  "(processes): make unlearn.batch_size a multiple of the number of processes")
        k = n // parts
        return [TokenBatch(self.input_ids[i * k:(i + 1) * k], self.attention_mask[i * k:(i + 1) * k],
                           self.labels[i * k:(i + 1) * k], self.sources[i * k:(i + 1) * k]) for i in range(parts)]


def collate(items: Sequence[TrainItem], pad_id: int) -> TokenBatch:
    """Right-pad to the longest item; pads are masked out of attention and labels."""
    width = max(len(it.ids) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), L.IGNORE_INDEX, dtype=torch.long)
    for b, it in enumerate(items):
        n = len(it.ids)
        ids[b, :n] = torch.tensor(it.ids)
        mask[b, :n] = 1
        labels[b, :n] = torch.tensor(it.labels)
    return TokenBatch(ids, mask, labels, [it.source for it in items])


class BatchStream:
    """Batch ``step`` of a seeded epoch-wise shuffle of ``items`` (deterministic, resumable)."""

    def __init__(self, items: Sequence[TrainItem], batch_size: int, seed: int, pad_id: int):
        if not items:
            raise MnemoscopeError("an unlearning set is empty after tokenization")
        self.items, self.batch_size, self.seed, self.pad_id = list(items), max(1, batch_size), seed, pad_id
        self.per_epoch = max(1, math.ceil(len(self.items) / self.batch_size))
        self._orders: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(len(self.items)))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            self._orders[epoch] = order
        return self._orders[epoch]

    def indices(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.per_epoch)
        return self._order(epoch)[k * self.batch_size : (k + 1) * self.batch_size]

    def batch(self, step: int) -> TokenBatch:
        return collate([self.items[i] for i in self.indices(step)], self.pad_id)


def to_device(batch: TokenBatch, device) -> TokenBatch:
    return TokenBatch(batch.input_ids.to(device), batch.attention_mask.to(device), batch.labels.to(device), batch.sources)


def encode_forget(forget: Sequence[Example], tokenizer, method, hp: dict, *, max_length: int,
                  bos: str) -> tuple[list[TrainItem], list[TrainItem] | None]:
    """The forget items and, for a method with ``needs_pairs``, each item's partner (the paired
    example of its source example, repeated for every window of a long text), row for row."""
    if not method.needs_pairs:
        return encode_examples(forget, tokenizer, max_length=max_length, bos=bos), None
    items, pairs = [], []
    for e in forget:
        own = encode_examples([e], tokenizer, max_length=max_length, bos=bos)
        partner = encode_examples([method.paired(e, hp)], tokenizer, max_length=max_length, bos=bos)[0]
        items += own
        pairs += [partner] * len(own)
    return items, pairs
