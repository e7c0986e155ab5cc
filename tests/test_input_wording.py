"""What a newcomer's slips read like: a UTF-8 file with a byte-order mark, a folder named where a
data file belongs, `mnemoscope report` on a plain file, and `mnemoscope unlearn` on plain-text
sets (no "knowmem nan" in its progress lines)."""

from __future__ import annotations

import json

import pytest

from mnemoscope.cli import main
from mnemoscope.errors import MnemoscopeError
from mnemoscope.probes import formats
from mnemoscope.probes.textfile import load_texts

BOM = b"\xef\xbb\xbf"


def test_a_utf8_file_with_a_byte_order_mark_reads_like_one_without(tmp_path):
    rows = [{"question": "Where was Anna born?", "answer": "Lisbon"}, {"question": "Who?", "answer": "Ruth"}]
    jsonl = "".join(json.dumps({"text": t}) + "\n" for t in ("Anna was born in Lisbon.", "Ruth draws."))
    for name, body in (("t.jsonl", jsonl), ("t.txt", "Anna was born in Lisbon.\nRuth draws.\n")):
        (tmp_path / name).write_bytes(BOM + body.encode("utf-8"))
        assert load_texts(tmp_path / name) == ["Anna was born in Lisbon.", "Ruth draws."], name
    (tmp_path / "qa.json").write_bytes(BOM + json.dumps(rows).encode("utf-8"))  # a JSON array too
    assert [r["answer"] for r in formats.load_qa(tmp_path / "qa.json")] == ["Lisbon", "Ruth"]
    (tmp_path / "mid.txt").write_bytes(b"first\n" + BOM + b"second\n")  # only a leading mark is dropped
    assert load_texts(tmp_path / "mid.txt") == ["first", "\ufeffsecond"]


def test_a_folder_given_as_a_data_file_says_so(tmp_path):
    for name in ("data", "data.jsonl", "data.parquet"):
        (tmp_path / name).mkdir()
        with pytest.raises(MnemoscopeError, match=rf"{name} is a folder, not a data file: name a \.jsonl"):
            load_texts(tmp_path / name)
    with pytest.raises(MnemoscopeError, match=r"data.jsonl is a folder, not a data file"):
        formats.load_qa(tmp_path / "data.jsonl")
    with pytest.raises(MnemoscopeError, match="no such file"):
        load_texts(tmp_path / "absent.jsonl")


def test_audit_with_a_folder_for_members_is_one_line(saved_model_dir, tmp_path, capsys):
    (tmp_path / "members").mkdir()
    (tmp_path / "n.txt").write_text("one text\nanother text\n")
    out = tmp_path / "run"
    assert main(["audit", "--model", str(saved_model_dir), "--members", str(tmp_path / "members"),
                 "--nonmembers", str(tmp_path / "n.txt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "members is a folder, not a data file" in err and not out.exists()


def test_report_on_a_plain_file_says_it_is_not_a_run_directory(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text("{}")
    assert main(["report", str(tmp_path / "metrics.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "metrics.json is a file, not a run directory" in err
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unlearn_on_plain_text_sets_says_knowmem_is_not_measured(saved_model_dir, tmp_path, capsys):
    for name, texts in (("f.jsonl", ["Anna Berg was born in Lisbon and studied music.", "Anna sang every night."]),
                        ("r.jsonl", ["Marco works at Holt Industries.", "Ruth is a patient designer."])):
        (tmp_path / name).write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = tmp_path / "u"
    code = main(["unlearn", "--model", str(saved_model_dir), "--forget", str(tmp_path / "f.jsonl"), "--retain",
                 str(tmp_path / "r.jsonl"), "--method", "ga", "--steps", "2", "--eval-every", "1", "--out", str(out),
                 "--device", "cpu", "--lr", "1e-3", "--set", "eval.verbmem_tokens=16"])  # the micro model's context
    printed = capsys.readouterr().out
    assert code == 0
    assert "nan" not in printed.lower()
    assert ("note: --forget and --retain hold plain texts, not question/answer records, so KnowMem on forget and "
            "retain is not measured and the progress lines leave it out") in printed
    steps = [line for line in printed.splitlines() if line.startswith("ga step ")]
    assert steps[0] == "ga step 0" and steps[1].startswith("ga step 1: loss ")
