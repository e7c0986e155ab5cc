"""Task-vector negation (``unlearn/methods/task_vector.py``): arithmetic, properties, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn.methods.task_vector import negate_task_vector

from .helpers import FAST


def test_negate_task_vector_arithmetic_and_non_float_copy():
    base = {
        "w": torch.tensor([1.0, 2.0]),
        "steps": torch.tensor([3, 4]),
        "h": torch.tensor([1.0, -1.0], dtype=torch.bfloat16),
    }
    ft = {
        "w": torch.tensor([2.0, 0.0]),
        "steps": torch.tensor([9, 9]),
        "h": torch.tensor([1.5, -1.0], dtype=torch.bfloat16),
    }
    base_before = copy.deepcopy(base)
    out = negate_task_vector(base, ft, alpha=5.0)
    assert out["w"].tolist() == [1.0 - 5.0 * 1.0, 2.0 - 5.0 * (-2.0)]
    assert out["steps"].tolist() == [3, 4] and out["steps"].data_ptr() != base["steps"].data_ptr()
    assert out["h"].dtype == torch.bfloat16 and out["h"].tolist() == [1.0 - 5.0 * 0.5, -1.0]
    for k in base:
        assert torch.equal(base[k], base_before[k])


@FAST
@given(seed=st.integers(0, 10_000), alpha=st.floats(-3, 10))
def test_negate_task_vector_properties(seed, alpha):
    gen = torch.Generator().manual_seed(seed)
    base = {"a": torch.randn(3, 2, generator=gen, dtype=torch.float64)}
    ft = {"a": torch.randn(3, 2, generator=gen, dtype=torch.float64)}
    assert torch.allclose(negate_task_vector(base, ft, alpha=0.0)["a"], base["a"])
    assert torch.allclose(negate_task_vector(base, ft, alpha=-1.0)["a"], ft["a"])
    got = negate_task_vector(base, ft, alpha=alpha)["a"]
    assert torch.allclose(got, (1 + alpha) * base["a"] - alpha * ft["a"], atol=1e-9)


def test_negate_task_vector_errors():
    base = {"a": torch.zeros(2), "b": torch.zeros(2)}
    with pytest.raises(MnemoscopeError, match="keys differ"):
        negate_task_vector(base, {"a": torch.zeros(2)})
    with pytest.raises(MnemoscopeError, match="shape"):
        negate_task_vector(base, {"a": torch.zeros(2), "b": torch.zeros(3)})
    with pytest.raises(MnemoscopeError, match="dtype"):
        negate_task_vector(base, {"a": torch.zeros(2), "b": torch.zeros(2, dtype=torch.long)})
    with pytest.raises(MnemoscopeError, match="alpha"):
        negate_task_vector(base, base, alpha=float("nan"))
