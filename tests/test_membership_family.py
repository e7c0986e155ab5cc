"""families.membership: per-text attack scores from one pass, and flat metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.families.membership import membership_metrics, score_texts
from mnemoscope.metrics.membership import zlib_bytes

TEXTS = ["Anna was born in Lisbon in 1901.", "Every spring the market sells apples.", "Hi there friend"]


def test_zlib_compresses_the_whole_text_as_given(tokenizer, model):
    """Carlini et al. and MIMIR: −NLL / len(zlib.compress(text.encode("utf-8"))), the text itself
    (never a re-decoding of its tokens, and not only the scored span)."""
    import zlib

    engine = Engine(model, tokenizer)
    frame = score_texts(engine, TEXTS)
    for text, (_, row) in zip(TEXTS, frame.iterrows()):
        assert row["score/zlib"] == pytest.approx(-row["nll"] / len(zlib.compress(text.encode("utf-8"))))
        assert zlib_bytes(text) == len(zlib.compress(text.encode("utf-8")))
        assert row["score/loss"] == pytest.approx(-row["nll"])


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
