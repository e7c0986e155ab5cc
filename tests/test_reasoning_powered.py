"""The reasoning recipe's training-set sweep (issue 23, item 3): the evaluation cap, the baseline, the
exact test, the pooled rule (it can fail), the sweep end to end at micro size, and ``scale=powered``
being the design written in docs/recipes.md."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mnemoscope.cli import main
from mnemoscope.probes.knights_knaves import generate_puzzles, solution
from mnemoscope.recipes import declaration
from mnemoscope.recipes.common import resolve_scaled
from mnemoscope.recipes.reasoning import recipe as reasoning
from mnemoscope.recipes.reasoning.sweep import (
    baseline_by_people,
    binomial_sf,
    eval_subset,
    pooled_verdict,
    seed_metrics,
    sweep_metrics,
)

from .test_recipe_reasoning import MICRO

SWEEP = {**MICRO, "puzzles.n_train": 12, "puzzles.n_unseen": 10, "puzzles.sweep": [4, 12], "train.steps": 40,
         "eval.max_puzzles": 6, "eval.points": 3}


def test_eval_subset_is_seeded_fixed_and_all_by_default():
    puzzles = list(range(50))
    assert eval_subset(puzzles, None, seed=0) == puzzles and eval_subset(puzzles, 50, seed=0) == puzzles
    a, b = eval_subset(puzzles, 10, seed=3), eval_subset(puzzles, 10, seed=3)
    assert a == b and len(set(a)) == 10 and a == sorted(a)  # the same subset, original order, no repeats
    assert eval_subset(puzzles, 10, seed=4) != a
    with pytest.raises(ValueError, match="max_puzzles"):
        eval_subset(puzzles, 0, seed=0)


def test_baseline_is_the_larger_of_guessing_and_the_commonest_answer():
    puzzles = generate_puzzles(40, 2, seed=5) + generate_puzzles(30, 3, seed=6)
    base = baseline_by_people(puzzles)
    for n, count in ((2, 40), (3, 30)):
        top = max(sum(solution(p) == s for p in puzzles if p.n_people == n)
                  for s in itertools.product([True, False], repeat=n))
        assert base[n] == max(2.0 ** -n, top / count)
    assert base[2] >= 0.25 and base[3] >= 0.125


def test_binomial_sf_is_the_exact_tail_of_a_sum_of_binomials():
    assert binomial_sf(7, [(20, 0.25)]) == pytest.approx(stats.binom.sf(6, 20, 0.25))
    assert binomial_sf(0, [(5, 0.3)]) == pytest.approx(1.0) and binomial_sf(6, [(5, 0.3)]) == 0.0
    # two groups by enumeration of every outcome of 3 puzzles at 0.5 and 2 at 0.25
    probs = [0.5] * 3 + [0.25] * 2
    tail = sum(np.prod([p if o else 1 - p for o, p in zip(outcome, probs)])
               for outcome in itertools.product([0, 1], repeat=5) if sum(outcome) >= 3)
    assert binomial_sf(3, [(3, 0.5), (2, 0.25)]) == pytest.approx(tail)


def _rows(n_train: int, correct2: int, n2: int, correct3: int, n3: int) -> pd.DataFrame:
    flags = [True] * correct2 + [False] * (n2 - correct2) + [True] * correct3 + [False] * (n3 - correct3)
    return pd.DataFrame({"n_train": n_train, "n_people": [2] * n2 + [3] * n3, "correct": flags})


def test_sweep_metrics_by_hand():
    rows = pd.concat([_rows(10, 5, 20, 2, 20), _rows(100, 15, 20, 10, 20)])
    m = sweep_metrics(rows, {2: 0.25, 3: 0.125}, {10: 0.8, 100: 0.0})
    assert m["reasoning/sweep/accuracy@split=unseen,n_train=10"] == pytest.approx(7 / 40)
    assert m["reasoning/sweep/baseline@n_train=10"] == pytest.approx(0.1875)
    assert m["reasoning/sweep/lift@n_train=100"] == pytest.approx(25 / 40 - 0.1875)
    assert m["reasoning/sweep/n_correct@split=unseen,people=3,n_train=100"] == 10
    assert m["reasoning/sweep/p_value@n_train=10"] == pytest.approx(binomial_sf(7, [(20, 0.25), (20, 0.125)]))
    # the largest lift among sizes whose LiMem > 0: only n_train=10 qualifies
    assert m["reasoning/sweep/max_lift"] == pytest.approx(7 / 40 - 0.1875)


def _seed_metrics(correct2: int, correct3: int, limem: float) -> dict:
    rows = pd.concat([_rows(10, 10, 40, 5, 40), _rows(1000, correct2, 40, correct3, 40)])  # size 10 at chance
    return sweep_metrics(rows, {2: 0.25, 3: 0.125}, {10: 0.9, 1000: limem})


def test_pooled_rule_shows_a_lift_and_fails_at_chance():
    lifted = [_seed_metrics(16, 9, 0.2) for _ in range(5)]  # 25/80 = 0.31 against 0.1875, 400 puzzles pooled
    table, shown = pooled_verdict(lifted)
    assert shown and table.set_index("n_train").loc[1000, "shown_here"]
    assert table.set_index("n_train").loc[1000, "unseen_n"] == 400
    at_chance = [_seed_metrics(10, 5, 0.2) for _ in range(5)]  # 15/80 = exactly the baseline
    table, shown = pooled_verdict(at_chance)
    assert not shown and (table["p_value"] > 0.05).all()
    # lifted but LiMem 0 at that size: not shown (the size-10 point sits at its baseline)
    assert not pooled_verdict([_seed_metrics(16, 9, 0.0) for _ in range(5)])[1]


def test_pooled_rule_corrects_for_the_number_of_sizes():
    # one size with p between 0.05 / 2 and 0.05: not shown with 2 sizes
    for k2 in range(10, 40):
        m = _seed_metrics(k2, 5, 0.2)
        if 0.025 < m["reasoning/sweep/p_value@n_train=1000"] < 0.05:
            break
    table, shown = pooled_verdict([m])
    assert not shown and table["p_value"].min() < 0.05
    with pytest.raises(ValueError, match="same sweep sizes"):
        pooled_verdict([m, sweep_metrics(_rows(10, 1, 4, 1, 4), {2: 0.25, 3: 0.125}, {10: 0.5})])


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("kk_sweep") / "run"
    reasoning.run(out, dict(SWEEP), log=lambda *_: None)
    return out


def test_the_sweep_runs_one_model_per_size_on_a_capped_fixed_subset(swept):
    m = json.loads((swept / "metrics.json").read_text())
    for n in (4, 12):
        assert (swept / "phases" / f"train_n{n}" / "final" / "model.safetensors").is_file()
        assert 0 <= m[f"reasoning/accuracy@split=unseen,phase=after,n_train={n}"] <= 1
        assert math.isfinite(m[f"reasoning/sweep/p_value@n_train={n}"])
        assert m[f"reasoning/sweep/epochs@n_train={n}"] == pytest.approx(40 / math.ceil(n / 8))
    rows = pd.read_parquet(swept / "probe_rows.parquet")
    unseen = rows[rows["split"] == "unseen"]
    assert sorted(unseen["step"].unique()) == [0, 20, 40]
    ids = {key: set(g["id"]) for key, g in unseen.groupby(["n_train", "step"])}
    assert len(set(map(frozenset, ids.values()))) == 1 and len(next(iter(ids.values()))) == 6
    train = rows[(rows["split"] == "train") & (rows["n_train"] == 12)]
    assert train.groupby("step").size().max() == 6  # 12 training puzzles of the size, 6 evaluated
    sweep = pd.read_parquet(swept / "reasoning_sweep.parquet")
    assert set(sweep["n_train"]) == {4, 12}
    table, _ = pooled_verdict(seed_metrics([swept, swept]))
    assert list(table["n_train"]) == [4, 12] and (table["unseen_n"] == 12).all()
    pooled = declaration("reasoning").pool([swept, swept])  # what --seeds writes to OUT/pooled.json
    assert [r["n_train"] for r in pooled["sizes"]] == [4, 12] and isinstance(pooled["reasoning/pooled/shown"], bool)
    json.dumps(pooled)
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        seed_metrics([swept / "phases"])
    html = (swept / "report.html").read_text()
    assert "Training-set sweep" in html and "(failed)" not in html


def test_default_evaluates_every_puzzle():
    cfg = resolve_scaled(reasoning.DEFAULTS, reasoning.SCALES, {})
    assert cfg["eval"] == {"max_puzzles": None, "points": None} and cfg["puzzles"]["sweep"] == []
    assert cfg["train"]["steps"] is None and cfg["train"]["epochs"] == 40


@pytest.mark.parametrize("setting, message", [
    ("puzzles.sweep=[12,4]", "increasing"), ("puzzles.sweep=[4,100]", "exceeds puzzles.n_train"),
    ("eval.points=1", "eval.points"), ("eval.max_puzzles=0", "eval.max_puzzles")])
def test_bad_sweep_settings_are_refused_before_anything_is_written(tmp_path, capsys, setting, message):
    assert main(["run", "reasoning", "--out", str(tmp_path / "x"), "--set", "puzzles.n_train=12",
                 "--set", setting]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_the_powered_scale_is_the_design_written_in_the_docs():
    cfg = resolve_scaled(reasoning.DEFAULTS, reasoning.SCALES, {"scale": "powered"})
    assert cfg["puzzles"]["sweep"] == [100, 4000] and cfg["puzzles"]["n_train"] == 4000
    assert cfg["puzzles"]["n_unseen"] == 500 and cfg["puzzles"]["n_people"] == [2, 3]
    assert cfg["train"]["steps"] == 2000 and cfg["eval"] == {"max_puzzles": 400, "points": 3}
    assert cfg["model"] == reasoning.DEFAULTS["model"] | {"init": None}  # the default model
    docs = " ".join((Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text(encoding="utf-8").split())
    assert ("--set puzzles.n_train=4000 --set puzzles.n_unseen=500 --set puzzles.sweep=[100,4000] "
            "--set train.steps=2000 --set eval.max_puzzles=400 --set eval.points=3") in docs


def test_pooled_rule_asks_the_seeds_to_agree():
    # a large lift in 3 seeds and none in 2: pooled p is tiny, but only 3 of 5 seeds lift
    seeds = [_seed_metrics(30, 20, 0.2)] * 3 + [_seed_metrics(10, 5, 0.2)] * 2
    table, shown = pooled_verdict(seeds)
    row = table.set_index("n_train").loc[1000]
    assert row["p_value"] < 1e-6 and row["seeds_lifted"] == 3 and not shown
    assert pooled_verdict(seeds[:3] + [_seed_metrics(12, 6, 0.2)] * 2)[1]  # 5 of 5 lift a little: shown
