"""Neighbours of a text for the neighbourhood attack: copies with a few words swapped.

Mattern et al. (2023) make neighbours with a masked language model; offline, with no such model,
we swap words for random whole-word tokens of the target model's own vocabulary (seeded): a
neighbour keeps the text's length and form and changes its content slightly.
"""

from __future__ import annotations

import random
import re

__all__ = ["WORD", "vocabulary_words", "word_swap_neighbours"]

WORD = re.compile(r"[A-Za-z]{3,}")


def vocabulary_words(decoded_tokens: list[str]) -> list[str]:
    """Tokens that decode to a space and one alphabetic word of ≥ 3 letters (the word, stripped)."""
    out = sorted({t[1:] for t in decoded_tokens if t.startswith(" ") and WORD.fullmatch(t[1:])})
    return out


def word_swap_neighbours(text: str, words: list[str], n: int, *, swaps: int = 1, seed: int = 0) -> list[str]:
    """``n`` neighbours of ``text``, each with ``swaps`` of its alphabetic words replaced by a different
    random word from ``words``. A text without such words has no neighbours ([])."""
    slots = [m.span() for m in WORD.finditer(text)]
    if not slots or not words or n < 1:
        return []
    rng = random.Random(f"{seed}:{text}")  # per-text seed: independent of the other texts
    out = []
    for _ in range(n):
        chosen = sorted(rng.sample(range(len(slots)), min(swaps, len(slots))), reverse=True)
        new = text
        for k in chosen:
            a, b = slots[k]
            old = text[a:b]
            repl = old
            while repl == old and len(words) > 1:
                repl = rng.choice(words)
            new = new[:a] + repl + new[b:]
        out.append(new)
    return out
