"""The contamination lab end to end at micro size: run directory, keys by dose, report section, claim, summary."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mnemoscope.cli import main

SMALL = [
    "model.size=micro", "model.vocab_size=1024", "train.seq_len=256", "model.layers=2", "corpus.n_docs=300", "train.steps=60",
    "train.checkpoint_every=20", "benchmark.doses=[0, 16, 64]", "benchmark.singles=3", "benchmark.groups=2",
    "benchmark.group_size=4", "benchmark.n_reference=6", "contamination.order_permutations=5",
    "contamination.order_resamples=99", "contamination.max_new_tokens=6", "audit.n_boot=20",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("contam") / "run"
    args = ["run", "contamination", "--out", str(out)]
    for item in SMALL:
        args += ["--set", item]
    assert main(args) == 0
    return out


def test_run_directory_keys_and_report(finished, capsys):
    m = json.loads((finished / "metrics.json").read_text())
    for dose in (0, 16, 64):
        for signal in ("overlap", "membership", "guided"):
            assert f"contam/{signal}/detect@dose={dose}" in m
        assert 0 < m[f"contam/order/p_value@dose={dose}"] <= 1 and f"contam/order/power@dose={dose}" in m
    # the corpus is known exactly: overlap flags every planted item and no never-planted one
    assert m["contam/overlap/detect@dose=16"] == 1.0 and m["contam/overlap/detect@dose=0"] == 0.0
    samples = pd.read_parquet(finished / "samples.parquet")
    assert len(samples) == 3 * (3 + 2 * 4) and {"flag/guided", "flag/membership", "flags", "dose", "mode"} <= set(samples)
    order = pd.read_parquet(finished / "order.parquet")
    assert set(order["scope"]) == {"group", "dose"} and len(order[order["scope"] == "group"]) == 6
    html = (finished / "report.html").read_text()
    assert "Benchmark contamination" in html and "detection by dose" in html
    assert "could not be drawn" not in html


def test_the_claim_is_computed_and_the_summary_prints_by_dose(finished, capsys):
    from mnemoscope.recipes.contamination.recipe import summary
    from tests.helpers import claim_effects

    assert claim_effects("contamination", finished)
    text = summary(finished)
    assert "order power" in text and text.splitlines()[1].split()[0] == "0"
