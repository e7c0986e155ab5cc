"""Claims: effect rows, the spread across runs (hand-computed), the report's first section and the
seed comparison's claim table."""

from __future__ import annotations

import math

import pytest

from mnemoscope.claims import Claim, Effect, effect_rows, effect_spread, holds, stat_key
from mnemoscope.recipes.plugin import Recipe
from tests.helpers import declare

CLAIM = Claim("toy", "Someone 2024", "more exposures, more memory",
              (Effect("toy/gain@e=3", "gain at 3 exposures"), Effect("toy/p_value", "p-value", "<", 0.01)),
              scale="tiny scale: the trend only")


def test_stat_key_puts_the_statistic_before_the_tags():
    assert stat_key("a/b@x=1,y=2", "ci_lo") == "a/b/ci_lo@x=1,y=2"
    assert stat_key("a/b", "ci_hi") == "a/b/ci_hi"


def test_effect_rows_values_intervals_and_sides():
    m = {"toy/gain@e=3": 0.2, "toy/gain/ci_lo@e=3": -0.01, "toy/gain/ci_hi@e=3": 0.4, "toy/p_value": 0.004}
    gain, p = effect_rows(CLAIM, m)
    assert (gain["value"], gain["ci_lo"], gain["ci_hi"], gain["holds"], gain["ci_clear"]) == (0.2, -0.01, 0.4, True, False)
    assert (p["value"], p["ci_lo"], p["holds"], p["ci_clear"]) == (0.004, None, True, None)
    assert holds(CLAIM, m) is True
    assert holds(CLAIM, {**m, "toy/p_value": 0.02}) is False
    assert holds(CLAIM, {"toy/gain@e=3": 0.2, "toy/p_value": None}) is None  # null = not measured
    assert effect_rows(CLAIM, {"toy/gain@e=3": float("nan")})[0]["holds"] is None


def test_threshold_is_strict():
    e = Effect("k", "k", ">", 0.5)
    assert e.holds(0.5) is False and e.holds(0.51) is True and e.holds(None) is None
    with pytest.raises(ValueError):
        Effect("k", "k", ">=")


def test_spread_by_hand():
    runs = [{"toy/gain@e=3": 0.1, "toy/p_value": 0.001}, {"toy/gain@e=3": 0.3, "toy/p_value": 0.2},
            {"toy/gain@e=3": -0.1}]
    gain, p = effect_spread(CLAIM, runs)
    assert gain["n"] == 3 and gain["mean"] == pytest.approx(0.1)
    assert gain["sd"] == pytest.approx(math.sqrt(((0.0) ** 2 + 0.2 ** 2 + 0.2 ** 2) / 2))
    assert (gain["min"], gain["max"], gain["n_hold"]) == (-0.1, 0.3, 2)
    assert p["n"] == 2 and p["values"][2] is None and p["n_hold"] == 1
    assert math.isnan(effect_spread(CLAIM, [{}])[0]["mean"])
    assert math.isnan(effect_spread(CLAIM, [{"toy/gain@e=3": 1.0}])[0]["sd"])  # one run: no sd


def _declared_claims() -> dict:
    from mnemoscope.recipes import declarations

    return {d.name: d.claim for d in declarations() if d.claim is not None}


def test_every_registered_claim_is_well_formed():
    from mnemoscope.recipes import RECIPES

    assert _declared_claims(), "no claims registered"
    for name, claim in _declared_claims().items():
        assert name == claim.recipe and name in RECIPES
        assert claim.sentence.strip() and claim.source.strip() and claim.effects
        for e in claim.effects:
            for key in e.keys:
                assert "@" not in key.split("/")[0] and not key.endswith("/")


def test_report_opens_with_the_claim(tmp_path, monkeypatch):
    from mnemoscope.report.html import load_run, render_report
    from tests.runfakes import fake_run

    declare(monkeypatch, Recipe("toy", claim=CLAIM))
    m = {"toy/gain@e=3": 0.2, "toy/gain/ci_lo@e=3": 0.05, "toy/gain/ci_hi@e=3": 0.4, "toy/p_value": 0.3}
    run = fake_run(tmp_path / "r", m, recipe="toy", seed=4)
    import pandas as pd

    pd.DataFrame({"x": [1]}).to_parquet(run / "samples.parquet")
    page = render_report(load_run(run))
    sections = [s for s in page.split('<section id="')[1:]]
    assert sections[0].startswith("run") and sections[1].startswith("claim")  # right after the overview
    claim = sections[1]
    assert "more exposures, more memory" in claim and "Someone 2024" in claim and "tiny scale: the trend only" in claim
    assert "[0.050, 0.400]" in claim and "&lt; 0.01" in claim
    assert "At least one effect is not on the predicted side" in claim  # p = 0.3
    assert "--seeds 0,1,2" in claim and "(4)" in claim


def test_report_without_a_claim_has_no_claim_section(tmp_path):
    import pandas as pd

    from mnemoscope.report.html import load_run
    from mnemoscope.report.sections.claim import section_claim
    from tests.runfakes import fake_run

    run = fake_run(tmp_path / "r", {"a": 1.0}, recipe="audit")
    pd.DataFrame({"x": [1]}).to_parquet(run / "samples.parquet")
    assert section_claim(load_run(run)) is None


def test_seed_comparison_states_the_spread_of_the_claim(tmp_path, monkeypatch):
    from mnemoscope.compare import compare
    from mnemoscope.report.comparison import render_comparison
    from tests.runfakes import fake_run

    declare(monkeypatch, Recipe("toy", claim=CLAIM))
    values = [(0.1, 0.001), (0.3, 0.002), (-0.1, 0.5)]
    dirs = [fake_run(tmp_path / f"seed={s}", {"toy/gain@e=3": g, "toy/p_value": p, "other": 1.0}, recipe="toy", seed=s)
            for s, (g, p) in enumerate(values)]
    c = compare(dirs)
    assert c.columns[:2] == ["toy/gain@e=3", "toy/p_value"]  # the claim's keys lead the default columns
    page = render_comparison(c)
    part = page.split('<section id="claim-across-seeds">')[1].split("</section>")[0]
    assert page.index('id="claim-across-seeds"') < page.index('id="runs"')
    assert "0.1 ± 0.2" in part and "-0.1 – 0.3" in part
    assert "2 of 3 runs" in part and "more exposures, more memory" in part


def test_difference_effect_by_hand():
    e = Effect("a@x=2", "a at 2 − a at 1", minus="a@x=1")
    claim = Claim("toy", "S", "s", (e,))
    m = {"a@x=2": 0.7, "a@x=1": 0.25, "a/ci_lo@x=2": 0.6, "a/ci_hi@x=2": 0.8}
    (row,) = effect_rows(claim, m)
    assert row["value"] == pytest.approx(0.45) and row["holds"] is True
    assert row["ci_lo"] is None and row["ci_clear"] is None  # a difference of two keys carries no interval
    assert e.keys == ("a@x=2", "a@x=1") and e.formula == "a@x=2 − a@x=1"
    assert effect_rows(claim, {"a@x=2": 0.7})[0]["value"] is None  # one side missing: not measured
    (spread,) = effect_spread(claim, [m, {"a@x=2": 0.1, "a@x=1": 0.3}])
    assert spread["values"] == [pytest.approx(0.45), pytest.approx(-0.2)] and spread["n_hold"] == 1


def test_every_recipe_has_a_claim():
    from mnemoscope.recipes import RECIPES

    assert set(_declared_claims()) == set(RECIPES)
