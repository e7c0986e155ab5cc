"""Refusal answers (``unlearn/refusals.py``): drawn once per seed, read from files, bad input."""

from __future__ import annotations

import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import runner as R
from mnemoscope.unlearn.refusals import LAB_REFUSALS, read_refusals, with_refusals

from .helpers import OU_QA, OU_TEXTS


def test_refusals_are_drawn_once_per_seed_and_read_from_files(tmp_path):
    ex = R.qa_examples(OU_QA) + R.text_examples(OU_TEXTS)
    a, b = with_refusals(ex, LAB_REFUSALS, seed=3), with_refusals(ex, LAB_REFUSALS, seed=3)
    assert [e.refusal for e in a] == [e.refusal for e in b] and all(e.refusal in LAB_REFUSALS for e in a)
    assert [(e.prompt, e.target, e.id) for e in a] == [(e.prompt, e.target, e.id) for e in ex]
    assert len({tuple(e.refusal for e in with_refusals(ex, LAB_REFUSALS, seed=s)) for s in range(5)}) > 1
    txt = tmp_path / "idk.txt"
    txt.write_text("I don't know.\n  No idea.  \n")
    assert read_refusals(str(txt)) == ["I don't know.", "No idea."]
    blank = tmp_path / "blank.jsonl"
    blank.write_text('{"text": "I do not know."}\n{"text": "   "}\n')
    with pytest.raises(MnemoscopeError, match=r"blank.jsonl:2: field 'text' is empty"):
        read_refusals(str(blank))
    with pytest.raises(MnemoscopeError, match="no refusal"):
        with_refusals(ex, [], 0)
