"""U-LiRA in the unlearning lab (recipes.ulira): shadow documents, bad settings, and a micro run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.probes.fictional import WorldConfig, make_world
from mnemoscope.recipes import ulira
from mnemoscope.recipes.unlearning import recipe as U

MICRO = {
    "model.hidden": 32, "model.layers": 2, "model.heads": 2, "model.intermediate": 64, "model.vocab_size": 400,
    "world.n_people": 14, "corpus.n_docs": 10, "corpus.n_ppl_docs": 3, "train.epochs": 1, "train.batch_size": 16,
    "unlearn.methods": ["ga", "npo_gd"], "sweep.steps": [1, 2], "sweep.lr": [1e-3],
    "scalability.methods": [], "sustainability.methods": [], "robustness.relearn_steps": [1],
    "robustness.probes": False, "robustness.residue_attribute": "",
    "eval.n_retain_people": 2, "eval.knowmem_tokens": 4, "eval.verbmem_tokens": 8, "eval.n_boot": 20,
}


def test_shadow_documents_swap_the_candidate_people():
    world = make_world(WorldConfig(n_people=14, seed=0))
    docs, _ = U.lab_documents(world, ["background text"])
    forget, holdout = sorted(world.splits["forget"]), sorted(world.splits["holdout"])
    kept = {forget[0], holdout[0]}
    out = ulira.shadow_training_docs(world, docs, forget + holdout, kept)
    owner = {d["id"]: d.get("person_id") for d in world.documents} | {q["id"]: q["person_id"] for q in world.qa}
    people = {owner.get(k) for k in out} - {None}
    assert forget[0] in people and holdout[0] in people
    assert not (set(forget[1:]) | set(holdout[1:])) & people
    assert set(world.splits["retain"]) <= people and "bg00000" in out
    texts, owners = ulira.candidate_texts(world, forget + holdout)
    assert len(texts) == len(owners) and set(owners) == set(forget + holdout)


def test_wants_and_per_example_metrics():
    assert not ulira.wants({"shadows": 0, "methods": []}, "ga")
    assert ulira.wants({"shadows": 4, "methods": []}, "ga")
    assert not ulira.wants({"shadows": 4, "methods": ["npo"]}, "ga")
    labels = np.array([1, 1, 1, 0, 0, 0])
    online = np.array([2.0, 1.0, -1.0, -2.0, 0.5, -3.0])
    m = ulira.per_example_metrics(labels, online, -online, n_boot=10, seed=0)
    assert m["ulira/online/accuracy"] == pytest.approx(0.5 * (2 / 3 + 2 / 3))
    assert m["ulira/online/auc"] == pytest.approx(8 / 9) and m["ulira/offline/auc"] == pytest.approx(1 / 9)
    assert np.isnan(m["ulira/online/tpr@fpr=0.01"])  # 3 holdout texts cannot resolve 1%


@pytest.mark.parametrize("setting, message", [
    ({"ulira.shadows": 3}, "ulira.shadows=3"),
    ({"ulira.shadows": 4, "ulira.methods": ["rmu"]}, "ulira.methods: rmu"),
    ({"ulira.shadows": 4, "ulira.variance": "x"}, "ulira.variance"),
    ({"ulira.shadows": 4, "ulira.workers": 0}, "ulira.workers=0"),
    ({"ulira.shadows": 4, "ulira.workers": 999}, "ulira.workers=999"),
])
def test_bad_ulira_settings_are_refused_before_the_run_directory(tmp_path, setting, message):
    with pytest.raises(MnemoscopeError, match=message):
        U.run(tmp_path / "run", {**MICRO, **setting}, log=lambda m: None)
    assert not (tmp_path / "run").exists()


def test_shadows_that_do_not_fit_in_memory_are_refused_before_the_run_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(ulira, "available_bytes", lambda device: 1024)
    with pytest.raises(MnemoscopeError, match=r"ulira.shadows=4 with ulira.workers=1: .* lower ulira.workers"):
        U.run(tmp_path / "run", {**MICRO, "ulira.shadows": 4}, log=lambda m: None)
    assert not (tmp_path / "run").exists()
    U.run(tmp_path / "off", {**MICRO, "unlearn.methods": ["ga"], "sweep.steps": [1]}, log=lambda m: None)  # off: unchecked


def test_parallel_shadows_give_the_serial_audit(tmp_path):
    """ulira.workers=2 trains and unlearns the shadows in two processes: the same numbers."""
    runs = {w: U.run(tmp_path / f"w{w}", {**MICRO, "unlearn.methods": ["ga"], "ulira.shadows": 4, "ulira.workers": w},
                     log=lambda m: None) for w in (1, 2)}
    ulira_keys = [{k: v for k, v in json.loads((out / "metrics.json").read_text()).items() if k.startswith("ulira/")}
                  for out in runs.values()]
    assert len(ulira_keys[0]) > 5 and ulira_keys[0] == ulira_keys[1]


def test_ulira_micro_run(tmp_path):
    out = U.run(tmp_path / "run", {**MICRO, "ulira.shadows": 4, "ulira.methods": ["ga"]}, log=lambda m: None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ulira/shadows"] == 4
    for key in ("online/auc", "online/auc/ci_lo", "online/accuracy", "offline/auc"):
        value = metrics[f"ulira/ga/{key}"]
        assert value is not None and 0.0 <= value <= 1.0, key
    assert not any(k.startswith("ulira/npo_gd/") for k in metrics)  # not asked for
    table = pd.read_parquet(out / "ulira.parquet")
    assert set(table["method"]) == {"ga"} and set(table["label"]) == {0, 1}
    assert np.isfinite(table["score/online"]).all()
    for j in range(4):
        assert (out / "ulira" / "ga" / f"shadow-{j:02d}" / "done.json").exists()
        assert (out / "train" / f"ulira-shadow-{j:02d}" / "final" / "model.safetensors").exists()
    html = (out / "report.html").read_text()
    assert "U-LiRA" in html


def test_per_example_ci_resamples_people():
    """Texts of one person share an offset: the people CI (what the audit reports) is the cluster
    bootstrap's, and wider than a CI over texts."""
    from mnemoscope.metrics.roc import bootstrap_auc_ci

    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(12), 5)
    labels = (people % 2 == 0).astype(int)
    online = rng.normal(size=12)[people] + 0.5 * labels + 0.1 * rng.normal(size=people.size)
    by_person = ulira.per_example_metrics(labels, online, -online, n_boot=300, seed=0, groups=people)
    by_text = ulira.per_example_metrics(labels, online, -online, n_boot=300, seed=0)
    lo, hi = bootstrap_auc_ci(labels, online, n_boot=300, seed=0, groups=people)
    assert (by_person["ulira/online/auc/ci_lo"], by_person["ulira/online/auc/ci_hi"]) == pytest.approx((lo, hi))
    width = lambda m: m["ulira/online/auc/ci_hi"] - m["ulira/online/auc/ci_lo"]  # noqa: E731
    assert width(by_person) > width(by_text)
