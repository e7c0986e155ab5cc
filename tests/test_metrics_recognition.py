import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.recognition import recall_scores, two_afc_accuracy
from mnemoscope.metrics.text import rouge_l_f1


def test_two_afc_hand():
    # correct, tie, wrong, correct -> (1 + 0.5 + 0 + 1) / 4
    assert two_afc_accuracy([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 5.0]) == 0.625


def test_two_afc_errors():
    with pytest.raises(ValueError, match="paired"):
        two_afc_accuracy([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one"):
        two_afc_accuracy([], [])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=30))
def test_two_afc_swap_is_complement(pairs):
    seen = [float(a) for a, _ in pairs]
    foil = [float(b) for _, b in pairs]
    assert two_afc_accuracy(seen, foil) + two_afc_accuracy(foil, seen) == pytest.approx(1.0)


def test_recall_scores_hand():
    out = recall_scores([1, 2, 9, 4], [1, 2, 3, 4], "the cat ran", "the cat sat")
    assert out["match_rate"] == 0.75
    assert out["exact"] == 0.0
    assert out["rouge_l_f1"] == pytest.approx(2 / 3)
    assert out["rouge_l_f1"] == rouge_l_f1("the cat ran", "the cat sat")
    assert recall_scores([7], [7], "x", "x") == {"match_rate": 1.0, "exact": 1.0, "rouge_l_f1": 1.0}


def test_unguessed_recall_hand():
    from mnemoscope.metrics.recognition import unguessed_recall

    # reference missed positions 1, 2, 4; the model hits 1 and 4 of them (and 0, which is not counted)
    assert unguessed_recall([1, 1, 0, 0, 1], [1, 0, 0, 1, 0]) == (2 / 3, 3)
    r, n = unguessed_recall([1, 0], [1, 1])
    assert n == 0 and math.isnan(r)
    with pytest.raises(MnemoscopeError):
        unguessed_recall([1, 0, 1], [1, 0])
