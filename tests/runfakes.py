"""Fake run directories for the comparison, listing and provenance tests: the files a recipe
writes at its end (config.yaml, metrics.json, manifest.json, report.html), without training."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def fake_run(path: Path, metrics: dict, *, config: dict | None = None, recipe: str | None = "quickstart",
             seed: int = 0, provenance: dict | None = None, status: str = "complete", report: bool = True) -> Path:
    """A run directory as a recipe leaves it. ``status``: complete (all files), interrupted (config
    only), failed (config + failure.json). ``provenance`` None leaves the manifest without one, as
    runs written before it was recorded."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = {"seed": seed, **(config or {"model": {"size": "micro"}, "train": {"steps": 10}})}
    (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    if status == "interrupted":
        return path
    if status == "failed":
        (path / "failure.json").write_text(json.dumps({"error": "boom", "type": "RuntimeError", "unix": 2.0e9}))
        return path
    (path / "metrics.json").write_text(json.dumps(metrics))
    manifest = {"mnemoscope": "0.1.0", "seed": seed, "device": "cpu", "created_unix": 1.8e9 + seed,
                "git_revision": "0" * 40, "timings_s": {"train": 1.0}}
    if recipe is not None:
        manifest["recipe"] = recipe
    if provenance is not None:
        manifest["provenance"] = provenance
    (path / "manifest.json").write_text(json.dumps(manifest))
    if report:
        (path / "report.html").write_text("<!DOCTYPE html><title>report</title>")
    return path


def dose_metrics(seed: int, doses=(0, 1, 4, 16)) -> dict:
    """Quickstart-like keys whose values depend on the seed (so the spread is not zero)."""
    m = {"train/final_loss": 2.0 + 0.1 * seed, "mia/min_k_pp/auc": 0.7 + 0.01 * seed, "model/parameters": 1000}
    for d in doses:
        m[f"extraction/exact/rate@dose={d}"] = min(1.0, d / 16 + 0.01 * seed)
        if d:
            m[f"mia/min_k_pp/auc@dose={d}"] = min(1.0, 0.5 + d / 40 + 0.02 * seed)
            m[f"mia/loss/auc@dose={d}"] = min(1.0, 0.5 + d / 50 + 0.01 * seed)
    return m
