"""LiMem (Xie et al. 2024): memorization versus reasoning on Knights-and-Knaves puzzles.

Each puzzle gets one local, answer-changing perturbation (``perturb_statement`` or
``perturb_leaf``, seed ``seed + puzzle index``); originals and perturbed versions are answered in
ONE generate call; LiMem = Acc · (1 − CR), CR = the share of solved originals whose perturbed
version is also solved (``metrics.reasoning.limem_from_results``). High accuracy with low
consistency is memorization. Puzzles without such a perturbation are skipped, counted in
``n_skipped`` and noted; every other number is over the kept puzzles.

Reads the ``puzzles`` config section (``puzzles.perturb``: statement, leaf, or '' for off).
Keys (all ``@perturb=<kind>``): ``reasoning/limem/{acc, acc_perturbed, consistency_ratio, limem,
n_items, n_solved, n_consistent, n_skipped}``; CR is null when no original is solved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import reasoning
from mnemoscope.families.base import Context, Result, plan_and_measure
from mnemoscope.metrics.reasoning import limem_from_results
from mnemoscope.probes.knights_knaves import Puzzle

NAME = "limem"
TITLE = "LiMem (memorization vs reasoning)"
DEFAULTS: dict = {}  # reads the puzzles section of families.reasoning
PATH_KEYS: tuple[str, ...] = ()
NEEDS = ("generate",)
HEADLINE = ("reasoning/limem/limem@perturb=statement", "reasoning/limem/limem@perturb=leaf")


@dataclass
class Inputs:
    puzzles: reasoning.Inputs
    perturb: str = "statement"
    seed: int = 0


@dataclass
class Plan:
    inputs: Inputs
    originals: list[Puzzle]
    perturbed: list[Puzzle]
    skipped: list[str]
    prompts: list[list[int]]  # originals, then perturbed


def read(cfg: dict, ctx: Context) -> Inputs | None:
    if not cfg["puzzles"]["perturb"]:
        return None
    puzzles = reasoning.read(cfg, ctx)
    return None if puzzles is None else Inputs(puzzles, cfg["puzzles"]["perturb"], ctx.seed)


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    if inputs.perturb not in reasoning.PERTURBATIONS:
        raise MnemoscopeError(f"unknown perturbation '{inputs.perturb}': use one of {', '.join(reasoning.PERTURBATIONS)}")
    originals, perturbed, skipped = [], [], []
    for i, puzzle in enumerate(inputs.puzzles.puzzles):
        try:
            perturbed.append(reasoning.PERTURBATIONS[inputs.perturb](puzzle, inputs.seed + i))
        except MnemoscopeError as err:
            skipped.append(f"puzzle {puzzle.id or i}: {err}")
            continue
        originals.append(puzzle)
    prompts = reasoning.prompts_for(inputs.puzzles, originals + perturbed, engine)
    return Plan(inputs, originals, perturbed, skipped, prompts)


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    group = f"@perturb={plan.inputs.perturb}"
    originals, perturbed, skipped = plan.originals, plan.perturbed, plan.skipped
    result = Result(metrics={f"reasoning/limem/n_skipped{group}": float(len(skipped))})
    key = f"reasoning/limem/limem{group}"
    if skipped:
        result.note(key, f"limem: {len(skipped)} of {len(skipped) + len(originals)} puzzles have no "
                         f"{plan.inputs.perturb} perturbation and were skipped ({skipped[0]})")
    if not originals:
        result.not_computed(key, "limem: no puzzle left to evaluate")
        return result
    texts, correct = reasoning.answer(engine, originals + perturbed, plan.prompts, plan.inputs.puzzles.max_new_tokens)
    n = len(originals)
    result.samples = pd.DataFrame({
        "id": [p.id for p in originals],
        "perturbed_id": [p.id for p in perturbed],
        "n_people": [p.n_people for p in originals],
        "generated_original": texts[:n],
        "generated_perturbed": texts[n:],
        "correct_original": correct[:n],
        "correct_perturbed": correct[n:],
    })
    result.metrics[f"reasoning/limem/acc_perturbed{group}"] = float(sum(correct[n:]) / n)
    for name, value in limem_from_results(correct[:n], correct[n:]).items():
        if name == "consistency_ratio" and value != value:  # nan: nothing solved
            result.not_computed(f"reasoning/limem/{name}{group}",
                                "limem: no original puzzle was solved, so the consistency ratio is undefined "
                                "(LiMem = 0)")
            continue
        result.metrics[f"reasoning/limem/{name}{group}"] = float(value)
    return result


def limem_eval(engine: Backend, puzzles: Sequence[Puzzle], *, perturb: str = "statement", seed: int = 0,
               max_new_tokens: int = 128, instruction: bool = True,
               answer_cue: str = reasoning.ANSWER_CUE) -> Result:
    """Accuracy on originals and on their perturbations, CR and LiMem (see the module docstring)."""
    inputs = Inputs(reasoning.Inputs(list(puzzles), max_new_tokens, instruction, answer_cue), perturb, seed)
    return plan_and_measure(plan, measure, inputs, engine)
