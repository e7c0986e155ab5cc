"""Foils for two-alternative forced-choice recognition (docs/metrics.md).

For a seen text x, a foil x' is a text the model did not study; recognition is correct iff
NLL(x) < NLL(x'). Every function here is deterministic given its ``seed`` and returns a text
that differs from the original, or raises :class:`MnemoscopeError` when that is impossible
(e.g. shuffling a one-word text).

Kinds: ``novel`` (another text from a pool), ``paraphrase`` (from a user mapping),
``swap_word`` (one word replaced by a synonym from :data:`SYNONYMS`, else by a random
vocabulary word), ``random_words``, ``shuffled_words``, ``shuffled_letters``.
"""

from __future__ import annotations

import random
import re
from typing import Mapping, Sequence

from mnemoscope.errors import MnemoscopeError

_WORD = re.compile(r"[A-Za-z]+")
_MAX_TRIES = 100

# A small, symmetric-by-construction table of common English synonyms (lower case).
_SYNONYM_GROUPS = (
    ("big", "large", "huge"), ("small", "little", "tiny"), ("fast", "quick", "rapid"),
    ("slow", "sluggish"), ("happy", "glad", "cheerful"), ("sad", "unhappy", "gloomy"),
    ("begin", "start", "commence"), ("end", "finish", "conclude"), ("house", "home"),
    ("road", "street", "path"), ("car", "automobile"), ("child", "kid"),
    ("woman", "lady"), ("man", "gentleman"), ("old", "aged", "elderly"),
    ("new", "fresh", "novel"), ("smart", "clever", "bright"), ("foolish", "silly", "unwise"),
    ("rich", "wealthy", "affluent"), ("poor", "needy"), ("hard", "difficult", "tough"),
    ("easy", "simple", "effortless"), ("say", "state", "declare"), ("said", "stated", "declared"),
    ("look", "glance", "peer"), ("walk", "stroll", "stride"), ("walked", "strolled", "strode"),
    ("run", "sprint", "dash"), ("ran", "sprinted", "dashed"), ("buy", "purchase"),
    ("bought", "purchased"), ("help", "assist", "aid"), ("helped", "assisted", "aided"),
    ("show", "display", "reveal"), ("choose", "pick", "select"), ("chose", "picked", "selected"),
    ("answer", "reply", "response"), ("idea", "notion", "thought"), ("city", "town"),
    ("job", "occupation", "profession"), ("angry", "furious", "irate"), ("calm", "serene"),
    ("cold", "chilly", "frigid"), ("hot", "warm", "scorching"), ("quiet", "silent", "hushed"),
    ("loud", "noisy"), ("beautiful", "lovely", "pretty"), ("ugly", "unsightly"),
    ("often", "frequently"), ("maybe", "perhaps"), ("almost", "nearly"),
    ("enough", "sufficient"), ("shut", "close"), ("gift", "present"), ("error", "mistake"),
    ("film", "movie"), ("sick", "ill"), ("scared", "afraid", "frightened"),
    ("strong", "powerful", "sturdy"), ("weak", "feeble", "frail"), ("story", "tale"),
    ("famous", "renowned", "celebrated"), ("river", "stream"),
)


def _build_synonyms() -> dict[str, tuple[str, ...]]:
    table: dict[str, set[str]] = {}
    for group in _SYNONYM_GROUPS:
        for word in group:
            table.setdefault(word, set()).update(w for w in group if w != word)
    return {word: tuple(sorted(others)) for word, others in sorted(table.items())}


SYNONYMS: dict[str, tuple[str, ...]] = _build_synonyms()


def _match_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def novel_foil(original: str, pool: Sequence[str], seed: int = 0) -> str:
    """A text drawn from ``pool`` (e.g. held-out texts from the same generator) that differs
    from ``original``."""
    candidates = sorted({text for text in pool if text.strip() != original.strip()})
    if not candidates:
        raise MnemoscopeError("novel_foil: the pool has no text that differs from the original")
    return random.Random(seed).choice(candidates)


def paraphrase_foil(original: str, mapping: Mapping[str, str]) -> str:
    """The user's paraphrase of ``original`` (``mapping[original]``)."""
    if original not in mapping:
        raise MnemoscopeError(
            f"paraphrase_foil: no paraphrase given for {original[:40]!r}...; add it to the mapping"
        )
    paraphrase = mapping[original]
    if paraphrase.strip() == original.strip():
        raise MnemoscopeError(
            f"paraphrase_foil: the paraphrase of {original[:40]!r}... equals the original"
        )
    return paraphrase


def swap_word_foil(
    original: str,
    seed: int = 0,
    *,
    vocab: Sequence[str] | None = None,
    synonyms: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Replace one word by a synonym (keeping its case); if no word has a synonym, replace a
    random word by a random ``vocab`` word that differs from it. Punctuation and spacing are
    kept."""
    table = SYNONYMS if synonyms is None else synonyms
    rng = random.Random(seed)
    spans = [m for m in _WORD.finditer(original)]
    with_synonym = [m for m in spans if table.get(m.group().lower())]
    if with_synonym:
        m = rng.choice(with_synonym)
        options = [w for w in table[m.group().lower()] if w.lower() != m.group().lower()]
        if options:
            new = _match_case(m.group(), rng.choice(sorted(options)))
            return original[: m.start()] + new + original[m.end() :]
    if not spans:
        raise MnemoscopeError("swap_word_foil: the original has no word to swap")
    if not vocab:
        raise MnemoscopeError(
            "swap_word_foil: no word of the original has a synonym; pass vocab= for a random swap"
        )
    m = rng.choice(spans)
    options = sorted({w for w in vocab if w.lower() != m.group().lower() and w.strip()})
    if not options:
        raise MnemoscopeError("swap_word_foil: vocab has no word different from the one to swap")
    return original[: m.start()] + rng.choice(options) + original[m.end() :]


def random_words_foil(
    vocab: Sequence[str], n_words: int, seed: int = 0, *, original: str | None = None
) -> str:
    """``n_words`` words drawn uniformly (with replacement) from ``vocab``, space-joined;
    redrawn when equal to ``original``."""
    words = [w for w in vocab if w.strip()]
    if not words or n_words < 1:
        raise MnemoscopeError("random_words_foil: need a non-empty vocab and n_words >= 1")
    rng = random.Random(seed)
    for _ in range(_MAX_TRIES):
        text = " ".join(rng.choice(words) for _ in range(n_words))
        if original is None or text.strip() != original.strip():
            return text
    raise MnemoscopeError("random_words_foil: could not draw a text different from the original")


def _shuffle_until_different(items: list, rng: random.Random, what: str) -> list:
    if len(set(items)) < 2:
        raise MnemoscopeError(f"{what}: the original has fewer than two distinct items to shuffle")
    shuffled = list(items)
    for _ in range(_MAX_TRIES):
        rng.shuffle(shuffled)
        if shuffled != items:
            return shuffled
    raise MnemoscopeError(f"{what}: could not produce a different order")  # pragma: no cover


def shuffled_words_foil(original: str, seed: int = 0) -> str:
    """The original's whitespace-separated words in a random different order."""
    words = original.split()
    return " ".join(_shuffle_until_different(words, random.Random(seed), "shuffled_words_foil"))


def shuffled_letters_foil(original: str, seed: int = 0, *, within_words: bool = True) -> str:
    """Letters permuted; word lengths, spaces and punctuation stay in place.

    ``within_words=True``: each word's letters are shuffled inside the word (words whose
    letters cannot change are left alone; the text as a whole always changes).
    ``within_words=False``: all letters of the text are shuffled across positions.
    """
    rng = random.Random(seed)
    spans = list(_WORD.finditer(original))
    chars = list(original)
    if within_words:
        movable = [m for m in spans if len(set(m.group())) > 1]
        if not movable:
            raise MnemoscopeError(
                "shuffled_letters_foil: no word has two different letters to shuffle"
            )
        for m in movable:
            letters = list(m.group())
            rng.shuffle(letters)
            chars[m.start() : m.end()] = letters
        if "".join(chars) == original:  # every shuffle landed on the identity: force one
            m = rng.choice(movable)
            letters = _shuffle_until_different(list(m.group()), rng, "shuffled_letters_foil")
            chars[m.start() : m.end()] = letters
        return "".join(chars)
    positions = [i for m in spans for i in range(m.start(), m.end())]
    letters = _shuffle_until_different([original[i] for i in positions], rng,
                                       "shuffled_letters_foil")
    for i, letter in zip(positions, letters):
        chars[i] = letter
    return "".join(chars)


FOIL_KINDS = (
    "novel", "paraphrase", "swap_word", "random_words", "shuffled_words", "shuffled_letters",
)


def make_foil(
    kind: str,
    original: str,
    seed: int = 0,
    *,
    pool: Sequence[str] | None = None,
    mapping: Mapping[str, str] | None = None,
    vocab: Sequence[str] | None = None,
) -> str:
    """Dispatch to one foil kind by name; ``random_words`` uses as many words as the original."""
    if kind == "novel":
        if pool is None:
            raise MnemoscopeError("foil kind 'novel' needs pool= (texts to draw from)")
        return novel_foil(original, pool, seed)
    if kind == "paraphrase":
        if mapping is None:
            raise MnemoscopeError("foil kind 'paraphrase' needs mapping= {original: paraphrase}")
        return paraphrase_foil(original, mapping)
    if kind == "swap_word":
        return swap_word_foil(original, seed, vocab=vocab)
    if kind == "random_words":
        if vocab is None:
            raise MnemoscopeError("foil kind 'random_words' needs vocab= (a list of words)")
        return random_words_foil(vocab, max(1, len(original.split())), seed, original=original)
    if kind == "shuffled_words":
        return shuffled_words_foil(original, seed)
    if kind == "shuffled_letters":
        return shuffled_letters_foil(original, seed)
    raise MnemoscopeError(f"unknown foil kind {kind!r}; use one of {list(FOIL_KINDS)}")
