"""Shadow-model LiRA in the lab: the inclusion plan, the memory refusal, the parallel shadows, the
pooled trials and gaps, and the quickstart end to end at micro size (LiRA separates members)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest

from mnemoscope.cli import main
from mnemoscope.errors import MnemoscopeError
from mnemoscope.recipes import lira
from mnemoscope.recipes.shadows import (
    ShadowJob,
    check_shadow_memory,
    lab_training_bytes,
    llama_parameters,
    run_shadows,
    shadow_keep,
    training_bytes,
)

SMALL = [
    "model.size=micro", "model.vocab_size=1024", "corpus.n_docs=400", "canaries.per_dose=4",
    "canaries.n_controls=12", "canaries.doses=[0, 64]", "train.steps=200", "audit.n_boot=100",
]


def _run(out, *extra):
    args = ["run", "--out", str(out)]
    for item in SMALL + list(extra):
        args += ["--set", item]
    return main(args)


def test_shadow_keep_puts_each_candidate_in_half_the_shadows():
    keep = shadow_keep(8, 50, seed=3)
    assert keep.shape == (8, 50) and keep.dtype == bool
    assert (keep.sum(axis=0) == 4).all()
    assert 0 < keep.sum(axis=1).min() and keep.sum(axis=1).max() < 50  # shadows differ
    assert (shadow_keep(8, 50, seed=3) == keep).all()
    assert (shadow_keep(8, 50, seed=4) != keep).any()
    assert (shadow_keep(5, 10, seed=0).sum(axis=0) == 2).all()
    with pytest.raises(MnemoscopeError):
        shadow_keep(0, 10, seed=0)


def test_parameter_formula_matches_the_built_model(tokenizer):
    from .conftest import MICRO

    from mnemoscope.lab.tiny import build_model, count_parameters

    model = build_model(MICRO, tokenizer)
    assert llama_parameters(vocab=len(tokenizer), hidden=MICRO.hidden, layers=MICRO.layers,
                            intermediate=MICRO.intermediate) == count_parameters(model)


def test_memory_check_refuses_with_the_estimate():
    per = training_bytes(10**6, batch_size=8, seq_len=64, hidden=256, layers=6, intermediate=704, heads=4, vocab=8192)
    assert per > 16 * 10**6
    check_shadow_memory(8, 2, per, free=100 * per, where="cpu")  # fits
    with pytest.raises(MnemoscopeError, match=r"lira.workers=4: 4 shadow model\(s\).*GiB.*free on cpu"):
        check_shadow_memory(8, 4, per, free=3 * per, where="cpu")
    check_shadow_memory(8, 4, per, free=3 * per, where="cuda")  # one model per GPU
    check_shadow_memory(8, 4, per, free=None, where="cpu")  # unknown free memory: no check


@pytest.mark.parametrize("setting, message", [
    ("lira.shadows=2", "lira.shadows=2"),
    ("lira.variance=local", "lira.variance"),
    ("lira.offline=both", "lira.offline"),
    ("lira.workers=0", "lira.workers"),
    ("lira.workers=4096", "lira.workers=4096"),
])
def test_bad_lira_settings_are_refused_before_the_run_directory(tmp_path, capsys, setting, message):
    out = tmp_path / "run"
    assert _run(out, setting, "lira.shadows=4" if "shadows" not in setting else "lira.workers=1") == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_too_many_shadows_for_memory_are_refused_before_training(tmp_path, capsys, monkeypatch):
    from mnemoscope.recipes import quickstart_lira

    monkeypatch.setattr(quickstart_lira, "available_bytes", lambda device: 2 * 1024 ** 2)
    out = tmp_path / "run"
    assert _run(out, "lira.shadows=4", "lira.workers=2") == 2
    err = capsys.readouterr().err
    assert "GiB" in err and "lira.workers=2" in err
    assert not out.exists()


def _toy_setup(index, keep, *, tokenizer_dir, texts):
    """A micro model trained 6 steps on the kept texts (picklable for the worker processes)."""
    import torch
    from transformers import AutoTokenizer

    from mnemoscope.lab.tiny import Preset, build_model
    from mnemoscope.train.loop import TrainConfig

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = [tok(t)["input_ids"][:16] for t, k in zip(texts, keep) if k]
    rows = [r + [tok.eos_token_id] * (16 - len(r)) for r in rows]
    batch = torch.tensor(rows[:2])
    model = build_model(Preset(hidden=32, layers=1, heads=2, intermediate=64, vocab=600, context=64), tok, seed=index)
    return model, tok, lambda step: batch, TrainConfig(steps=6, batch_size=2, seq_len=16, seed=index, warmup=0,
                                                         checkpoint_every=100)


def test_parallel_shadows_equal_sequential(tmp_path, tokenizer, corpus):
    tokenizer.save_pretrained(tmp_path / "tok")
    texts = tuple(" ".join(doc.split()[:10]) for doc in corpus[:6])
    keep = shadow_keep(2, len(texts), seed=0)
    setup = functools.partial(_toy_setup, tokenizer_dir=str(tmp_path / "tok"), texts=texts)

    def jobs(root):
        return [ShadowJob(j, tmp_path / root / f"s{j}", setup, keep[j], texts) for j in range(2)]

    one = run_shadows(jobs("seq"), workers=1, device="cpu", log=lambda s: None)
    two = run_shadows(jobs("par"), workers=2, device="cpu", log=lambda s: None)
    assert len(one) == 2 and list(one[0].columns) == list(two[0].columns)
    for a, b in zip(one, two):
        pd.testing.assert_frame_equal(a, b, atol=1e-5, rtol=1e-5)
    assert not np.allclose(one[0]["nll"], one[1]["nll"])  # different shadows, different scores
    assert (tmp_path / "par" / "s1" / "final" / "model.safetensors").exists()


def _frames(k, n, rng, keep):
    """Attack frames in which members' NLL is lower by 1 nat per token (4 tokens each)."""
    out = []
    for j in range(k):
        nll = rng.uniform(2, 4, size=n) - keep[j] * 1.0
        out.append(pd.DataFrame({"nll": nll, "n_scored": 4, "score/loss": -nll + rng.normal(0, 1.0, size=n)}))
    return out


def test_pooled_trials_and_gaps():
    rng = np.random.default_rng(0)
    k, n = 6, 40
    keep = shadow_keep(k, n, seed=1)
    shadows = _frames(k, n, rng, keep)
    labels = (rng.random(n) < 0.5).astype(int)
    target = _frames(1, n, rng, labels[None, :].astype(bool))[0]
    section = dict(lira.DEFAULTS, shadows=k)
    got = lira.pooled_trials(target, labels, shadows, keep, section)
    assert got is not None
    pooled_labels, scores = got
    assert len(pooled_labels) == (k + 1) * n and list(scores.columns) == ["score/loss", "score/lira_online",
                                                                          "score/lira_offline"]
    assert (pooled_labels[:n] == labels).all() and (pooled_labels[n:2 * n] == keep[0]).all()
    assert lira.pooled_trials(target, labels, shadows[:5], keep[:5], section) is None
    metrics = {"mia/loss/auc": 0.7, "mia/lira_online/auc": 0.9, "mia/loss/tpr@fpr=0.01": float("nan"),
               "mia/lira_online/tpr@fpr=0.01": 0.4, "mia/loss/tpr@fpr=0.001": 0.1, "mia/lira_online/tpr@fpr=0.001": 0.3}
    g = lira.gaps(metrics, "mia", "lira/gap")
    assert g["lira/gap/loss/auc"] == pytest.approx(-0.2)
    assert g["lira/gap/loss/tpr@fpr=0.001"] == pytest.approx(-0.2)
    assert np.isnan(g["lira/gap/loss/tpr@fpr=0.01"])
    assert not any("lira_offline" in key for key in g)


def test_variance_rule():
    assert lira.fixed_variance(dict(lira.DEFAULTS), 8) is True
    assert lira.fixed_variance(dict(lira.DEFAULTS), 64) is False
    assert lira.fixed_variance(dict(lira.DEFAULTS, variance="per_example"), 8) is False
    assert lira.fixed_variance(dict(lira.DEFAULTS, variance="global"), 128) is True


@pytest.fixture(scope="module")
def lira_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lira") / "run"
    assert _run(out, "lira.shadows=4") == 0
    return out


def test_lira_separates_members_in_the_quickstart(lira_run):
    m = json.loads((lira_run / "metrics.json").read_text())
    assert m["lira/shadows"] == 4
    for attack in ("lira_online", "lira_offline"):
        assert m[f"mia/{attack}/auc"] > 0.8, attack
        assert m[f"mia/{attack}/auc@dose=64"] > 0.8
    assert m["lira/gap/min_k_pp/auc"] == pytest.approx(m["mia/min_k_pp/auc"] - m["mia/lira_online/auc"])
    assert "mia_pooled" in json.loads((lira_run / "notes.json").read_text())  # 4 shadows: no pooled trials
    samples = pd.read_parquet(lira_run / "samples.parquet")
    assert (samples["lira/n_in"] == 2).all() and (samples["lira/n_out"] == 2).all()
    members, controls = samples[samples["label"] == 1], samples[samples["label"] == 0]
    assert sorted(set(controls["lira_dose"])) == [64] and (members["lira_dose"] == members["dose"]).all()
    table = pd.read_parquet(lira_run / "lira_shadows.parquet")
    assert len(table) == 4 * len(samples) and set(table["shadow"]) == {0, 1, 2, 3}
    assert (lira_run / "shadows" / "shadow-03" / "final" / "model.safetensors").exists()
    html = (lira_run / "report.html").read_text()
    assert "Shadow-model LiRA" in html and "lira_online" in html
    from mnemoscope.recipes.quickstart.recipe import summary

    text = summary(lira_run)
    assert "LiRA with 4 shadows" in text and f"{m['mia/lira_online/auc']:.2f}" in text


def test_lira_rerun_reuses_the_shadows(lira_run, capsys):
    before = json.loads((lira_run / "metrics.json").read_text())
    assert _run(lira_run, "lira.shadows=4") == 0
    assert "shadow 2: already complete" in capsys.readouterr().out
    assert json.loads((lira_run / "metrics.json").read_text()) == before


def test_available_bytes_on_cpu():
    from mnemoscope.recipes.shadows import available_bytes

    free = available_bytes("cpu")
    assert free is None or free > 0


def test_target_gaps_read_the_tpr_keys_and_ignore_dose_groups():
    from mnemoscope.recipes.quickstart_lira import target_gaps

    metrics = {"mia/min_k_pp/auc": 0.8, "mia/lira_online/auc": 0.9, "mia/min_k_pp/tpr@fpr=0.01": 0.5,
               "mia/lira_online/tpr@fpr=0.01": 0.65, "mia/min_k_pp/auc@dose=1": 0.1, "mia/lira_online/auc@dose=1": 0.9,
               "mia/loss/mean_nll@dose=1": 3.0}
    g = target_gaps(metrics)
    assert g["lira/gap/min_k_pp/tpr@fpr=0.01"] == pytest.approx(-0.15)
    assert g["lira/gap/min_k_pp/auc"] == pytest.approx(-0.1)
    assert not any("@dose" in k for k in g) and "lira/gap/loss/auc" not in g


def test_lab_training_bytes_by_hand():
    """V=10, h=4, L=1, I=8, heads=2, batch 2 × seq 3: P = 40 + (64 + 96 + 8) + 4 = 212 parameters;
    per token 1·(32 + 24 + 6) + 30 = 92; bytes = 16·212 + 4·2·3·92 = 5,600."""
    assert lab_training_bytes(vocab=10, hidden=4, layers=1, intermediate=8, heads=2, batch_size=2, seq_len=3) == 5600
