"""compare and runs on fake run directories: keys some runs lack, spread, config differences,
provenance warnings, statuses, outputs, the HTML pages, and bad input."""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
import os
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemoscope import runs as runlib
from mnemoscope.recipes import claim_for
from mnemoscope.cli import main
from mnemoscope.compare import (
    compare,
    format_table,
    glob_regex,
    match_keys,
    provenance_check,
)
from mnemoscope.errors import MnemoscopeError
from mnemoscope.report.comparison import write_comparison
from tests.runfakes import dose_metrics, fake_run


def _prov(**inputs) -> dict:
    """A provenance block whose inputs are {key: (role, sha256)}."""
    return {"config_sha256": "c" * 64, "git": {"revision": "0" * 40, "dirty": False}, "packages": {"torch": "2.13"},
            "inputs": {k: {"role": role, "kind": "file", "path": f"/data/{k}", "sha256": sha}
                       for k, (role, sha) in inputs.items()}}


# --------------------------------------------------------------------------- keys and values


def test_overlapping_and_disjoint_keys_are_shown_empty_never_filled(tmp_path):
    fake_run(tmp_path / "a", {"x/auc": 0.75, "y/auc": 0.5, "z/auc": None})
    fake_run(tmp_path / "b", {"y/auc": 0.25, "w/auc": 4})
    c = compare([tmp_path], ["x/auc", "y/auc", "z/auc", "w/auc"])
    assert [r.label for r in c.runs] == ["a", "b"]
    assert math.isnan(c.values.loc["b", "x/auc"]) and c.values.loc["b", "y/auc"] == 0.25
    assert math.isnan(c.values.loc["a", "z/auc"])  # null: not a number either
    md = format_table(c, "md").splitlines()
    assert md[0] == "| run | x/auc | y/auc | z/auc | w/auc |"
    assert md[2] == "| a | 0.75 | 0.5 | null |  |"
    assert md[3] == "| b |  | 0.25 |  | 4 |"
    rows = list(csv.reader(io.StringIO(format_table(c, "csv"))))
    assert rows[1] == ["a", "0.75", "0.5", "null", ""] and rows[2] == ["b", "", "0.25", "", "4"]
    doc = json.loads(format_table(c, "json"))
    assert doc["runs"][0]["metrics"] == {"x/auc": 0.75, "y/auc": 0.5, "z/auc": None}
    assert doc["runs"][1]["metrics"] == {"y/auc": 0.25, "w/auc": 4}  # absent keys are absent, not null


def test_glob_columns(tmp_path):
    fake_run(tmp_path / "a", dose_metrics(0))
    c = compare([tmp_path / "a"], ["mia/*/auc@dose=*", "train/final_loss"])
    assert c.columns == ["mia/loss/auc@dose=1", "mia/loss/auc@dose=4", "mia/loss/auc@dose=16",
                         "mia/min_k_pp/auc@dose=1", "mia/min_k_pp/auc@dose=4", "mia/min_k_pp/auc@dose=16",
                         "train/final_loss"]
    keys = ["mia/loss/auc", "mia/loss/auc/ci_lo", "a/b/c/auc", "mia/min_k/auc@dose=1"]
    assert match_keys(keys, "mia/*/auc") == ["mia/loss/auc"]  # * stays within one segment
    assert match_keys(keys, "**/auc") == ["a/b/c/auc", "mia/loss/auc"]
    assert match_keys(keys, "mia/[!l]*/auc@dose=?") == ["mia/min_k/auc@dose=1"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab@=,.^", max_size=8), st.text(alphabet="ab@=*?[]!^-", max_size=7))
def test_glob_matches_fnmatch_on_keys_without_slashes(key, pattern):
    """Without '/', the key glob is fnmatch's (an independent implementation)."""
    assert bool(glob_regex(pattern).match(key)) == fnmatch.fnmatchcase(key, pattern)


def test_default_columns_are_the_recipe_headlines(tmp_path):
    fake_run(tmp_path / "a", {**dose_metrics(0), "mia/loss/auc": 0.6, "other/thing": 1})
    c = compare([tmp_path / "a"])
    # the quickstart claim's keys the run has come first, then the recipe's headlines
    claim_keys = [k for e in claim_for("quickstart").effects for k in e.keys if k in c.runs[0].metrics]
    assert c.columns[:len(claim_keys)] == list(dict.fromkeys(claim_keys))
    rest = [k for k in c.columns if k not in claim_keys]
    assert rest[:2] == ["mia/min_k_pp/auc", "mia/loss/auc"]
    assert "other/thing" not in c.columns and "train/final_loss" in c.columns


# --------------------------------------------------------------------------- groups and spread


def test_seeds_form_a_group_and_its_spread_is_right(tmp_path):
    values = {0: 0.61, 1: 0.70, 2: 0.83}
    for seed, v in values.items():
        metrics = {"mia/loss/auc": v, "only/some": 1.0 if seed else None}
        fake_run(tmp_path / f"lr=1/seed={seed}", metrics, config={"train": {"lr": 1.0}}, seed=seed)
    fake_run(tmp_path / "lr=2/seed=0", {"mia/loss/auc": 0.9}, config={"train": {"lr": 2.0}}, seed=0)
    c = compare([tmp_path], ["mia/loss/auc", "only/some"])
    assert c.config_keys == ["seed", "train.lr"]
    assert c.groups == ["train.lr=1.0"] * 3 + ["train.lr=2.0"]
    s = c.spread().set_index(["group", "metric"])
    row = s.loc[("train.lr=1.0", "mia/loss/auc")]
    ref = np.array(list(values.values()))
    assert row["n"] == 3 and row["mean"] == pytest.approx(ref.mean())
    assert row["sd"] == pytest.approx(ref.std(ddof=1)) and (row["min"], row["max"]) == (0.61, 0.83)
    assert s.loc[("train.lr=1.0", "only/some"), "n"] == 2  # the null of seed 0 is not counted
    single = s.loc[("train.lr=2.0", "mia/loss/auc")]
    assert single["n"] == 1 and math.isnan(single["sd"])  # one run: no spread, none made up
    assert s.loc[("train.lr=2.0", "only/some"), "n"] == 0
    md = format_table(c, "md", spread=True)
    assert "| train.lr=2.0 | only/some | 0 |  |  |  |  |" in md


def test_runs_of_different_recipes_are_grouped_apart(tmp_path):
    fake_run(tmp_path / "q", {"train/final_loss": 1.0}, config={"train": {"steps": 5}})
    fake_run(tmp_path / "u", {"train/final_loss": 2.0}, config={"train": {"steps": 9}, "unlearn": {"lr": 1}},
             recipe="unlearning")
    c = compare([tmp_path], ["train/final_loss"])
    assert c.config_keys == []  # one run per recipe: nothing differs within a recipe
    assert c.groups == ["quickstart", "unlearning"]
    assert format_table(c, "md").splitlines()[0] == "| run | recipe | train/final_loss |"


# --------------------------------------------------------------------------- provenance and status


def test_run_from_an_older_version_is_compared_with_a_note(tmp_path):
    fake_run(tmp_path / "old", {"mia/loss/auc": 0.6})  # manifest without provenance
    fake_run(tmp_path / "new", {"mia/loss/auc": 0.7}, provenance=_prov(**{"data.members": ("data", "1" * 64)}))
    c = compare([tmp_path], ["mia/loss/auc"])
    assert list(c.values["mia/loss/auc"]) == [0.7, 0.6]
    assert c.warnings == []
    assert any("1 of 2 runs have no provenance" in n and "old" in n for n in c.notes)


def test_warns_when_data_or_model_differ_by_hash_not_by_path(tmp_path):
    same = fake_run(tmp_path / "a", {"k": 1}, provenance=_prov(**{"data.members": ("data", "1" * 64),
                                                                   "model.name": ("model", "9" * 64)}))
    twin = _prov(**{"data.members": ("data", "1" * 64), "model.name": ("model", "9" * 64)})
    twin["inputs"]["data.members"]["path"] = "/elsewhere/members.jsonl"  # same bytes, another place
    fake_run(tmp_path / "b", {"k": 2}, provenance=twin)
    assert provenance_check(runlib.gather([tmp_path]))[0] == []
    fake_run(tmp_path / "c", {"k": 3}, provenance=_prov(**{"data.members": ("data", "2" * 64),
                                                            "model.name": ("model", "8" * 64)}))
    fake_run(tmp_path / "d", {"k": 4}, provenance=_prov(**{"model.name": ("model", "9" * 64)}))
    warnings, _ = provenance_check(runlib.gather([tmp_path]))
    assert warnings == [
        "runs differ in data 'data.members': sha256 111111111111 in a, b; sha256 222222222222 in c; absent in d",
        "runs differ in model 'model.name': sha256 999999999999 in a, b, d; sha256 888888888888 in c",
    ]
    assert same.exists()


def test_statuses(tmp_path):
    done = fake_run(tmp_path / "done", {"k": 1})
    stopped = fake_run(tmp_path / "stopped", {}, status="interrupted")
    broken = fake_run(tmp_path / "broken", {}, status="failed")
    assert [runlib.status_of(p) for p in (done, stopped, broken)] == ["complete", "interrupted", "failed"]
    # a resume rewrites config.yaml: an older failure record no longer describes the run
    past = os.stat(broken / "config.yaml").st_mtime - 100
    os.utime(broken / "failure.json", (past, past))
    assert runlib.status_of(broken) == "interrupted"


def test_recording_failure_touches_only_a_directory_the_command_wrote(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(MnemoscopeError), runlib.recording_failure(out, "cmd"):  # refused up front: no record
        raise MnemoscopeError("bad input")
    assert not out.exists()
    with pytest.raises(RuntimeError), runlib.recording_failure(out, "cmd"):
        fake_run(out, {}, status="interrupted")
        raise RuntimeError("out of memory\nsecond line")
    record = json.loads((out / "failure.json").read_text())
    assert record["error"] == "out of memory second line" and record["type"] == "RuntimeError"
    assert record["command"] == "cmd" and runlib.status_of(out) == "failed"
    with pytest.raises(MnemoscopeError), runlib.recording_failure(out, "other"):  # refused: record kept
        raise MnemoscopeError("holds a different config")
    assert json.loads((out / "failure.json").read_text())["command"] == "cmd"
    with pytest.raises(KeyboardInterrupt), runlib.recording_failure(out, "cmd"):
        fake_run(out, {}, status="interrupted")
        raise KeyboardInterrupt
    assert runlib.status_of(out) == "interrupted"
    with runlib.recording_failure(out, "cmd"):
        fake_run(out, {"k": 1})
    assert runlib.status_of(out) == "complete" and not (out / "failure.json").exists()


def test_incomplete_runs_are_skipped_and_listed(tmp_path, capsys):
    fake_run(tmp_path / "a", {"mia/loss/auc": 0.7})
    fake_run(tmp_path / "b", {}, status="interrupted")
    c = compare([tmp_path], ["mia/loss/auc"])
    assert [r.label for r in c.runs] == ["a"] and [r.label for r in c.skipped] == ["b"]
    assert c.notes[0] == "skipped 1 run(s) that are not complete: b (interrupted)"
    assert main(["runs", str(tmp_path), "--no-index"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\| b \| interrupted \|", out) and re.search(r"\| a \| complete \| quickstart \|", out)


def test_runs_lists_every_status_and_writes_the_index(tmp_path, capsys):
    fake_run(tmp_path / "qs" / "seed=0", dose_metrics(0))
    fake_run(tmp_path / "qs" / "seed=1", {}, status="interrupted")
    fake_run(tmp_path / "qs" / "seed=2", {}, status="failed")
    fake_run(tmp_path / "old", {"capacity/bits": 3.0}, recipe=None, report=False)
    (tmp_path / "qs" / "comparison.html").write_text("<!DOCTYPE html>")
    assert main(["runs", str(tmp_path), "--format", "json"]) == 0
    listed = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert {k: v["status"] for k, v in listed.items()} == {
        "old": "complete", "qs/seed=0": "complete", "qs/seed=1": "interrupted", "qs/seed=2": "failed"}
    assert listed["qs/seed=2"]["error"] == "boom"
    assert listed["qs/seed=0"]["headline"]["mia/min_k_pp/auc"] == 0.7
    assert listed["qs/seed=0"]["model"] == "lab micro (1.0 k)"
    page = (tmp_path / "index.html").read_text()
    assert 'href="qs/seed=0/report.html"' in page and 'href="qs/comparison.html"' in page
    assert 'href="old/report.html"' not in page  # no report, no link
    assert "boom" in page and "rerun the same command to resume" in page
    _assert_self_contained(page)


# --------------------------------------------------------------------------- pages


def _assert_self_contained(page: str) -> None:
    """Nothing the browser would fetch: no http(s) URL, no script, no stylesheet link, images inline."""
    assert not re.search(r"https?://", page)
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    for src in re.findall(r'src="([^"]*)"', page):
        assert src.startswith("data:image/png;base64,")
    for href in re.findall(r'href="([^"]*)"', page):
        assert href.startswith("#") or not re.match(r"[a-z]+:", href)  # anchors and relative links only


@pytest.fixture
def sweep(tmp_path):
    """Two learning rates × three seeds of quickstart, one unlearning run, one interrupted run."""
    for lr in (1, 2):
        for seed in range(3):
            fake_run(tmp_path / f"lr={lr}" / f"seed={seed}", dose_metrics(seed + 3 * (lr - 1)),
                     config={"train": {"lr": float(lr)}}, seed=seed)
    unlearn = {f"unlearn/{m}/knowmem_{s}": v for m, (f, r) in
               {"original": (0.9, 0.8), "retrain": (0.2, 0.75), "ga": (0.1, 0.3)}.items()
               for s, v in (("forget", f), ("retain", r))}
    fake_run(tmp_path / "unlearn", unlearn, recipe="unlearning", config={"unlearn": {"lr": 1e-5}})
    fake_run(tmp_path / "stopped", {}, status="interrupted")
    return tmp_path


def test_comparison_page_is_self_contained_with_the_recipe_plots(sweep):
    c = compare([sweep], ["mia/*/auc@dose=*", "train/final_loss"])
    page = write_comparison(c, sweep / "comparison.html").read_text()
    _assert_self_contained(page)
    for title in ("By group variable", "Unlearning trade-off", "Chosen metrics", "Spread across seeds", "Runs",
                  "Provenance", "Checks"):
        assert f"<h2>{title}</h2>" in page, title
    assert page.count("data:image/png;base64,") == 3  # dose panels, trade-off, strips
    assert 'href="lr=1/seed=0/report.html"' in page  # relative to the page
    for href in re.findall(r'href="([^"#][^"]*)"', page):
        assert (sweep / href).is_file(), href
    assert "0.83 ± 0.01" in page  # mia/loss/auc@dose=16 at lr=1: seeds give 0.82, 0.83, 0.84


def test_comparison_page_renders_in_a_real_browser(sweep, tmp_path_factory):
    """Every section drawn, no broken image, no horizontal overflow, no console error (Chromium;
    a skip only outside CI)."""
    from .browser import assert_renders

    page = write_comparison(compare([sweep]), sweep / "comparison.html")
    assert_renders(page, tmp_path_factory.mktemp("browser"),
                   ["By group variable", "Unlearning trade-off", "Spread across seeds", "Runs", "Checks"])


def test_compare_command(sweep, capsys):
    assert main(["compare", str(sweep / "lr=1"), str(sweep / "lr=2"), "-m", "mia/loss/auc@dose=16",
                 "--format", "csv", "--html", str(sweep / "page.html")]) == 0
    captured = capsys.readouterr()
    rows = list(csv.reader(io.StringIO(captured.out)))
    assert rows[0] == ["run", "seed", "train.lr", "mia/loss/auc@dose=16"]
    assert rows[1][:3] == ["lr=1/seed=0", "0", "1.0"] and len(rows) == 7
    written = json.loads((sweep / "lr=1" / "seed=0" / "metrics.json").read_text())["mia/loss/auc@dose=16"]
    assert float(rows[1][3]) == written  # csv keeps every digit
    assert (sweep / "page.html").is_file() and "comparison:" in captured.err
    assert main(["compare", str(sweep / "lr=1"), "-m", "mia/loss/auc@dose=16", "--spread", "--format", "json"]) == 0
    spread = json.loads(capsys.readouterr().out)["spread"]
    assert spread[0]["n"] == 3 and spread[0]["mean"] == pytest.approx(0.83)
    assert main(["compare", str(sweep / "lr=1" / "seed=0"), "--list-keys"]) == 0
    assert "mia/min_k_pp/auc@dose=16" in capsys.readouterr().out.split()


@pytest.mark.parametrize("args, pattern", [
    (["compare", "{tmp}/empty"], r"holds no mnemoscope run"),
    (["runs", "{tmp}/empty"], r"holds no mnemoscope run"),
    (["compare", "{tmp}/file.txt"], r"is not a run directory"),
    (["compare", "{tmp}/absent"], r"does not exist"),
    (["compare", "{tmp}/runs", "-m", "mia/*/tpr"], r"no compared run has a metric matching 'mia/\*/tpr'"),
    (["compare", "{tmp}/runs/stopped"], r"no complete run to compare \(1 interrupted\)"),
    (["run", "--seeds", "0", "--out", "{tmp}/s"], r"names one seed"),
    (["run", "--seeds", "0,x", "--out", "{tmp}/s"], r"use whole numbers"),
    (["run", "--seeds", "0,1", "--set", "seed=3", "--out", "{tmp}/s"], r"drop --set seed"),
    (["run", "--seeds", "0,1", "--out", "{tmp}/runs/done"], r"is a run directory"),
    (["track", "{tmp}/runs/stopped", "--to", "mlflow"], r"not a complete run directory"),
    (["compare", "{tmp}/runs/done", "--html", "{tmp}/empty"], r"--html .*empty is a folder: name the page's file"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, pattern):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    fake_run(tmp_path / "runs" / "done", {"mia/loss/auc": 0.5})
    fake_run(tmp_path / "runs" / "stopped", {}, status="interrupted")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnemoscope: error: ") and err.count("\n") == 1, err
    assert re.search(pattern, err), err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
