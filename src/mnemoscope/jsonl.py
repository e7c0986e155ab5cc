"""Reading UTF-8 text and JSON-lines files with errors that name the file and line.

One reader for every JSONL input (texts, QA/TOFU/MUSE files, puzzles, We-Math tables), so they
all split lines the same way and fail the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from mnemoscope.errors import MnemoscopeError


def check_data_file(path: Path, kinds: str = ".jsonl, .json, .txt or .parquet") -> None:
    """A missing path or a folder given where a data file belongs: a one-line error saying which."""
    path = Path(path)
    if path.is_dir():
        raise MnemoscopeError(f"{path} is a folder, not a data file: name a {kinds} file (one of those in it, "
                              "or the file itself)")
    if not path.exists():
        raise MnemoscopeError(f"{path}: no such file; check the path")


def read_utf8(path: Path) -> str:
    """The file's text; invalid UTF-8 is an error naming the line and byte. A UTF-8 byte-order
    mark at the start (what some Windows editors write) is read as UTF-8 and dropped, so it never
    becomes part of the first text or breaks the first JSON line."""
    check_data_file(path)
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MnemoscopeError(f"{path}:{line}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from exc


def type_name(value) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def expect_object(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise MnemoscopeError(f"{where}: expected a JSON object, got {type_name(value)}")
    return value


def jsonl_objects(path: Path, text: str | None = None, *,
                  fix: str = "each line must be one JSON object") -> list[tuple[str, dict]]:
    """``("file:line", object)`` for every non-blank line of a JSON-lines file; a line that is not
    JSON is an error naming the file and line and ending with ``fix`` (what to do about it).

    Lines are split on "\\n" only: ``str.splitlines`` would also split inside JSON strings at
    U+2028, U+0085 and friends, which JSON allows unescaped.
    """
    text = read_utf8(path) if text is None else text
    rows = []
    for i, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MnemoscopeError(f"{path}:{i}: not valid JSON ({exc.msg}); {fix}") from None
        rows.append((f"{path}:{i}", expect_object(value, f"{path}:{i}")))
    return rows


def read_jsonl(path: Path, *, fix: str = "each line must be one JSON object") -> list[dict]:
    """The objects of a JSON-lines file, in order (:func:`jsonl_objects` without the positions)."""
    return [obj for _, obj in jsonl_objects(path, fix=fix)]
