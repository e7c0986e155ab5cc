"""families.membership: per-text attack scores from one pass, the reference and lowercase scores
beside them, the WikiMIA reader, the flat metrics (AUC against sklearn, missing scores), and LOSS / zlib /
Min-K% / Min-K%++ against MIMIR's and the Min-K%++ authors' code written out."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mnemoscope.engine import Engine
from mnemoscope.families import membership
from mnemoscope.families.membership import membership_metrics, score_texts
from mnemoscope.lab.tiny import build_model
from mnemoscope.metrics.membership import zlib_bytes

from .conftest import MICRO
from .helpers import MEMBERS, NONMEMBERS, REFERENCE_TEXTS, reference_log_softmax, write_jsonl

TEXTS = ["Anna was born in Lisbon in 1901.", "Every spring the market sells apples.", "Hi there friend"]


def test_zlib_compresses_the_whole_text_as_given(tokenizer, model):
    # Carlini et al. / MIMIR: zlib entropy of the text itself (UTF-8, default level), never a
    # re-decoding of its tokens. The last two texts re-decode differently (the unscored first
    # token, doubled spaces, a character outside the tokenizer's training text).
    texts = TEXTS + ["Tabs\tand  doubled  spaces  stay.", "Café Zoë — naïve façade"]
    engine = Engine(model, tokenizer)
    frame = score_texts(engine, texts)
    differs = 0
    for text, (_, row) in zip(texts, frame.iterrows()):
        assert row["score/zlib"] == pytest.approx(-row["nll"] / len(zlib.compress(text.encode("utf-8"))), rel=1e-12)
        assert row["score/loss"] == pytest.approx(-row["nll"])
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        differs += zlib_bytes(tokenizer.decode(ids[1:])) != zlib_bytes(text)
    assert differs >= 2  # the old re-decoding would have given other numbers here


def test_membership_metrics_keys_and_underpowered_tpr_is_null():
    rng = np.random.default_rng(0)
    labels = np.array([1] * 20 + [0] * 20)
    import pandas as pd

    frame = pd.DataFrame({"score/loss": np.r_[rng.normal(1, 1, 20), rng.normal(0, 1, 20)]})
    m = membership_metrics(labels, frame, suffix="@dose=4", n_boot=200)
    assert 0.5 < m["mia/loss/auc@dose=4"] <= 1
    assert m["mia/loss/auc/ci_lo@dose=4"] <= m["mia/loss/auc@dose=4"] <= m["mia/loss/auc/ci_hi@dose=4"]
    # 20 non-members cannot resolve FPR 1% or 0.1%: no number, a flag
    assert math.isnan(m["mia/loss/tpr@fpr=0.01@dose=4"]) and m["mia/loss/tpr@fpr=0.01/underpowered@dose=4"] == 1
    assert not math.isnan(m["mia/loss/tpr@fpr=0.05@dose=4"]) and m["mia/loss/tpr@fpr=0.05/underpowered@dose=4"] == 0


class _NoDistribution(Engine):
    """Stands in for the vLLM backend opened without --vllm-distribution: log-probs only."""

    name = "vllm"
    provides = Engine.provides - {"distribution"}

    def score_encoded(self, items):
        import dataclasses

        return [dataclasses.replace(s, mu=None, sigma=None, argmax=None) for s in super().score_encoded(items)]


def test_audit_on_a_backend_without_distribution_measures_the_rest_and_notes_min_k_pp(
        wide_dirs, tmp_path, monkeypatch, capsys):
    import json

    import pandas as pd

    from mnemoscope.cli import main
    from mnemoscope.recipes.audit import recipe as audit

    target, ref = wide_dirs
    members = ["Anna Berg was born in Lisbon in 1901.", "The museum in Alder keeps old clocks.",
               "Every spring the market in Fern sells apples.", "Marco joined Holt Industries in 1950."]
    nonmembers = ["Lena Voss was born in Porto in 1933.", "The library in Cedar keeps old letters.",
                  "Every autumn the fair in Grey sells boats.", "Ruth joined Iris Works in 1961."]
    for name, texts in (("m.jsonl", members), ("n.jsonl", nonmembers)):
        (tmp_path / name).write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    args = ["audit", "--model", str(target), "--members", str(tmp_path / "m.jsonl"), "--nonmembers",
            str(tmp_path / "n.jsonl"), "--ref-model", str(ref), "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "hf")]) == 0
    opened = audit.open_engine

    def lean(cfg, name):
        engine = opened(cfg, name)
        return _NoDistribution(engine.model, engine.tokenizer) if name == str(target) else engine

    monkeypatch.setattr(audit, "open_engine", lean)
    assert main([*args, "--out", str(tmp_path / "lean")]) == 0
    capsys.readouterr()
    full, part = (pd.read_parquet(tmp_path / d / "samples.parquet") for d in ("hf", "lean"))
    for attack in ("loss", "zlib", "min_k", "ref", "ratio", "nll_ratio"):  # what log-probs alone give: the same
        np.testing.assert_allclose(part[f"score/{attack}"], full[f"score/{attack}"], rtol=1e-6)
    assert "score/min_k_pp" in full and "score/min_k_pp" not in part
    metrics, notes = (json.loads((tmp_path / "lean" / f).read_text()) for f in ("metrics.json", "notes.json"))
    hf_metrics = json.loads((tmp_path / "hf" / "metrics.json").read_text())
    assert metrics["mia/min_k_pp/auc"] is None and hf_metrics["mia/min_k_pp/auc"] is not None
    assert "--vllm-distribution" in notes["mia/min_k_pp/auc"]
    for attack in ("loss", "zlib", "min_k", "ref"):
        assert metrics[f"mia/{attack}/auc"] == pytest.approx(hf_metrics[f"mia/{attack}/auc"])


def test_wikimia_overlap_is_warned_with_its_count_and_dropped(tmp_path):
    rows = [{"input": t, "label": 1} for t in MEMBERS] + [{"input": t, "label": 0} for t in NONMEMBERS + MEMBERS[:1]]
    write_jsonl(tmp_path / "w.jsonl", rows)
    warnings = []
    members, nonmembers = membership.load_sets("", "", True, warnings.append, wikimia_path=str(tmp_path / "w.jsonl"))
    assert "1 text(s) appear in both" in warnings[0]
    assert members == MEMBERS[1:] and nonmembers == NONMEMBERS


def test_likelihood_scores_match_independent_computations(model, tokenizer):
    target = Engine(model, tokenizer)
    other = build_model(MICRO, tokenizer, seed=5).eval()
    ref = Engine(other, tokenizer)
    texts = MEMBERS + NONMEMBERS
    frame = membership.likelihood_scores(target, texts, k=0.3, ref_engine=ref, lowercase=True)
    expected = score_texts(target, texts, k=0.3)
    for col in expected.columns:
        np.testing.assert_allclose(frame[col].to_numpy(dtype=float), expected[col].to_numpy(dtype=float), rtol=1e-6)
    nll_ref = np.array([s.nll for s in ref.score(texts)])
    nll_low = np.array([s.nll for s in target.score([t.lower() for t in texts])])
    np.testing.assert_allclose(frame["score/ref"], -(frame["nll"] - nll_ref), rtol=1e-6)
    np.testing.assert_allclose(frame["score/ratio"], -np.exp(frame["nll"] - nll_ref), rtol=1e-6)
    np.testing.assert_allclose(frame["score/lowercase"], -frame["nll"] / nll_low, rtol=1e-6)
    calls = target.stats.forward_calls
    membership.likelihood_scores(target, texts)
    assert target.stats.forward_calls - calls == 1  # four attacks, one batched pass


def test_likelihood_scores_per_byte_for_another_tokenizer(model, tokenizer, bos_model, bos_tokenizer):
    frame = membership.likelihood_scores(Engine(model, tokenizer), MEMBERS, ref_engine=Engine(bos_model, bos_tokenizer),
                                         ref_mismatch="per_byte")
    assert set(frame["ref/unit"]) == {"byte"}
    np.testing.assert_allclose(frame["score/ref"], -(frame["ref/nll_target"] - frame["ref/nll_ref"]), rtol=1e-9)


def test_membership_family_against_sklearn_and_with_missing_scores():
    labels = np.array([1, 1, 1, 0, 0, 0])
    frame = pd.DataFrame({"score/a": [3.0, 2.0, 0.5, 1.0, 0.0, -1.0],
                          "score/b": [np.nan, np.nan, 1.0, 0.0, 2.0, 1.0]})
    _, metrics, notes = membership.attack_metrics(labels, frame, n_boot=20, seed=0)
    assert metrics["mia/a/auc"] == pytest.approx(roc_auc_score(labels, frame["score/a"]))
    assert metrics["mia/a/auc"] == pytest.approx(8 / 9)
    # 1 member with a score: not computed (null, with the reason)
    assert [k for k in metrics if k.startswith("mia/b/")] == ["mia/b/auc"] and metrics["mia/b/auc"] is None
    assert "mia/b: not computed: 1 members" in notes["mia/b/auc"]
    assert "mia/b: 2 text(s) have no finite score" in notes["mia/b/auc"]
    assert any("underpowered" in n and "3 non-members" in n for n in notes.values())


def test_membership_scores_equal_mimir_and_min_k_pp(reference_trained, tokenizer):
    k = 0.2
    # the published code rounds k·n down: reproduce it with rounding="down"
    frame = score_texts(Engine(reference_trained, tokenizer), REFERENCE_TEXTS, k=k, rounding="down")
    for text, (_, row) in zip(REFERENCE_TEXTS, frame.iterrows()):
        ids = tokenizer(text).input_ids  # MIMIR: self.tokenizer(text), default special tokens
        lp_all = reference_log_softmax(reference_trained, ids)[:-1]
        target = torch.tensor(ids[1:])
        all_prob = lp_all.gather(1, target[:, None]).squeeze(1).numpy()
        # MIMIR get_ll: −mean log p (lower = member); our scores are oriented higher = member
        loss = -np.mean(all_prob)
        assert row["score/loss"] == pytest.approx(-loss, rel=1e-4, abs=1e-6)  # float32 engine
        # MIMIR zlib: loss / len(zlib.compress(bytes(document, "utf-8")))
        assert row["score/zlib"] == pytest.approx(-loss / len(zlib.compress(bytes(text, "utf-8"))), rel=1e-4, abs=1e-8)
        # MIMIR min_k (window 1, stride 1): −mean(sorted(probs)[: int(len · k)])
        assert int(len(all_prob) * k) >= 1
        min_k = -np.mean(sorted(all_prob)[: int(len(all_prob) * k)])
        assert row["score/min_k"] == pytest.approx(-min_k, rel=1e-4, abs=1e-6)
        # Min-K%++ (run.py; MIMIR's min_k_plus_plus is the same): μ = Σ p log p, σ² = Σ p (log p)² − μ²,
        # z = (log p − μ)/σ, mean of the lowest int(len · k)
        p = lp_all.exp()
        mu = (p * lp_all).sum(-1)
        sigma = ((p * lp_all.square()).sum(-1) - mu.square()).sqrt()
        z = ((torch.tensor(all_prob) - mu) / sigma).numpy()
        assert row["score/min_k_pp"] == pytest.approx(np.mean(np.sort(z)[: int(len(z) * k)]), rel=1e-4, abs=1e-4)
