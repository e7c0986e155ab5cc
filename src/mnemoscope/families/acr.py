"""Adversarial compression ratio (Schwarzschild et al. 2024, *Rethinking LLM Memorization through
the Lens of Adversarial Compression*): how short a prompt forces a text out?

For each target y (token ids of a target text), search for the shortest prompt x whose greedy
continuation is exactly y (its first |y| tokens); ACR(y) = |y| / |x|, memorized iff ACR > 1.

Search (the authors' MiniPrompt schedule, ``locuslab/acr-memorization``): start with
``start_tokens`` free prompt tokens (or the target's optional ``prompt`` as a warm start), run
greedy coordinate gradient (GCG) for up to ``steps`` steps; on success try one token fewer, on
failure five tokens more with 1.2× the steps; stop when the next length would reach the shortest
success or fall to the longest failure. The cap ``max_prompt_tokens`` is 5 × the target's length
when 0 (the authors' ``max_tokens = -1``; clipped to the model's context, with a note) and is
itself tried: after a failure at n, the next length is min(n + 5, cap), so the search ends below
the cap only on a success, a length already failed, or the step budget (noted). The authors'
loop stops once n + 5 reaches the cap (cap 30: 5, 10, …, 25, never 26–30).

Every attempt starts from fresh random tokens (``restart = random``, the authors' ``prep_text``);
``restart = warm`` (ours, earlier default) starts each attempt after a success from the best
prompt minus its first tokens, which finds short prompts more easily (docs/metrics.md).
Each target has a budget of ``budget_steps`` GCG steps in all: when it runs out first, the row
says ``status = budget`` and its ACR (if any prompt was found) is only a lower bound.

GCG step: the gradient of the target's mean NLL w.r.t. the one-hot prompt tokens
(``engine.prompt_gradients``) gives each position's ``topk`` most promising tokens; ``batch_size``
candidates each replace one random position by one of them; all candidates are scored in one
``score_encoded`` call and the lowest-NLL one is kept. A candidate whose every target token is
the argmax is checked by a real greedy ``generate`` before it counts.

Keys: ``acr/ratio/mean`` (over targets with a prompt found), ``acr/memorized/rate`` (ACR > 1; no
prompt found = not memorized), ``acr/found/rate``, ``acr/budget_exhausted/count``, ``acr/n``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result
from mnemoscope.metrics.forecast import compression_ratio
from mnemoscope.probes.textfile import load_records

NAME = "acr"
TITLE = "Adversarial compression ratio"
DEFAULTS = {"acr": {"targets": "", "max_prompt_tokens": 0, "start_tokens": 5, "steps": 100, "budget_steps": 1000,
                    "batch_size": 100, "topk": 250, "restart": "random"}}
RESTARTS = ("random", "warm")
CAP_FACTOR = 5  # the authors' cap: 5 × the target's length (max_tokens = -1)
PATH_KEYS = ("acr.targets",)
NEEDS = ("logprobs", "distribution", "generate", "gradients")
HEADLINE = ("acr/memorized/rate", "acr/ratio/mean", "acr/budget_exhausted/count")
KEY = "acr/memorized/rate"


@dataclass
class Inputs:
    ids: list[str]
    targets: list[str]
    warm: list[str | None]
    settings: dict


@dataclass
class Plan:
    inputs: Inputs
    targets: list[list[int]]
    warm: list[list[int] | None]
    caps: list[int]  # longest prompt tried per target
    clipped: list[str]  # ids whose 5× cap was cut to the model's context


@dataclass
class Search:
    prompt: list[int] | None
    steps: int
    status: str  # "done" or "budget"
    attempts: list[tuple[int, bool]]  # (prompt length, success)


def read(cfg: dict, ctx: Context | None = None) -> Inputs | None:
    a = cfg["acr"]
    if not a["targets"]:
        return None
    for key in ("start_tokens", "steps", "budget_steps", "batch_size", "topk"):
        if int(a[key]) < 1:
            raise MnemoscopeError(f"acr.{key} must be ≥ 1, got {a[key]}")
    if int(a["max_prompt_tokens"]) < 0:
        raise MnemoscopeError(f"acr.max_prompt_tokens must be ≥ 1, or 0 for 5 × the target's length; "
                              f"got {a['max_prompt_tokens']}")
    if a["restart"] not in RESTARTS:
        raise MnemoscopeError(f"acr.restart must be one of {', '.join(RESTARTS)}, got {a['restart']!r}")
    if int(a["max_prompt_tokens"]) and int(a["start_tokens"]) > int(a["max_prompt_tokens"]):
        raise MnemoscopeError(f"acr.start_tokens ({a['start_tokens']}) exceeds acr.max_prompt_tokens "
                              f"({a['max_prompt_tokens']})")
    records = load_records(a["targets"])
    warm = []
    for i, r in enumerate(records):
        p = r.get("prompt")
        if p is not None and (not isinstance(p, str) or not p.strip()):
            raise MnemoscopeError(f"{a['targets']}: record {i + 1}: field 'prompt' must be a non-empty string when given")
        warm.append(p)
    return Inputs([str(r.get("id", i)) for i, r in enumerate(records)], [r["text"] for r in records], warm, dict(a))


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    for cap in NEEDS:
        engine.require(cap, "the adversarial compression ratio")
    s = inputs.settings
    fixed = int(s["max_prompt_tokens"])
    room = engine.max_length - len(engine.prefix_ids()) if engine.max_length else None
    targets, warm, caps, clipped = [], [], [], []
    for tid, text, w in zip(inputs.ids, inputs.targets, inputs.warm):
        ids = engine.text_ids(text)
        w_ids = engine.text_ids(w) if w else None
        cap = fixed or CAP_FACTOR * len(ids)
        if not fixed and room is not None and cap + len(ids) > room and room - len(ids) >= max(1, len(w_ids or [])):
            cap = room - len(ids)
            clipped.append(tid)
        longest = max(cap, len(w_ids or []))
        if not engine.fits(len(engine.prefix_ids()) + longest + len(ids)):
            raise MnemoscopeError(f"acr target {tid!r} has {len(ids)} tokens: with a prompt of up to {longest} tokens "
                                  f"it exceeds the model's context ({engine.max_length}); shorten the target or lower "
                                  "acr.max_prompt_tokens")
        targets.append(ids)
        warm.append(w_ids)
        caps.append(longest)
    return Plan(inputs, targets, warm, caps, clipped)


class _GCG:
    """Greedy coordinate gradient over prompt tokens for one target."""

    def __init__(self, engine: Backend, target: list[int], s: dict, rng: np.random.Generator):
        self.engine, self.target, self.rng = engine, target, rng
        self.batch, self.topk = int(s["batch_size"]), int(s["topk"])
        self.prefix = engine.prefix_ids()
        vocab = len(engine.tokenizer)
        self.allowed = np.setdiff1d(np.arange(vocab), np.asarray(engine.tokenizer.all_special_ids, dtype=np.int64))

    def random_prompt(self, n: int) -> list[int]:
        return self.rng.choice(self.allowed, size=n).tolist()

    def _score(self, prompts: list[list[int]]):
        start = len(self.prefix)
        items = [Encoded(ids=self.prefix + p + self.target, score_from=start + len(p), bos=self.engine.bos)
                 for p in prompts]
        return self.engine.score_encoded(items)

    def reproduces(self, prompt: list[int]) -> bool:
        out = self.engine.generate([self.prefix + prompt], max_new_tokens=len(self.target),
                                   min_new_tokens=len(self.target))[0]
        return list(out.token_ids) == self.target

    def run(self, prompt: list[int], steps: int) -> tuple[list[int], bool, int]:
        """(best prompt, success, steps used)."""
        (first,) = self._score([prompt])
        if first.argmax.all() and self.reproduces(prompt):
            return prompt, True, 0
        n = len(prompt)
        for step in range(1, steps + 1):
            grad, _ = self.engine.prompt_gradients(prompt, self.target)
            grad = grad[:, self.allowed]
            k = min(self.topk, self.allowed.size)
            top = self.allowed[np.argpartition(grad, k - 1, axis=1)[:, :k]]  # most negative gradient
            pos = self.rng.integers(0, n, self.batch)
            cands = np.tile(np.asarray(prompt), (self.batch, 1))
            cands[np.arange(self.batch), pos] = top[pos, self.rng.integers(0, k, self.batch)]
            scores = self._score(cands.tolist())
            losses = np.array([sc.nll for sc in scores])
            # candidates whose every target token is the argmax, best first, are checked by a real
            # greedy generation (ties in the argmax could differ)
            for j in [j for j in np.argsort(losses) if scores[j].argmax.all()][:3]:
                if self.reproduces(cands[j].tolist()):
                    return cands[j].tolist(), True, step
            prompt = cands[int(np.argmin(losses))].tolist()
        return prompt, False, steps


def _start(gcg: _GCG, n: int, best: list[int] | None, warm: list[int] | None, first: bool, restart: str) -> list[int]:
    """The prompt an attempt of n tokens starts from."""
    if restart == "warm" and best is not None and n < len(best):
        return best[len(best) - n :]  # drop the first tokens of the shortest success
    if warm and (first or restart == "warm"):
        if n <= len(warm):
            return warm[len(warm) - n :]
        return gcg.random_prompt(n - len(warm)) + warm
    return gcg.random_prompt(n)


def minimize_prompt(engine: Backend, target: list[int], warm: list[int] | None, s: dict, seed: int,
                    cap: int | None = None) -> Search:
    """The MiniPrompt schedule of GCG runs under a step budget (see module doc); ``cap`` is the
    longest prompt tried (default: ``max_prompt_tokens``, or 5 × the target's length when that is 0)."""
    rng = np.random.default_rng(seed)
    gcg = _GCG(engine, target, s, rng)
    if cap is None:
        cap = max(int(s["max_prompt_tokens"]) or CAP_FACTOR * len(target), len(warm or []))
    n = len(warm) if warm else min(int(s["start_tokens"]), cap)
    shortest, lo = cap + 1, 0  # shortest success so far (cap + 1: none), longest failure
    steps, budget, restart = int(s["steps"]), int(s["budget_steps"]), s.get("restart", "random")
    best, used, attempts = None, 0, []
    while True:
        start = _start(gcg, n, best, warm, not attempts, restart)
        run = min(steps, budget - used)
        if run < 1:
            return Search(best, used, "budget", attempts)
        prompt, ok, spent = gcg.run(start, run)
        used += spent
        attempts.append((n, ok))
        if ok:
            shortest, best, nxt = n, prompt, n - 1
        else:
            if spent < steps:  # the budget cut this attempt short: its failure says nothing
                return Search(best, used, "budget", attempts)
            lo, nxt = n, min(n + 5, cap)
            steps = int(steps * 1.2)
        if nxt >= shortest or nxt <= lo:
            return Search(best, used, "done", attempts)
        n = nxt


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    ctx = ctx or Context()
    s = plan.inputs.settings
    rows = []
    for i, (tid, target, warm, cap) in enumerate(zip(plan.inputs.ids, plan.targets, plan.warm, plan.caps)):
        res = minimize_prompt(engine, target, warm, s, seed=ctx.seed * 100_003 + i, cap=cap)
        n_prompt = len(res.prompt) if res.prompt is not None else None
        ratio = compression_ratio(len(target), n_prompt)
        rows.append({"id": tid, "target_tokens": len(target), "prompt_tokens": n_prompt, "acr": ratio,
                     "memorized": float(ratio > 1) if not math.isnan(ratio) else 0.0, "status": res.status,
                     "max_prompt_tokens": cap,
                     "steps": res.steps, "attempts": str(res.attempts),
                     "prompt": engine.decode(res.prompt) if res.prompt is not None else None,
                     "prompt_ids": res.prompt})
    frame = pd.DataFrame(rows)
    result = Result(samples=frame)
    found = frame["acr"].notna()
    exhausted = int((frame["status"] == "budget").sum())
    result.metrics.update({KEY: float(frame["memorized"].mean()), "acr/found/rate": float(found.mean()),
                           "acr/budget_exhausted/count": float(exhausted), "acr/n": float(len(frame))})
    if found.any():
        result.metrics["acr/ratio/mean"] = float(frame.loc[found, "acr"].mean())
    else:
        result.not_computed("acr/ratio/mean", "acr: no prompt reproducing any target was found within the budget")
    if exhausted:
        result.note(KEY, f"acr: the search budget (acr.budget_steps = {s['budget_steps']}) ran out for {exhausted} of "
                         f"{len(frame)} target(s) before the search finished; their ACR is a lower bound (null if no "
                         "prompt was found)")
    if plan.clipped:
        result.note(KEY, f"acr: the cap of {CAP_FACTOR} × the target's length exceeds the model's context "
                         f"({engine.max_length}) for {len(plan.clipped)} target(s) ({', '.join(plan.clipped[:5])}); "
                         "their longest prompt tried is what fits")
    return result
