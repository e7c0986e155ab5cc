"""What the quantization attack adds to the unlearning lab's run time.

    python -m benchmarks.unlearning_stress [--out DIR] [--set KEY=VALUE ...] [--run DIR]

Runs ``mnemoscope run unlearning`` (its defaults, or ``--set`` overrides) in this process and reads
the run's phase timer: ``quantize`` is the time spent evaluating every model (retrained,
original, each method) under every ``stress.quantize.modes`` mode, nested inside the other
phases; the baseline is the rest of the same run (wall time minus that). ``--run DIR`` reads a
finished run instead of starting one (its manifest's ``timings_s``; the wall time is then the
sum of the top-level phases). The last line is:
    unlearning_stress: quantize_s=Q lab_s=T added=R
with ``added = Q / (T − Q)`` (target ≤ 0.30). Times on a shared machine are noisy: say under what
load they were taken.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

NESTED = ("quantize", "stress_relearn")  # phases timed inside other phases
SMOKE = {"model.hidden": 32, "model.layers": 2, "model.heads": 2, "model.intermediate": 64, "model.vocab_size": 400,
         "world.n_people": 14, "corpus.n_docs": 10, "corpus.n_ppl_docs": 3, "train.epochs": 1,
         "unlearn.methods": ["ga"], "sweep.steps": [1], "sweep.lr": [1e-3], "scalability.methods": [],
         "sustainability.methods": [], "robustness.relearn_steps": [1], "robustness.probes": False,
         "eval.n_retain_people": 2, "eval.knowmem_tokens": 4, "eval.verbmem_tokens": 8, "eval.n_boot": 10,
         "stress.benign.steps": [1], "stress.in_context.facts": [1]}


def added(timings: dict[str, float], wall: float) -> dict[str, float]:
    q = float(timings.get("quantize", 0.0))
    return {"quantize_s": q, "lab_s": wall, "added": q / (wall - q) if wall > q else float("nan")}


def main(argv: list[str] | None = None) -> dict[str, float]:
    from mnemoscope.config import parse_overrides

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    ap.add_argument("--set", action="append", default=[], help="lab config override, e.g. seed=1")
    ap.add_argument("--run", default=None, help="read a finished run's timings instead of running")
    ap.add_argument("--smoke", action="store_true", help="the smallest size (the test suite runs it)")
    args = ap.parse_args(argv)
    if args.run:
        timings = json.loads((Path(args.run) / "manifest.json").read_text())["timings_s"]
        wall = sum(v for k, v in timings.items() if k not in NESTED)
    else:
        import torch

        from mnemoscope.recipes.unlearning import recipe as unlearning

        torch.set_num_threads(1)
        overrides = {**(SMOKE if args.smoke else {}), **parse_overrides(args.set)}
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            out = unlearning.run(Path(args.out or tmp) / "run", overrides, log=lambda m: None)
            wall = time.perf_counter() - start
            timings = json.loads((out / "manifest.json").read_text())["timings_s"]
    result = added(timings, wall)
    print("unlearning_stress: " + " ".join(f"{k}={v:.3f}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
