"""The method registry (``unlearn/methods/__init__.py``): specs, lookup, defaults, hyperparameter
checks, and every open-unlearning method's forget loss in the right direction."""

from __future__ import annotations

import copy

import pytest
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn import runner as R
from mnemoscope.unlearn.methods import METHODS, get_method
from mnemoscope.unlearn.methods.base import Method, Step

from .helpers import logits64, ou_forget


def test_registry_specs_and_lookup():
    assert set(METHODS) >= {"ga", "gd", "kl", "npo", "npo_gd", "npo_kl", "simnpo", "rmu", "task_vector"}
    for name in METHODS:
        spec = get_method(name)
        assert isinstance(spec, Method) and spec.name == name and spec.description
    assert get_method("npo").defaults["beta"] == 0.1 and get_method("npo").needs_reference
    assert get_method("simnpo").defaults == {"beta": 4.5, "gamma": 0.0}
    assert not get_method("simnpo").needs_reference
    assert get_method("kl").needs_retain and not get_method("ga").needs_retain
    assert get_method("task_vector").defaults["alpha"] == 5.0
    with pytest.raises(TypeError):
        get_method("npo").defaults["beta"] = 1.0  # the registry cannot be mutated by a caller


def test_unknown_method_lists_sorted_names_and_suggests():
    with pytest.raises(MnemoscopeError) as err:
        get_method("nop")
    msg = str(err.value)
    assert "'nop'" in msg and "Did you mean 'npo'?" in msg
    assert ", ".join(sorted(METHODS)) in msg
    assert "\n" not in msg
    with pytest.raises(MnemoscopeError) as err2:
        get_method("zzzzzzzz")
    assert "Did you mean" not in str(err2.value)


@pytest.fixture(scope="module")
def memorised(theta, tokenizer):
    """The nudged model fine-tuned on the forget batch until it half knows it (NLL < 1.5), the
    state an unlearning method starts from (and its reference)."""
    model, forget = copy.deepcopy(theta).train(), ou_forget(tokenizer)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        if float(L.sequence_nll(logits64(model, forget), forget.labels).mean()) < 1.5:
            break
        opt.zero_grad()
        L.sequence_nll(model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits,
                       forget.labels).mean().backward()
        opt.step()
    assert 0.5 < float(L.sequence_nll(logits64(model, forget), forget.labels).mean()) < 1.5
    return model.eval()


@pytest.mark.parametrize("name, hp", [("wga", {}), ("satimp", {"forget_weight": 10.0}), ("undial", {}), ("ceu", {})])
def test_token_methods_raise_the_forget_nll(name, hp, memorised, tokenizer):
    """SatImp's weights p⁵(1 − p) are small at p ≈ 0.3: a larger forget weight shows the direction."""
    model, ref = copy.deepcopy(memorised).train(), memorised
    forget = ou_forget(tokenizer)
    method = get_method(name)
    hp = R.resolve_hparams(method, hp)
    nll = lambda: float(L.sequence_nll(logits64(model, forget), forget.labels).mean())
    before = nll()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(5):
        opt.zero_grad()
        method.forget_loss(Step(model, ref, {"forget": forget}), hp).backward()
        opt.step()
    assert nll() > before + 0.01


def test_registry_defaults_are_open_unlearnings():
    assert dict(get_method("idkdpo").defaults) == {"beta": 0.1, "retain_weight": 1.0}
    assert dict(get_method("wga").defaults) == {"beta": 1.0, "retain_weight": 1.0}
    assert dict(get_method("satimp").defaults) == {"beta1": 5.0, "beta2": 1.0, "forget_weight": 0.1,
                                                   "retain_weight": 1.0}
    assert dict(get_method("undial").defaults) == {"beta": 10.0}
    assert dict(get_method("ceu").defaults) == {"ignore_first": 1.0}
    assert get_method("idkdpo").needs_refusals and get_method("idkdpo").needs_reference
    assert get_method("undial").needs_reference and not get_method("undial").needs_retain
    assert not get_method("ceu").needs_retain and get_method("wga").needs_retain and get_method("satimp").needs_retain


@pytest.mark.parametrize("name, hp, match", [
    ("wga", {"retain_weight": -1}, "hparams.wga"), ("satimp", {"beta2": -0.5}, "beta2"),
    ("satimp", {"forget_weight": -1}, "forget_weight"), ("undial", {"beta": -2}, "undial.beta"),
    ("ceu", {"ignore_first": 1.5}, "whole number"), ("ceu", {"ignore_first": -1}, "ignore_first"),
    ("idkdpo", {"beta": 0}, "beta"), ("idkdpo", {"retain_weight": -1}, "retain_weight"),
    ("wga", {"beta": "nan"}, "finite")])
def test_bad_hyperparameters_are_refused_in_one_line(name, hp, match):
    with pytest.raises(MnemoscopeError, match=match) as err:
        R.resolve_hparams(name, hp)
    assert "\n" not in str(err.value)
