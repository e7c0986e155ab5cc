"""One recipe under several seeds: ``OUT/seed=N`` per seed, then the comparison in ``OUT``.

    mnemoscope run quickstart --seeds 0,1,2 --out runs/qs-seeds

Each seed is an ordinary run directory (rerunning the command resumes each one: the recipes
reuse their trained models), and ``OUT`` receives ``comparison.html`` (plots with the spread
across seeds, the headline table, and every metric's spread folded away), ``comparison.json``
(every metric: each seed's value and the group's n, mean, sd, min, max) and ``spread.csv``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mnemoscope import rundir
from mnemoscope import runs as runlib
from mnemoscope.errors import MnemoscopeError


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` (inclusive) or a mix → distinct seeds in the order given."""
    seeds: list[int] = []
    for part in str(text).split(","):
        span = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", part)
        try:
            values = list(range(int(span.group(1)), int(span.group(2)) + 1)) if span else [int(part)]
        except ValueError:
            values = []
        if not values:
            raise MnemoscopeError(f"--seeds '{text}': use whole numbers separated by commas, e.g. --seeds 0,1,2 "
                                  "(or a range, 0-4)")
        for v in values:
            if v in seeds:
                raise MnemoscopeError(f"--seeds '{text}' names seed {v} twice")
            seeds.append(v)
    if len(seeds) < 2:
        raise MnemoscopeError(f"--seeds '{text}' names one seed: give at least two (one seed: --set seed=N)")
    return seeds


def seed_dir(out: Path, seed: int) -> Path:
    return Path(out) / f"seed={seed}"


def check_out(out: Path, overrides: dict) -> None:
    """Refuse ``--set seed=`` with ``--seeds``, and an OUT that is itself a run directory."""
    if "seed" in overrides:
        raise MnemoscopeError("--seeds sets each run's seed: drop --set seed=...")
    if runlib.is_run_dir(out):
        raise MnemoscopeError(f"{out} is a run directory; --seeds writes OUT/seed=N runs: pass --out NEW_FOLDER")


def run_seeds(recipe: str, out: str | Path, overrides: dict, seeds: list[int], *, log=print,
              after_each: Callable[[Path], None] | None = None, command: str = "") -> list[Path]:
    """Run ``recipe`` once per seed in ``out/seed=N`` (each resumable, a failure recorded in its
    directory), then write the comparison files into ``out``. Returns the run directories."""
    from mnemoscope.recipes import declaration, get_recipe

    out = Path(out)
    check_out(out, overrides)
    module = get_recipe(recipe)
    dirs = []
    for i, seed in enumerate(seeds):
        target = seed_dir(out, seed)
        log(f"== seed {seed} ({i + 1}/{len(seeds)}): {target}")
        with runlib.recording_failure(target, command):
            module.run(target, {**overrides, "seed": seed}, log=log)
        dirs.append(target)
        if after_each is not None:
            after_each(target)
    write_seed_comparison(out, dirs, title=f"mnemoscope · {recipe} · seeds {', '.join(map(str, seeds))}")
    pooled = declaration(recipe).pool(dirs)
    if pooled:  # None: the recipe declares no pooled analysis; {}: nothing to pool in these runs
        rundir.write_json(out / "pooled.json", pooled)
        log(f"pooled effects over {len(dirs)} seeds: {out / 'pooled.json'}")
    return dirs


def write_seed_comparison(out: Path, dirs: list[Path], title: str | None = None) -> Path:
    """``comparison.html``, ``comparison.json`` and ``spread.csv`` of the runs in ``dirs``, into ``out``."""
    from mnemoscope.compare import compare, format_table, to_json
    from mnemoscope.report.comparison import write_comparison

    out = Path(out)
    headline = compare(dirs)
    every = compare(dirs, ["**"])
    rundir.write_json(out / "comparison.json", to_json(every))
    rundir.write_text(out / "spread.csv", format_table(every, "csv", spread=True))
    return write_comparison(headline, out / "comparison.html", title=title, every=every)
