"""--track mlflow against the real MLflow package (installed in .venv-vllm; `make test-vllm`): an
audit logs to a local file store (no server), and the run is read back through MLflow's client."""

from __future__ import annotations

import json
import math

import pytest

from mnemoscope.cli import main
from mnemoscope.tracking import ARTIFACT_FILES, mlflow_key

pytestmark = pytest.mark.mlflow
mlflow = pytest.importorskip("mlflow")

MEMBERS = ["Anna Berg was born in Lisbon in 1901.", "The museum in Alder keeps old clocks.",
           "Every spring the market in Fern sells apples."]
NONMEMBERS = ["Lena Voss was born in Porto in 1933.", "The library in Cedar keeps old letters.",
              "Every autumn the fair in Grey sells boats."]


@pytest.fixture(params=["sqlite", "file"])
def store(request, tmp_path, monkeypatch):
    """MLflow's local stores: an SQLite file (its default since 3.x) and the ./mlruns folder, which
    recent MLflow refuses unless MLFLOW_ALLOW_FILE_STORE=true. Artifacts go under the working
    directory (./mlartifacts): the test's own folder."""
    monkeypatch.chdir(tmp_path)
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    else:
        uri = (tmp_path / "mlruns").as_uri()
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # nothing leaves the machine
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    yield mlflow.tracking.MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri("")


def test_audit_track_mlflow_logs_a_run_mlflow_reads_back(store, saved_model_dir, tmp_path, capsys):
    for name, texts in (("m.jsonl", MEMBERS), ("n.jsonl", NONMEMBERS)):
        (tmp_path / name).write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = tmp_path / "audit"
    assert main(["audit", "--model", str(saved_model_dir), "--members", str(tmp_path / "m.jsonl"), "--nonmembers",
                 str(tmp_path / "n.jsonl"), "--out", str(out), "--device", "cpu", "--track", "mlflow"]) == 0
    printed = capsys.readouterr().out
    experiment = store.get_experiment_by_name("mnemoscope")
    runs = store.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert f"tracked: mlflow run {run.info.run_id}" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    sent = {mlflow_key(k): float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    assert run.data.metrics == pytest.approx(sent)
    assert metrics["mia/loss/tpr@fpr=0.01"] is None and mlflow_key("mia/loss/tpr@fpr=0.01") not in run.data.metrics
    assert run.data.params["audit.k"] == "0.2" and run.data.params["data.members"] == str(tmp_path / "m.jsonl")
    assert run.data.tags["mnemoscope.recipe"] == "audit" and run.data.tags["mlflow.runName"] == f"{tmp_path.name}/audit"
    logged = {a.path for a in store.list_artifacts(run.info.run_id)}
    assert logged == {f for f in ARTIFACT_FILES if (out / f).is_file()} and "metrics.json" in logged
    copy = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="metrics.json",
                                               dst_path=str(tmp_path / "back"))
    assert json.loads(open(copy).read()) == metrics
    # `mnemoscope track` sends the same finished run again: a second MLflow run with the same numbers
    assert main(["track", str(out), "--to", "mlflow"]) == 0
    again = store.search_runs([experiment.experiment_id])
    assert len(again) == 2 and all(r.data.metrics == pytest.approx(sent) for r in again)
