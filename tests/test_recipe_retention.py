"""The retention recipe end to end at micro size: run directory, exposure effect, retention curves."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.recipes import get_recipe
from mnemoscope.recipes.retention import recipe as retention

MICRO = {
    "model.hidden": 64, "model.layers": 2, "model.intermediate": 172, "model.vocab_size": 1024,
    "corpus.n_docs": 2000, "study.per_group": 32, "study.other_items": 16, "study.n_other_docs": 200,
    "phases.pretrain_steps": 120, "phases.steps_per_exposure": 8, "phases.study_lr": 3e-3,
    "phases.retention_steps": 30, "train.lr": 3e-3, "analysis.n_boot": 50,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("ret") / "run"
    retention.run(out, dict(MICRO), log=lambda *_: None)
    return out


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


def test_run_directory(finished):
    for name in ("config.yaml", "manifest.json", "metrics.json", "samples.parquet", "curves.parquet",
                 "retention.parquet", "probe_rows.parquet", "report.html"):
        assert (finished / name).is_file(), name
    samples = pd.read_parquet(finished / "samples.parquet")
    assert set(samples["phase"]) == {"initial", "before_study", "after_study", "end"}
    assert set(samples["exposures"]) == {-1, 0, 1, 2, 3}
    html = (finished / "report.html").read_text()
    assert "Recognition, recall and retention" in html and "Fitted constants" in html and "(failed)" not in html
    assert get_recipe("retention") is retention
    assert all(not isinstance(v, (dict, list)) for v in _metrics(finished).values())


def test_more_exposures_are_recognised_better_and_above_chance(finished):
    m = _metrics(finished)
    acc = {e: m[f"recognition/2afc/accuracy@exposures={e},phase=after_study"] for e in (0, 1, 3)}
    assert acc[3] >= acc[1]
    assert acc[3] > 0.5 and acc[3] > acc[0]
    assert m["recognition/2afc/accuracy/ci_lo@exposures=3,phase=after_study"] <= acc[3]


def test_retention_curve_and_fits_present(finished):
    ret = pd.read_parquet(finished / "retention.parquet")
    steps = sorted(ret["step"].unique())
    assert steps == list(range(11)) + [20, 30]
    m = _metrics(finished)
    for key in ("retention/recognition/decay_a@exposures=3", "retention/recognition/decay_a/ci_lo@exposures=3",
                "retention/recall/decay_b@exposures=1", "continual/bwt", "continual/min_acc", "continual/wc_acc",
                "continual/fwt@task=other", "retention/compare/accuracy_gap@a=3,b=1,phase=after_study"):
        assert np.isfinite(m[key]), key
    assert m["continual/bwt"] == pytest.approx(-m["continual/forgetting@task=study"])


def test_rerun_reuses_phases_and_refuses_another_config(finished):
    before = _metrics(finished)
    retention.run(finished, dict(MICRO), log=lambda *_: None)
    assert _metrics(finished) == before
    with pytest.raises(MnemoscopeError, match="different config"):
        retention.run(finished, {**MICRO, "seed": 1}, log=lambda *_: None)


def test_fit_log_line_matches_a_hand_computed_line():
    t = np.array([1.0, 10.0, 100.0])
    fit = retention.fit_log_line(t, 0.9 - 0.1 * np.log10(t))
    assert fit["a"] == pytest.approx(0.1) and fit["b"] == pytest.approx(0.9) and fit["r2"] == pytest.approx(1.0)
    with pytest.raises(MnemoscopeError):
        retention.fit_log_line(np.array([5.0, 5.0]), np.array([0.1, 0.2]))


def test_scale_preset_and_bad_scale():
    cfg = retention.resolve_scaled(retention.DEFAULTS, retention.SCALES, {"scale": "gpu"})
    assert cfg["model"]["size"] == "small" and cfg["phases"]["retention_steps"] == 5000
    with pytest.raises(MnemoscopeError, match="scale"):
        retention.resolve_scaled(retention.DEFAULTS, retention.SCALES, {"scale": "huge"})


def test_make_model_starts_from_a_saved_model_or_a_tiny_one(saved_model_dir, tmp_path):
    cfg = retention.resolve_scaled(retention.DEFAULTS, retention.SCALES, {**MICRO, "model.init": str(saved_model_dir),
                                                                          "model.device": "cpu"})
    model, tok = retention.make_model(cfg, ["unused text"], tmp_path)
    assert model.config.hidden_size == 64 and len(tok) == 600 and not (tmp_path / "model").exists()
    cfg = retention.resolve_scaled(retention.DEFAULTS, retention.SCALES, {**MICRO, "model.device": "cpu"})
    model, tok = retention.make_model(cfg, ["a few words of text"] * 20, tmp_path)
    assert model.config.num_hidden_layers == 2 and (tmp_path / "model" / "tokenizer.json").is_file()


def test_study_schedule_gives_exact_exposures_ending_in_the_last_epoch(tokenizer, corpus):
    study = [{"item_id": f"s{e}", "task": "study", "exposures": e, "text": corpus[e]} for e in (0, 1, 2, 3)]
    data = retention.study_data({"study": study, "pretrain": corpus[10:]}, tokenizer, {"batch_size": 4, "seq_len": 256},
                                {"steps_per_exposure": 2}, seed=0)
    steps: dict[str, list[int]] = {}
    for p in data.placements:
        steps.setdefault(p.doc_id, []).append(p.step)
    assert {k: len(v) for k, v in steps.items()} == {"s1": 1, "s2": 2, "s3": 3}
    assert data.steps == 6 and all(max(v) >= 4 for v in steps.values())  # last epoch = steps 4, 5
    assert sorted(s // 2 for s in steps["s3"]) == [0, 1, 2]  # one exposure per epoch


def _frame(phase_or_step, study, other):
    rows = [{"task": "study", "exposures": 1, "foil_kind": "novel", "correct": c} for c in study]
    rows += [{"task": "other", "exposures": -1, "foil_kind": "novel", "correct": c} for c in other]
    return pd.DataFrame(rows).assign(**phase_or_step)


def test_continual_metrics_by_hand():
    samples = pd.concat([_frame({"phase": "after_study"}, [1, 1], [1, 0]), _frame({"phase": "end"}, [1, 0], [1, 1]),
                         _frame({"phase": "initial"}, [0, 1], [0, 1])])
    rows = pd.concat([_frame({"step": 0}, [1, 1], [1, 0]), _frame({"step": 1}, [0, 0], [1, 0]),
                      _frame({"step": 2}, [1, 0], [1, 1])])
    m = retention.continual_metrics(samples, rows, window=3)
    # A = [[1, .5], [.5, 1]]: forgetting .5, BWT −.5, FWT = A[0, 1] − b = .5 − .5 = 0
    assert m["continual/accuracy@after=study,task=study"] == 1.0 and m["continual/accuracy@after=other,task=study"] == 0.5
    assert m["continual/forgetting@task=study"] == 0.5 and m["continual/bwt"] == -0.5 and m["continual/fwt@task=other"] == 0
    # study learned at step 0, min after it = 0; other not past → Min-ACC = 0; WC-ACC = ½·1 + ½·0
    assert m["continual/min_acc"] == 0.0 and m["continual/wc_acc"] == 0.5
    assert m["continual/windowed_forgetting@task=study,window=3"] == 1.0


def test_bootstrap_ci_brackets_the_statistic_and_degenerates_on_constants():
    rng = np.random.default_rng(0)
    lo, hi = retention.bootstrap_ci(np.array([0.0, 1.0] * 20), np.mean, 200, rng)
    assert lo < 0.5 < hi and 0.25 < lo and hi < 0.75
    assert retention.bootstrap_ci(np.full(5, 0.3), np.mean, 50, rng) == pytest.approx((0.3, 0.3))
    assert all(np.isnan(retention.bootstrap_ci(np.array([]), np.mean, 50, rng)))


def test_the_claim_is_computed_and_opens_the_report(finished):
    from tests.helpers import claim_effects

    effects = claim_effects("retention", finished)
    assert effects["2AFC accuracy, 3 exposures − never studied (after study)"] > 0
    m = _metrics(finished)
    for e in (0, 1, 2, 3):  # scored on what the model before study got wrong: 0 then, by construction
        assert m[f"recall/unguessed/mean@exposures={e},phase=before_study"] == 0.0
    assert m["recall/unguessed/gain@exposures=3,phase=after_study"] == pytest.approx(
        m["recall/unguessed/mean@exposures=3,phase=after_study"] - m["recall/unguessed/mean@exposures=0,phase=after_study"])
