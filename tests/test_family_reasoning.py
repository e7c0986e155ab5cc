"""families.reasoning: Knights-and-Knaves accuracy with scripted engines (one generate call), and on a
real engine."""

from __future__ import annotations

import pytest

from mnemoscope.engine import Engine
from mnemoscope.families.reasoning import ANSWER_CUE, evaluate_puzzles, puzzle_prompt
from mnemoscope.probes import knights_knaves as kk

from .helpers import scripted_answers, scripted_solver


def test_correct_answers_give_accuracy_one_in_one_call(tokenizer, kk_puzzles):
    engine = scripted_solver(tokenizer, kk_puzzles)
    samples, metrics, notes = evaluate_puzzles(engine, kk_puzzles)
    assert engine.calls["generate"] == 1
    assert metrics["reasoning/kk/accuracy"] == 1.0
    assert metrics["reasoning/kk/n"] == 7.0
    assert metrics["reasoning/kk/n@people=3"] == 3.0
    assert samples["correct"].all() and notes == {}
    assert engine.prompts[0] == kk.render_puzzle(kk_puzzles[0]) + ANSWER_CUE


def test_partly_wrong_answers(tokenizer, kk_puzzles):
    answers = {puzzle_prompt(p): kk.render_solution(p) for p in kk_puzzles[:4]}  # only the 2-person ones
    flipped = kk_puzzles[4]
    answers[puzzle_prompt(flipped)] = kk.render_answer(flipped.names, [not r for r in kk.solution(flipped)])
    _, metrics, _ = evaluate_puzzles(scripted_answers(tokenizer, answers), kk_puzzles)
    assert metrics["reasoning/kk/accuracy"] == pytest.approx(4 / 7)
    assert metrics["reasoning/kk/accuracy@people=2"] == 1.0
    assert metrics["reasoning/kk/accuracy@people=3"] == 0.0


def test_runs_on_a_real_engine(model, tokenizer, kk_puzzles):
    engine = Engine(model, tokenizer, max_length=1024)
    samples, metrics, _ = evaluate_puzzles(engine, kk_puzzles[:2], max_new_tokens=4)
    assert 0.0 <= metrics["reasoning/kk/accuracy"] <= 1.0
    assert samples["generated"].map(lambda s: isinstance(s, str)).all()
