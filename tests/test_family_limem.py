"""families.limem: LiMem of a scripted memorizer equals its accuracy, of a reasoner zero; unperturbable
puzzles skipped and counted."""

from __future__ import annotations

import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.limem import limem_eval
from mnemoscope.families.reasoning import puzzle_prompt
from mnemoscope.metrics.reasoning import limem_from_results
from mnemoscope.probes import knights_knaves as kk

from .helpers import scripted_answers, scripted_solver


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
def test_memorizer_has_limem_equal_to_accuracy(tokenizer, kk_puzzles, kind):
    """A memorizer repeats the original's answer on the perturbed puzzle, whose answer changed."""
    kk_puzzles = [p for i, p in enumerate(kk_puzzles) if _perturbable(p, kind, i)]
    assert len(kk_puzzles) >= 4
    answers = {}
    for p, q in zip(kk_puzzles, _perturbed(kk_puzzles, kind)):
        answers[puzzle_prompt(p)] = answers[puzzle_prompt(q)] = kk.render_solution(p)
    engine = scripted_answers(tokenizer, answers)
    samples, metrics, notes = limem_eval(engine, kk_puzzles, perturb=kind, seed=0)
    g = f"@perturb={kind}"
    assert engine.calls["generate"] == 1
    assert metrics[f"reasoning/limem/acc{g}"] == 1.0
    assert metrics[f"reasoning/limem/acc_perturbed{g}"] == 0.0
    assert metrics[f"reasoning/limem/consistency_ratio{g}"] == 0.0
    assert metrics[f"reasoning/limem/limem{g}"] == 1.0
    assert metrics[f"reasoning/limem/n_skipped{g}"] == 0.0
    assert notes == {} and len(samples) == len(kk_puzzles)


def test_reasoner_has_limem_zero_and_metrics_match_limem_from_results(tokenizer, kk_puzzles):
    perturbed = _perturbed(kk_puzzles, "statement")
    engine = scripted_solver(tokenizer, kk_puzzles[:5] + perturbed[:3])  # solves originals 0-4, perturbations 0-2
    samples, metrics, _ = limem_eval(engine, kk_puzzles, perturb="statement")
    expected = limem_from_results([True] * 5 + [False] * 2, [True] * 3 + [False] * 4)
    g = "@perturb=statement"
    for key in ("acc", "consistency_ratio", "limem", "n_items", "n_solved", "n_consistent"):
        assert metrics[f"reasoning/limem/{key}{g}"] == pytest.approx(expected[key])
    assert metrics[f"reasoning/limem/acc_perturbed{g}"] == pytest.approx(3 / 7)
    full = scripted_solver(tokenizer, kk_puzzles + perturbed)
    assert limem_eval(full, kk_puzzles).metrics[f"reasoning/limem/limem{g}"] == 0.0


def test_unperturbable_puzzles_are_skipped_and_counted(tokenizer, kk_puzzles):
    stuck = kk.Puzzle(("Alice",), (("and", ("knave", 0), ("knight", 0)),), depth=2, id="stuck")
    engine = scripted_answers(tokenizer, {})
    samples, metrics, notes = limem_eval(engine, kk_puzzles[:2] + [stuck], perturb="leaf")
    assert metrics["reasoning/limem/n_skipped@perturb=leaf"] == 1.0
    assert metrics["reasoning/limem/n_items@perturb=leaf"] == 2.0
    assert len(samples) == 2
    # nothing solved: CR undefined → left out with a note, LiMem = 0
    assert metrics["reasoning/limem/consistency_ratio@perturb=leaf"] is None
    assert metrics["reasoning/limem/limem@perturb=leaf"] == 0.0
    assert any("stuck" in n for n in notes.values()) and any("undefined" in n for n in notes.values())
    with pytest.raises(MnemoscopeError, match="unknown perturbation"):
        limem_eval(engine, kk_puzzles, perturb="rename")
