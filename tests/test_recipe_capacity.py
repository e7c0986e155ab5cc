"""The capacity recipe end to end at micro size, and its bit counting against hand-computed numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.recipes import get_recipe
from mnemoscope.recipes.capacity import recipe as capacity

MICRO = {
    "model.hidden": 64, "model.layers": 2, "model.intermediate": 172, "model.vocab_size": 1024,
    "world.per_group": 12, "world.exposures": [0, 3, 100], "train.lr": 3e-3, "train.seq_len": 64,
    "analysis.n_boot": 50,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("cap") / "run"
    capacity.run(out, dict(MICRO), log=lambda *_: None)
    return out


def test_run_directory(finished):
    for name in ("config.yaml", "manifest.json", "metrics.json", "samples.parquet", "curves.parquet",
                 "probe_curves.parquet", "bits_curve.parquet", "report.html"):
        assert (finished / name).is_file(), name
    samples = pd.read_parquet(finished / "samples.parquet")
    assert sorted(samples["exposures"].unique()) == [0, 3, 100] and len(samples) == 36
    html = (finished / "report.html").read_text()
    assert "Knowledge capacity" in html and "(failed)" not in html
    assert "bits per non-embedding parameter [95% CI]" in html and "share of the possible bits stored" in html
    assert get_recipe("capacity") is capacity


def test_bits_are_sane_and_grow_with_exposures(finished):
    m = json.loads((finished / "metrics.json").read_text())
    assert all(m[f"capacity/bits@exposures={e}"] >= 0 for e in (0, 3, 100))
    assert math.isfinite(m["capacity/bits_per_parameter"]) and m["capacity/bits_per_parameter"] >= 0
    assert m["capacity/bits@exposures=100"] > m["capacity/bits@exposures=3"]
    assert m["capacity/person_bits/mean@exposures=100"] > m["capacity/person_bits/mean@exposures=0"]
    assert m["capacity/bits"] == pytest.approx(m["capacity/bits@exposures=3"] + m["capacity/bits@exposures=100"])
    assert m["capacity/fit/slope_per_decade/ci_lo"] <= m["capacity/fit/slope_per_decade"] <= m["capacity/fit/slope_per_decade/ci_hi"]
    assert m["capacity/bits_per_parameter/ci_lo"] <= m["capacity/bits_per_parameter"] <= m["capacity/bits_per_parameter/ci_hi"]
    emb = m["model/embedding_parameters"]  # the tied vocabulary × hidden matrix, counted once
    assert emb % 64 == 0 and 0 < emb < m["model/parameters"]
    assert m["capacity/bits_per_nonembedding_parameter"] == pytest.approx(m["capacity/bits"] / (m["model/parameters"] - emb))
    assert 0 < m["capacity/bits_share"] < 1


def test_exposure_counts_are_exact():
    world, groups = capacity.make_groups(2, [0, 1, 5], 3, seed=0)
    copies = capacity.biography_copies(world, groups)
    assert len(copies) == 2 * (0 + 1 + 5)
    docs = {d["text"]: d for d in world.documents if d["kind"] == "document"}
    five = [pid for pid, e in groups.items() if e == 5]
    versions = sorted(docs[c]["version"] for c in copies if docs[c]["person_id"] == five[0])
    assert versions == [0, 0, 1, 2, 3]  # exposure k = version k mod (n_paraphrases + 1)
    with pytest.raises(MnemoscopeError, match="exposures"):
        capacity.make_groups(2, [3, 1], 3, seed=0)


def test_person_bits_by_hand():
    frame = pd.DataFrame({"person_id": ["a", "a", "b", "b"], "exposures": [1, 1, 1, 1],
                          "attribute": ["x", "y", "x", "y"], "loss_bits": [1.0, 5.0, 3.0, 0.5]})
    out = capacity.person_bits(frame, {"x": 4, "y": 8}).set_index("person_id")
    # a: max(0, 2 − 1) + max(0, 3 − 5) = 1;  b: max(0, 2 − 3) + max(0, 3 − 0.5) = 2.5
    assert out.loc["a", "bits"] == pytest.approx(1.0) and out.loc["b", "bits"] == pytest.approx(2.5)
    metrics, _ = capacity.analyze(frame, {"x": 4, "y": 8}, n_params=10, n_boot=10, seed=0)
    # group: mean losses x = 2, y = 2.75 → 2·(max(0, 2 − 2) + (3 − 2.75)) = 0.5
    assert metrics["capacity/bits@exposures=1"] == pytest.approx(0.5)
    assert metrics["capacity/bits_per_parameter"] == pytest.approx(0.05)
    assert np.isfinite(metrics["capacity/person_bits/mean/ci_hi@exposures=1"])


def test_the_claim_is_computed_and_opens_the_report(finished):
    from tests.helpers import claim_effects

    effects = claim_effects("capacity", finished)
    assert all(v > 0 for v in effects.values())  # more exposures, more bits: the claim holds


def test_bits_per_parameter_interval_by_hand():
    """The ratio's interval resamples people within a group and recomputes the group's bits from the
    resampled mean losses, so its replicates are the bits of {a, a}, {b, b} and {a, b} — not of person bits."""
    frame = pd.DataFrame({"person_id": ["a", "a", "b", "b"], "exposures": [1, 1, 1, 1],
                          "attribute": ["x", "y", "x", "y"], "loss_bits": [1.0, 5.0, 3.0, 0.5]})
    pools = {"x": 4, "y": 8}
    out = capacity.ratio_interval(frame, pools, n_params=10, n_embedding=5, n_boot=400,
                                  rng=np.random.default_rng(0))
    # bits: {a, b} 0.5 (half the draws), {a, a} 2·(2 − 1) = 2, {b, b} 2·(3 − 0.5) = 5 → interval [0.5, 5] / 10
    assert out["capacity/bits_per_parameter"] == pytest.approx(0.05)
    assert (out["capacity/bits_per_parameter/ci_lo"], out["capacity/bits_per_parameter/ci_hi"]) == pytest.approx((0.05, 0.5))
    assert out["capacity/bits_per_nonembedding_parameter"] == pytest.approx(0.1)
    assert out["capacity/bits_per_nonembedding_parameter/ci_hi"] == pytest.approx(1.0)
    # possible bits: 2 people × (log2 4 + log2 8) = 10, of which 0.5 stored
    assert out["capacity/possible_bits"] == pytest.approx(10.0) and out["capacity/bits_share"] == pytest.approx(0.05)
    # a never-trained group does not count, and the same people in one group give no spread at all
    twins = frame.assign(loss_bits=[1.0, 5.0, 1.0, 5.0])  # a and b hold the same: x 2 − 1 = 1 bit each
    control = frame.assign(exposures=0, person_id=frame["person_id"] + "0")
    flat = capacity.ratio_interval(pd.concat([twins, control]), pools, 10, 0, 50, np.random.default_rng(0))
    assert flat["capacity/bits_per_parameter/ci_lo"] == flat["capacity/bits_per_parameter/ci_hi"] == pytest.approx(0.2)
    assert "capacity/bits_per_nonembedding_parameter" not in flat
    assert capacity.ratio_interval(control, pools, 10, 0, 50, np.random.default_rng(0)) == {}


def test_the_powered_scale_is_the_design_written_in_the_docs(tmp_path, capsys):
    """`--set scale=powered` is docs/recipes.md's powered capacity design (hidden 48 × 2 layers, vocabulary
    1,024, 300 people at 100 exposures against 300 never trained, lr 1e-2) and its wider model's settings; the user's own settings still
    win; an unknown scale is refused before anything is written."""
    from pathlib import Path

    from mnemoscope.cli import main
    from mnemoscope.recipes.common import resolve_scaled

    cfg = resolve_scaled(capacity.DEFAULTS, capacity.SCALES, {"scale": "powered"})
    m, w, t = cfg["model"], cfg["world"], cfg["train"]
    assert (m["hidden"], m["layers"], m["heads"], m["intermediate"], m["vocab_size"]) == (48, 2, 4, 128, 1024)
    assert (w["per_group"], w["exposures"], t["lr"], t["warmup"]) == (300, [0, 100], 1e-2, 50)
    assert (t["batch_size"], t["seq_len"]) == (8, 128) and w["attributes"] == capacity.DEFAULTS["world"]["attributes"]
    docs = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text(encoding="utf-8")
    assert ("--set model.hidden=48 --set model.layers=2 --set model.heads=4 --set model.intermediate=128 "
            "--set model.vocab_size=1024 --set world.per_group=300 --set 'world.exposures=[0,100]' "
            "--set train.lr=1e-2 --set train.warmup=50") in " ".join(docs.split())
    assert "runs/capacity-powered-h48" in docs and "--set model.hidden=64 --set model.intermediate=172" in docs
    mine = resolve_scaled(capacity.DEFAULTS, capacity.SCALES, {"scale": "powered", "world.per_group": 5})
    assert mine["world"]["per_group"] == 5 and mine["model"]["hidden"] == 48
    assert main(["run", "capacity", "--out", str(tmp_path / "x"), "--set", "scale=huge"]) == 2
    assert "unknown scale 'huge'" in capsys.readouterr().err and not (tmp_path / "x").exists()
