"""The mechanisms recipe end to end at micro size, its task and batches, and the benchmark's smoke run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.tiny import train_tokenizer
from mnemoscope.recipes import get_recipe
from mnemoscope.recipes import mechanisms as recipe

MICRO = {
    "model.hidden": 32, "model.layers": 2, "model.heads": 2, "model.intermediate": 64,
    "task.exceptions": 8, "task.n_compute": 8, "train.steps": 30, "train.batch_size": 16, "train.warmup": 5,
    "train.checkpoint_every": 15, "mechanisms.alphas": [-0.5, 0.0, 0.5], "mechanisms.folds": 2,
    "analysis.n_boot": 20,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("mech") / "run"
    recipe.run(out, dict(MICRO), log=lambda *_: None)
    return out


def test_run_directory_and_report(finished):
    for name in ("config.yaml", "manifest.json", "metrics.json", "samples.parquet", "curves.parquet", "report.html",
                 "mechanisms/probe.parquet", "mechanisms/sweep.parquet", "mechanisms/ablation.parquet",
                 "mechanisms/items.parquet", "mechanisms/activations.safetensors", "mechanisms/directions.safetensors"):
        assert (finished / name).is_file(), name
    m = json.loads((finished / "metrics.json").read_text())
    for layer in (0, 1):
        assert 0.0 <= m[f"mechanisms/probe/auc@layer={layer}"] <= 1.0
    sweep = pd.read_parquet(finished / "mechanisms" / "sweep.parquet")
    # every prompt ends with "=", so the embeddings at the last token are one vector: no direction there
    assert m["mechanisms/probe/auc@layer=-1"] is None
    notes = json.loads((finished / "notes.json").read_text())
    assert "not steered" in notes["mechanisms/direction@layer=-1"]
    assert set(sweep["layer"]) == {0, 1} and set(sweep["set"]) == {"compute", "recall"}
    assert set(sweep["direction"]) == {"direction", "random"} and set(sweep["alpha"]) == {-0.5, 0.0, 0.5}
    assert sweep.loc[sweep["set"] == "compute", "alternative_rate"].isna().all()
    assert sweep.loc[sweep["set"] == "recall", "alternative_rate"].notna().all()
    for key in ("mechanisms/recipe/flip_rate", "mechanisms/recipe/flip_rate@direction=random",
                "mechanisms/recipe/accuracy@set=recall", "mechanisms/recipe/rule_rate@set=recall"):
        assert 0.0 <= m[key] <= 1.0, key
    html = (finished / "report.html").read_text()
    assert "Mechanisms: a direction in the residual stream" in html and "(failed)" not in html
    assert html.count("<img") >= 4  # probe, PCA, sweep, heatmap
    assert get_recipe("mechanisms") is recipe


def test_resume_reuses_the_training(finished):
    before = json.loads((finished / "metrics.json").read_text())
    recipe.run(finished, dict(MICRO), log=lambda *_: None)
    after = json.loads((finished / "metrics.json").read_text())
    assert after["train/final_loss"] == before["train/final_loss"]
    assert after["mechanisms/probe/auc@layer=1"] == before["mechanisms/probe/auc@layer=1"]


def test_task_and_batches():
    task = dict(recipe.DEFAULTS["task"], exceptions=20, n_compute=10)
    exceptions, compute = recipe.make_task(task, seed=3)
    assert len(exceptions) == 20 and len(compute) == 10 and not set(compute) & set(exceptions)
    for word, answer in exceptions.items():
        assert all(a != r for a, r in zip(answer, recipe.rule(word, 1)))  # unlike the rule in every letter
    assert recipe.rule("azby", 1) == "bacz"
    texts = [recipe.line(w, recipe.rule(w, 1)) for w in recipe.random_words(300, 4, 0)]
    tok = train_tokenizer(texts, 300)
    data = recipe.TaskBatches(tok, task, exceptions, set(compute), batch_size=32, seed=0)
    b = data.batch(5)
    assert np.array_equal(b["input_ids"], data.batch(5)["input_ids"])  # a resumed run sees the same rows
    assert b["input_ids"].shape == (32, data.seq_len)
    held_out = {tuple(tok(recipe.prompt(w), add_special_tokens=False)["input_ids"]) for w in compute}
    for row, labels in zip(b["input_ids"], b["labels"]):
        assert tuple(row[:data.prompt_len]) not in held_out
        assert (labels[:data.prompt_len] == -100).all() and labels[-1] == tok.eos_token_id
    with pytest.raises(MnemoscopeError, match="shift"):
        recipe.make_task(dict(task, shift=26), 0)
    with pytest.raises(MnemoscopeError, match="exception_share"):
        recipe.make_task(dict(task, exception_share=1.0), 0)


def test_flips_by_hand():
    rows = []
    for layer in (0, 1):
        for alpha in (0.0, 0.5, 1.0):
            for kind in ("direction", "random"):
                flip = {(1, 0.5, "direction"): 0.6, (1, 0.5, "random"): 0.1}.get((layer, alpha, kind), 0.2)
                rows.append({"set": "recall", "layer": layer, "alpha": alpha, "direction": kind,
                             "accuracy": 1 - flip, "alternative_rate": flip})
                rows.append({"set": "compute", "layer": layer, "alpha": alpha, "direction": kind,
                             "accuracy": 0.9, "alternative_rate": np.nan})
    out = recipe.flips(pd.DataFrame(rows))
    assert out["mechanisms/recipe/flip_rate"] == 0.6 and out["mechanisms/recipe/flip_rate@direction=random"] == 0.1
    assert out["mechanisms/recipe/flip/layer"] == 1 and out["mechanisms/recipe/flip/alpha"] == 0.5
    assert out["mechanisms/recipe/flip/memorised"] == pytest.approx(0.4)
    assert out["mechanisms/recipe/flip/compute_accuracy"] == 0.9


def test_benchmark_smoke():
    from benchmarks import mechanisms as bench

    ratios = bench.main(["--size", "micro", "--texts", "6", "--prompts", "3", "--new-tokens", "2",
                         "--min-tokens", "4", "--max-tokens", "12", "--repeats", "1"])
    assert set(ratios) == {"capture_over_body_forward", "capture_over_forward", "steered_over_plain_generate"}
    assert all(np.isfinite(v) and v > 0 for v in ratios.values())
