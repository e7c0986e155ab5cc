"""families.reasoning: Knights-and-Knaves accuracy and LiMem with scripted engines."""

from __future__ import annotations

import pytest

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.limem import limem_eval
from mnemoscope.families.reasoning import ANSWER_CUE, evaluate_puzzles, puzzle_prompt
from mnemoscope.metrics.reasoning import limem_from_results
from mnemoscope.probes import knights_knaves as kk

from .helpers import Scripted as ScriptedBackend


@pytest.fixture(scope="module")
def puzzles():
    return kk.generate_puzzles(4, n_people=2, seed=0) + kk.generate_puzzles(3, n_people=3, seed=1)


def Scripted(tokenizer, answers: dict[str, str]):
    """A scripted backend answering each prompt with ``answers[prompt]`` (a wrong answer otherwise)."""
    return ScriptedBackend(tokenizer, max_length=4096, reply=lambda p: " " + answers.get(p, "I do not know."))


def solver(tokenizer, puzzles):
    return Scripted(tokenizer, {puzzle_prompt(p): kk.render_solution(p) for p in puzzles})


def test_correct_answers_give_accuracy_one_in_one_call(tokenizer, puzzles):
    engine = solver(tokenizer, puzzles)
    samples, metrics, notes = evaluate_puzzles(engine, puzzles)
    assert engine.calls["generate"] == 1
    assert metrics["reasoning/kk/accuracy"] == 1.0
    assert metrics["reasoning/kk/n"] == 7.0
    assert metrics["reasoning/kk/n@people=3"] == 3.0
    assert samples["correct"].all() and notes == {}
    assert engine.prompts[0] == kk.render_puzzle(puzzles[0]) + ANSWER_CUE


def test_partly_wrong_answers(tokenizer, puzzles):
    answers = {puzzle_prompt(p): kk.render_solution(p) for p in puzzles[:4]}  # only the 2-person ones
    flipped = puzzles[4]
    answers[puzzle_prompt(flipped)] = kk.render_answer(flipped.names, [not r for r in kk.solution(flipped)])
    _, metrics, _ = evaluate_puzzles(Scripted(tokenizer, answers), puzzles)
    assert metrics["reasoning/kk/accuracy"] == pytest.approx(4 / 7)
    assert metrics["reasoning/kk/accuracy@people=2"] == 1.0
    assert metrics["reasoning/kk/accuracy@people=3"] == 0.0


def _perturbed(puzzles, kind, seed=0):
    fn = kk.perturb_statement if kind == "statement" else kk.perturb_leaf
    return [fn(p, seed + i) for i, p in enumerate(puzzles)]


def _perturbable(puzzle, kind, seed):
    try:
        _perturbed([puzzle], kind, seed)
    except MnemoscopeError:
        return False
    return True


@pytest.mark.parametrize("kind", ["statement", "leaf"])
def test_memorizer_has_limem_equal_to_accuracy(tokenizer, puzzles, kind):
    """A memorizer repeats the original's answer on the perturbed puzzle, whose answer changed."""
    puzzles = [p for i, p in enumerate(puzzles) if _perturbable(p, kind, i)]
    assert len(puzzles) >= 4
    answers = {}
    for p, q in zip(puzzles, _perturbed(puzzles, kind)):
        answers[puzzle_prompt(p)] = answers[puzzle_prompt(q)] = kk.render_solution(p)
    engine = Scripted(tokenizer, answers)
    samples, metrics, notes = limem_eval(engine, puzzles, perturb=kind, seed=0)
    g = f"@perturb={kind}"
    assert engine.calls["generate"] == 1
    assert metrics[f"reasoning/limem/acc{g}"] == 1.0
    assert metrics[f"reasoning/limem/acc_perturbed{g}"] == 0.0
    assert metrics[f"reasoning/limem/consistency_ratio{g}"] == 0.0
    assert metrics[f"reasoning/limem/limem{g}"] == 1.0
    assert metrics[f"reasoning/limem/n_skipped{g}"] == 0.0
    assert notes == {} and len(samples) == len(puzzles)


def test_reasoner_has_limem_zero_and_metrics_match_limem_from_results(tokenizer, puzzles):
    perturbed = _perturbed(puzzles, "statement")
    engine = solver(tokenizer, puzzles[:5] + perturbed[:3])  # solves originals 0-4, perturbations 0-2
    samples, metrics, _ = limem_eval(engine, puzzles, perturb="statement")
    expected = limem_from_results([True] * 5 + [False] * 2, [True] * 3 + [False] * 4)
    g = "@perturb=statement"
    for key in ("acc", "consistency_ratio", "limem", "n_items", "n_solved", "n_consistent"):
        assert metrics[f"reasoning/limem/{key}{g}"] == pytest.approx(expected[key])
    assert metrics[f"reasoning/limem/acc_perturbed{g}"] == pytest.approx(3 / 7)
    full = solver(tokenizer, puzzles + perturbed)
    assert limem_eval(full, puzzles).metrics[f"reasoning/limem/limem{g}"] == 0.0


def test_unperturbable_puzzles_are_skipped_and_counted(tokenizer, puzzles):
    stuck = kk.Puzzle(("Alice",), (("and", ("knave", 0), ("knight", 0)),), depth=2, id="stuck")
    engine = Scripted(tokenizer, {})
    samples, metrics, notes = limem_eval(engine, puzzles[:2] + [stuck], perturb="leaf")
    assert metrics["reasoning/limem/n_skipped@perturb=leaf"] == 1.0
    assert metrics["reasoning/limem/n_items@perturb=leaf"] == 2.0
    assert len(samples) == 2
    # nothing solved: CR undefined → left out with a note, LiMem = 0
    assert metrics["reasoning/limem/consistency_ratio@perturb=leaf"] is None
    assert metrics["reasoning/limem/limem@perturb=leaf"] == 0.0
    assert any("stuck" in n for n in notes.values()) and any("undefined" in n for n in notes.values())
    with pytest.raises(MnemoscopeError, match="unknown perturbation"):
        limem_eval(engine, puzzles, perturb="rename")


def test_runs_on_a_real_engine(model, tokenizer, puzzles):
    engine = Engine(model, tokenizer, max_length=1024)
    samples, metrics, _ = evaluate_puzzles(engine, puzzles[:2], max_new_tokens=4)
    assert 0.0 <= metrics["reasoning/kk/accuracy"] <= 1.0
    assert samples["generated"].map(lambda s: isinstance(s, str)).all()
