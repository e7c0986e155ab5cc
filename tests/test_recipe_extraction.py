"""The extraction recipe end to end at micro size: run directory, report section, CLI summary."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mnemoscope.cli import main

SMALL = [
    "model.size=micro", "model.vocab_size=1024", "model.layers=2", "corpus.n_docs=500", "train.steps=60",
    "train.checkpoint_every=20", "derive.steps=10", "derive.n_docs=100", "untargeted.n_samples=8",
    "untargeted.max_new_tokens=16", "acr.steps=2", "acr.budget_steps=4", "acr.batch_size=8",
    "provenance.n_perm=99", "audit.n_boot=20", "canaries.per_dose=2", "canaries.n_controls=4",
    "canaries.doses=[0, 4, 64]", "attacks.n_neighbours=2", "attacks.samia_samples=2",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("ex") / "run"
    args = ["run", "extraction", "--out", str(out)]
    for item in SMALL:
        args += ["--set", item]
    assert main(args) == 0
    return out


def test_run_directory_and_keys(finished, capsys):
    for name in ("metrics.json", "samples.parquet", "untargeted_spans.parquet", "acr.parquet", "provenance.parquet",
                 "notes.json", "report.html", "data/order.jsonl", "data/corpus.jsonl"):
        assert (finished / name).exists(), name
    m = json.loads((finished / "metrics.json").read_text())
    for d in (0, 4, 64):
        for key in ("approx/exact/rate", "approx/memorized/rate", "approx/edit_similarity/mean", "acr/memorized/rate"):
            assert f"{key}@dose={d}" in m and f"approx/exact/rate@dose={d},filter=memfree" in m
    for suspect in ("original", "derived", "independent"):
        assert 0 < m[f"provenance/p_value@suspect={suspect}"] <= 1
    assert "untargeted/spans/unique@source=dose64" in m and "untargeted/spans/unique@source=background" in m
    assert "forecast/memorized/rate" in m
    assert {"mia/gradnorm/auc@dose=64", "mia/recall/auc@dose=64", "mia/dcpdd/auc@dose=64"} <= set(m)
    samples = pd.read_parquet(finished / "samples.parquet")
    assert {"score/neighbourhood", "score/samia", "approx/bleu", "approx/bleu@filter=memfree"} <= set(samples.columns)
    html = (finished / "report.html").read_text()
    assert "Extraction beyond prefixes" in html and "could not be drawn" not in html


def test_rerun_resumes_and_summary(finished, capsys):
    args = ["run", "extraction", "--out", str(finished)]
    for item in SMALL:
        args += ["--set", item]
    assert main(args) == 0  # the three models are reused, the measurements rerun
    out = capsys.readouterr().out
    assert "already complete" in out and "provenance derived" in out


def test_the_claim_is_computed_and_opens_the_report(finished):
    from tests.helpers import claim_effects

    effects = claim_effects("extraction", finished)
    assert effects
