"""Read a benchmark for the contamination check: JSONL, Parquet, or lm-evaluation-harness's
``--log_samples`` export (``samples_<task>_<date>.jsonl``: each line a ``doc`` plus ``target``).

An item has a ``question`` (aliases ``query``, ``text``, ``prompt``, ``input``), optional
``choices`` (a list of strings, or lm-eval's ``{"text": [...], "label": [...]}``), an optional
``answer`` (a choice index, a choice letter, or the answer text; lm-eval's ``target`` /
``answerKey`` / ``label`` / ``gold``), and optional ``split`` and ``dataset`` (``dataset_name``;
in an lm-eval export the task name from the file name). File order is the *canonical order* the
order test asks about.

``BenchmarkItem.text`` is the item as one text: the question, the lettered choices, and
``Answer: <answer text>`` when an answer is known. Every problem is one line naming the file and
record; a record without a question is an error (nothing could be measured on it).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path

from mnemoscope.errors import MnemoscopeError
from mnemoscope.jsonl import jsonl_objects

QUESTION_KEYS = ("question", "query", "text", "prompt", "input", "ctx")
ANSWER_KEYS = ("answer", "target", "answerKey", "label", "gold")
LETTERS = string.ascii_uppercase


@dataclass(frozen=True)
class BenchmarkItem:
    id: str
    question: str
    choices: tuple[str, ...] = ()
    answer: str | None = None  # the answer's text
    split: str = ""
    dataset: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def text(self) -> str:
        """The item as one text (question, lettered choices, answer)."""
        parts = [self.question.strip()]
        parts += [f"{LETTERS[i]}. {c}" for i, c in enumerate(self.choices)]
        if self.answer is not None:
            parts.append(f"Answer: {self.answer}")
        return "\n".join(parts)

    def with_choices(self, order: list[int]) -> BenchmarkItem:
        """The same item with its choices in ``order`` (the answer's text is unchanged)."""
        return BenchmarkItem(self.id, self.question, tuple(self.choices[i] for i in order), self.answer, self.split,
                             self.dataset)


def _choices(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, dict) and "text" in value:  # lm-eval / HF datasets: {"text": [...], "label": [...]}
        value = value["text"]
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
        raise MnemoscopeError(f"{where}: field 'choices' must be a list of strings")
    if len(value) > len(LETTERS):
        raise MnemoscopeError(f"{where}: {len(value)} choices; at most {len(LETTERS)} are supported")
    return tuple(value)


def _answer(value, choices: tuple[str, ...], where: str) -> str | None:
    """The answer's text: an index or a letter into ``choices``, or the text itself."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MnemoscopeError(f"{where}: field 'answer' must be a choice index, a letter or a text, not a boolean")
    if isinstance(value, (int, float)) and float(value).is_integer():
        i = int(value)
        if not choices:
            return str(i)
        if not 0 <= i < len(choices):
            raise MnemoscopeError(f"{where}: answer index {i} is outside the {len(choices)} choices")
        return choices[i]
    if isinstance(value, str):
        v = value.strip()
        if choices and re.fullmatch(r"[A-Z]", v) and LETTERS.index(v) < len(choices) and v not in choices:
            return choices[LETTERS.index(v)]
        if choices and v.isdigit() and v not in choices and int(v) < len(choices):
            return choices[int(v)]
        return v or None
    raise MnemoscopeError(f"{where}: field 'answer' has an unsupported type {type(value).__name__}")


def _first(rec: dict, keys: tuple[str, ...]):
    for k in keys:
        if rec.get(k) is not None:
            return rec[k]
    return None


def item_from_record(rec: dict, where: str, index: int, default_dataset: str = "") -> BenchmarkItem:
    """One benchmark item from a record (an lm-eval export line: its ``doc`` with ``target``)."""
    if isinstance(rec.get("doc"), dict):
        doc = dict(rec["doc"])
        if "target" in rec and _first(doc, ANSWER_KEYS) is None:
            doc["answer"] = rec["target"]
        doc.setdefault("id", rec.get("doc_id", index))
        rec = doc
    question = _first(rec, QUESTION_KEYS)
    if not isinstance(question, str) or not question.strip():
        present = ", ".join(sorted(rec)) or "none"
        raise MnemoscopeError(f"{where}: no question (a non-empty string in one of {', '.join(QUESTION_KEYS)}; "
                              f"fields present: {present})")
    choices = _choices(rec.get("choices"), where)
    answer = _answer(_first(rec, ANSWER_KEYS), choices, where)
    split = rec.get("split") or ""
    dataset = rec.get("dataset") or rec.get("dataset_name") or default_dataset
    for name, value in (("split", split), ("dataset", dataset)):
        if not isinstance(value, str):
            raise MnemoscopeError(f"{where}: field '{name}' must be a string")
    return BenchmarkItem(str(rec.get("id", index)), question, choices, answer, split, dataset)


def _lm_eval_task(path: Path) -> str:
    """``samples_<task>_<date>.jsonl`` → ``<task>`` ('' for other names)."""
    m = re.fullmatch(r"samples_(.+?)_\d{4}-\d{2}-\d{2}T.*\.jsonl", path.name)
    return m.group(1) if m else ""


def load_benchmark(path: str | Path) -> list[BenchmarkItem]:
    """The items of a benchmark file, in file (canonical) order; ids must be unique."""
    path = Path(path)
    if not path.is_file():
        raise MnemoscopeError(f"{path}: no such benchmark file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            records = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise MnemoscopeError(f"{path}: not a readable Parquet file ({exc.__class__.__name__})") from exc
        rows = [(f"{path}: row {i}", rec) for i, rec in enumerate(records, 1)]
    elif path.suffix in (".jsonl", ".json"):
        rows = list(jsonl_objects(path))
    else:
        raise MnemoscopeError(f"{path}: unknown benchmark format '{path.suffix}'; use .jsonl, .parquet or an "
                              "lm-eval samples_<task>_<date>.jsonl export")
    task = _lm_eval_task(path)
    items = [item_from_record(rec, where, i, task) for i, (where, rec) in enumerate(rows)]
    if not items:
        raise MnemoscopeError(f"{path}: the benchmark holds no items")
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.id in seen:
            raise MnemoscopeError(f"{path}: item id {item.id!r} appears twice (items {seen[item.id] + 1} and {i + 1}); "
                                  "ids must be unique")
        seen[item.id] = i
    return items
