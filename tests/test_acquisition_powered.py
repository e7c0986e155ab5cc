"""Acquisition's powered design (issue 23 item 2): the shared pretraining phase, people injected in
shifted cohorts, probes scored on their own schedule, and the effects pooled over seeds with people
as the unit — at micro size, each piece against hand-computed numbers, and able to fail."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from tests.test_recipe_acquisition import SMALL

from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.pretrain import fingerprint, loss_flatness
from mnemoscope.metrics.dynamics import fit_log_decay
from mnemoscope.recipes import declaration
from mnemoscope.recipes.acquisition import pooled
from mnemoscope.recipes.acquisition import recipe as acquisition
from mnemoscope.recipes.common import resolve_scaled
from mnemoscope.recipes.seeds import run_seeds
from mnemoscope.train.probing import Prober, probe_schedule

MICRO_POWERED = {**SMALL, "pretrain.steps": 30, "pretrain.people": 20, "world.n_people": 16,
                 "world.never_seen_fraction": 0.25, "world.holdout_fraction": 0.0,
                 "injection.cohorts": 2, "injection.cohort_gap": 2}


# --------------------------------------------------------------------------- pieces


def test_cohorts_deal_people_and_shift_the_schedule():
    versions = {"paraphrase": {"p3": [], "p1": [], "p2": []}, "once": {"p9": [], "p5": []}}
    cohort_of, steps = acquisition.cohorts(versions, [10, 30], 2, 3)
    assert cohort_of == {"p1": 0, "p2": 1, "p3": 0, "p5": 0, "p9": 1}
    assert steps == [[10, 30], [13, 33]]
    assert acquisition.cohorts(versions, [10, 30], 1, 3)[1] == [[10, 30]]
    with pytest.raises(MnemoscopeError, match="injection.cohorts"):
        acquisition.cohorts(versions, [10], 0, 1)


def test_prober_scores_a_probe_only_at_its_own_steps(tokenizer, model):
    probes = [{"id": "a", "prefix": "The cat", "target": " sat"}, {"id": "b", "prefix": "A dog", "target": " ran"}]
    prober = Prober(tokenizer, probes, [0, 1, 2], own_steps={"a": [1]})
    for s in (0, 1, 2):
        prober.measure(s, model)
    rows = prober.frame()
    assert sorted(rows.loc[rows["probe_id"] == "a", "step"]) == [1]
    assert sorted(rows.loc[rows["probe_id"] == "b", "step"]) == [0, 1, 2]
    full = Prober(tokenizer, probes, [1]).measure(1, model)
    assert rows.loc[(rows["probe_id"] == "a"), "target_nll"].item() == pytest.approx(full[0]["target_nll"])


def test_loss_flatness_reads_the_tail_slope():
    history = [{"loss": 5.0 - 0.001 * s} for s in range(100)]
    f = loss_flatness(history, tail=0.2)
    assert f["tail_steps"] == 20 and f["slope_per_1k_steps"] == pytest.approx(-1.0)
    assert f["final_loss"] == pytest.approx(np.mean([5.0 - 0.001 * s for s in range(80, 100)]))
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1}) != fingerprint({"a": 1, "b": 3})


def test_rise_effect_is_mean_rise_minus_control_drift_and_can_fail():
    rng = np.random.default_rng(0)
    seeds = [(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0])), (np.array([2.0, 2.0]), np.array([1.0, 1.0, 1.0]))]
    e = pooled.rise_effect(seeds, 500, rng)
    assert e["per_seed"] == [1.5, 1.0] and e["value"] == pytest.approx(1.25)
    assert e["ci_low"] <= 1.25 <= e["ci_high"]
    same = [(rng.normal(0, 1, 40), rng.normal(0, 1, 40)) for _ in range(3)]
    null = pooled.rise_effect(same, 500, rng)
    assert null["ci_low"] < 0 < null["ci_high"]  # no effect: not shown


def _points(a: float, n_people: int, rng) -> list:
    t = np.array([1, 2, 5, 10, 20, 50, 100], dtype=float)
    return [(t, 100 * (1 - a * np.log10(t)) + rng.normal(0, 3, t.size)) for _ in range(n_people)]


def test_decay_gap_matches_the_log_fit_and_its_sign():
    rng = np.random.default_rng(1)
    dup = [_points(0.30, 10, rng) for _ in range(2)]
    par = [_points(0.10, 10, rng) for _ in range(2)]
    t = np.concatenate([u[0] for s in dup for u in s])
    r = np.concatenate([u[1] for s in dup for u in s])
    assert pooled.decay_a([u for s in dup for u in s]) == pytest.approx(fit_log_decay(t, r)["a"])
    g = pooled.decay_gap(dup, par, 300, rng)
    assert g["value"] == pytest.approx(0.2, abs=0.03) and g["ci_low"] > 0 and len(g["per_seed"]) == 2
    reverse = pooled.decay_gap(par, dup, 300, rng)
    assert reverse["ci_high"] < 0  # duplicates forgotten *slower*: the effect fails


def test_the_powered_scale_is_the_design_written_in_the_docs():
    cfg = resolve_scaled(acquisition.DEFAULTS, acquisition.SCALES, {"scale": "powered"})
    docs = (__import__("pathlib").Path(__file__).parents[1] / "docs" / "recipes.md").read_text()
    design = docs[docs.index("**Powered design for acquisition**"):]
    for text in (f"pretrain.steps={cfg['pretrain']['steps']}", f"pretrain.people={cfg['pretrain']['people']}",
                 f"world.n_people={cfg['world']['n_people']}", f"injection.cohorts={cfg['injection']['cohorts']}",
                 f"train.steps={cfg['train']['steps']}", f"probes.per_kind={cfg['probes']['per_kind']}"):
        assert text in design, text
    default = resolve_scaled(acquisition.DEFAULTS, acquisition.SCALES, {})
    assert default["pretrain"]["steps"] is None and default["injection"]["cohorts"] == 1


# --------------------------------------------------------------------------- end to end (micro)


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    out = tmp_path_factory.mktemp("acqp") / "seeds"
    logs: list[str] = []
    dirs = run_seeds("acquisition", out, dict(MICRO_POWERED), [0, 1], log=logs.append)
    return out, dirs, logs


def test_seeds_share_one_pretrained_model_and_write_pooled_effects(two_seeds):
    out, dirs, logs = two_seeds
    assert sum("pretraining 30 steps" in line for line in logs) == 1  # trained once, reused by seed 1
    assert len(list(out.glob("pretrain-*/train/final/training.json"))) == 1
    pretrained = {json.loads((d / "manifest.json").read_text())["pretrained"] for d in dirs}
    assert len(pretrained) == 1
    result = json.loads((out / "pooled.json").read_text())
    assert result["n_seeds"] == 2
    key = "acquisition/pooled/rise_vs_control@group=paraphrase,probe=memorization"
    assert key in result and key + "/ci_low" in result and len(result["per_seed"][key]) == 2
    assert isinstance(result[key + "/shown"], bool)


def test_each_cohort_is_probed_on_its_own_schedule(two_seeds):
    _, dirs, _ = two_seeds
    manifest = json.loads((dirs[0] / "manifest.json").read_text())
    c0, c1 = manifest["cohort_steps"]
    assert [b - a for a, b in zip(c0, c1)] == [2] * len(c0)
    samples = pd.read_parquet(dirs[0] / "samples.parquet")
    curves = pd.read_parquet(dirs[0] / "probe_curves.parquet")
    window = MICRO_POWERED["probes.window"]
    for cohort, own in ((0, c0), (1, c1)):
        pid = samples[(samples["cohort"] == cohort) & (samples["group"] == "duplicate")]["probe_id"].iloc[0]
        steps = set(curves.loc[curves["probe_id"] == pid, "step"])
        assert steps == set(probe_schedule(own, MICRO_POWERED["train.steps"], window))


def test_pooled_rise_equals_the_runs_per_probe_rise_beyond_control(two_seeds):
    """With equal probes per person, the mean of person means is the mean of probes, so the pooled
    per-seed value must equal the run's own per-probe (rise − control_rise) mean."""
    _, dirs, _ = two_seeds
    for d, value in zip(dirs, pooled.pool(dirs, n_boot=20)["per_seed"][
            "acquisition/pooled/rise_vs_control@group=duplicate,probe=memorization"]):
        s = pd.read_parquet(d / "samples.parquet")
        part = s[(s["group"] == "duplicate") & (s["kind"] == "memorization") & s["t_lam"].notna()]
        assert part.groupby("person_id").size().nunique() == 1
        ctrl = s[(s["group"] == "control") & (s["kind"] == "memorization")]
        assert ctrl.groupby("person_id").size().nunique() == 1
        expect = (part["nll_final"] - part["nll_after_last"] - part["control_rise"]).mean()
        assert value == pytest.approx(expect, abs=1e-9)
        assert not math.isnan(value)


def test_pool_refuses_an_unfinished_run(tmp_path):
    with pytest.raises(MnemoscopeError, match="samples.parquet is missing"):
        pooled.pool([tmp_path])
    assert declaration("acquisition").pooled == "mnemoscope.recipes.acquisition.pooled:pool"


def test_bad_cohorts_are_refused_before_any_pretraining(tmp_path):
    with pytest.raises(MnemoscopeError, match="injection.cohorts"):
        acquisition.run(tmp_path / "run", {**MICRO_POWERED, "injection.cohorts": 0}, log=lambda *_: None)
    assert not list(tmp_path.glob("pretrain-*"))  # nothing trained, nothing cached
