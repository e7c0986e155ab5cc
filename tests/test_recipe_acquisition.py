"""The acquisition recipe end to end at a small size: run directory, metrics, sanity of the dynamics."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.recipes import get_recipe
from mnemoscope.recipes.acquisition import recipe as acquisition

SMALL = {
    "model.hidden": 64, "model.layers": 2, "model.intermediate": 172, "model.vocab_size": 1024,
    "corpus.n_docs": 600, "world.n_people": 12,
    "injection.start": 10, "injection.relative_steps": [0, 8, 16, 24, 32, 40, 48, 56, 64, 72],
    "train.steps": 160, "train.lr": 3e-3, "train.warmup": 5, "train.checkpoint_every": 80,
    "probes.window": 3, "probes.per_kind": 3,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("acq") / "run"
    acquisition.run(out, dict(SMALL), log=lambda *_: None)
    return out


def test_run_directory(finished):
    for name in ("config.yaml", "manifest.json", "metrics.json", "samples.parquet", "curves.parquet",
                 "probe_curves.parquet", "retention.parquet", "report.html"):
        assert (finished / name).is_file(), name
    curves = pd.read_parquet(finished / "probe_curves.parquet")
    assert set(curves["group"]) == {"paraphrase", "duplicate", "once", "control"}
    assert set(curves["kind"]) == {"memorization", "semantic", "compositional"}
    assert "loss" in pd.read_parquet(finished / "curves.parquet").columns
    html = (finished / "report.html").read_text()
    assert "Knowledge acquisition" in html and "Fitted constants" in html and "failed" not in html
    log = json.loads((finished / "manifest.json").read_text())["injection_log"]
    assert len(log) == 10 and all(e["tokens_with_loss"] > 0 for e in log)
    assert get_recipe("acquisition") is acquisition


def test_metrics_are_flat_and_named(finished):
    m = json.loads((finished / "metrics.json").read_text())
    for key in ("acquisition/retainability/decay_a@group=duplicate,probe=memorization",
                "acquisition/retainability/x_intercept_tokens@group=paraphrase,probe=semantic",
                "acquisition/effectivity/mean@group=once,probe=compositional",
                "acquisition/compare/logprob_after_last_gap@a=duplicate,b=once,probe=memorization"):
        assert key in m
    assert all(not isinstance(v, (dict, list)) for v in m.values())


def test_duplicates_are_remembered_better_than_a_single_exposure(finished):
    m = json.loads((finished / "metrics.json").read_text())
    dup = m["acquisition/logprob/after_last@group=duplicate,probe=memorization"]
    once = m["acquisition/logprob/after_last@group=once,probe=memorization"]
    assert dup > once


def test_probe_loss_rises_after_injections_stop(finished):
    m = json.loads((finished / "metrics.json").read_text())
    for group in ("duplicate", "paraphrase"):
        assert m[f"acquisition/nll/rise_after_last@group={group},probe=memorization"] > 0


def test_scale_preset_and_bad_scale():
    paper = acquisition.resolve_config({"scale": "paper"})
    assert paper["injection"]["relative_steps"] == list(range(0, 1000, 100)) and paper["probes"]["window"] == 50
    assert acquisition.resolve_config({"scale": "paper", "train.steps": 7000})["train"]["steps"] == 7000
    with pytest.raises(MnemoscopeError, match="scale"):
        acquisition.resolve_config({"scale": "huge"})


def test_control_adjusted_rise_subtracts_the_never_seen_drift(finished):
    """rise_vs_control = rise − (control NLL change over the same steps), per probe, averaged."""
    m = json.loads((finished / "metrics.json").read_text())
    samples = pd.read_parquet(finished / "samples.parquet")
    part = samples[(samples["group"] == "duplicate") & (samples["kind"] == "memorization")]
    expected = ((part["nll_final"] - part["nll_after_last"]) - part["control_rise"]).mean()
    key = "acquisition/nll/rise_after_last_vs_control@group=duplicate,probe=memorization"
    assert m[key] == pytest.approx(expected)
    assert part["control_rise"].notna().all()


def test_the_claim_is_computed_and_opens_the_report(finished):
    from tests.helpers import claim_effects

    effects = claim_effects("acquisition", finished, require_all=False)  # decay fits may not converge here
    # the first effect, recomputed from the per-probe rows: (final − after-last NLL) − the control's drift
    samples = pd.read_parquet(finished / "samples.parquet")
    part = samples[(samples["group"] == "paraphrase") & (samples["kind"] == "memorization")]
    expected = ((part["nll_final"] - part["nll_after_last"]) - part["control_rise"]).mean()
    label = "memorization-probe NLL rise after the last injection beyond the control (paraphrase)"
    assert effects[label] == pytest.approx(expected)
    m = json.loads((finished / "metrics.json").read_text())
    for probe in ("memorization", "semantic"):  # the decay differences, where both fits converged
        a, b = (m.get(f"acquisition/retainability/decay_a@group={g},probe={probe}") for g in ("duplicate", "paraphrase"))
        got = effects[f"decay a, duplicate − paraphrase ({probe} probes)"]
        assert got is None if a is None or b is None else got == pytest.approx(a - b)
