"""The reasoning recipe end to end at micro size, its answer-only batches and its LiMem arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mnemoscope.lab.tiny import train_tokenizer
from mnemoscope.probes.knights_knaves import (
    generate_puzzles,
    render_puzzle,
    render_solution,
)
from mnemoscope.recipes import get_recipe
from mnemoscope.recipes.reasoning import recipe as reasoning

MICRO = {
    "model.hidden": 64, "model.layers": 2, "model.intermediate": 172, "model.vocab_size": 512,
    "puzzles.n_people": [2], "puzzles.n_train": 16, "puzzles.n_unseen": 16, "train.epochs": 100,
    "train.lr": 5e-3, "train.warmup": 5, "analysis.n_boot": 50,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("kk") / "run"
    reasoning.run(out, dict(MICRO), log=lambda *_: None)
    return out


def test_run_directory(finished):
    for name in ("config.yaml", "manifest.json", "metrics.json", "samples.parquet", "curves.parquet",
                 "reasoning_curve.parquet", "probe_rows.parquet", "report.html"):
        assert (finished / name).is_file(), name
    samples = pd.read_parquet(finished / "samples.parquet")
    assert set(samples["phase"]) == {"before", "after"} and set(samples["split"]) == {"train", "unseen"}
    html = (finished / "report.html").read_text()
    assert "Memorization versus reasoning" in html and "(failed)" not in html
    assert get_recipe("reasoning") is reasoning


def test_fine_tuning_raises_training_accuracy_and_limem_is_computed(finished):
    m = json.loads((finished / "metrics.json").read_text())
    assert m["reasoning/accuracy@split=train,phase=after"] >= m["reasoning/accuracy@split=train,phase=before"]
    assert m["reasoning/accuracy@split=train,phase=after"] > 0.5
    for phase in ("before", "after"):
        assert 0.0 <= m[f"reasoning/limem/limem@phase={phase}"] <= 1.0
        for split in ("train", "perturbed", "unseen"):
            assert 0.0 <= m[f"reasoning/accuracy@split={split},phase={phase}"] <= 1.0
    cr = m["reasoning/limem/consistency_ratio@phase=after"]
    assert m["reasoning/limem/limem@phase=after"] == pytest.approx(
        m["reasoning/accuracy@split=train,phase=after"] * (1 - cr))
    curve = pd.read_parquet(finished / "reasoning_curve.parquet")
    assert curve["epoch"].tolist() == [0] + list(range(1, 11)) + list(range(20, 101, 10))


def test_limem_row_by_hand():
    train = pd.DataFrame({"correct": [True, True, True, False], "correct_perturbed": [True, False, False, True]})
    row = reasoning.limem_row(train)
    # Acc = 3/4; CR = |solved ∧ perturbed solved| / |solved| = 1/3; LiMem = 3/4 · 2/3 = 1/2
    assert row["acc_train"] == 0.75 and row["consistency_ratio"] == pytest.approx(1 / 3)
    assert row["limem"] == pytest.approx(0.5) and row["acc_perturbed"] == 0.5
    nothing = reasoning.limem_row(train.assign(correct=False))
    assert np.isnan(nothing["consistency_ratio"]) and nothing["limem"] == 0.0


def test_batches_put_loss_on_the_answer_only():
    puzzles = generate_puzzles(3, 2, seed=1)
    tok = train_tokenizer([reasoning.training_text(p, False) for p in puzzles], 300)
    data = reasoning.AnswerBatches(tok, puzzles, False, batch_size=2, seed=0)
    batch = data.batch(0)
    assert batch["input_ids"].shape == (2, data.seq_len) and data.steps_per_epoch == 2
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        kept = [int(t) for t, lab in zip(ids, labels) if lab != -100]
        assert kept[-1] == tok.eos_token_id
        assert tok.decode(kept[:-1]).strip() in {render_solution(p) for p in puzzles}
    # every puzzle once per epoch (3 puzzles, batch 2: the second step wraps around)
    served = {tuple(int(t) for t in r[:len(full)]) for step in (0, 1) for r in data.batch(step)["input_ids"]
              for full in data.rows if list(r[:len(full)]) == full}
    assert served == {tuple(full) for full in data.rows}


def test_unseen_puzzles_differ_from_training_ones():
    train, unseen = reasoning.make_puzzle_sets({"n_people": [2], "n_train": 10, "n_unseen": 10, "depth": 2,
                                                "width": 2}, seed=0)
    assert len(unseen) == 10 and not {render_puzzle(p) for p in train} & {render_puzzle(p) for p in unseen}


def test_the_claim_is_computed_and_opens_the_report(finished):
    from tests.helpers import claim_effects

    effects = claim_effects("reasoning", finished)
    assert effects["accuracy, training − perturbed puzzles"] > 0 and effects["LiMem after fine-tuning"] > 0
