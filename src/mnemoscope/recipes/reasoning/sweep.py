"""The reasoning recipe's training-set sweep: per training-set size, accuracy on unseen puzzles against
a no-reasoning baseline, and the rule that pools seeds (docs/recipes.md, "Powered design for reasoning's
training-set sweep").

Pure functions, no model:

* :func:`eval_subset` — the seeded subset of puzzles evaluated per split (``eval.max_puzzles``);
* :func:`baseline_by_people` — the no-reasoning baseline of a puzzle of ``n`` people:
  ``max(2⁻ⁿ, share of the most common solution among the generated training puzzles of n people)``,
  the accuracy of guessing and of a model that learned only the answers' prior (one constant answer);
* :func:`binomial_sf` — P(X ≥ x) for X a sum of binomials (puzzles of several sizes, each its own
  baseline): the exact one-sided test of "accuracy above the baseline";
* :func:`sweep_metrics` — one seed's per-size metrics from its evaluated rows;
* :func:`pooled_verdict` — the seeds' metrics pooled per size, and shown / not shown by the written rule
  (``python -m mnemoscope.recipes.reasoning.sweep OUT/seed=0 OUT/seed=1 …`` prints it; :func:`seed_metrics` reads them).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mnemoscope.probes.knights_knaves import solution


def eval_subset(puzzles: Sequence, cap: int | None, seed: int) -> list:
    """``cap`` of ``puzzles`` drawn without replacement under ``seed``, in their original order; all of
    them when ``cap`` is None or not smaller than their number. The same call gives the same subset."""
    if cap is None or cap >= len(puzzles):
        return list(puzzles)
    if cap < 1:
        raise ValueError(f"eval.max_puzzles must be ≥ 1 (got {cap})")
    keep = np.sort(np.random.default_rng([seed, 23]).choice(len(puzzles), size=cap, replace=False))
    return [puzzles[int(i)] for i in keep]


def baseline_by_people(train_puzzles: Sequence) -> dict[int, float]:
    """Per number of people n: max(2⁻ⁿ, share of the most common solution among ``train_puzzles`` of n)."""
    by_n: dict[int, Counter] = {}
    for p in train_puzzles:
        by_n.setdefault(p.n_people, Counter())[solution(p)] += 1
    return {n: max(2.0 ** -n, c.most_common(1)[0][1] / sum(c.values())) for n, c in sorted(by_n.items())}


def binomial_sf(correct: int, groups: Sequence[tuple[int, float]]) -> float:
    """P(X ≥ correct), X = Σ Binomial(nᵢ, pᵢ) over ``groups`` = [(nᵢ, pᵢ)] (independent puzzles; the
    exact distribution by convolving the groups' binomial pmfs)."""
    pmf = np.ones(1)
    for n, p in groups:
        pmf = np.convolve(pmf, stats.binom.pmf(np.arange(int(n) + 1), int(n), float(p)))
    return float(min(1.0, max(0.0, pmf[int(correct):].sum()))) if correct <= len(pmf) - 1 else 0.0


def sweep_metrics(rows: pd.DataFrame, baseline: Mapping[int, float], limem: Mapping[int, float]) -> dict[str, float]:
    """One seed's sweep metrics from the last evaluation of each size's unseen rows (columns ``n_train``,
    ``n_people``, ``correct``) and each size's LiMem. Per size N:

    * ``reasoning/sweep/n@split=unseen,people=P,n_train=N`` and ``…/n_correct@…``: evaluated and solved;
    * ``reasoning/sweep/accuracy@split=unseen,n_train=N``, ``…/baseline@n_train=N`` (mean baseline of the
      evaluated puzzles), ``…/lift@n_train=N`` = accuracy − baseline;
    * ``reasoning/sweep/p_value@n_train=N``: P(X ≥ solved) under the baseline (:func:`binomial_sf`);
    * ``reasoning/sweep/limem@n_train=N``.

    Over sizes, ``reasoning/sweep/max_lift`` = the largest lift among sizes with LiMem > 0 (nan if none).
    """
    out: dict[str, float] = {f"reasoning/sweep/baseline@people={n}": float(b) for n, b in baseline.items()}
    lifts = []
    for size, part in rows.groupby("n_train", sort=True):
        groups, solved = [], 0
        for n, g in part.groupby("n_people", sort=True):
            k = int(g["correct"].astype(bool).sum())
            out[f"reasoning/sweep/n@split=unseen,people={n},n_train={size}"] = float(len(g))
            out[f"reasoning/sweep/n_correct@split=unseen,people={n},n_train={size}"] = float(k)
            groups.append((len(g), baseline[int(n)]))
            solved += k
        total = sum(n for n, _ in groups)
        acc, base = solved / total, sum(n * p for n, p in groups) / total
        tag = f"n_train={size}"
        out |= {f"reasoning/sweep/accuracy@split=unseen,{tag}": acc, f"reasoning/sweep/baseline@{tag}": base,
                f"reasoning/sweep/lift@{tag}": acc - base, f"reasoning/sweep/p_value@{tag}": binomial_sf(solved, groups),
                f"reasoning/sweep/limem@{tag}": float(limem[size])}
        if limem[size] > 0:
            lifts.append(acc - base)
    out["reasoning/sweep/max_lift"] = max(lifts) if lifts else math.nan
    return out


def _sizes(metrics: Mapping[str, float]) -> list[int]:
    return sorted({int(m.group(1)) for k in metrics for m in [re.search(r"^reasoning/sweep/limem@n_train=(\d+)$", k)]
                   if m})


def pooled_verdict(seeds: Sequence[Mapping[str, float]], alpha: float = 0.05) -> tuple[pd.DataFrame, bool]:
    """The seeds' sweep metrics pooled per training-set size N (one row each): unseen puzzles evaluated and
    solved summed over seeds, pooled accuracy and baseline, the exact one-sided p of "solved > baseline"
    (:func:`binomial_sf` over every seed's puzzles), the mean and sd of LiMem over seeds, the seeds whose
    own lift is > 0, and ``shown_here`` = p < alpha / (number of sizes) (Bonferroni over the sweep's points)
    and mean LiMem > 0 and a lift > 0 in at least ⌈0.8 · seeds⌉ seeds (4 of 5: the pooled test treats
    puzzles as the unit, this asks the seeds to agree). Shown when it holds at one size or more."""
    if not seeds:
        raise ValueError("pooled_verdict: no seeds' metrics")
    sizes = _sizes(seeds[0])
    if not sizes or any(_sizes(m) != sizes for m in seeds):
        raise ValueError("pooled_verdict: every seed needs the same sweep sizes (reasoning/sweep/limem@n_train=N)")
    table = []
    for size in sizes:
        groups, solved = [], 0
        pattern = re.compile(rf"^reasoning/sweep/n@split=unseen,people=(\d+),n_train={size}$")
        for m in seeds:
            for key in m:
                if hit := pattern.match(key):
                    n = hit.group(1)
                    groups.append((int(m[key]), m[f"reasoning/sweep/baseline@people={n}"]))
                    solved += int(m[f"reasoning/sweep/n_correct@split=unseen,people={n},n_train={size}"])
        total = sum(n for n, _ in groups)
        limems = np.array([m[f"reasoning/sweep/limem@n_train={size}"] for m in seeds], dtype=np.float64)
        p = binomial_sf(solved, groups)
        agree = sum(m[f"reasoning/sweep/lift@n_train={size}"] > 0 for m in seeds)
        table.append({"n_train": size, "unseen_n": total, "unseen_correct": solved, "accuracy": solved / total,
                      "baseline": sum(n * q for n, q in groups) / total, "p_value": p,
                      "limem_mean": float(limems.mean()), "limem_sd": float(limems.std(ddof=1)) if len(limems) > 1
                      else math.nan, "seeds_lifted": agree,
                      "shown_here": bool(p < alpha / len(sizes) and limems.mean() > 0
                                         and agree >= math.ceil(0.8 * len(seeds)))})
    table = pd.DataFrame(table)
    table["lift"] = table["accuracy"] - table["baseline"]
    return table, bool(table["shown_here"].any())


def seed_metrics(run_dirs: Sequence[str | Path]) -> list[dict[str, float]]:
    """The metrics.json of each seed's run directory (``OUT/seed=N`` of ``mnemoscope run … --seeds``)."""
    out = []
    for d in run_dirs:
        path = Path(d) / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no metrics.json; give the seeds' run directories (OUT/seed=N)")
        out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def pool(run_dirs: Sequence[str | Path]) -> dict:
    """``--seeds``' pooled analysis (``Recipe.pooled``): :func:`pooled_verdict` of the seeds' runs as
    ``OUT/pooled.json`` — the verdict and one entry per size; an empty dict for runs without a sweep."""
    seeds = seed_metrics(run_dirs)
    if not _sizes(seeds[0]):
        return {}
    table, shown = pooled_verdict(seeds)
    return {"n_seeds": len(seeds), "reasoning/pooled/shown": shown,
            "sizes": table.astype(object).where(table.notna(), None).to_dict("records")}


if __name__ == "__main__":  # python -m mnemoscope.recipes.reasoning.sweep OUT/seed=0 OUT/seed=1 …
    import sys

    try:
        table, shown = pooled_verdict(seed_metrics(sys.argv[1:]))
    except (OSError, ValueError) as err:
        sys.exit(f"error: {err}")  # exit status 1 with one line
    print(table.to_string(index=False))
    print("shown" if shown else "not shown")
