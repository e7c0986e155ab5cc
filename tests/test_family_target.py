"""families.target: target NLL equals the engine's log-probabilities, in one score call, by group."""

from __future__ import annotations

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.target import target_nll

from .helpers import Counting


def test_target_nll_equals_engine_logprobs(model, tokenizer):
    engine = Counting(Engine(model, tokenizer))
    probes = [("Anna was born in", " Lisbon"), {"prefix": "Reyes Inc focused on", "target": " economics and letters"}] * 3
    groups = ["memorization", "semantic"] * 3
    samples, metrics, _ = target_nll(engine, probes, groups=groups)
    assert engine.calls["score"] == 1
    s = engine._engine.score(pairs=[("Reyes Inc focused on", " economics and letters")])[0]
    assert samples["target_nll"][1] == pytest.approx(-float(np.mean(s.logprobs.astype(float))), rel=1e-5)
    assert samples["first_token_nll"][1] == pytest.approx(-float(s.logprobs[0]), rel=1e-5)
    assert metrics["target/nll/mean"] == pytest.approx(samples["target_nll"].mean())
    assert metrics["target/nll/mean@group=semantic"] == pytest.approx(samples["target_nll"][1])
    assert metrics["target/n@group=memorization"] == 3.0
    with pytest.raises(MnemoscopeError, match="one per probe"):
        target_nll(engine, probes, groups=groups[:2])
