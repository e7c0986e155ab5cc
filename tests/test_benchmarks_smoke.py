"""Every script in benchmarks/ runs at its smallest size (``--smoke``) inside the test suite, so a
benchmark cannot rot unnoticed (an import that moved, an option that changed). A new script must
accept ``--smoke`` and end with its ``name: key=value ...`` line, or this test fails."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__")


def test_the_benchmark_folder_is_found():
    assert {"audit", "engine", "probing"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_runs_at_smoke_size(name, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    assert hasattr(module, "main"), f"benchmarks/{name}.py needs a main(argv) entry point"
    module.main(["--smoke"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines, f"benchmarks/{name}.py printed nothing"
    # the documented last line: "<name>: key=number [key=number ...]" ("na": a column whose
    # package is not installed here, e.g. vLLM in the main environment)
    value = r"\w+=(-?[0-9.]+(e-?\d+)?|na)"
    assert re.fullmatch(rf"{name}: {value}( {value})*", lines[-1]), lines[-1]
