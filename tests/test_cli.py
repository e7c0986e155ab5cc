"""The mnemoscope command: audit end to end, and bad input → one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml

from mnemoscope.cli import main
from tests.helpers import MEMBERS, NONMEMBERS


def _write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


@pytest.fixture
def sets(tmp_path):
    return _write_jsonl(tmp_path / "m.jsonl", MEMBERS), _write_jsonl(tmp_path / "n.jsonl", NONMEMBERS)


def _audit(model_dir, members, nonmembers, out, *extra):
    return main(["audit", "--model", str(model_dir), "--members", str(members), "--nonmembers", str(nonmembers),
                 "--out", str(out), "--device", "cpu", *extra])


def test_audit_on_a_saved_model_writes_a_complete_run_dir(saved_model_dir, sets, tmp_path, capsys):
    out = tmp_path / "run"
    assert _audit(saved_model_dir, *sets, out) == 0
    for name in ("config.yaml", "manifest.json", "metrics.json", "samples.parquet", "report.html"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for attack in ("loss", "zlib", "min_k", "min_k_pp"):
        assert 0 <= metrics[f"mia/{attack}/auc"] <= 1
        assert metrics[f"mia/{attack}/tpr@fpr=0.01"] is None  # 4 non-members: underpowered
        assert metrics[f"mia/{attack}/tpr@fpr=0.01/underpowered"] == 1
    samples = pd.read_parquet(out / "samples.parquet")
    assert list(samples["label"]) == [1] * 4 + [0] * 4
    assert (samples["n_scored"] > 0).all()
    assert "report:" in capsys.readouterr().out
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def _assert_clean_failure(code, capsys, out, pattern):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and pattern in err, err
    assert not out.exists()


def test_audit_and_unlearn_take_set_and_refuse_a_misspelled_key_before_any_work(saved_model_dir, sets, tmp_path,
                                                                               capsys):
    out = tmp_path / "run"
    _assert_clean_failure(_audit(saved_model_dir, *sets, out, "--set", "audit.k=0.5", "--set", "audit.n_bot=5"),
                          capsys, out, "did you mean 'audit.n_boot'")
    forget = tmp_path / "f.jsonl"
    forget.write_text(json.dumps({"question": "Where?", "answer": "Lisbon"}) + "\n")
    code = main(["unlearn", "--model", str(saved_model_dir), "--forget", str(forget), "--retain", str(forget),
                 "--method", "ga", "--out", str(out), "--set", "unlearn.step=3"])
    _assert_clean_failure(code, capsys, out, "did you mean 'unlearn.steps'")
    assert _audit(saved_model_dir, *sets, out, "--set", "audit.k=0.5", "--no-extraction") == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["audit"]["k"] == 0.5


def test_missing_model_path(sets, tmp_path, capsys):
    out = tmp_path / "run"
    _assert_clean_failure(_audit(tmp_path / "no" / "such" / "model", *sets, out), capsys, out, "does not exist")


def test_truncated_safetensors_model(saved_model_dir, sets, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(saved_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])  # a download cut short
    out = tmp_path / "run"
    _assert_clean_failure(_audit(broken, *sets, out), capsys, out, "corrupt or truncated")


def test_pickle_only_model(saved_model_dir, model, sets, tmp_path, capsys):
    import torch

    pickled = tmp_path / "pickled"
    shutil.copytree(saved_model_dir, pickled)
    (pickled / "model.safetensors").unlink()
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    out = tmp_path / "run"
    _assert_clean_failure(_audit(pickled, *sets, out), capsys, out, "pickle")


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("", "holds no texts"),
        ('{"text": "fine text here"}\n{oops\n', "m.jsonl:2: not valid JSON"),
        ('{"text": "fine text here"}\n{"body": "x"}\n', "missing field 'text'"),
        ('{"text": "fine text here"}\n{"text": ""}\n', "is empty"),
        ('{"text": "only one member text"}\n', "at least 2"),
    ],
)
def test_bad_member_files(saved_model_dir, sets, tmp_path, capsys, content, pattern):
    members, nonmembers = sets
    members.write_text(content)
    out = tmp_path / "run"
    _assert_clean_failure(_audit(saved_model_dir, members, nonmembers, out), capsys, out, pattern)


def test_overlap_is_warned_and_can_be_dropped(saved_model_dir, tmp_path, capsys):
    members = _write_jsonl(tmp_path / "m.jsonl", MEMBERS + NONMEMBERS[:1])
    nonmembers = _write_jsonl(tmp_path / "n.jsonl", NONMEMBERS)
    assert _audit(saved_model_dir, members, nonmembers, tmp_path / "a", "--no-extraction") == 0
    assert "1 text(s) appear in both" in capsys.readouterr().err
    assert _audit(saved_model_dir, members, nonmembers, tmp_path / "b", "--no-extraction", "--drop-overlap") == 0
    samples = pd.read_parquet(tmp_path / "b" / "samples.parquet")
    assert len(samples) == 4 + 3


def test_texts_longer_than_the_context(saved_model_dir, tmp_path, capsys):
    long = "The museum keeps a collection of old clocks and maps. " * 40
    members = _write_jsonl(tmp_path / "m.jsonl", MEMBERS + [long])
    nonmembers = _write_jsonl(tmp_path / "n.jsonl", NONMEMBERS)
    out = tmp_path / "refused"
    _assert_clean_failure(_audit(saved_model_dir, members, nonmembers, out), capsys, out, "context")
    ok = tmp_path / "truncated"
    assert _audit(saved_model_dir, members, nonmembers, ok, "--truncation", "truncate", "--no-extraction") == 0
    assert json.loads((ok / "metrics.json").read_text())["data/n_truncated"] == 1


def test_run_dir_with_another_config_is_refused(saved_model_dir, sets, tmp_path, capsys):
    out = tmp_path / "run"
    assert _audit(saved_model_dir, *sets, out, "--no-extraction") == 0
    before = (out / "metrics.json").read_text()
    assert _audit(saved_model_dir, *sets, out, "--no-extraction", "--k", "0.5") == 2
    assert "different config" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == before


def test_unknown_recipe_and_bad_override(capsys):
    assert main(["run", "quickstrat"]) == 2
    assert "did you mean 'quickstart'" in capsys.readouterr().err
    assert main(["run", "--set", "train.step=3", "--out", "/nonexistent/never-written"]) == 2
    assert "did you mean 'train.steps'" in capsys.readouterr().err


def test_analyze_wemath(tmp_path, capsys):
    table = tmp_path / "w.jsonl"
    table.write_text(
        '{"id": 1, "composite_correct": true, "sub_correct": [true, true]}\n'
        '{"id": 2, "composite_correct": false, "sub_correct": [true, false]}\n'
    )
    assert main(["analyze", "wemath", str(table)]) == 0
    assert "IK" in capsys.readouterr().out


def test_summary_of_a_recipe_without_doses_or_attacks(tmp_path):
    from mnemoscope.cli import _summary

    (tmp_path / "metrics.json").write_text(json.dumps({"capacity/bits": 12.5, "capacity/bits@exposures=3": 1.0,
                                                       "x/none": None}))
    (tmp_path / "manifest.json").write_text(json.dumps({"recipe": "capacity"}))  # declares no summary
    text = _summary(tmp_path)
    assert "capacity/bits" in text and "12.500" in text
    assert "@exposures" not in text
    assert "(3 metrics in" in text
    (tmp_path / "manifest.json").write_text(json.dumps({"recipe": "written-by-another-version"}))
    assert _summary(tmp_path) == text  # a kind no registry holds: the same first numbers


@pytest.mark.parametrize("flags, pattern", [
    (["--k", "1.5"], "must be a fraction in (0, 1], got 1.5"),
    (["--seed", "-1"], "'seed' (--set seed=... or its flag) must be a whole number ≥ 0"),
    (["--batch-size", "0"], "'engine.max_batch_size' (--set engine.max_batch_size=... or its flag) must be ≥ 1, got 0"),
    (["--n-boot", "-5"], "'audit.n_boot' (--set audit.n_boot=... or its flag) must be ≥ 1"),
])
def test_settings_out_of_range_fail_before_the_run_directory(saved_model_dir, sets, tmp_path, capsys, flags, pattern):
    out = tmp_path / "run"
    _assert_clean_failure(_audit(saved_model_dir, *sets, out, *flags), capsys, out, pattern)


def test_unlearn_settings_out_of_range_fail_before_the_run_directory(saved_model_dir, tmp_path, capsys):
    forget = tmp_path / "f.jsonl"
    forget.write_text(json.dumps({"question": "Where?", "answer": "Lisbon"}) + "\n")
    out = tmp_path / "run"
    for flags, pattern in ((["--steps", "0"], "'unlearn.steps' (--set unlearn.steps=... or its flag) must be ≥ 1"), (["--lr", "nan"], "must be a finite number, got nan"),
                           (["--batch-size", "0"], "'unlearn.batch_size' (--set unlearn.batch_size=... or its flag) must be ≥ 1")):
        code = main(["unlearn", "--model", str(saved_model_dir), "--forget", str(forget), "--retain", str(forget),
                     "--method", "ga", "--out", str(out), *flags])
        _assert_clean_failure(code, capsys, out, pattern)


def test_out_that_is_a_file_and_a_model_folder_without_tokenizer(saved_model_dir, sets, tmp_path, capsys):
    a_file = tmp_path / "afile"
    a_file.write_text("keep me")
    assert _audit(saved_model_dir, *sets, a_file) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and a_file.read_text() == "keep me"
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(saved_model_dir / name, bare / name)
    out = tmp_path / "run"
    _assert_clean_failure(_audit(bare, *sets, out), capsys, out, "holds no tokenizer (none of tokenizer.json")


@pytest.mark.parametrize("setting, pattern", [
    ("canaries.doses=[]", "must list 0"), ("canaries.doses=[1, 4]", "must list 0"),
    ("canaries.doses=[0, a]", "expects a list of whole numbers"), ("canaries.per_dose=0", "per_dose must be ≥ 1"),
    ("train.lr=nan", "finite"), ("seed=-3", "whole number ≥ 0"), ("train.steps=0", "≥ 1"),
])
def test_lab_settings_out_of_range_fail_before_the_run_directory(tmp_path, capsys, setting, pattern):
    out = tmp_path / "run"
    _assert_clean_failure(main(["run", "quickstart", "--out", str(out), "--set", setting]), capsys, out, pattern)
