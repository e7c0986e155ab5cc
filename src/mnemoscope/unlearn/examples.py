"""What is unlearned and retained: (prompt, target) examples, read from texts or QA records.

Examples are (prompt, target) pairs: the loss covers the target's tokens only. A plain text is
``Example("", text)`` (every token after the first is a target token). Methods (``paired``), the
runner, the refusal helpers and the recipes all build on this module, which imports nothing of
the runner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mnemoscope.errors import MnemoscopeError

QA_TEMPLATE = "Question: {question}\nAnswer:"


@dataclass(frozen=True)
class Example:
    """One training item: ``prompt + target`` is the text; the loss covers ``target`` only.
    ``refusal``: an "I don't know"-style answer to the same prompt, for methods that train towards
    one (``Method.needs_refusals``; ``unlearn.refusals``)."""

    prompt: str
    target: str
    id: str = ""
    refusal: str = ""


def text_examples(texts: Sequence[str], ids: Sequence[str] | None = None) -> list[Example]:
    """Plain texts (MUSE-style corpora): the whole text is the target."""
    ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
    return [Example("", t, i) for t, i in zip(texts, ids)]


def qa_examples(qa: Sequence[Mapping], template: str = QA_TEMPLATE) -> list[Example]:
    """QA records (``question``, ``answer``) → ``Example(template(q), " " + answer)``."""
    return [Example(template.format(question=r["question"]), " " + r["answer"], str(r.get("id", i)))
            for i, r in enumerate(qa)]


def _key(e: Example) -> str:
    return e.prompt + "\x00" + e.target


def check_overlap(
    forget: Sequence[Example], retain: Sequence[Example], *, drop: bool = False
) -> tuple[list[Example], list[Example], int]:
    """Count examples present in both sets (same prompt and target). Overlap is refused unless
    ``drop``: then the shared examples are removed from the *retain* set (they must be forgotten).
    Returns (forget, retain, n_overlap)."""
    shared = {_key(e) for e in forget} & {_key(e) for e in retain}
    if shared and not drop:
        raise MnemoscopeError(
            f"retain set: {len(shared)} example(s) also appear in the forget set; remove them from "
            "the retain file or pass --drop-overlap to drop them from the retain set"
        )
    kept = [e for e in retain if _key(e) not in shared]
    return list(forget), kept, len(shared)
