"""Opt-in experiment trackers: ``--track wandb`` or ``--track mlflow`` sends a finished run's
flat metrics, its config and its files (metrics.json, config.yaml, manifest.json, report.html)
to Weights & Biases or MLflow.

Off by default; the tracker package is imported only when asked for (``require``, called before
the run starts so that a missing package costs nothing). Where the data goes is the tracker's own
business, set through its usual environment variables: ``WANDB_PROJECT`` / ``WANDB_MODE=offline``
for wandb, ``MLFLOW_TRACKING_URI`` / ``MLFLOW_EXPERIMENT_NAME`` for MLflow. Only finite numbers are
logged as metrics: a null (not computed) value is left out, never sent as a number.
"""

from __future__ import annotations

import importlib
import math
import os
import re
from pathlib import Path

from mnemoscope import runs as runlib
from mnemoscope.errors import MnemoscopeError

TRACKERS = ("wandb", "mlflow")
ARTIFACT_FILES = ("metrics.json", "config.yaml", "manifest.json", "report.html", "notes.json")
DEFAULT_PROJECT = "mnemoscope"


def require(name: str):
    """The tracker's module, imported now; a one-line MnemoscopeError when it is unknown or absent."""
    if name not in TRACKERS:
        raise MnemoscopeError(f"unknown tracker '{name}': use one of {', '.join(TRACKERS)}")
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MnemoscopeError(f"--track {name} needs the '{name}' package, which is not installed: "
                              f"pip install {name} (or leave out --track)") from None


def numeric_metrics(metrics: dict) -> dict[str, float]:
    """The finite numbers of a metrics dict (null, text and non-finite values left out)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[key] = float(value)
    return out


def flat_config(config: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def mlflow_key(key: str) -> str:
    """A metric key in MLflow's alphabet (letters, digits, ``_ - . / :`` and space), with one
    ``/`` at most: ``mia/loss/auc@dose=16`` → ``mia/loss.auc:dose-16``; ``,`` → ``.``; anything
    else → ``_``. MLflow's folder store (./mlruns) keeps a metric as a file at its name's path, so
    ``mia/loss/auc`` next to ``mia/loss/auc/ci_hi`` would need one path as a file and a folder:
    only the family stays a folder."""
    key = key.replace("@", ":").replace("=", "-").replace(",", ".")
    family, _, rest = key.partition("/")
    key = f"{family}/{rest.replace('/', '.')}" if rest else family
    return re.sub(r"[^\w\-. /:]", "_", key)


def _files(run_dir: Path) -> list[Path]:
    return [run_dir / name for name in ARTIFACT_FILES if (run_dir / name).is_file()]


def _name(run_dir: Path) -> str:
    return f"{run_dir.resolve().parent.name}/{run_dir.resolve().name}"


def log_wandb(run_dir: Path, wandb=None) -> str:
    wandb = wandb or require("wandb")
    run = runlib.load(run_dir)
    tracked = wandb.init(project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT), name=_name(run_dir),
                         job_type=run.recipe or "run", config=run.config,
                         tags=[t for t in ("mnemoscope", run.recipe) if t])
    try:
        tracked.log(numeric_metrics(run.metrics))
        artifact = wandb.Artifact(re.sub(r"[^\w\-.]", "_", f"{run.recipe or 'run'}-{run_dir.resolve().name}"),
                                  type="mnemoscope-run")
        for path in _files(run_dir):
            artifact.add_file(str(path))
        tracked.log_artifact(artifact)
        where = getattr(tracked, "url", None) or getattr(tracked, "dir", None) or "wandb"
    finally:
        tracked.finish()
    return str(where)


def log_mlflow(run_dir: Path, mlflow=None) -> str:
    mlflow = mlflow or require("mlflow")
    run = runlib.load(run_dir)
    if not os.environ.get("MLFLOW_EXPERIMENT_NAME") and not os.environ.get("MLFLOW_EXPERIMENT_ID"):
        mlflow.set_experiment(DEFAULT_PROJECT)
    metrics = {mlflow_key(k): v for k, v in numeric_metrics(run.metrics).items()}
    # MLflow params are strings of bounded length; a long list is cut (config.yaml is logged whole)
    params = {k: str(v)[:500] for k, v in flat_config(run.config).items()}
    with mlflow.start_run(run_name=_name(run_dir)) as active:
        mlflow.set_tags({"mnemoscope.recipe": run.recipe or "", "mnemoscope.run_dir": str(run_dir.resolve())})
        keys = list(params)
        for i in range(0, len(keys), 100):  # MLflow accepts at most 100 params per call
            mlflow.log_params({k: params[k] for k in keys[i:i + 100]})
        mlflow.log_metrics(metrics)
        for path in _files(run_dir):
            mlflow.log_artifact(str(path))
        run_id = getattr(getattr(active, "info", None), "run_id", "")
    return f"mlflow run {run_id}".strip()


def log_run(name: str, run_dir: str | Path) -> str:
    """Send the finished run in ``run_dir`` to tracker ``name``; returns where it went.

    A tracker error (no login, server down) becomes a MnemoscopeError saying the run itself is safe."""
    run_dir = Path(run_dir)
    module = require(name)
    try:
        return (log_wandb if name == "wandb" else log_mlflow)(run_dir, module)
    except MnemoscopeError:
        raise
    except Exception as exc:  # noqa: BLE001 (any tracker failure: the run on disk is complete)
        first = (str(exc).splitlines() or [""])[0]
        raise MnemoscopeError(f"--track {name} failed ({type(exc).__name__}: {first}); the run in {run_dir} is "
                              f"complete: log it later with `mnemoscope track {run_dir} --to {name}`") from None
