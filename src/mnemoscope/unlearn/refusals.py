"""Refusal targets ("I don't know"-style answers) for methods that train towards a refusal (IdkDPO).

open-unlearning's IdkDPO draws, for each forget question, one line of a file of refusal answers
(its ``idk_path``) at random every time the example is loaded. Here the user gives such a file
(``mnemoscope unlearn --refusals FILE``: .txt with one refusal a line, or .jsonl/.json/.parquet
records with a ``text`` field) and each forget example gets one of them, drawn once with the
run's seed, so a rerun trains on the same pairs. The lab uses :data:`LAB_REFUSALS`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from mnemoscope.errors import MnemoscopeError

# The lab's refusal answers (written for this project).
LAB_REFUSALS = (
    "I don't know.",
    "I'm not sure about that.",
    "I have no information about that.",
    "I can't answer that question.",
    "That is something I don't know.",
    "I have no idea.",
    "Sorry, I don't have that information.",
    "I am not able to say.",
)


def read_refusals(path: str) -> list[str]:
    """The refusal answers in ``path``, stripped (a blank one is refused by the reader, naming its line)."""
    from mnemoscope.probes import formats

    return [t.strip() for t in formats.load_texts_any(path)]


def with_refusals(examples: Sequence, refusals: Sequence[str], seed: int = 0) -> list:
    """``examples`` (``unlearn.examples.Example``) each with a refusal drawn from ``refusals``
    (seeded: the same seed and examples give the same pairs)."""
    if not refusals:
        raise MnemoscopeError("no refusal answers to draw from: give at least one")
    rng = random.Random(seed * 1_000_003 + 17)
    return [dataclasses.replace(e, refusal=rng.choice(list(refusals))) for e in examples]
