"""Test helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import torch

from mnemoscope.lab.tiny import build_model

from .conftest import MICRO


class Counting:
    """Wraps an engine: counts ``score`` / ``generate`` calls and records each generate call."""

    def __init__(self, engine):
        self._engine = engine
        self.calls = {"score": 0, "generate": 0}
        self.generate_args = []

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def score(self, *args, **kwargs):
        self.calls["score"] += 1
        return self._engine.score(*args, **kwargs)

    def generate(self, prompts, **kwargs):
        self.calls["generate"] += 1
        self.generate_args.append((list(prompts), kwargs))
        return self._engine.generate(prompts, **kwargs)


def memorize(tokenizer, texts, steps=80, lr=1e-2, seed=0):
    """A micro model trained on ``texts`` until it reproduces them (a few dozen full-batch steps)."""
    torch.manual_seed(seed)
    model = build_model(MICRO, tokenizer, seed=seed)
    enc = tokenizer(texts, add_special_tokens=True, padding=True, return_tensors="pt")
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < 0.05, "the micro model did not memorize its texts"
    return model.eval()


class DyingSpec:
    """A backend spec (see ``engine.workers.ShardedBackend``) whose worker process exits abruptly
    when asked to score an item of exactly ``die_at`` tokens — a worker killed mid-run."""

    def __init__(self, inner, die_at: int):
        self.inner, self.die_at = inner, die_at
        for name in ("device", "model", "bos", "truncation", "revision", "trust_remote_code"):
            setattr(self, name, getattr(inner, name))

    def on(self, device):
        return DyingSpec(self.inner.on(device), self.die_at)

    def open(self):
        backend = self.inner.open()
        score_encoded, die_at = backend.score_encoded, self.die_at

        def dying(items):
            if any(len(it.ids) == die_at for it in items):
                import os

                os._exit(7)
            return score_encoded(items)

        backend.score_encoded = dying
        return backend
