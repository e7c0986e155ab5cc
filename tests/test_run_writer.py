"""rundir.Run: what every recipe writes, and when a directory may be reused or replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mnemoscope import rundir
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Result


def test_finish_writes_tables_metrics_notes_then_the_manifest(tmp_path):
    run = rundir.Run(tmp_path / "run", {"seed": 4, "x": {"a": 1}}, "toy")
    with run.phase("work"):
        run.add(Result(pd.DataFrame({"v": [1, 2]}), {"toy/v/mean": 1.5, "toy/w": None}, {"toy/w": "no w here"}),
                "family_samples/toy")
    run.not_computed("toy/z", "z needs a GPU")
    run.note("toy/only_noted", "this family did not run: its file held nothing")
    run.note("mia/*/tpr@fpr=*", "a pattern note stays a note")
    out = run.finish(device="cpu", extra={"model": "m"})
    metrics = json.loads((out / "metrics.json").read_text())
    notes = json.loads((out / "notes.json").read_text())
    assert metrics == {"toy/v/mean": 1.5, "toy/w": None, "toy/z": None, "toy/only_noted": None}
    assert notes["toy/w"] == "no w here" and notes["toy/z"] == "z needs a GPU" and "mia/*/tpr@fpr=*" in notes
    assert len(pd.read_parquet(out / "family_samples" / "toy.parquet")) == 2
    assert pd.read_parquet(out / "samples.parquet").empty  # every run has one
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"] == "toy" and manifest["seed"] == 4 and "work" in manifest["timings_s"]
    assert manifest["model"] == "m" and manifest["provenance"]["config_sha256"]
    assert not (out / "report.html").exists()  # the caller writes the report once the run is complete


def test_the_io_module_sits_at_the_bottom_and_the_run_writer_never_imports_the_report():
    import ast

    import mnemoscope.files as files

    def imported(module) -> set[str]:
        tree = ast.parse(Path(module.__file__).read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}

    assert not any(name.startswith("mnemoscope") for name in imported(files))
    assert not any(name.startswith("mnemoscope.report") for name in imported(rundir))


def test_two_reasons_for_one_key_are_joined_once(tmp_path):
    run = rundir.Run(tmp_path / "run", {"seed": 0}, "toy")
    run.note("k", "first")
    run.note("k", "second")
    run.note("k", "first")
    assert run.notes["k"] == "first; second"


def test_same_config_resumes_and_a_finished_run_of_another_config_is_refused(tmp_path):
    out = tmp_path / "run"
    rundir.Run(out, {"seed": 0}, "toy").finish(device="cpu")
    rundir.Run(out, {"seed": 0}, "toy")  # same config: resumes
    with pytest.raises(MnemoscopeError, match="different config"):
        rundir.Run(out, {"seed": 1}, "toy")


def test_an_unfinished_run_with_nothing_to_resume_is_replaced_by_a_corrected_command(tmp_path):
    """A run that failed while preparing its data (bad settings) must not block the fixed command."""
    out = tmp_path / "run"
    rundir.Run(out, {"train": {"steps": 150}}, "toy")
    (out / "model").mkdir()
    (out / "model" / "tokenizer.json").write_text("{}")
    warnings = []
    rundir.open_run_dir(out, {"train": {"steps": 500}}, warn=warnings.append)
    assert "replacing it" in warnings[0] and not (out / "model").exists()
    # with a checkpoint there is something to resume: refused, untouched
    (out / "train" / "checkpoints" / "step-000100").mkdir(parents=True)
    with pytest.raises(MnemoscopeError, match="different config"):
        rundir.open_run_dir(out, {"train": {"steps": 600}})
    assert (out / "train" / "checkpoints" / "step-000100").exists()
