"""Test helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import numpy as np
import torch

from mnemoscope.engine import Backend, Continuation, TokenScores
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

    def score_encoded(self, items):
        self.calls["score"] += 1
        return self._engine.score_encoded(items)

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


class Scripted(Backend):
    """The engine contract over plain-text scripts, for tests that pin what a family does with
    the engine's answers. Families encode prompts and pairs with a real tokenizer (as they must);
    this backend decodes them back (the lab's byte-level BPE round-trips exactly) and asks:

    - ``reply(prompt_text) -> str`` for each generated continuation (token ids ``[1]``);
    - ``logp(context_text, target_text) -> float`` for each scored (context, target) pair, or
      ``logp_text(text) -> float`` for each scored text, decoded whole (one scored token whose
      log-probability is that value).

    It records ``prompts`` and ``pairs`` (as texts) and counts calls per verb in ``calls``.
    """

    name = "scripted"
    provides = frozenset({"logprobs", "distribution", "generate"})

    def __init__(self, tokenizer, *, reply=None, logp=None, logp_text=None, max_length=None):
        super().__init__(tokenizer, max_length=max_length)
        self.reply, self.logp, self.logp_text = reply, logp, logp_text
        self.calls = {"score": 0, "generate": 0}
        self.prompts: list[str] = []
        self.pairs: list[tuple[str, str]] = []

    def score_encoded(self, items):
        self.calls["score"] += 1
        out = []
        for it in items:
            if self.logp_text is not None:
                value = self.logp_text(self.decode(it.ids))
            else:
                context, target = self.decode(it.ids[: it.score_from]), self.decode(it.ids[it.score_from:])
                self.pairs.append((context, target))
                value = self.logp(context, target)
            lp = np.array([value], dtype=np.float32)
            out.append(TokenScores(np.array([7]), lp, lp, np.ones(1, np.float32), np.array([False]), it.bos))
        return out

    def generate(self, prompts, *, max_new_tokens, min_new_tokens=None, sampling=None, banned=None):
        self.calls["generate"] += 1
        texts = [self.decode(p) for p in self.prompt_ids(prompts)]
        self.prompts += texts
        return [Continuation([1], self.reply(t), len(p)) for t, p in zip(texts, self.prompt_ids(prompts))]


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


def claim_effects(recipe: str, out, require_all: bool = True) -> dict[str, float | None]:
    """A finished run's claim: asserts the report opens with it (right after the overview) and, with
    ``require_all``, that every effect was computed; returns {effect label: value (None: missing)}."""
    import json
    from pathlib import Path

    from mnemoscope.claims import claim_for, effect_rows

    out = Path(out)
    claim = claim_for(recipe)
    rows = effect_rows(claim, json.loads((out / "metrics.json").read_text()))
    html = (out / "report.html").read_text()
    sections = html.split('<section id="')[1:]
    assert sections[1].startswith("claim") and claim.sentence.split(":")[0][:40] in sections[1]
    missing = [r["effect"].formula for r in rows if r["value"] is None]
    assert not (require_all and missing), f"claim effects not computed: {missing}"
    return {r["effect"].label: r["value"] for r in rows}


def declare(monkeypatch, *declared, runnable: bool = False, module: str = "toy_declarations") -> None:
    """Register ``declared`` (``mnemoscope.recipes.plugin.Recipe``) for one test: a module holding
    them in ``sys.modules`` and one registry line each (``RECIPES`` when ``runnable``, else
    ``RUN_KINDS``); monkeypatch undoes both."""
    import sys
    import types

    from mnemoscope import recipes

    holder = types.ModuleType(module)
    for i, recipe in enumerate(declared):
        setattr(holder, f"RECIPE_{i}", recipe)
    monkeypatch.setitem(sys.modules, module, holder)
    for recipe in declared:
        monkeypatch.setitem(recipes.RECIPES if runnable else recipes.RUN_KINDS, recipe.name, module)
