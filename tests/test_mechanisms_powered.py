"""The marker-free mechanisms design (issue 23 item 6): its scale, and the pooled analysis over seeds
against hand-computed numbers and scipy's own tests, including cases where it must fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mnemoscope.errors import MnemoscopeError
from mnemoscope.recipes import declaration
from mnemoscope.recipes.common import resolve_scaled
from mnemoscope.recipes.mechanisms import pooled
from mnemoscope.recipes.mechanisms import recipe as mechanisms


def _seed_dir(root: Path, name: str, aucs: dict[int, float], rates: dict[tuple[str, str], list[float]], n=40):
    """A run directory holding only the two tables the pooled analysis reads."""
    d = root / name / "mechanisms"
    d.mkdir(parents=True)
    pd.DataFrame({"layer": [-1, *aucs], "auc": [np.nan, *aucs.values()]}).to_parquet(d / "probe.parquet")
    rows = []
    for (intervention, direction), values in rates.items():
        for alpha, rate in zip([-1.0, 0.0, 0.5, 1.0], values):
            for layer in (0, 1):
                rows.append({"set": "recall", "intervention": intervention, "layer": layer, "alpha": alpha,
                             "direction": direction, "n": n, "alternative_rate": rate if layer == 1 else 0.0})
                rows.append({"set": "compute", "intervention": intervention, "layer": layer, "alpha": alpha,
                             "direction": direction, "n": n, "alternative_rate": np.nan})
    pd.DataFrame(rows).to_parquet(d / "sweep.parquet")
    return root / name


def test_layer_intervals_are_t_intervals_over_seeds():
    aucs = pd.DataFrame({"seed": [0, 1, 2, 0, 1, 2], "layer": [0, 0, 0, 1, 1, 1],
                         "auc": [0.60, 0.64, 0.62, 0.50, 0.55, 0.45]})
    got = pooled.layer_intervals(aucs).set_index("layer")
    x = np.array([0.60, 0.64, 0.62])
    lo, hi = stats.t.interval(0.95, 2, loc=x.mean(), scale=stats.sem(x))
    assert got.loc[0, "mean"] == pytest.approx(0.62) and got.loc[0, "ci_low"] == pytest.approx(lo)
    assert got.loc[0, "ci_high"] == pytest.approx(hi)
    assert got.loc[1, "ci_low"] < 0.5 < got.loc[1, "ci_high"]


def test_two_proportion_p_matches_scipys_chi_square():
    k1, n1, k0, n0 = 30, 200, 12, 200
    chi2, p, _, _ = stats.chi2_contingency([[k1, n1 - k1], [k0, n0 - k0]], correction=False)
    assert pooled.two_proportion_p(k1, n1, k0, n0) == pytest.approx(p / 2)
    assert pooled.two_proportion_p(k0, n0, k1, n1) == pytest.approx(1 - p / 2)
    assert pooled.two_proportion_p(0, 10, 0, 10) == 1.0


def test_best_moves_takes_each_directions_own_best_cell_and_skips_no_steering():
    sweep = pd.DataFrame([
        {"set": "recall", "intervention": "add", "layer": 0, "alpha": 0.0, "direction": "direction", "n": 10,
         "alternative_rate": 0.9},  # α = 0 is not steering: never the best cell
        {"set": "recall", "intervention": "add", "layer": 0, "alpha": 1.0, "direction": "direction", "n": 10,
         "alternative_rate": 0.3},
        {"set": "recall", "intervention": "add", "layer": 1, "alpha": 0.5, "direction": "random", "n": 10,
         "alternative_rate": 0.2},
        {"set": "recall", "intervention": "add", "layer": 0, "alpha": 1.0, "direction": "random", "n": 10,
         "alternative_rate": 0.0},
    ])
    assert pooled.best_moves(sweep) == {("add", "direction"): (3, 10), ("add", "random"): (2, 10)}


def test_pool_shows_a_direction_that_forms_and_steers(tmp_path):
    good = {("add", "direction"): [0.0, 0.0, 0.3, 0.5], ("add", "random"): [0.0, 0.0, 0.05, 0.05],
            ("scale", "direction"): [0.4, 0.0, 0.1, 0.1], ("scale", "random"): [0.05, 0.0, 0.0, 0.0]}
    dirs = [_seed_dir(tmp_path, f"s{i}", {0: 0.45 + 0.025 * i, 1: 0.70 + 0.01 * i}, good) for i in range(5)]
    out = pooled.pool(dirs)
    assert out["mechanisms/pooled/forms_at_layer"] == 1  # layer 0 straddles 0.5 (mean 0.5): not formed there
    assert out["mechanisms/pooled/to_rule@intervention=add"] == pytest.approx(0.5)
    assert out["mechanisms/pooled/to_rule@intervention=add@direction=random"] == pytest.approx(0.05)
    assert out["mechanisms/pooled/to_rule@intervention=add/p"] < 1e-6
    assert out["mechanisms/pooled/to_rule@intervention=scale/seeds_direction_above_random"] == 5


def test_pool_fails_where_nothing_forms_or_steers(tmp_path):
    flat = {("add", "direction"): [0.0, 0.0, 0.05, 0.05], ("add", "random"): [0.0, 0.0, 0.05, 0.1]}
    dirs = [_seed_dir(tmp_path, f"s{i}", {0: 0.5 + (-1) ** i * 0.03, 1: 0.49 + (-1) ** i * 0.02}, flat)
            for i in range(5)]
    out = pooled.pool(dirs)
    assert out["mechanisms/pooled/forms_at_layer"] is None
    assert out["mechanisms/pooled/to_rule@intervention=add/p"] > 0.5
    assert out["mechanisms/pooled/to_rule@intervention=add/seeds_direction_above_random"] == 0
    with pytest.raises(MnemoscopeError, match="probe.parquet is missing"):
        pooled.pool([tmp_path / "nowhere"])


def test_the_powered_scale_is_the_design_written_in_the_docs():
    cfg = resolve_scaled(mechanisms.DEFAULTS, mechanisms.SCALES, {"scale": "powered"})
    docs = (Path(__file__).parents[1] / "docs" / "recipes.md").read_text()
    design = docs[docs.index("**Powered design for the marker-free mechanisms task**"):]
    assert cfg["task"]["recall_marker"] == "" and 'task.recall_marker=""' in design
    for text in (f"task.exceptions={cfg['task']['exceptions']}", f"task.n_compute={cfg['task']['n_compute']}",
                 f"train.steps={cfg['train']['steps']}"):
        assert text in design, text
    assert mechanisms.resolve_config({})["task"]["recall_marker"] == ":"  # the default keeps its cue
    assert declaration("mechanisms").pooled == "mnemoscope.recipes.mechanisms.pooled:pool"
