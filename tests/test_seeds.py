"""`mnemoscope run RECIPE --seeds ...`: seed parsing, and one small real quickstart under two
seeds (a run directory each, the comparison in OUT, resume after an interruption)."""

from __future__ import annotations

import json
import math

import pytest

from mnemoscope import runs as runlib
from mnemoscope.cli import main
from mnemoscope.errors import MnemoscopeError
from mnemoscope.recipes.seeds import parse_seeds

TINY = ["model.size=micro", "model.vocab_size=512", "corpus.n_docs=200", "canaries.per_dose=2",
        "canaries.n_controls=4", "canaries.doses=[0, 1, 8]", "train.steps=30", "train.checkpoint_every=10",
        "audit.n_boot=20"]


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("3, 0-2") == [3, 0, 1, 2]
    for bad, message in (("1", "one seed"), ("0,0", "twice"), ("0-1,1", "twice"), ("a,b", "whole numbers"),
                         ("2-0", "whole numbers"), ("", "whole numbers")):
        with pytest.raises(MnemoscopeError, match=message):
            parse_seeds(bad)


def _run(out, capsys):
    args = ["run", "quickstart", "--seeds", "0,1", "--out", str(out)]
    for item in TINY:
        args += ["--set", item]
    code = main(args)
    return code, capsys.readouterr().out


@pytest.mark.slow
def test_two_seeds_end_to_end_with_resume(tmp_path, capsys):
    out = tmp_path / "qs-seeds"
    code, printed = _run(out, capsys)
    assert code == 0
    runs = [out / "seed=0", out / "seed=1"]
    assert [runlib.status_of(p) for p in runs] == ["complete", "complete"]
    metrics = [json.loads((p / "metrics.json").read_text()) for p in runs]
    manifests = [json.loads((p / "manifest.json").read_text()) for p in runs]
    assert [m["seed"] for m in manifests] == [0, 1]
    assert metrics[0]["train/final_loss"] != metrics[1]["train/final_loss"]  # the seed reached the recipe
    assert manifests[0]["provenance"]["config_sha256"] != manifests[1]["provenance"]["config_sha256"]

    summary = json.loads((out / "comparison.json").read_text())
    assert summary["config_keys"] == ["seed"] and len(summary["runs"]) == 2
    row = next(r for r in summary["spread"] if r["metric"] == "train/final_loss")
    a, b = (m["train/final_loss"] for m in metrics)
    assert row["n"] == 2 and row["mean"] == pytest.approx((a + b) / 2)
    assert row["sd"] == pytest.approx(abs(a - b) / math.sqrt(2))  # sample sd of two values
    assert len(summary["spread"]) == len(set(metrics[0]) | set(metrics[1]))  # every metric, not just headlines
    page = (out / "comparison.html").read_text()
    assert "Spread across seeds" in page and 'alt="quickstart comparison plots"' in page
    assert "| all runs | mia/min_k_pp/auc | 2 |" in printed and f"comparison: {out / 'comparison.html'}" in printed
    assert (out / "spread.csv").read_text().startswith("group,metric,n,mean,sd,min,max\n")

    # seed 1 stopped before its end (no manifest): listed as interrupted, and the same command resumes it
    (runs[1] / "manifest.json").unlink()
    assert main(["runs", str(out), "--format", "json", "--no-index"]) == 0
    listed = {r["run"]: r["status"] for r in json.loads(capsys.readouterr().out)}
    assert listed == {"seed=0": "complete", "seed=1": "interrupted"}
    code, _ = _run(out, capsys)
    assert code == 0 and runlib.status_of(runs[1]) == "complete"
    assert json.loads((runs[1] / "metrics.json").read_text()) == metrics[1]  # resumed to the same numbers
