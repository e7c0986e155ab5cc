"""The mechanisms recipe end to end at micro size, its task and batches, and the benchmark's smoke run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.tiny import train_tokenizer
from mnemoscope.recipes import get_recipe
from mnemoscope.recipes.mechanisms import recipe

MICRO = {
    "model.hidden": 32, "model.layers": 2, "model.heads": 2, "model.intermediate": 64,
    "task.exceptions": 8, "task.n_compute": 8, "train.steps": 30, "train.batch_size": 16, "train.warmup": 5,
    "train.checkpoint_every": 15, "mechanisms.alphas": [-0.5, 0.0, 0.5], "mechanisms.folds": 2,
    "analysis.n_boot": 20,
}


# enough training (≈ 40 s at one thread) for the model to answer every held-out item right, so the
# steering effects have a direction to check
TRAINED = {**MICRO, "model.hidden": 48, "train.steps": 300, "train.batch_size": 32, "train.warmup": 20,
           "train.checkpoint_every": 150, "mechanisms.alphas": [-1.0, 0.0, 1.0], "mechanisms.scales": [-1.0, 0.0, 1.0]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("mech") / "run"
    recipe.run(out, dict(TRAINED), log=lambda *_: None)
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
    assert m["mechanisms/probe/auc@layer=-1"] == 1.0  # the last prompt token is the marker itself
    assert set(sweep["layer"]) == {-1, 0, 1} and set(sweep["set"]) == {"compute", "recall"}
    assert set(sweep["direction"]) == {"direction", "random"} and set(sweep["alpha"]) == {-1.0, 0.0, 1.0}
    assert set(sweep["intervention"]) == {"add", "scale"} and len(sweep) == 2 * 3 * 2 * 3 * 2  # ×sets×layers×D×grid
    assert 0.0 <= m["mechanisms/best_layer/auc"] <= 1.0 and m["mechanisms/best_layer"] in (0.0, 1.0)
    assert "mechanisms/scale/shift@set=recall,direction=random" in m
    assert sweep["alternative_rate"].notna().all()  # recall: the rule's answer; compute (exceptions with "="): memory
    items = pd.read_parquet(finished / "mechanisms" / "items.parquet")
    assert items["prompt"].str.endswith(":").sum() == 8 and items["prompt"].str.endswith("=").sum() == 16
    for key in ("mechanisms/recipe/to_rule", "mechanisms/recipe/to_rule@direction=random",
                "mechanisms/recipe/to_memory", "mechanisms/recipe/to_memory@direction=random",
                "mechanisms/recipe/accuracy@set=recall", "mechanisms/recipe/alternative_rate@set=recall",
                "mechanisms/recipe/to_rule@intervention=scale", "mechanisms/recipe/to_memory@intervention=scale,direction=random"):
        assert 0.0 <= m[key] <= 1.0, key
    html = (finished / "report.html").read_text()
    assert "Mechanisms: a direction in the residual stream" in html and "(failed)" not in html
    assert html.count("<img") >= 5  # probe, PCA, sweep (ours), heatmap, sweep (the paper's)
    assert "the paper&#39;s (scale everywhere)" in html and "chosen by the k-fold AUC within the fit half" in html
    assert get_recipe("mechanisms") is recipe


def test_without_a_marker_the_embeddings_cannot_separate(tmp_path):
    out = recipe.run(tmp_path / "run", {**MICRO, "task.recall_marker": "", "train.steps": 10}, log=lambda *_: None)
    m = json.loads((out / "metrics.json").read_text())
    # every prompt ends with "=", so the embeddings at the last token are one vector: no direction there
    assert m["mechanisms/probe/auc@layer=-1"] is None
    notes = json.loads((out / "notes.json").read_text())
    assert "not steered" in notes["mechanisms/direction@layer=-1"]
    items = pd.read_parquet(out / "mechanisms" / "items.parquet")
    assert len(items) == 16 and items["prompt"].str.endswith("=").all()
    assert "mechanisms/recipe/to_memory" not in m  # no compute prompt has a memorised alternative


def test_resume_reuses_the_training(finished):
    before = json.loads((finished / "metrics.json").read_text())
    recipe.run(finished, dict(TRAINED), log=lambda *_: None)
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
    texts += [recipe.line(w, a, ":") for w, a in exceptions.items()]
    tok = train_tokenizer(texts, 300)
    data = recipe.TaskBatches(tok, task, exceptions, set(compute), batch_size=64, seed=0)
    b = data.batch(5)
    assert np.array_equal(b["input_ids"], data.batch(5)["input_ids"])  # a resumed run sees the same rows
    assert b["input_ids"].shape == (64, data.seq_len)
    blocked = {tuple(tok(recipe.prompt(w), add_special_tokens=False)["input_ids"]) for w in list(compute) + list(exceptions)}
    marked = {tuple(tok(recipe.prompt(w, ":"), add_special_tokens=False)["input_ids"]): a for w, a in exceptions.items()}
    kinds = set()
    for row, labels in zip(b["input_ids"], b["labels"]):
        start = int(np.argmax(labels != -100))
        head = tuple(row[:start])
        assert head not in blocked  # never a held-out string, never an exception asked with "="
        kinds.add(head in marked)
        answer = tok.decode(row[start:][labels[start:] != -100], skip_special_tokens=True).replace(" ", "")
        assert answer == (marked[head] if head in marked else recipe.rule(tok.decode(head)[:-1].replace(" ", ""), 1))
        assert labels[(labels != -100).nonzero()[0][-1]] == tok.eos_token_id
    assert kinds == {True, False}
    with pytest.raises(MnemoscopeError, match="shift"):
        recipe.make_task(dict(task, shift=26), 0)
    with pytest.raises(MnemoscopeError, match="exception_share"):
        recipe.make_task(dict(task, exception_share=1.0), 0)
    with pytest.raises(MnemoscopeError, match="recall_marker"):
        recipe.TaskBatches(tok, dict(task, recall_marker="a b"), exceptions, set(compute), 4, 0)


def test_moves_by_hand():
    rows = []
    for layer in (0, 1):
        for alpha in (-0.5, 0.0, 0.5, 1.0):
            for kind in ("direction", "random"):
                to_rule = {(1, 0.5, "direction"): 0.6, (1, 0.5, "random"): 0.1}.get((layer, alpha, kind), 0.2)
                to_memory = {(0, -0.5, "direction"): 0.7, (0, -0.5, "random"): 0.05}.get((layer, alpha, kind), 0.0)
                rows.append({"set": "recall", "layer": layer, "alpha": alpha, "direction": kind,
                             "accuracy": 1 - to_rule, "alternative_rate": to_rule})
                rows.append({"set": "compute", "layer": layer, "alpha": alpha, "direction": kind,
                             "accuracy": 1 - to_memory, "alternative_rate": to_memory})
    out = recipe.moves(pd.DataFrame(rows))  # a sweep without an intervention column: ours
    assert out["mechanisms/recipe/to_rule"] == 0.6 and out["mechanisms/recipe/to_rule@direction=random"] == 0.1
    assert out["mechanisms/recipe/to_rule/random_best"] == 0.2  # the random direction's own best cell (α > 0)
    assert out["mechanisms/recipe/to_memory/random_best"] == 0.05
    assert out["mechanisms/recipe/to_rule/layer"] == 1 and out["mechanisms/recipe/to_rule/alpha"] == 0.5
    assert out["mechanisms/recipe/to_rule/kept"] == pytest.approx(0.4)
    assert out["mechanisms/recipe/to_memory"] == 0.7 and out["mechanisms/recipe/to_memory@direction=random"] == 0.05
    assert out["mechanisms/recipe/to_memory/layer"] == 0 and out["mechanisms/recipe/to_memory/alpha"] == -0.5
    # the paper's intervention: the best cell over every s ≠ 0, either sign
    scale = pd.DataFrame(rows).assign(intervention="scale")
    scale.loc[(scale["set"] == "compute") & (scale["layer"] == 1) & (scale["alpha"] == 1.0)
              & (scale["direction"] == "direction"), "alternative_rate"] = 0.9
    both = recipe.moves(pd.concat([pd.DataFrame(rows).assign(intervention="add"), scale], ignore_index=True))
    assert both["mechanisms/recipe/to_memory"] == 0.7  # ours: still only α < 0
    assert both["mechanisms/recipe/to_memory@intervention=scale"] == 0.9
    assert both["mechanisms/recipe/to_memory/alpha@intervention=scale"] == 1.0
    assert both["mechanisms/recipe/to_memory/layer@intervention=scale"] == 1
    assert both["mechanisms/recipe/to_memory@intervention=scale,direction=random"] == 0.0
    assert both["mechanisms/recipe/to_rule@intervention=scale"] == 0.6


def _strongest_move(sweep: pd.DataFrame, intervention: str, set_name: str, sign: int) -> float:
    """Independently of ``moves``: the fitted direction's largest alternative rate over the cells on
    the predicted side, minus the random direction's rate at that cell."""
    cells = {}
    for r in sweep.to_dict("records"):
        on_side = r["alpha"] * sign > 0 if intervention == "add" else r["alpha"] != 0
        if r["intervention"] == intervention and r["set"] == set_name and on_side:
            cells.setdefault((r["layer"], r["alpha"]), {})[r["direction"]] = r["alternative_rate"]
    best = max(cells, key=lambda c: (cells[c]["direction"], -list(cells).index(c)))
    return cells[best]["direction"] - cells[best]["random"]


def test_the_claim_is_computed_and_opens_the_report(finished):
    from tests.helpers import claim_effects

    effects = list(claim_effects("mechanisms", finished).values())
    sweep = pd.read_parquet(finished / "mechanisms" / "sweep.parquet")
    want = [_strongest_move(sweep, "add", "recall", 1), _strongest_move(sweep, "add", "compute", -1),
            _strongest_move(sweep, "scale", "recall", 0), _strongest_move(sweep, "scale", "compute", 0)]
    assert effects == pytest.approx(want)
    # at this size the model answers every held-out item right, and adding the direction (ours) moves
    # most of them to the other answer while the random direction moves none; the paper's scaling
    # moves exceptions to the rule (s = −1: the mode component removed at every layer)
    ours_rule, ours_memory, paper_rule, _ = effects
    assert ours_rule >= 0.5 and ours_memory >= 0.5 and paper_rule > 0


def test_the_report_section_reads_a_run_written_before_the_papers_intervention(finished, tmp_path):
    """A run directory from before this change: the sweep has no intervention column (ours only),
    the probe table no fit-half AUC, the metrics no held-out best-layer AUC."""
    import shutil

    from mnemoscope.report.html import RunData
    from mnemoscope.report.sections.mechanisms import section_mechanisms

    old = tmp_path / "old"
    shutil.copytree(finished / "mechanisms", old / "mechanisms")
    sweep = pd.read_parquet(old / "mechanisms" / "sweep.parquet")
    sweep[sweep["intervention"] == "add"].drop(columns="intervention").to_parquet(old / "mechanisms" / "sweep.parquet")
    pd.read_parquet(old / "mechanisms" / "probe.parquet").drop(columns="fit_auc").to_parquet(
        old / "mechanisms" / "probe.parquet")
    m = json.loads((finished / "metrics.json").read_text())
    m = {k: v for k, v in m.items() if "intervention=scale" not in k and "best_layer/auc" not in k}
    html = str(section_mechanisms(RunData(old, m, pd.DataFrame())))
    assert "Steering along the direction" in html and "the paper&#39;s" not in html
    assert html.count("<img") == 4 and "fit-half AUC" in html  # the column is there, empty
