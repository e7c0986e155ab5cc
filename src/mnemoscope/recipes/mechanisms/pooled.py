"""The mechanisms recipe's effects pooled over seeds (issue 23's powered, marker-free design).

Two questions, each with its unit:

* **Where the direction forms** — the unit is the model (one per seed). Per layer, the k-fold probe
  AUC of "recall" against "compute" prompts at the last prompt token (``mechanisms/probe.parquet``);
  over seeds its mean and the 95% t-interval mean ± t₀.₉₇₅,ₙ₋₁·sd/√n. The direction *forms* at the
  first layer whose interval lies above 0.5 (null when none does).
* **Whether steering along it switches recall to computing** — the unit is the held-out exception.
  Per seed and intervention (ours ``add``, the paper's ``scale``), the share of held-out exceptions
  answered with the rule's answer at the fitted direction's best cell (layer × α or s, from
  ``mechanisms/sweep.parquet``) and at the *random* direction's own best cell over the same grid —
  both maxima, so neither side is favoured by the choice of cell. Pooled: moved items / items over
  the seeds, and the one-sided two-proportion z-test of direction > random
  (z = (p₁ − p₀)/√(p̄(1 − p̄)(1/n₁ + 1/n₀)), p̄ the pooled share; p = 1 − Φ(z)).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mnemoscope.errors import MnemoscopeError


def _table(run_dir: Path, name: str) -> pd.DataFrame:
    path = Path(run_dir) / "mechanisms" / f"{name}.parquet"
    if not path.is_file():
        raise MnemoscopeError(f"{path} is missing: pool only finished mechanisms runs")
    return pd.read_parquet(path)


def layer_intervals(aucs: pd.DataFrame) -> pd.DataFrame:
    """Rows (seed, layer, auc) → per layer: n, mean, sd, 95% t-interval across seeds."""
    rows = []
    for layer, part in aucs.dropna(subset=["auc"]).groupby("layer"):
        x = part["auc"].to_numpy(np.float64)
        n, mean = x.size, float(x.mean())
        half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        rows.append({"layer": int(layer), "n": n, "mean": mean, "sd": float(x.std(ddof=1)) if n > 1 else math.nan,
                     "ci_low": mean - half, "ci_high": mean + half})
    return pd.DataFrame(rows, columns=["layer", "n", "mean", "sd", "ci_low", "ci_high"])


def best_moves(sweep: pd.DataFrame) -> dict[tuple[str, str], tuple[int, int]]:
    """(intervention, direction) → (moved, n) at that direction's best cell for held-out exceptions
    (set ``recall``) moved to the rule's answer; α/s = 0 (no steering) is not a cell."""
    part = sweep[(sweep["set"] == "recall") & (sweep["alpha"] != 0)].dropna(subset=["alternative_rate"])
    out = {}
    for key, cells in part.groupby(["intervention", "direction"]):
        best = cells.loc[cells["alternative_rate"].idxmax()]
        out[key] = (int(round(best["alternative_rate"] * best["n"])), int(best["n"]))
    return out


def two_proportion_p(k1: int, n1: int, k0: int, n0: int) -> float:
    """One-sided p of the two-proportion z-test that p₁ > p₀ (1.0 when both shares are 0 or 1)."""
    pooled = (k1 + k0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    if se == 0:
        return 1.0
    return float(stats.norm.sf((k1 / n1 - k0 / n0) / se))


def pool(run_dirs: list[Path]) -> dict:
    """Pooled effects of finished mechanisms runs (one per seed): flat ``mechanisms/pooled/...`` numbers
    and the per-seed values under ``per_seed``."""
    if not run_dirs:
        raise MnemoscopeError("pool: give at least one finished mechanisms run")
    aucs = pd.concat([_table(d, "probe").assign(seed=i)[["seed", "layer", "auc"]] for i, d in enumerate(run_dirs)])
    out: dict = {"n_seeds": len(run_dirs), "per_seed": {}}
    layers = layer_intervals(aucs)
    for r in layers.itertuples():
        key = f"mechanisms/pooled/probe_auc@layer={r.layer}"
        out[key], out[key + "/ci_low"], out[key + "/ci_high"] = r.mean, r.ci_low, r.ci_high
    formed = layers[layers["ci_low"] > 0.5]
    out["mechanisms/pooled/forms_at_layer"] = int(formed["layer"].min()) if len(formed) else None
    moves = [best_moves(_table(d, "sweep")) for d in run_dirs]
    for intervention in ("add", "scale"):
        pairs = [(m.get((intervention, "direction")), m.get((intervention, "random"))) for m in moves]
        pairs = [(a, b) for a, b in pairs if a and b]
        if not pairs:
            continue
        k1, n1 = sum(a[0] for a, _ in pairs), sum(a[1] for a, _ in pairs)
        k0, n0 = sum(b[0] for _, b in pairs), sum(b[1] for _, b in pairs)
        key = f"mechanisms/pooled/to_rule@intervention={intervention}"
        out[key], out[key + "@direction=random"] = k1 / n1, k0 / n0
        out[key + "/p"] = two_proportion_p(k1, n1, k0, n0)
        out[key + "/seeds_direction_above_random"] = sum(a[0] / a[1] > b[0] / b[1] for a, b in pairs)
        out["per_seed"][key] = [[a[0] / a[1], b[0] / b[1]] for a, b in pairs]
    return out
