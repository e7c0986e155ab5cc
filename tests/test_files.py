"""The one atomic writer (files) and the one JSONL reader (jsonl): whole files or none, and errors
that name the file and the line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.files import atomic_directory, atomic_files, atomic_path, write_jsonl
from mnemoscope.jsonl import read_jsonl


def test_write_jsonl_writes_one_object_a_line_and_nulls_non_finite_numbers(tmp_path):
    path = tmp_path / "sub" / "rows.jsonl"
    write_jsonl(path, [{"a": 1, "t": "é"}, {"a": np.int64(2), "x": math.nan}])
    assert path.read_text(encoding="utf-8") == '{"a": 1, "t": "\\u00e9"}\n{"a": 2, "x": null}\n'
    write_jsonl(path, [{"t": "é"}], ensure_ascii=False)
    assert path.read_text(encoding="utf-8") == '{"t": "é"}\n'
    assert read_jsonl(path) == [{"t": "é"}]
    write_jsonl(path, [])
    assert path.read_text() == "" and read_jsonl(path) == []
    assert [p.name for p in path.parent.iterdir()] == ["rows.jsonl"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"a": 1}])
    with pytest.raises(TypeError):
        write_jsonl(path, [{"a": 2}, {"b": object()}])  # not JSON: fails after the first line
    assert path.read_text() == '{"a": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "new.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_atomic_directory_replaces_the_folder_whole_or_not_at_all(tmp_path):
    final = tmp_path / "step-000002"
    with atomic_directory(final) as tmp:
        (tmp / "a.txt").write_text("one")
        assert not final.exists()  # nothing visible until the folder is complete
    assert sorted(p.name for p in final.iterdir()) == ["a.txt"]
    with pytest.raises(RuntimeError), atomic_directory(final) as tmp:
        (tmp / "b.txt").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in final.iterdir()) == ["a.txt"]  # the old one, untouched
    stale = tmp_path / ".step-000002.tmp"
    stale.mkdir()
    (stale / "junk").write_text("from a killed run")
    with atomic_directory(final) as tmp:
        assert list(tmp.iterdir()) == []  # starts empty: the stale folder is gone
        (tmp / "c.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000002"]


def test_atomic_files_moves_a_whole_set_into_a_folder_marker_last(tmp_path, monkeypatch):
    import os

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_text("kept")
    moved = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (moved.append(os.path.basename(b)), real_replace(a, b)))
    with atomic_files(folder, last="b.json") as tmp:
        for name in ("b.json", "a.json", "c.txt"):
            (tmp / name).write_text(name)
        assert not (folder / "b.json").exists()
    assert moved == ["a.json", "c.txt", "b.json"]  # the marker last
    assert sorted(p.name for p in folder.iterdir()) == ["a.json", "b.json", "c.txt", "weights.bin"]
    with pytest.raises(RuntimeError), atomic_files(tmp_path / "other", last="b.json") as tmp:
        (tmp / "b.json").write_text("half")
        raise RuntimeError("killed")
    assert list((tmp_path / "other").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "other"]  # no temporary folder left


def test_read_jsonl_names_the_file_and_line_and_says_what_to_do(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n', encoding="utf-8")
    with pytest.raises(MnemoscopeError, match=r"w\.jsonl:3: not valid JSON .*; each line must be one JSON object$"):
        read_jsonl(path)
    with pytest.raises(MnemoscopeError, match=r"w\.jsonl:3: not valid JSON .*; fix or regenerate the file$"):
        read_jsonl(path, fix="fix or regenerate the file")
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(MnemoscopeError, match=r"w\.jsonl:2: expected a JSON object, got array"):
        read_jsonl(path)
    path.write_text('\ufeff{"a": "x\u2028y"}\r\n', encoding="utf-8")  # BOM, CRLF, U+2028 inside a string
    assert read_jsonl(path) == [{"a": "x\u2028y"}]
    assert json.loads(json.dumps(read_jsonl(path)))
