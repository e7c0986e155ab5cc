"""Knights-and-Knaves puzzles (Xie et al. 2024): are they solved?

A puzzle is rendered with ``probes.knights_knaves.render_puzzle`` followed by ``answer_cue``
(default ``"\\nAnswer:"``; see :func:`puzzle_prompt`), answered greedily, and graded with
``probes.knights_knaves.is_correct`` (every person's role parsed and right). One generate call.

Config section ``puzzles``: ``file`` (puzzles, one JSON object per line), ``max_new_tokens``,
``instruction`` (prepend the task instruction), ``perturb`` (used by ``families.limem``).
Keys ``reasoning/kk/accuracy``, ``reasoning/kk/n``, ``reasoning/kk/{accuracy,n}@people=N``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result, check_generation, plan_and_measure
from mnemoscope.probes.knights_knaves import (
    Puzzle,
    is_correct,
    load_puzzles,
    perturb_leaf,
    perturb_statement,
    render_puzzle,
    solution,
)

NAME = "reasoning"
TITLE = "Knights and Knaves"
DEFAULTS = {"puzzles": {"file": "", "perturb": "statement", "max_new_tokens": 64, "instruction": True}}
PATH_KEYS = ("puzzles.file",)
NEEDS = ("generate",)
ANSWER_CUE = "\nAnswer:"
PERTURBATIONS = {"statement": perturb_statement, "leaf": perturb_leaf}
KEY = "reasoning/kk/accuracy"
HEADLINE = (KEY,)


def puzzle_prompt(puzzle: Puzzle, *, instruction: bool = True, answer_cue: str = ANSWER_CUE) -> str:
    """``render_puzzle(puzzle, instruction=instruction) + answer_cue``."""
    return render_puzzle(puzzle, instruction=instruction) + answer_cue


@dataclass
class Inputs:
    puzzles: list[Puzzle]
    max_new_tokens: int = 64
    instruction: bool = True
    answer_cue: str = ANSWER_CUE


@dataclass
class Plan:
    inputs: Inputs
    prompts: list[list[int]]


def read_puzzles(path: str) -> list[Puzzle]:
    """Puzzles of a file; bad UTF-8, a malformed puzzle, a puzzle without exactly one solution and
    an empty file are one-line errors naming the file (and line or puzzle) — before any model work."""
    p = Path(path)
    puzzles = load_puzzles(p)
    if not puzzles:
        raise MnemoscopeError(f"{p}: the file holds no puzzles; write one puzzle object per line")
    for puzzle in puzzles:
        try:
            solution(puzzle)
        except MnemoscopeError as err:
            raise MnemoscopeError(f"{p}: {err}") from None
    return puzzles


def read(cfg: dict, ctx: Context) -> Inputs | None:
    p = cfg["puzzles"]
    if not p["file"]:
        return None
    if p["perturb"] not in ("", *PERTURBATIONS):
        raise MnemoscopeError(f"puzzles.perturb '{p['perturb']}': use one of {', '.join(PERTURBATIONS)} (or '' for none)")
    return Inputs(read_puzzles(p["file"]), p["max_new_tokens"], p["instruction"])


def prompts_for(inputs: Inputs, puzzles: Sequence[Puzzle], engine: Backend) -> list[list[int]]:
    prompts = [engine.encode_prompt(puzzle_prompt(p, instruction=inputs.instruction, answer_cue=inputs.answer_cue))
               for p in puzzles]
    check_generation(engine, prompts, inputs.max_new_tokens, "puzzle", "puzzles.max_new_tokens",
                     ids=[p.id for p in puzzles])
    return prompts


def answer(engine: Backend, puzzles: Sequence[Puzzle], prompts: list[list[int]], max_new_tokens: int):
    """Greedy answers (texts) and whether each is right, one generate call."""
    outs = engine.generate(prompts, max_new_tokens=max_new_tokens)
    texts = [o.text for o in outs]
    return texts, [is_correct(p, t) for p, t in zip(puzzles, texts)]


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    return Plan(inputs, prompts_for(inputs, inputs.puzzles, engine))


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    puzzles = plan.inputs.puzzles
    result = Result()
    if not puzzles:
        result.not_computed(KEY, "reasoning/kk: no puzzles")
        return result
    texts, correct = answer(engine, puzzles, plan.prompts, plan.inputs.max_new_tokens)
    samples = pd.DataFrame({"id": [p.id for p in puzzles], "n_people": [p.n_people for p in puzzles],
                            "generated": texts, "correct": correct})
    result.samples = samples
    result.metrics.update({KEY: float(samples["correct"].mean()), "reasoning/kk/n": float(len(samples))})
    for n, group in samples.groupby("n_people", sort=True):
        result.metrics[f"reasoning/kk/accuracy@people={n}"] = float(group["correct"].mean())
        result.metrics[f"reasoning/kk/n@people={n}"] = float(len(group))
    return result


def evaluate_puzzles(engine: Backend, puzzles: Sequence[Puzzle], *, max_new_tokens: int = 128,
                     instruction: bool = True, answer_cue: str = ANSWER_CUE) -> Result:
    """Accuracy = share of puzzles answered fully right, overall and by number of people."""
    return plan_and_measure(plan, measure, Inputs(list(puzzles), max_new_tokens, instruction, answer_cue), engine)
