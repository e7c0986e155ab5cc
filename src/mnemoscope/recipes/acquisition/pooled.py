"""Acquisition's effects pooled over seeds, with people as the unit (issue 23's powered design).

Each seed's run holds one row per probe (``samples.parquet``: person, group, kind, t_LAM, NLL after
the last injection and at the end, outlier flag), the retention points (``retention.parquet``) and
the probe curves (``probe_curves.parquet``). Two effects, each a statistic of people:

* **forgetting beyond drift**, per group × probe kind: for an injected person p, rise_p = mean over
  p's probes of ℓ(T) − ℓ(t_LAM); for a never-seen (control) person c, drift_c = mean over the same
  injected probes q of m_c(T) − m_c(t_LAM,q), m_c being c's mean probe NLL of that kind. Per seed,
  effect = mean_p rise_p − mean_c drift_c (equal to the mean of the run's per-probe
  ``rise − control_rise``); pooled = the mean of the seeds' effects.
* **decay constant a** of R(t)/100 = b − a·log10(t) (``metrics.dynamics.fit_log_decay``), per group
  × kind, fitted to the pooled (t, R) points of the non-outlier probes of every seed's people; the
  duplicate − paraphrase gap of a is the paper's "duplicates are forgotten faster"; the R² of each
  pooled fit is reported with it.

Intervals: percentile bootstrap (``metrics.bootstrap``), each replicate resampling people with
replacement within each seed and group (controls within each seed), ``n_boot`` replicates from
``numpy.random.default_rng(seed)``. An effect is *shown* when its 95% interval lies entirely on the
paper's side of 0 (> 0 for both effects as defined here).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.bootstrap import percentile_interval
from mnemoscope.metrics.dynamics import fit_log_decay

GROUPS = ("paraphrase", "duplicate", "once")
KINDS = ("memorization", "semantic", "compositional")
CONTROL = "control"


def load_seed(run_dir: Path) -> dict[str, pd.DataFrame]:
    """The three tables of one finished acquisition run (a clear error when one is missing)."""
    run_dir = Path(run_dir)
    tables = {}
    for name in ("samples", "retention", "probe_curves"):
        path = run_dir / f"{name}.parquet"
        if not path.is_file():
            raise MnemoscopeError(f"{path} is missing: pool only finished acquisition runs")
        tables[name] = pd.read_parquet(path)
    if "person_id" not in tables["samples"]:
        raise MnemoscopeError(f"{run_dir / 'samples.parquet'} has no person_id column: rerun it with this version")
    return tables


def rise_units(tables: dict[str, pd.DataFrame], group: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(rise_p per injected person of ``group``, drift_c per control person) for probes of ``kind``."""
    s = tables["samples"]
    mine = s[(s["group"] == group) & (s["kind"] == kind) & s["t_lam"].notna()]
    if mine.empty:
        return np.array([]), np.array([])
    rise = (mine["nll_final"] - mine["nll_after_last"]).groupby(mine["person_id"]).mean().to_numpy()
    ctrl_ids = s.loc[(s["group"] == CONTROL) & (s["kind"] == kind), ["probe_id", "person_id"]]
    curves = tables["probe_curves"]
    c = curves[curves["probe_id"].isin(ctrl_ids["probe_id"])].merge(ctrl_ids, on="probe_id")
    by_person = c.pivot_table(index="step", columns="person_id", values="target_nll", aggfunc="mean")
    final = by_person.iloc[-1]
    at_lam = by_person.reindex(mine["t_lam"].astype(int).to_numpy())
    drift = (final - at_lam).mean(axis=0).to_numpy()
    return rise, drift[np.isfinite(drift)]


def decay_units(tables: dict[str, pd.DataFrame], group: str, kind: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per injected person of ``group``: the (t, R) points of their non-outlier ``kind`` probes."""
    s, r = tables["samples"], tables["retention"]
    person = s.set_index("probe_id")["person_id"]
    pts = r[(r["group"] == group) & (r["kind"] == kind) & ~r["outlier"].astype(bool)]
    pts = pts.assign(person_id=pts["probe_id"].map(person))
    return [(p["t"].to_numpy(np.float64), p["r"].to_numpy(np.float64)) for _, p in pts.groupby("person_id")]


def decay_fit(units: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """``fit_log_decay`` (a, b, r2, …) of the pooled points of ``units``; a and r2 nan when not fittable."""
    if not units:
        return {"a": math.nan, "r2": math.nan}
    t = np.concatenate([u[0] for u in units])
    r = np.concatenate([u[1] for u in units])
    try:
        return fit_log_decay(t, r)
    except MnemoscopeError:
        return {"a": math.nan, "r2": math.nan}


def decay_a(units: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """a of the log-decay line through the pooled points of ``units`` (nan when not fittable)."""
    return decay_fit(units)["a"]


def _pick(units: list, rng: np.random.Generator) -> list:
    return [units[i] for i in rng.integers(0, len(units), len(units))] if units else []


def rise_effect(seeds: list[tuple[np.ndarray, np.ndarray]], n_boot: int, rng) -> dict[str, float]:
    """Mean over seeds of (mean rise − mean control drift), its bootstrap interval and the per-seed values."""
    usable = [(a, b) for a, b in seeds if a.size and b.size]
    if not usable:
        return {"value": math.nan, "ci_low": math.nan, "ci_high": math.nan, "per_seed": []}
    per_seed = [float(a.mean() - b.mean()) for a, b in usable]
    reps = [np.mean([a[rng.integers(0, a.size, a.size)].mean() - b[rng.integers(0, b.size, b.size)].mean()
                     for a, b in usable]) for _ in range(n_boot)]
    lo, hi = percentile_interval(reps)
    return {"value": float(np.mean(per_seed)), "ci_low": lo, "ci_high": hi, "per_seed": per_seed}


def decay_gap(seeds_a: list[list], seeds_b: list[list], n_boot: int, rng) -> dict[str, float]:
    """a(group A's pooled people) − a(group B's pooled people), its interval and per-seed values."""
    def gap(a_units, b_units):
        return decay_a(a_units) - decay_a(b_units)

    flat = (lambda seeds: [u for s in seeds for u in s])
    per_seed = [float(gap(a, b)) for a, b in zip(seeds_a, seeds_b)]
    reps = [gap([u for s in seeds_a for u in _pick(s, rng)], [u for s in seeds_b for u in _pick(s, rng)])
            for _ in range(n_boot)]
    reps = [x for x in reps if math.isfinite(x)]
    lo, hi = percentile_interval(reps) if reps else (math.nan, math.nan)
    return {"value": float(gap(flat(seeds_a), flat(seeds_b))), "ci_low": lo, "ci_high": hi, "per_seed": per_seed}


def pool(run_dirs: list[Path], n_boot: int = 2000, seed: int = 0) -> dict:
    """Pooled effects of finished acquisition runs (one per seed): flat ``acquisition/pooled/...``
    numbers (value, ci_low, ci_high, shown) and the per-seed values under ``per_seed``."""
    if len(run_dirs) < 1:
        raise MnemoscopeError("pool: give at least one finished acquisition run")
    tables = [load_seed(d) for d in run_dirs]
    rng = np.random.default_rng(seed)
    out: dict = {"n_seeds": len(tables), "per_seed": {}}
    for group in GROUPS:
        for kind in KINDS:
            key = f"acquisition/pooled/rise_vs_control@group={group},probe={kind}"
            units = [rise_units(t, group, kind) for t in tables]
            out["n_people@" + f"group={group},probe={kind}"] = int(sum(a.size for a, _ in units))
            _put(out, key, rise_effect(units, n_boot, rng))
    for kind in KINDS:
        by_group = {g: [decay_units(t, g, kind) for t in tables] for g in GROUPS}
        for group, units in by_group.items():
            fit = decay_fit([u for s in units for u in s])
            out[f"acquisition/pooled/decay_a@group={group},probe={kind}"] = fit["a"]
            out[f"acquisition/pooled/decay_r2@group={group},probe={kind}"] = fit["r2"]
        dup, par = by_group["duplicate"], by_group["paraphrase"]
        _put(out, f"acquisition/pooled/decay_a_gap@a=duplicate,b=paraphrase,probe={kind}",
             decay_gap(dup, par, n_boot, rng))
    return out


def _put(out: dict, key: str, effect: dict) -> None:
    out[key] = effect["value"]
    out[key + "/ci_low"], out[key + "/ci_high"] = effect["ci_low"], effect["ci_high"]
    out[key + "/shown"] = bool(effect["ci_low"] > 0) if math.isfinite(effect["ci_low"]) else False
    out["per_seed"][key] = effect["per_seed"]
