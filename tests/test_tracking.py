"""--track wandb|mlflow: what is sent (through stand-ins recording the calls of each package's
public API), and the one-line error when the package is missing (the module hidden)."""

from __future__ import annotations

import sys
import types
from contextlib import contextmanager

import pytest

from mnemoscope import tracking
from mnemoscope.cli import main
from mnemoscope.errors import MnemoscopeError
from tests.runfakes import fake_run

METRICS = {"mia/loss/auc@dose=16": 0.8, "mia/loss/tpr@fpr=0.01": None, "n": 3, "flag": True, "bad": float("nan"),
           "text": "x"}


@pytest.fixture
def run_dir(tmp_path):
    path = fake_run(tmp_path / "qs" / "seed=0", {k: v for k, v in METRICS.items() if k != "bad"},
                    config={"model": {"size": "micro"}, "train": {"steps": 10, "doses": [0, 1]}})
    (path / "notes.json").write_text("{}")
    return path


def fake_wandb(calls: list):
    module = types.ModuleType("wandb")

    class Run:
        url = "https://wandb.example/run"

        def log(self, data):
            calls.append(("log", data))

        def log_artifact(self, artifact):
            calls.append(("log_artifact", artifact.name, artifact.type, artifact.files))

        def finish(self):
            calls.append(("finish",))

    class Artifact:
        def __init__(self, name, type):
            self.name, self.type, self.files = name, type, []

        def add_file(self, path):
            self.files.append(path)

    def init(**kwargs):
        calls.append(("init", kwargs))
        return Run()

    module.init, module.Artifact = init, Artifact
    return module


def fake_mlflow(calls: list):
    module = types.ModuleType("mlflow")

    @contextmanager
    def start_run(run_name=None):
        calls.append(("start_run", run_name))
        yield types.SimpleNamespace(info=types.SimpleNamespace(run_id="r1"))
        calls.append(("end_run",))

    def recorder(name):
        return lambda arg: calls.append((name, arg))

    for name in ("set_experiment", "set_tags", "log_params", "log_metrics", "log_artifact"):
        setattr(module, name, recorder(name))
    module.start_run = start_run
    return module


def test_numeric_metrics_leave_out_nulls_text_and_non_finite_values():
    assert tracking.numeric_metrics(METRICS) == {"mia/loss/auc@dose=16": 0.8, "n": 3.0, "flag": 1.0}


def test_wandb_gets_metrics_config_and_files(run_dir, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    assert tracking.log_run("wandb", run_dir) == "https://wandb.example/run"
    kinds = [c[0] for c in calls]
    assert kinds == ["init", "log", "log_artifact", "finish"]
    init = calls[0][1]
    assert init["project"] == "mnemoscope" and init["name"] == "qs/seed=0" and init["job_type"] == "quickstart"
    assert init["config"]["train"] == {"steps": 10, "doses": [0, 1]}
    assert calls[1][1] == {"mia/loss/auc@dose=16": 0.8, "n": 3.0, "flag": 1.0}
    name, kind, files = calls[2][1:]
    assert name == "quickstart-seed_0" and kind == "mnemoscope-run"
    assert sorted(p.rsplit("/", 1)[1] for p in files) == ["config.yaml", "manifest.json", "metrics.json",
                                                          "notes.json", "report.html"]


def test_mlflow_gets_legal_metric_names_params_and_files(run_dir, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "mlflow", fake_mlflow(calls))
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    assert tracking.log_run("mlflow", run_dir) == "mlflow run r1"
    got = {c[0]: c[1] for c in calls if len(c) > 1}
    assert got["set_experiment"] == "mnemoscope" and got["start_run"] == "qs/seed=0"
    assert got["log_metrics"] == {"mia/loss.auc:dose-16": 0.8, "n": 3.0, "flag": 1.0}
    assert got["log_params"] == {"seed": "0", "model.size": "micro", "train.steps": "10", "train.doses": "[0, 1]"}
    assert got["set_tags"]["mnemoscope.recipe"] == "quickstart"
    assert len([c for c in calls if c[0] == "log_artifact"]) == 5 and calls[-1] == ("end_run",)


def test_mlflow_keys_use_only_its_alphabet():
    import re

    for key in ("mia/loss/tpr@fpr=0.01/underpowered@dose=1", "reasoning/accuracy@split=train,phase=after",
                "capacity/bits_per_person@exposures=3", "weird key+(x)"):
        assert re.fullmatch(r"[\w\-. /:]+", tracking.mlflow_key(key)), key
    assert tracking.mlflow_key("reasoning/accuracy@split=train,phase=after") == "reasoning/accuracy:split-train.phase-after"
    # one "/" at most: no key is a folder of another in MLflow's folder store
    assert tracking.mlflow_key("mia/loss/auc/ci_hi@dose=1") == "mia/loss.auc.ci_hi:dose-1"
    assert tracking.mlflow_key("mia/loss/auc") == "mia/loss.auc" and tracking.mlflow_key("n") == "n"


def test_a_tracker_failure_says_the_run_is_safe(run_dir, monkeypatch):
    module = fake_wandb([])
    module.init = lambda **kw: (_ for _ in ()).throw(RuntimeError("api key missing\nmore"))
    monkeypatch.setitem(sys.modules, "wandb", module)
    with pytest.raises(MnemoscopeError, match=r"--track wandb failed \(RuntimeError: api key missing\); the run in "):
        tracking.log_run("wandb", run_dir)


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_missing_package_is_one_line_before_anything_runs(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, name, None)  # `import NAME` now raises ImportError
    out = tmp_path / "never"
    assert main(["run", "--track", name, "--out", str(out), "--set", "train.steps=2"]) == 2
    err = capsys.readouterr().err
    assert err == (f"mnemoscope: error: --track {name} needs the '{name}' package, which is not installed: "
                   f"pip install {name} (or leave out --track)\n")
    assert not out.exists()
    assert main(["track", str(fake_run(tmp_path / "done", {"k": 1})), "--to", name]) == 2
    assert "pip install" in capsys.readouterr().err


def test_no_tracker_is_imported_unless_asked(run_dir, monkeypatch):
    """Nothing in mnemoscope imports wandb or mlflow at import time or for other commands."""
    for name in ("wandb", "mlflow"):
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["runs", str(run_dir.parent), "--no-index"]) == 0
    assert main(["compare", str(run_dir)]) == 0


def test_track_command_logs_a_finished_run(run_dir, monkeypatch, capsys):
    calls: list = []
    monkeypatch.setitem(sys.modules, "mlflow", fake_mlflow(calls))
    assert main(["track", str(run_dir), "--to", "mlflow"]) == 0
    assert "tracked: mlflow run r1" in capsys.readouterr().out
