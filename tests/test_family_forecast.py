"""families.forecast: precision and recall of earlier checkpoints as predictors of the final
model's memorization; a checkpoint with another tokenizer refused."""

from __future__ import annotations

import pytest
import torch

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import forecast
from mnemoscope.families.base import Context
from mnemoscope.lab.tiny import build_model

from .conftest import MICRO
from .helpers import family_config, run_family, write_texts


def test_forecast_precision_recall_of_predictors(extraction_lab, model, tmp_path):
    engine, docs = extraction_lab
    torch.manual_seed(0)
    untrained = Engine(build_model(MICRO, engine.tokenizer, seed=3).eval(), engine.tokenizer)
    cfg = family_config(forecast, texts=write_texts(tmp_path / "t.jsonl", docs[:8]), models=["a", "b"],
                        fractions=[0.1, 1.0], prefix=6, suffix=10)
    ctx = Context(engines={"forecast.models": [untrained, engine]})
    res = run_family(forecast, cfg, engine, ctx)
    m = res.metrics
    assert m["forecast/memorized/rate"] == pytest.approx(0.5)  # the 4 memorized docs of 8
    assert m["forecast/precision@fraction=1"] == 1.0 and m["forecast/recall@fraction=1"] == 1.0
    assert m["forecast/precision@fraction=0.1"] is None and "forecast/precision@fraction=0.1" in res.notes
    assert m["forecast/recall@fraction=0.1"] == 0.0
    with pytest.raises(MnemoscopeError, match="one compute fraction per model"):
        forecast.read(family_config(forecast, texts=cfg["forecast"]["texts"], models=["a"], fractions=[]))


def test_forecast_refuses_a_predictor_with_another_tokenizer(extraction_lab, bos_model, bos_tokenizer, tmp_path):
    """The prompts are the final model's token ids: a checkpoint with another BOS policy (or
    vocabulary) would score other text. Refused before anything is generated."""
    engine, docs = extraction_lab
    other = Engine(bos_model, bos_tokenizer)
    cfg = family_config(forecast, texts=write_texts(tmp_path / "t.jsonl", docs[:4]), models=["a", "b"],
                        fractions=[0.5, 1.0], prefix=6, suffix=10)
    calls = []
    real = engine.generate
    engine.generate = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        with pytest.raises(MnemoscopeError, match=r"forecast.models\[1\] does not share .*BOS policies differ"):
            run_family(forecast, cfg, engine, Context(engines={"forecast.models": [engine, other]}))
    finally:
        del engine.generate
    assert calls == []
