"""The run directory: atomic writes of config, manifest, metrics and tables, and :class:`Run`,
the one object every recipe writes its run through.

Every file is written to a temporary name in the same directory and renamed into place, so an
interrupted run never leaves a half-written result. A run directory holds ``config.yaml`` (the
resolved config), ``metrics.json`` (flat keys; null = not computed), ``notes.json`` (every
null or partial key with its reason), ``manifest.json`` (versions, seed, device, timings;
written last, so its presence marks a finished run), Parquet tables and ``report.html``.
"""

from __future__ import annotations

import platform
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from mnemoscope.errors import MnemoscopeError
from mnemoscope.files import atomic_path, json_safe, write_json, write_parquet, write_text, write_yaml  # noqa: F401 (re-exported)

def git_revision() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def manifest(seed: int, device: str, timings: dict[str, float], extra: dict | None = None) -> dict:
    """Versions, git revision, seed, device and timings: what is needed to trust a number later."""
    import numpy
    import torch
    import transformers

    import mnemoscope

    info = {
        "mnemoscope": mnemoscope.__version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "seed": seed,
        "device": device,
        "cpu_threads": torch.get_num_threads(),
        "created_unix": time.time(),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    if extra:
        info.update(extra)
    return info


class Timer:
    """Collects named wall-clock durations: ``with timer('train'): ...``."""

    def __init__(self):
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def add_note(notes: dict[str, str], key: str, reason: str) -> None:
    """``notes[key] = reason``, joining a second reason for the same key with '; '."""
    if key not in notes:
        notes[key] = reason
    elif reason not in notes[key].split("; "):
        notes[key] = f"{notes[key]}; {reason}"


def progress(out: Path) -> list[Path]:
    """What a run directory holds that is worth keeping: a finished run's manifest, training
    checkpoints or finished phases, finished unlearning runs."""
    out = Path(out)
    found = [out / "manifest.json"] if (out / "manifest.json").exists() else []
    for pattern in ("**/checkpoints/step-*", "**/final/training.json", "**/done.json"):
        found += sorted(out.glob(pattern))
    return found


def open_run_dir(out: Path, cfg: dict, warn=None) -> Path:
    """Create ``out`` and write ``config.yaml``, or resume a directory holding the same resolved
    config. A directory with a different config is refused when it holds progress (see
    :func:`progress`); one that stopped before any (e.g. bad input found while preparing data)
    is replaced, so the corrected command can run where the failed one did."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MnemoscopeError(f"--out {out} is a file, not a folder: pass --out NEW_DIR")
    config_file = out / "config.yaml"
    if config_file.exists():
        previous = yaml.safe_load(config_file.read_text())
        if previous != yaml.safe_load(yaml.safe_dump(json_safe(cfg), sort_keys=False)):
            if progress(out):
                raise MnemoscopeError(
                    f"{out} holds a run with a different config: pass --out NEW_DIR, or delete {out} to start over"
                )
            import shutil

            (warn or _stderr)(f"note: {out} held an unfinished run of another config with nothing to resume; "
                              "replacing it")
            shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        raise MnemoscopeError(f"{out} exists and is not a mnemoscope run directory: pass --out NEW_DIR")
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(config_file, cfg)
    return out


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


class Run:
    """A run being written: ``with run.phase("train"):`` times a phase; ``add`` takes a family's
    Result (metrics, notes, and its samples as a table); ``finish`` writes every table,
    metrics.json, notes.json and manifest.json, in that order; the caller writes the report after
    (``report.html.write_report``), so the run writer never calls upward."""

    def __init__(self, out: str | Path, cfg: dict, recipe: str):
        from mnemoscope import provenance

        self.out = open_run_dir(Path(out), cfg)
        self.cfg, self.recipe = cfg, recipe
        self.inputs = provenance.hash_inputs(cfg)  # hashed as the run reads them (manifest: provenance)
        self.timer = Timer()
        self.metrics: dict[str, float | None] = {}
        self.notes: dict[str, str] = {}
        self.tables: dict[str, object] = {}

    def phase(self, name: str):
        return self.timer(name)

    def note(self, key: str, reason: str) -> None:
        """Why ``key`` is null, partial or absent (a second reason for the same key is appended)."""
        add_note(self.notes, key, reason)

    def not_computed(self, key: str, reason: str) -> None:
        self.metrics[key] = None
        self.note(key, reason)

    def add(self, result, table: str | None = None) -> None:
        """A Result's metrics and notes; its samples (when any) become ``<table>.parquet``
        (appended to rows already there)."""
        self.metrics.update(result.metrics)
        for key, reason in result.notes.items():
            self.note(key, reason)
        if table is not None and len(result.samples):
            self.add_table(table, result.samples)

    def add_table(self, name: str, frame) -> None:
        """``<name>.parquet`` (a path relative to the run directory, without the suffix)."""
        import pandas as pd

        self.tables[name] = pd.concat([self.tables[name], frame], ignore_index=True) if name in self.tables else frame

    def finish(self, *, device: str, extra: dict | None = None) -> Path:
        """Write the run. A noted key that no measurement produced is null in metrics.json (a
        family may note why it did not run at all); every run has a ``samples.parquet``."""
        import pandas as pd

        for key in self.notes:
            if "*" not in key:
                self.metrics.setdefault(key, None)
        self.tables.setdefault("samples", pd.DataFrame())
        for name, frame in self.tables.items():
            write_parquet(self.out / f"{name}.parquet", frame)
        write_json(self.out / "metrics.json", self.metrics)
        write_json(self.out / "notes.json", self.notes)
        from mnemoscope import provenance

        write_json(self.out / "manifest.json", manifest(
            self.cfg.get("seed", 0), device, self.timer.timings,
            {"recipe": self.recipe, **(extra or {}), "provenance": provenance.collect(self.cfg, self.inputs)}))
        return self.out
