"""Run directories on disk: find them, tell their status, read their small files.

A run directory is a folder holding ``config.yaml``, ``manifest.json`` or ``metrics.json``.
Its status comes from which of those files exist, and when they were written:

- **complete**: ``manifest.json`` and ``metrics.json`` exist (every recipe writes the manifest
  after its metrics, at the very end);
- **failed**: ``failure.json`` (written by the CLI when a command stops on an error) is newer
  than ``config.yaml`` (which every start or resume rewrites) and than any manifest;
- **interrupted**: anything else: the run started (config written) but never wrote its manifest,
  so it was stopped, killed or is still running. Rerunning the same command resumes it.

Nothing here imports torch or the report: listing hundreds of runs reads three small files each.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mnemoscope.errors import MnemoscopeError

COMPLETE, INTERRUPTED, FAILED = "complete", "interrupted", "failed"
FAILURE_FILE = "failure.json"
MARKERS = ("config.yaml", "manifest.json", "metrics.json")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is ~10x faster on hundreds of configs


def natural_key(text: str) -> list:
    """Sort "seed=2" before "seed=10": digit runs compare as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(text)) if t]


def is_run_dir(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in MARKERS)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def status_of(path: Path) -> str:
    """complete, failed or interrupted (see the module docstring)."""
    path = Path(path)
    config, manifest, failure = (_mtime(path / n) for n in ("config.yaml", "manifest.json", FAILURE_FILE))
    if failure is not None and failure >= (config or 0) and failure >= (manifest or 0):
        return FAILED
    if manifest is not None and (path / "metrics.json").is_file():
        return COMPLETE
    return INTERRUPTED


def _walk(folder: Path):
    """(folder, file names, is a run) for ``folder`` and below, never entering a run directory
    (its checkpoints and models hold no other run) nor a hidden folder."""
    for root, dirs, files in os.walk(folder):
        is_run = any(name in files for name in MARKERS)
        yield Path(root), files, is_run
        dirs[:] = [] if is_run else sorted(d for d in dirs if not d.startswith("."))


def find_runs(folder: Path) -> list[Path]:
    """Run directories in ``folder`` (itself included), in natural path order."""
    folder = Path(folder)
    found = [root for root, _, is_run in _walk(folder) if is_run]
    return sorted(found, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def find_pages(folder: Path, name: str = "comparison.html") -> list[Path]:
    """Files called ``name`` in ``folder`` or below, outside run directories (e.g. seed comparisons)."""
    folder = Path(folder)
    found = [root / name for root, files, is_run in _walk(folder) if not is_run and name in files]
    return sorted(found, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


@dataclass
class Run:
    """What a listing or a comparison needs of one run directory (samples are never read)."""

    path: Path
    status: str
    config: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    failure: dict = field(default_factory=dict)
    label: str = ""

    @functools.cached_property
    def flat_config(self) -> dict:
        """The config with dotted keys (``train.lr``); an empty section is a value of its own."""
        return flatten_config(self.config)

    @property
    def recipe(self) -> str | None:
        return self.manifest.get("recipe") or None

    @functools.cached_property
    def declaration(self):
        """What the run's kind declares (``mnemoscope.recipes.plugin.Recipe``: claim, headlines,
        comparison panels); None for a kind no registry holds. Light: no torch."""
        from mnemoscope.recipes import declaration

        return declaration(self.recipe)

    @property
    def seed(self):
        return self.manifest.get("seed", self.config.get("seed"))

    @property
    def created(self) -> float | None:
        """When the run finished (manifest), failed, or started (config.yaml's time)."""
        for value in (self.manifest.get("created_unix"), self.failure.get("unix")):
            if isinstance(value, (int, float)):
                return float(value)
        stamp = _mtime(self.path / "config.yaml")
        return None if stamp is None else stamp / 1e9

    @property
    def model(self) -> str:
        """The model a run measured: its name (audit, unlearn), its init, or the lab preset it trained."""
        named = self.manifest.get("model")
        if isinstance(named, str) and named:
            return named
        m = self.config.get("model") if isinstance(self.config.get("model"), dict) else {}
        for key in ("name", "init"):
            if isinstance(m.get(key), str) and m[key]:
                return m[key]
        if not m:
            return ""
        params = self.metrics.get("model/parameters")
        size = f" ({_count(params)})" if isinstance(params, (int, float)) and math.isfinite(params) else ""
        return f"lab {m['size']}{size}" if m.get("size") else f"lab{size}"  # trained by the recipe

    @property
    def provenance(self) -> dict | None:
        """The manifest's provenance block; None for runs written before it existed."""
        block = self.manifest.get("provenance")
        return block if isinstance(block, dict) else None


def flatten_config(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _count(n: float) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)}"


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MnemoscopeError(f"{path} is not readable JSON ({exc}); rerun the run or move it out of the folder") \
            from None
    if not isinstance(obj, dict):
        raise MnemoscopeError(f"{path} must hold one JSON object; rerun the run or move it out of the folder")
    return obj


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        obj = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise MnemoscopeError(f"{path} is not readable YAML ({str(exc).splitlines()[0]}); "
                              "rerun the run or move it out of the folder") from None
    return obj if isinstance(obj, dict) else {}


def load(path: Path, label: str | None = None) -> Run:
    """Read a run directory's config, manifest, metrics and failure record (absent ones are empty)."""
    path = Path(path)
    return Run(path=path, status=status_of(path), config=_read_yaml(path / "config.yaml"),
               manifest=_read_json(path / "manifest.json"), metrics=_read_json(path / "metrics.json"),
               failure=_read_json(path / FAILURE_FILE), label=label if label is not None else path.name)


def _labels(paths: list[Path], targets: list[Path]) -> list[str]:
    """Short unique names: each run's path relative to the folder the targets share (a run given
    itself is called by its name)."""
    resolved = [p.resolve() for p in paths]
    roots = [t.resolve() for t in targets]
    base = Path(os.path.commonpath(roots)) if len(roots) > 1 else roots[0]
    if len(roots) > 1 and base in roots and is_run_dir(base):
        base = base.parent
    labels = [p.relative_to(base).as_posix() if p != base and p.is_relative_to(base) else p.name for p in resolved]
    return labels if len(set(labels)) == len(labels) else [str(p) for p in paths]


def gather(targets: list[str | Path]) -> list[Run]:
    """The runs named by ``targets``: each a run directory, or a folder searched for runs.

    A path that does not exist, or a folder holding no run, is a MnemoscopeError.
    """
    paths: list[Path] = []
    seen: set[Path] = set()
    for target in targets:
        target = Path(target)
        if not target.exists():
            raise MnemoscopeError(f"{target} does not exist: pass run directories or folders holding them")
        if not target.is_dir():
            raise MnemoscopeError(f"{target} is not a run directory (a folder with config.yaml, manifest.json "
                                  "or metrics.json) nor a folder holding runs")
        found = find_runs(target)
        if not found:
            raise MnemoscopeError(f"{target} holds no mnemoscope run (no config.yaml, manifest.json or metrics.json "
                                  "in it or below it): pass the --out folder of a run")
        for p in found:
            if p.resolve() not in seen:
                seen.add(p.resolve())
                paths.append(p)
    return [load(p, label) for p, label in zip(paths, _labels(paths, [Path(t) for t in targets]))]


# --------------------------------------------------------------------------- failure record


def _stamp(path: Path):
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


@contextmanager
def recording_failure(out: Path, command: str = ""):
    """Around a command that writes run directory ``out``: on an error, write ``out/failure.json``
    (error, type, time, command); on success or Ctrl-C, remove a stale one.

    Only when this command (re)wrote ``out/config.yaml`` — i.e. the recipe accepted the directory
    — is ``out`` touched: an error before that (bad input, a directory holding another config)
    leaves someone else's run as it was.
    """
    out = Path(out)
    before = _stamp(out / "config.yaml")

    def owned() -> bool:
        now = _stamp(out / "config.yaml")
        return now is not None and now != before

    try:
        yield
    except KeyboardInterrupt:
        if owned():
            (out / FAILURE_FILE).unlink(missing_ok=True)  # interrupted, not failed
        raise
    except BaseException as exc:
        if owned():
            from mnemoscope import rundir

            message = " ".join(str(exc).split()) or type(exc).__name__
            rundir.write_json(out / FAILURE_FILE, {"error": message, "type": type(exc).__name__,
                                                   "unix": time.time(), "command": command})
        raise
    else:
        if owned():
            (out / FAILURE_FILE).unlink(missing_ok=True)
