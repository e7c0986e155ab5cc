"""Read public evaluation formats (MUSE, TOFU, WikiMIA, 2AFC pairs) into plain dicts.

Every reader accepts ``.jsonl`` (one JSON object per line), ``.json`` (a JSON array of objects;
a ``.json`` file that does not start with ``[`` is read as JSON lines, as the TOFU release ships
it) and ``.parquet``. Each returns records with a fixed, normalised schema; ``id`` is the
record's own ``id`` field when it has one (string or integer, unique in the file), else its
0-based position in the file, as a string.

Every problem is a one-line MnemoscopeError naming the file and line (``file: row N`` for
Parquet), the field, and what to do. Field-name errors list the fields present and expected.
"""

from __future__ import annotations

import json
from pathlib import Path

from mnemoscope.errors import MnemoscopeError
from mnemoscope.jsonl import check_data_file, expect_object, jsonl_objects, read_utf8, type_name
from mnemoscope.probes.textfile import _check_field

SUFFIXES = (".jsonl", ".json", ".parquet")

# Accepted names per normalised field, first match wins (aliases cover common generic layouts).
QUESTION_KEYS = ("question", "query", "q")
ANSWER_KEYS = ("answer", "response", "a")
PERTURBED_KEYS = ("perturbed_answer", "perturbed_answers")
CONTINUATION_KEYS = ("gt", "continuation")
WIKIMIA_TEXT_KEYS = ("input", "text")
DEFAULT_FOIL_KIND = "paraphrase"


# --------------------------------------------------------------------------- containers


def read_rows(path: str | Path) -> list[tuple[str, dict]]:
    """``(where, record)`` for every object in a .jsonl / .json / .parquet file, in file order.

    ``where`` is ``"file:line"`` (the line the object starts on) or ``"file: row N"`` (Parquet,
    1-based). Raises MnemoscopeError for a missing file, unknown suffix, invalid UTF-8 or JSON,
    a non-object record, or a file without records.
    """
    path = Path(path)
    check_data_file(path, ".jsonl, .json or .parquet")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise MnemoscopeError(f"{path}: unknown format '{path.suffix}'; use .jsonl, .json or .parquet")
    if suffix == ".parquet":
        rows = _parquet_rows(path)
    else:
        text = read_utf8(path)
        if suffix == ".json" and text.lstrip().startswith("["):
            rows = _json_array_rows(path, text)
        else:
            rows = jsonl_objects(path, text)
    if not rows:
        raise MnemoscopeError(f"{path}: the file holds no records")
    return rows


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _json_array_rows(path: Path, text: str) -> list[tuple[str, dict]]:
    """Walk a top-level JSON array element by element so each record knows its line."""
    decoder = json.JSONDecoder()
    n = len(text)
    mark = [0, 1]  # (position, its line): count newlines incrementally, not from 0 per record

    def line_at(pos: int) -> int:
        if pos < mark[0]:
            return _line_of(text, pos)
        mark[1] += text.count("\n", mark[0], pos)
        mark[0] = pos
        return mark[1]

    def skip_ws(pos: int) -> int:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        return pos

    def fail(pos: int, msg: str) -> MnemoscopeError:
        return MnemoscopeError(f"{path}:{line_at(pos)}: not valid JSON ({msg}); "
                               "a .json file must hold one array of objects")

    rows: list[tuple[str, dict]] = []
    pos = skip_ws(skip_ws(0) + 1)  # past '['
    if pos < n and text[pos] == "]":
        pos += 1
    else:
        while True:
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise fail(exc.pos, exc.msg) from None
            where = f"{path}:{line_at(pos)}"
            rows.append((where, expect_object(value, where)))
            pos = skip_ws(end)
            if pos < n and text[pos] == ",":
                pos = skip_ws(pos + 1)
                continue
            if pos < n and text[pos] == "]":
                pos += 1
                break
            raise fail(pos, "expected ',' or ']'")
    if skip_ws(pos) != n:
        raise fail(skip_ws(pos), "extra data after the array")
    return rows


def _parquet_rows(path: Path) -> list[tuple[str, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise MnemoscopeError(f"{path}: not a readable Parquet file ({exc.__class__.__name__})") from exc
    return [(f"{path}: row {i}", rec) for i, rec in enumerate(table.to_pylist(), 1)]


# --------------------------------------------------------------------------- fields


def _key(rec: dict, names: tuple[str, ...], where: str, expected: tuple[str, ...]) -> str:
    """The first of ``names`` present in ``rec``; else an error listing present and expected fields."""
    for name in names:
        if rec.get(name) is not None:
            return name
    for name in names:
        if name in rec:  # present but null (e.g. a Parquet null)
            raise MnemoscopeError(f"{where}: field '{name}' is null; give it a value or remove the record")
    wanted = " or ".join(f"'{n}'" for n in names)
    raise MnemoscopeError(
        f"{where}: missing field {wanted} (fields present: {', '.join(sorted(map(str, rec))) or 'none'}; "
        f"expected: {', '.join(expected)})"
    )


def _text(rec: dict, names: tuple[str, ...], where: str, expected: tuple[str, ...]) -> str:
    key = _key(rec, names, where, expected)
    _check_field(rec, key, where)  # a non-empty string
    return rec[key]


def _record_id(rec: dict, index: int, where: str) -> str:
    if "id" not in rec or rec["id"] is None:
        return str(index)
    value = rec["id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise MnemoscopeError(f"{where}: field 'id' must be a non-empty string or an integer, got {value!r}")
    return str(value)


def _normalise(path: str | Path, build) -> list[dict]:
    """Apply ``build(rec, where) -> dict`` to every row, add ``id`` first and check ids are unique."""
    out: list[dict] = []
    first_seen: dict[str, str] = {}
    for index, (where, rec) in enumerate(read_rows(path)):
        rid = _record_id(rec, index, where)
        if rid in first_seen:
            raise MnemoscopeError(
                f"{where}: id {rid!r} already used at {first_seen[rid]}; ids must be unique"
            )
        first_seen[rid] = where
        out.append({"id": rid, **build(rec, where)})
    return out


# --------------------------------------------------------------------------- readers


def load_qa(path: str | Path) -> list[dict]:
    """MUSE-style / generic QA → ``[{id, question, answer}]``.

    Question field: ``question`` (or ``query``, ``q``); answer: ``answer`` (or ``response``,
    ``a``). Both must be non-empty strings: an empty answer cannot be scored.
    """
    expected = ("question", "answer")

    def build(rec: dict, where: str) -> dict:
        return {
            "question": _text(rec, QUESTION_KEYS, where, expected),
            "answer": _text(rec, ANSWER_KEYS, where, expected),
        }

    return _normalise(path, build)


def _string_list(rec: dict, key: str, where: str) -> list[str]:
    value = rec[key]
    if not isinstance(value, (list, tuple)):
        raise MnemoscopeError(
            f"{where}: field '{key}' must be a list of strings, got {type_name(value)}; "
            'write ["wrong answer 1", "wrong answer 2", ...]'
        )
    if len(value) == 0:
        raise MnemoscopeError(f"{where}: field '{key}' is an empty list; give at least one perturbed answer")
    for j, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise MnemoscopeError(
                f"{where}: field '{key}' item {j} must be a non-empty string, got {item!r}"
            )
    return list(value)


def load_tofu(path: str | Path) -> list[dict]:
    """TOFU-style → ``[{id, question, answer, paraphrased_answer, perturbed_answers}]``.

    ``perturbed_answer`` (or ``perturbed_answers``) is a non-empty list of non-empty strings
    (TOFU ships 5 per item); the other three fields are non-empty strings.
    """
    expected = ("question", "answer", "paraphrased_answer", "perturbed_answer")

    def build(rec: dict, where: str) -> dict:
        if all(k in rec for k in PERTURBED_KEYS):
            raise MnemoscopeError(
                f"{where}: both 'perturbed_answer' and 'perturbed_answers' are present; keep one"
            )
        question = _text(rec, ("question",), where, expected)
        answer = _text(rec, ("answer",), where, expected)
        paraphrased = _text(rec, ("paraphrased_answer",), where, expected)
        perturbed = _string_list(rec, _key(rec, PERTURBED_KEYS, where, expected), where)
        return {
            "question": question,
            "answer": answer,
            "paraphrased_answer": paraphrased,
            "perturbed_answers": perturbed,
        }

    return _normalise(path, build)


def load_prompt_continuations(path: str | Path) -> list[dict]:
    """MUSE VerbMem-style ``{prompt, gt}`` (or ``continuation`` for ``gt``) →
    ``[{id, prompt, continuation}]``; both non-empty strings."""
    expected = ("prompt", "gt")

    def build(rec: dict, where: str) -> dict:
        return {
            "prompt": _text(rec, ("prompt",), where, expected),
            "continuation": _text(rec, CONTINUATION_KEYS, where, expected),
        }

    return _normalise(path, build)


def _label(rec: dict, where: str) -> int:
    value = rec["label"]
    if isinstance(value, (bool, int, float)) and value in (0, 1):
        return int(value)
    raise MnemoscopeError(
        f"{where}: field 'label' is {value!r}; use 1 for a member (seen in training) or 0 for a non-member"
    )


def load_wikimia(path: str | Path) -> tuple[list[str], list[str]]:
    """WikiMIA-style ``{input, label}`` (``text`` also accepted for ``input``; label 1 = member,
    0 = non-member) → ``(members, nonmembers)``, texts in file order. Both sets must be non-empty."""
    expected = ("input", "label")
    members: list[str] = []
    nonmembers: list[str] = []
    for where, rec in read_rows(path):
        text = _text(rec, WIKIMIA_TEXT_KEYS, where, expected)
        _key(rec, ("label",), where, expected)
        (members if _label(rec, where) == 1 else nonmembers).append(text)
    for name, texts, label in (("members", members, 1), ("non-members", nonmembers, 0)):
        if not texts:
            raise MnemoscopeError(
                f"{path}: no {name} (label {label}); membership inference needs both labels in the file"
            )
    return members, nonmembers


def load_recognition_pairs(path: str | Path) -> list[dict]:
    """2AFC pairs ``{seen, foil[, kind]}`` → ``[{id, seen, foil, kind}]``.

    ``kind`` (a non-empty string naming the foil kind) defaults to ``"paraphrase"``. A foil
    identical to its seen text is refused: the choice would be a coin flip by construction.
    """
    expected = ("seen", "foil", "kind (optional)")

    def build(rec: dict, where: str) -> dict:
        seen = _text(rec, ("seen",), where, expected)
        foil = _text(rec, ("foil",), where, expected)
        if seen == foil:
            raise MnemoscopeError(f"{where}: 'foil' is identical to 'seen'; a foil must differ from the seen text")
        kind = DEFAULT_FOIL_KIND
        if rec.get("kind") is not None:
            _check_field(rec, "kind", where)
            kind = rec["kind"]
        return {"seen": seen, "foil": foil, "kind": kind}

    return _normalise(path, build)


def _text_rows(path: str | Path, field: str) -> list[tuple[str, dict]]:
    """``(where, record)`` of a plain-text file: ``textfile.load_records`` (.jsonl, .txt,
    .parquet, JSON-lines .json), or a ``.json`` file holding one array of objects with ``field``."""
    from mnemoscope.probes.textfile import load_records

    p = Path(path)
    if p.suffix.lower() == ".json" and p.is_file() and read_utf8(p).lstrip().startswith("["):
        rows = read_rows(p)
        for where, rec in rows:
            _key(rec, (field,), where, (field,))
            _check_field(rec, field, where)
        return rows
    return [(f"{p}: record {i + 1}", rec) for i, rec in enumerate(load_records(p, field))]


def load_text_records(path: str | Path, field: str = "text") -> list[dict]:
    """Plain texts with ids, ``[{id, text}]`` (formats of :func:`load_texts_any`): ``id`` is the
    record's own ``id`` field when it has one (unique in the file), else its 0-based position."""
    rows = _text_rows(path, field)
    out, first_seen = [], {}
    for index, (where, rec) in enumerate(rows):
        rid = _record_id(rec, index, where)
        if rid in first_seen:
            raise MnemoscopeError(f"{where}: id {rid!r} already used at {first_seen[rid]}; ids must be unique")
        first_seen[rid] = where
        out.append({"id": rid, "text": rec[field]})
    return out


def load_texts_any(path: str | Path, field: str = "text") -> list[str]:
    """Plain texts: ``textfile.load_texts`` (.jsonl, .txt, .parquet, JSON-lines .json), plus
    ``.json`` files holding one array of objects with a string ``field``."""
    return [rec[field] for _, rec in _text_rows(path, field)]


PROMPT_KEYS = ("prompt", "question", "text")
ALTERNATIVE_KEYS = ("alternative", "alt_answer")


def load_prompts(path: str | Path) -> list[dict]:
    """Labelled prompt sets (the ``mechanisms`` family) → ``[{id, prompt, answer, alternative}]``.

    Prompt field: ``prompt`` (or ``question``, ``text``), a non-empty string. Optional ``answer``
    (or ``response``, ``a``): the answer that counts as correct; optional ``alternative`` (or
    ``alt_answer``): a competing answer whose rate is reported too (e.g. the rule's answer for an
    exception item). Absent optional fields are None; present ones must be non-empty strings.
    """
    expected = ("prompt", "answer (optional)", "alternative (optional)")

    def optional(rec: dict, names: tuple[str, ...], where: str) -> str | None:
        if not any(rec.get(n) is not None for n in names):
            return None
        return _text(rec, names, where, expected)

    def build(rec: dict, where: str) -> dict:
        return {"prompt": _text(rec, PROMPT_KEYS, where, expected),
                "answer": optional(rec, ANSWER_KEYS, where),
                "alternative": optional(rec, ALTERNATIVE_KEYS, where)}

    return _normalise(path, build)


MC_CHOICE_KEYS = ("choices", "options")


def load_multiple_choice(path: str | Path) -> list[dict]:
    """WMDP/MMLU-style multiple choice → ``[{id, question, choices, answer}]``: ``question`` a
    non-empty string, ``choices`` (or ``options``) a list of 2–26 non-empty strings, ``answer`` the
    0-based index of the right choice (an integer). A missing or out-of-range answer is a one-line
    error naming the file, line and item."""
    expected = ("question", "choices", "answer")

    def build(rec: dict, where: str) -> dict:
        item = f"{where}: item {rec.get('id', '?')!r}"
        question = _text(rec, QUESTION_KEYS, where, expected)
        key = _key(rec, MC_CHOICE_KEYS, where, expected)
        if isinstance(rec[key], (list, tuple)) and not 2 <= len(rec[key]) <= 26:
            raise MnemoscopeError(f"{item}: {len(rec[key])} choice(s); a multiple-choice item needs 2 to 26 (A–Z)")
        choices = _string_list(rec, key, where)
        if rec.get("answer") is None:
            raise MnemoscopeError(f"{item} has no 'answer'; give the 0-based index of the right choice")
        answer = rec["answer"]
        if isinstance(answer, bool) or not isinstance(answer, int) and not (
                isinstance(answer, float) and answer.is_integer()):
            raise MnemoscopeError(f"{item}: answer {answer!r} is not an integer; give the 0-based index of the "
                                  "right choice")
        if not 0 <= int(answer) < len(choices):
            raise MnemoscopeError(f"{item}: answer {int(answer)} is out of range for {len(choices)} choices "
                                  f"(use 0–{len(choices) - 1})")
        return {"question": question, "choices": choices, "answer": int(answer)}

    return _normalise(path, build)
