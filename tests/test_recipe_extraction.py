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

    from scipy.stats import spearmanr

    effects = claim_effects("extraction", finished)
    # each effect recomputed from the per-item files
    samples = pd.read_parquet(finished / "samples.parquet")
    d64 = samples[(samples["dose"] == 64) & samples["approx/exact"].notna()]
    assert effects["exact extraction at dose 64, unfiltered − MemFree"] == pytest.approx(
        d64["approx/exact"].mean() - d64["approx/exact@filter=memfree"].mean())
    prov = pd.read_parquet(finished / "provenance.parquet")
    m = json.loads((finished / "metrics.json").read_text())
    for suspect, label in (("derived", "provenance p-value, derived model"),
                           ("independent", "provenance p-value, independent model")):
        part = prov[prov["suspect"] == suspect]
        rho, p_two = spearmanr(-part["nll"], part["position"])
        assert m[f"provenance/rho@suspect={suspect}"] == pytest.approx(rho, abs=1e-9)
        assert m[f"provenance/p_value_two_sided@suspect={suspect}"] == pytest.approx(p_two, rel=1e-6)
        # the one-sided permutation p (99 permutations here) against the t approximation's one-sided p
        p_one = spearmanr(-part["nll"], part["position"], alternative="greater").pvalue
        assert abs(effects[label] - p_one) < 0.2, (suspect, effects[label], p_one)


def test_acr_values_follow_from_the_rows(finished):
    """The ACR rates per dose are the rows' means, and no search stopped below its cap unnoticed:
    each row either found a prompt, ran out of budget, or tried the cap itself."""
    acr = pd.read_parquet(finished / "acr.parquet")
    m = json.loads((finished / "metrics.json").read_text())
    for dose, part in acr.groupby("dose"):
        assert m[f"acr/memorized/rate@dose={dose}"] == pytest.approx(part["memorized"].mean())
        found = part["acr"].dropna()
        assert m[f"acr/ratio/mean@dose={dose}"] == (pytest.approx(found.mean()) if len(found) else None)
    for _, row in acr.iterrows():
        tried = [n for n, _ in eval(row["attempts"])]
        found = pd.notna(row["prompt_tokens"])
        assert row["status"] == "budget" or found or max(tried) == row["max_prompt_tokens"], row.to_dict()
        if found:
            assert row["acr"] == pytest.approx(row["target_tokens"] / row["prompt_tokens"])


def test_the_powered_scale_is_the_design_written_in_the_docs(tmp_path, capsys):
    """`--set scale=powered` is docs/recipes.md's powered provenance design (≈ 10,500 documents in
    one pass); the user's own settings still win; an unknown scale is refused before anything is written."""
    from pathlib import Path

    from mnemoscope.recipes.extraction import recipe as extraction
    from mnemoscope.recipes.common import resolve_scaled

    cfg = resolve_scaled(extraction.DEFAULTS, extraction.SCALES, {"scale": "powered"})
    assert cfg["corpus"]["n_docs"] == 11300 and cfg["train"]["steps"] == 1410
    assert cfg["derive"] == extraction.DEFAULTS["derive"]  # the fine-tune is unchanged
    docs = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text(encoding="utf-8")
    assert "--set corpus.n_docs=11300 --set train.steps=1410" in docs
    mine = resolve_scaled(extraction.DEFAULTS, extraction.SCALES, {"scale": "powered", "train.steps": 7})
    assert mine["train"]["steps"] == 7
    assert main(["run", "extraction", "--out", str(tmp_path / "x"), "--set", "scale=huge"]) == 2
    assert "unknown scale 'huge'" in capsys.readouterr().err and not (tmp_path / "x").exists()
