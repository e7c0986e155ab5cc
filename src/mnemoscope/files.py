"""Atomic file writes and JSON-safe values: the bottom of the I/O stack (no mnemoscope imports).

Every file is written to a temporary name in the same directory and renamed into place, so an
interrupted write never leaves a half-written file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import yaml

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results should read like any other file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_directory(path: Path):
    """Yield an empty temporary folder next to ``path`` (``.<name>.tmp``, a stale one from a killed
    run removed first); on success replace ``path`` (and whatever it held) by it, on failure remove it.
    A reader never sees a half-written folder: ``path`` is the old one or the whole new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_files(directory: Path, *, last: str):
    """Yield an empty temporary folder beside ``directory``; on success move every file written there
    into ``directory`` (each an atomic rename; the files already there stay), ``last`` after all the
    others, so a reader that finds ``last`` finds the whole set. On failure nothing is moved."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        yield tmp
        for name in sorted((p.name for p in tmp.iterdir()), key=lambda n: n == last):
            os.replace(tmp / name, directory / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; a missing number is null
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return json_safe(value.item())
    return value


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=True) + "\n")


def write_jsonl(path: Path, records, *, ensure_ascii: bool = True) -> None:
    """One JSON object per line (``json_safe``: non-finite numbers become null), "\\n"-terminated."""
    write_text(path, "".join(json.dumps(json_safe(r), ensure_ascii=ensure_ascii) + "\n" for r in records))


def write_yaml(path: Path, obj) -> None:
    write_text(path, yaml.safe_dump(json_safe(obj), sort_keys=False))


def write_parquet(path: Path, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
