"""Helpers shared by recipes: scale presets, training configs, log-line fits and the end of a lab
run. Recipes stay short by composing these (training phases: ``train.phase.train_phase``; the run
directory: ``rundir.Run``; the model: ``lab.factory``; bootstrap intervals: ``metrics.bootstrap``)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import resolve
from mnemoscope.errors import MnemoscopeError
from mnemoscope.train.loop import TrainConfig


def resolve_scaled(defaults: dict, scales: dict[str, dict], overrides: dict | None) -> dict:
    """Defaults, then the ``scale`` preset's sections, then the user's overrides."""
    overrides = dict(overrides or {})
    scale = overrides.get("scale", defaults["scale"])
    if scale not in scales:
        raise MnemoscopeError(f"unknown scale '{scale}': use one of {', '.join(scales)}")
    base = copy.deepcopy(defaults)
    for section, values in scales[scale].items():
        base[section].update(values)
    return resolve(base, overrides)


def train_config(t: dict, steps: int, seed: int, **changes) -> TrainConfig:
    keys = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(seed=seed, steps=steps, **{**{k: v for k, v in t.items() if k in keys}, **changes})


def fit_log_line(t: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Least squares y = b − a·log10(t) → a, b and R² (``metrics.dynamics.fit_log_decay`` on 100·y)."""
    from mnemoscope.metrics.dynamics import fit_log_decay

    fit = fit_log_decay(t, 100.0 * np.asarray(y, dtype=np.float64))
    return {"a": fit["a"], "b": fit["b"], "r2": fit["r2"]}


def phase_curves(history: list[dict]) -> pd.DataFrame:
    """Training history of consecutive phases: ``step`` runs on across phases, ``phase_step`` restarts."""
    curves = pd.DataFrame(history)
    curves["phase_step"] = curves["step"]
    curves["step"] = np.arange(len(curves))
    return curves


def finish_lab_run(run: rundir.Run, model, history: list[dict], extra: dict | None = None) -> Path:
    """Finish a run that trained a lab model: ``train/final_loss`` (mean of the last 10 losses) and
    ``model/parameters`` join the metrics, then ``run.finish`` on the model's device."""
    from mnemoscope.lab.tiny import count_parameters

    run.metrics.setdefault("train/final_loss", float(np.mean([h["loss"] for h in history[-10:]])))
    run.metrics.setdefault("model/parameters", count_parameters(model))
    return finish_run(run, device=str(next(model.parameters()).device), extra=extra)


def finish_run(run: rundir.Run, *, device: str, extra: dict | None = None) -> Path:
    """Finish the run (tables, metrics, notes, manifest), then write its report: the run writer
    never calls the report, the recipe does, once the run is complete on disk."""
    from mnemoscope.report.html import write_report

    out = run.finish(device=device, extra=extra)
    write_report(out)
    return out
