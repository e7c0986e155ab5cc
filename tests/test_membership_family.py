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
