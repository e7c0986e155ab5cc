"""Comparison benchmark: ``mnemoscope compare`` over hundreds of run directories, against the
pandas loop a user would write in a notebook.

    python -m benchmarks.compare [--runs 300] [--repeats 3] [--dir DIR]

Fake quickstart-sized runs are written first (config.yaml with 30 keys, metrics.json with ~250
keys, manifest.json with provenance, a checkpoints/ folder): 10 configs × N/10 seeds. Then:

- mnemoscope: ``compare.compare`` (find runs without entering their sub-folders, read three small
  files each with the C YAML loader, glob-select columns, config differences, groups, provenance
  check) + the Markdown table + the per-group spread; the HTML page is timed separately;
- the pandas loop: ``rglob('metrics.json')``, ``pd.read_json`` per run, ``yaml.safe_load`` of each
  config, ``pd.json_normalize`` of the configs, ``fnmatch`` column selection and a groupby
  mean/std over the config without the seed.
Both must give the same group means (checked). Each timing (wall, and this process's CPU time, which
a busy machine disturbs less) is the minimum over repeats. Last line:
    compare: runs=N compare_s=A html_s=B pandas_loop_s=C speedup_vs_pandas_loop=X cpu_speedup_vs_pandas_loop=Y
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PATTERNS = ["mia/*/auc@dose=*", "extraction/exact/rate@dose=*", "train/final_loss"]
ATTACKS = ("loss", "zlib", "min_k", "min_k_pp")
DOSES = (0, 1, 4, 16, 64)


def make_runs(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        lr, s = i % 10, i // 10
        path = folder / f"lr={lr}" / f"seed={s}"
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        for k in range(5):
            (path / "checkpoints" / f"step-{k}.json").write_text("{}")
        cfg = {"seed": s, "model": {"size": "tiny", "vocab_size": 8192, "device": "auto"},
               "corpus": {"n_docs": 3000},
               "canaries": {"doses": list(DOSES), "per_dose": 8, "n_controls": 32, "kinds": ["a", "b"]},
               "train": {"steps": 500, "batch_size": 8, "seq_len": 64, "lr": 1e-3 * (lr + 1), "warmup": 20},
               "audit": {"k": 0.2, "prefix_fraction": 0.5, "max_suffix": 32, "n_boot": 1000},
               **{f"extra{j}": {"a": j, "b": str(j)} for j in range(7)}}
        (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        metrics = {"train/final_loss": float(rng.normal(3, 0.1)), "model/parameters": 5_840_000}
        for a in ATTACKS:
            for stat in ("auc", "auc/ci_lo", "auc/ci_hi", "n_members", "n_nonmembers"):
                metrics[f"mia/{a}/{stat}"] = float(rng.uniform())
            for d in DOSES[1:]:
                for stat in ("auc", "auc/ci_lo", "auc/ci_hi", "n_members", "n_nonmembers"):
                    metrics[f"mia/{a}/{stat}@dose={d}"] = float(rng.uniform())
                for f in ("0.001", "0.01", "0.05"):
                    metrics[f"mia/{a}/tpr@fpr={f}@dose={d}"] = None
                    metrics[f"mia/{a}/tpr@fpr={f}/underpowered@dose={d}"] = 1
        for d in DOSES:
            for key in ("extraction/exact/rate", "extraction/memorization/mean", "mia/loss/mean_nll"):
                metrics[f"{key}@dose={d}"] = float(rng.uniform())
        (path / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        manifest = {"recipe": "quickstart", "seed": s, "created_unix": 1.8e9 + i, "git_revision": "0" * 40,
                    "provenance": {"config_sha256": f"{i:064x}", "inputs": {}, "packages": {"torch": "2.13"},
                                   "git": {"revision": "0" * 40, "dirty": False}}}
        (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
        paths.append(path)
    return paths


def mnemoscope_compare(folder: Path) -> tuple[pd.DataFrame, object]:
    from mnemoscope.compare import compare, format_table

    c = compare([folder], PATTERNS)
    format_table(c, "md")
    spread = c.spread()
    return spread.pivot(index="metric", columns="group", values="mean"), c


def pandas_loop(folder: Path) -> pd.DataFrame:
    rows, configs = [], []
    for path in sorted(folder.rglob("metrics.json")):
        rows.append(pd.read_json(path, typ="series"))
        configs.append(yaml.safe_load((path.parent / "config.yaml").read_text()))
    table = pd.DataFrame(rows)
    columns = [c for c in table.columns if any(fnmatch.fnmatchcase(c, p) for p in PATTERNS)]
    cfg = pd.json_normalize(configs).drop(columns=["seed"])
    varying = [c for c in cfg.columns if cfg[c].astype(str).nunique() > 1]
    group = cfg[varying].astype(str).agg(", ".join, axis=1)
    stats = table[columns].apply(pd.to_numeric, errors="coerce").groupby(group.values).agg(["mean", "std"])
    return stats.xs("mean", axis=1, level=1).T


def best_of(fn, repeats: int) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result), each the minimum over ``repeats``."""
    wall, cpu, result = math.inf, math.inf, None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, result


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default=None, help="where to write the fake runs (default: a temporary folder)")
    p.add_argument("--smoke", action="store_true", help="the smallest size (the test suite runs it)")
    args = p.parse_args(argv)
    if args.smoke:
        args.runs, args.repeats = 20, 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir or tmp) / "runs"
        make_runs(folder, args.runs)
        t_ours, c_ours, (ours, comparison) = best_of(lambda: mnemoscope_compare(folder), args.repeats)
        t_loop, c_loop, theirs = best_of(lambda: pandas_loop(folder), args.repeats)
        from mnemoscope.report.comparison import render_comparison

        t_html, c_html, _ = best_of(lambda: render_comparison(comparison), 1)
        # same means per metric and group (group labels differ in wording, so compare sorted values)
        a = np.sort(ours.loc[sorted(ours.index)].to_numpy(dtype=np.float64), axis=1)
        b = np.sort(theirs.loc[sorted(ours.index)].to_numpy(dtype=np.float64), axis=1)
        assert a.shape == b.shape and np.allclose(a, b, equal_nan=True), "the two tables disagree"
    print(f"runs: {args.runs} ({len(ours.columns)} groups, {len(ours.index)} metric columns)")
    print(f"mnemoscope compare (table + spread): {t_ours:.3f} s wall, {c_ours:.3f} s CPU")
    print(f"comparison page (HTML, plots): {t_html:.3f} s wall, {c_html:.3f} s CPU")
    print(f"pandas loop: {t_loop:.3f} s wall, {c_loop:.3f} s CPU")
    line = (f"compare: runs={args.runs} compare_s={t_ours:.3f} html_s={t_html:.3f} pandas_loop_s={t_loop:.3f} "
            f"speedup_vs_pandas_loop={t_loop / t_ours:.2f} cpu_speedup_vs_pandas_loop={c_loop / c_ours:.2f}")
    print(line)
    return line


if __name__ == "__main__":
    main()
