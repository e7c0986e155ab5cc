"""Text-overlap metrics via the ``rouge_score`` package (docs/metrics.md §2–§3).

ROUGE-L uses rouge-score's default tokenizer (lower-cased alphanumeric tokens).
VerbMem and KnowMem (MUSE) use F1 without stemming; TOFU uses recall with stemming.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from rouge_score import rouge_scorer

__all__ = [
    "rouge_l_f1",
    "rouge_l_recall",
    "verbmem",
    "knowmem_cut",
    "knowmem",
    "knowmem_prompt",
    "KNOWMEM_STOPS",
    "QA_TEMPLATE",
]

# The one question-answer layout: KnowMem shots and questions, TOFU contexts, QA training texts.
QA_TEMPLATE = "Question: {question}\nAnswer:"

# KnowMem answers end at the first of these strings (the model starts a new shot).
KNOWMEM_STOPS: tuple[str, ...] = ("\n\n", "\nQuestion", "Question:")


@lru_cache(maxsize=2)
def _scorer(stem: bool) -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)


def rouge_l_f1(pred: str, ref: str, stem: bool = False) -> float:
    """ROUGE-L F1 = 2·P·R/(P+R) from the longest common subsequence of tokens; in [0, 1]."""
    return float(_scorer(stem).score(ref, pred)["rougeL"].fmeasure)


def rouge_l_recall(pred: str, ref: str, stem: bool = True) -> float:
    """ROUGE-L recall = LCS(pred, ref) / |ref| tokens (TOFU default: with stemming)."""
    return float(_scorer(stem).score(ref, pred)["rougeL"].recall)


def verbmem(pred: str, ref: str) -> float:
    """MUSE VerbMem: ``100 · ROUGE-L F1(continuation, true continuation)``, no stemming.

    The caller truncates ``ref`` to the first 128 tokens of the true continuation.
    """
    return 100.0 * rouge_l_f1(pred, ref, stem=False)


def knowmem_cut(text: str) -> str:
    """Cut a generated answer at the earliest stop string in ``KNOWMEM_STOPS``
    and strip surrounding whitespace."""
    cut = len(text)
    for stop in KNOWMEM_STOPS:
        i = text.find(stop)
        if i != -1:
            cut = min(cut, i)
    return text[:cut].strip()


def knowmem(pred: str, answer: str) -> float:
    """MUSE KnowMem: ``100 · ROUGE-L F1(knowmem_cut(pred), answer)``, no stemming."""
    return 100.0 * rouge_l_f1(knowmem_cut(pred), answer, stem=False)


def knowmem_prompt(shots: Sequence[tuple[str, str]], question: str, *, trailing_space: bool = False) -> str:
    """Few-shot prompt: ``"Question: {q}\\nAnswer: {a}\\n\\n"`` per (q, a) shot, then
    ``"Question: {question}\nAnswer:"`` (no trailing space; the answer's space is generated).

    ``trailing_space=True`` ends in ``"Answer: "``, MUSE's exact string. With a byte-level BPE
    tokenizer that space becomes a lone space token the model rarely saw in training (a space is
    normally merged into the next word), which can derail the answer (KnowMem → 0 on the lab's
    models); hence our default."""
    blocks = [QA_TEMPLATE.format(question=q) + f" {a}\n\n" for q, a in shots]
    return "".join(blocks) + QA_TEMPLATE.format(question=question) + (" " if trailing_space else "")
