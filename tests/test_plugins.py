"""Adding a family or an unlearning method is its module plus one registry line (docs/architecture.md):
a toy of each, written here, goes through the audit and the unlearning runner with nothing else touched."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import numpy as np
import pytest

from mnemoscope import families
from mnemoscope.unlearn import methods

TOY_FAMILY = '''
"""Toy family: the mean NLL of each line of a text file (a test plug-in)."""
from dataclasses import dataclass

import pandas as pd

from mnemoscope.families.base import Result
from mnemoscope.probes import formats

NAME = "toy"
TITLE = "Toy mean NLL"
DEFAULTS = {"toy": {"texts": ""}}
PATH_KEYS = ("toy.texts",)
NEEDS = ("logprobs",)
HEADLINE = ("toy/nll/mean",)


@dataclass
class Plan:
    texts: list
    items: list


def read(cfg, ctx):
    return formats.load_texts_any(cfg["toy"]["texts"]) if cfg["toy"]["texts"] else None


def plan(texts, engine, ctx):
    return Plan(texts, engine.encode_texts(texts))


def measure(plan, engine, ctx):
    nll = [s.nll for s in engine.score_encoded(plan.items)]
    return Result(pd.DataFrame({"text": plan.texts, "nll": nll}), {"toy/nll/mean": sum(nll) / len(nll)})
'''

TOY_METHOD = '''
"""Toy method: gradient ascent scaled by a factor (a test plug-in)."""
from mnemoscope.unlearn.methods.base import Method


class Scaled(Method):
    def forget_loss(self, step, hp):
        return -hp["scale"] * step.nll("forget").mean()


METHOD = Scaled("toy_scaled_ga", "gradient ascent × scale", {"scale": 2.0})
'''


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    pkg = tmp_path / "toyplugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "family.py").write_text(textwrap.dedent(TOY_FAMILY))
    (pkg / "method.py").write_text(textwrap.dedent(TOY_METHOD))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg
    for name in [m for m in sys.modules if m.startswith("toyplugins")]:
        del sys.modules[name]


def test_a_new_family_runs_in_the_audit_from_its_module_and_one_registry_line(plugin_dir, saved_model_dir,
                                                                               tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(families.FAMILIES, "toy", "toyplugins.family")
    from mnemoscope.recipes.audit import recipe as audit

    audit = importlib.reload(audit)  # the audit reads the registry when it is imported
    try:
        (tmp_path / "lines.txt").write_text("the river runs through the town\na quiet market opens early\n")
        (tmp_path / "audit.yaml").write_text("toy:\n  texts: lines.txt\n")
        from mnemoscope.cli import main

        out = tmp_path / "run"
        assert main(["audit", "--model", str(saved_model_dir), "--config", str(tmp_path / "audit.yaml"),
                     "--out", str(out), "--device", "cpu"]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert np.isfinite(metrics["toy/nll/mean"])
        assert (out / "family_samples" / "toy.parquet").exists()
        assert "Toy mean NLL: toy/nll/mean" in capsys.readouterr().out
        assert json.loads((out / "manifest.json").read_text())["families"] == ["toy"]
    finally:
        monkeypatch.undo()
        importlib.reload(audit)


def test_a_new_method_runs_on_the_loop_from_its_module_and_one_registry_line(plugin_dir, model, tokenizer,
                                                                             tmp_path, monkeypatch):
    import copy

    from mnemoscope.engine import Engine
    from mnemoscope.unlearn import runner

    monkeypatch.setitem(methods.METHODS, "toy_scaled_ga", "toyplugins.method")
    forget = ["Anna Berg was born in Lisbon in 1901 and studied music at the academy."]
    fresh = copy.deepcopy(model)
    before = Engine(fresh, tokenizer).score(forget)[0].nll
    cfg = runner.UnlearnConfig("toy_scaled_ga", steps=3, lr=1e-3, batch_size=1, max_length=64,
                               hparams={"scale": 3.0})
    res = runner.unlearn(fresh, tokenizer, runner.text_examples(forget), None, cfg, tmp_path / "u")
    assert res.method == "toy_scaled_ga" and Engine(res.model, tokenizer).score(forget)[0].nll > before
    with pytest.raises(Exception, match="does not apply to method 'toy_scaled_ga'; known: scale"):
        runner.resolve_hparams("toy_scaled_ga", {"beta": 1.0})
