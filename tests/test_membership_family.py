"""families.membership: per-text attack scores from one pass, and flat metrics."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.families.membership import membership_metrics, score_texts
from mnemoscope.metrics.membership import zlib_bytes

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
