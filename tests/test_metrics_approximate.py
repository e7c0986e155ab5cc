import random

import pytest
from nltk.translate.bleu_score import sentence_bleu

from mnemoscope.metrics.approximate import (
    approximately_memorized,
    bleu,
    edit_distance,
    edit_similarity,
)


def naive_levenshtein(a, b):
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


def test_edit_distance_hand_values():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], [1, 2]) == 2
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_similarity([1, 2, 3, 4], [1, 2, 9, 4]) == pytest.approx(0.75)
    assert edit_similarity([], []) == 1.0
    assert edit_similarity([1, 2], [3, 4, 5, 6]) == 0.0


def test_edit_distance_matches_naive_dp():
    rng = random.Random(0)
    for _ in range(200):
        a = [rng.randrange(5) for _ in range(rng.randrange(0, 12))]
        b = [rng.randrange(5) for _ in range(rng.randrange(0, 12))]
        assert edit_distance(a, b) == naive_levenshtein(a, b)
        assert edit_distance(a, b) == edit_distance(b, a)


def test_bleu_matches_nltk():
    rng = random.Random(1)
    for _ in range(300):
        ref = [rng.randrange(8) for _ in range(rng.randrange(4, 30))]
        cand = [t if rng.random() < 0.8 else rng.randrange(8) for t in ref]
        cand = cand[: rng.randrange(1, len(cand) + 1)] + [rng.randrange(8) for _ in range(rng.randrange(0, 4))]
        expected = sentence_bleu([ref], cand)
        assert bleu(cand, ref) == pytest.approx(expected, abs=1e-12)


def test_bleu_hand_values():
    assert bleu([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert bleu([1, 2, 3], [1, 2, 3]) == 0.0  # no 4-gram: no smoothing, as nltk
    # one substitution in 8 tokens: p1 = 7/8, p2 = 5/7, p3 = 3/6, p4 = 1/5
    expected = (7 / 8 * 5 / 7 * 3 / 6 * 1 / 5) ** 0.25
    assert bleu([1, 2, 3, 4, 0, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(expected)
    # brevity penalty: half the reference
    assert bleu([1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(2.718281828459045 ** (1 - 2))


def test_threshold():
    ref = list(range(40))
    near = ref.copy()
    near[20] = 99  # one substitution in 40 tokens
    assert approximately_memorized(near, ref)
    assert not approximately_memorized(list(range(100, 140)), ref)
