"""The run directory: atomic writes of config, manifest, metrics and tables.

Every file is written to a temporary name in the same directory and renamed into place, so an
interrupted run never leaves a half-written result.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results should read like any other file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; a missing number is null
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return json_safe(value.item())
    return value


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=True) + "\n")


def write_yaml(path: Path, obj) -> None:
    write_text(path, yaml.safe_dump(json_safe(obj), sort_keys=False))


def write_parquet(path: Path, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


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
    from mnemoscope import provenance

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
        "provenance": provenance.current(),  # input, config and model hashes (mnemoscope/provenance.py)
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
