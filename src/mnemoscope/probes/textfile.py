"""Read the user's texts: JSONL (a ``text`` field), .txt (one text per line), Parquet (a ``text`` column).

Every problem is a one-line MnemoscopeError naming the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path

from mnemoscope.errors import MnemoscopeError
from mnemoscope.jsonl import check_data_file, jsonl_objects, read_utf8

SUFFIXES = (".jsonl", ".json", ".txt", ".parquet")


def load_records(path: str | Path, field: str = "text") -> list[dict]:
    """Records with a non-empty string ``field``, in file order."""
    path = Path(path)
    check_data_file(path)
    if path.suffix not in SUFFIXES:
        raise MnemoscopeError(f"{path}: unknown format '{path.suffix}'; use .jsonl, .json (JSON lines), .txt or .parquet")
    if path.suffix == ".parquet":
        records = _parquet_records(path, field)
    elif path.suffix == ".txt":
        lines = read_utf8(path).split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # trailing newline
        records = [{field: line} for line in lines]
        for i, line in enumerate(lines, 1):
            if not line.strip():
                raise MnemoscopeError(f"{path}:{i}: empty line; .txt files hold one non-empty text per line")
    else:
        records = []
        for where, rec in jsonl_objects(path):
            _check_field(rec, field, where)
            records.append(rec)
    if not records:
        raise MnemoscopeError(f"{path}: the file holds no texts")
    return records


def _check_field(rec: dict, field: str, where: str) -> None:
    if field not in rec:
        raise MnemoscopeError(f"{where}: missing field '{field}' (fields present: {', '.join(sorted(rec)) or 'none'})")
    value = rec[field]
    if not isinstance(value, str):
        raise MnemoscopeError(f"{where}: field '{field}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise MnemoscopeError(f"{where}: field '{field}' is empty; remove the record or give it text")


def _parquet_records(path: Path, field: str) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise MnemoscopeError(f"{path}: not a readable Parquet file ({exc.__class__.__name__})") from exc
    if field not in table.column_names:
        raise MnemoscopeError(f"{path}: missing column '{field}' (columns: {', '.join(table.column_names)})")
    records = table.to_pylist()
    for i, rec in enumerate(records, 1):
        _check_field(rec, field, f"{path}: row {i}")
    return records


def load_texts(path: str | Path, field: str = "text") -> list[str]:
    return [rec[field] for rec in load_records(path, field)]


def load_texts_and_groups(path: str | Path, field: str = "text") -> tuple[list[str], list[str] | None]:
    """Texts and their optional ``group`` (a string or an integer: a person, a document, a canary's
    copies; the unit a cluster bootstrap resamples). None when no record has one; a file where
    some records have a group and others not is an error naming the first record without one."""
    records = load_records(path, field)
    has = ["group" in rec and rec["group"] is not None for rec in records]
    if not any(has):
        return [rec[field] for rec in records], None
    if not all(has):
        i = has.index(False) + 1
        raise MnemoscopeError(f"{path}: record {i} has no 'group' while others have one; give every record a group "
                              "or none")
    groups = []
    for i, rec in enumerate(records, 1):
        value = rec["group"]
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
            raise MnemoscopeError(f"{path}: record {i}: field 'group' must be a non-empty string or an integer, "
                                  f"got {value!r}")
        groups.append(str(value))
    return [rec[field] for rec in records], groups
