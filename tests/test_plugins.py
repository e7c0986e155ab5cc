"""Adding a family, an unlearning method or a recipe is its module (a recipe: its folder) plus one
registry line (docs/architecture.md): a toy of each, written here, goes through the audit, the
unlearning runner, and `mnemoscope run` / the report / `--seeds` and `compare` with nothing else
touched. Recipe declarations stay light (no torch, transformers or matplotlib)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mnemoscope import families, recipes
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


TOY_DECLARATION = '''
"""Toy recipe: a score that grows with the dose (a test plug-in)."""
from mnemoscope.claims import Claim, Effect
from mnemoscope.recipes.plugin import Recipe, Series

RECIPE = Recipe(
    "toy",
    "toyrecipe.recipe",
    claim=Claim("toy", "Toy et al. 2026", "Toy memory grows with the dose.",
                (Effect("toy/score@dose=2", "toy score, dose 2 − dose 1", minus="toy/score@dose=1"),)),
    headlines=("toy/mean",),
    series=(Series("Toy score by dose", "toy/score@dose={x}", "dose"),),
    sections=("toyrecipe.report",),
    summary="toyrecipe.recipe:summary",
)
'''

TOY_RECIPE = '''
"""Toy recipe's runnable module: no model, numbers from the seed."""
from pathlib import Path

import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import resolve
from mnemoscope.recipes.common import finish_run

DEFAULTS = {"seed": 0, "gain": 0.25}


def run(out, overrides=None, log=print):
    cfg = resolve(DEFAULTS, overrides)
    run = rundir.Run(out, cfg, "toy")
    scores = {1: 0.1 + 0.01 * cfg["seed"], 2: 0.1 + cfg["gain"] + 0.02 * cfg["seed"]}
    run.metrics.update({f"toy/score@dose={d}": v for d, v in scores.items()})
    run.metrics["toy/mean"] = sum(scores.values()) / 2
    run.metrics["zz/other"] = 1.0
    run.add_table("samples", pd.DataFrame({"dose": list(scores), "score": list(scores.values())}))
    return finish_run(run, device="cpu")


def summary(out):
    return "toy summary: mean " + str(round(__import__("json").loads((Path(out) / "metrics.json").read_text())["toy/mean"], 3))
'''

TOY_REPORT = '''
"""Toy recipe's report section: drawn when the run has toy/mean."""
from markupsafe import Markup

from mnemoscope.report.html import register_section, section_html


def section_toy(run):
    if run.metric("toy/mean") is None:
        return None
    return section_html("Toy section", Markup("<p>toy mean {:.3f}</p>").format(run.metric("toy/mean")))


register_section(section_toy, order=6)
'''


@pytest.fixture
def toy_recipe(tmp_path, monkeypatch):
    """The toy recipe's folder on sys.path and its one registry line; the report's section list and
    the modules it imported are restored afterwards."""
    from mnemoscope.report import html

    pkg = tmp_path / "toyrecipe"
    pkg.mkdir()
    for name, text in (("__init__.py", TOY_DECLARATION), ("recipe.py", TOY_RECIPE), ("report.py", TOY_REPORT)):
        (pkg / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    html.discover_sections()  # the built-in sections, before the list is copied
    monkeypatch.setattr(html, "SECTIONS", list(html.SECTIONS))
    monkeypatch.setattr(html, "_DISCOVERED", set(html._DISCOVERED))
    monkeypatch.setitem(recipes.RECIPES, "toy", "toyrecipe")
    yield pkg
    for name in [m for m in sys.modules if m.startswith("toyrecipe")]:
        del sys.modules[name]


def _section(page: str, anchor: str) -> str:
    return page.split(f'<section id="{anchor}">')[1].split("</section>")[0]


def test_a_new_recipe_runs_reports_claims_and_compares_from_its_folder_and_one_registry_line(
        toy_recipe, tmp_path, capsys):
    from mnemoscope.cli import main
    from mnemoscope.compare import compare

    out = tmp_path / "run"
    assert main(["run", "toy", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "toy summary: mean 0.225" in printed  # the declared terminal summary
    page = (out / "report.html").read_text()
    sections = page.split('<section id="')[1:]
    assert sections[1].startswith("claim") and "Toy memory grows with the dose." in sections[1]  # the claim first
    assert "Toy et al. 2026" in sections[1] and "mnemoscope run toy --seeds 0,1,2" in sections[1]
    assert "toy mean 0.225" in _section(page, "toy-section")  # its own section, from its folder

    seeds = tmp_path / "seeds"
    assert main(["run", "toy", "--seeds", "0,1", "--out", str(seeds)]) == 0
    c = compare([seeds / "seed=0", seeds / "seed=1"])
    assert c.columns == ["toy/score@dose=2", "toy/score@dose=1", "toy/mean"]  # claim keys, then headlines
    comparison = (seeds / "comparison.html").read_text()
    claim = _section(comparison, "claim-across-seeds")
    assert "Toy memory grows with the dose." in claim and "2 of 2 runs" in claim
    assert "toy comparison plots" in _section(comparison, "by-group-variable")  # its declared series
    assert 'id="unlearning-trade-off"' not in comparison  # not declared for the toy


def test_a_command_run_kind_is_declared_with_one_registry_line(tmp_path, monkeypatch):
    """A run kind that no `mnemoscope run` makes (like `audit`): its declaration gives compare its
    headline columns and the comparison page its trade-off plot."""
    from mnemoscope.compare import compare
    from mnemoscope.recipes.plugin import Recipe
    from mnemoscope.report.comparison import render_comparison
    from tests.helpers import declare
    from tests.runfakes import fake_run

    metrics = {"zz/a": 1.0, "b/c": 2.0, "unlearn/ga/knowmem_forget": 0.2, "unlearn/ga/knowmem_retain": 0.5}
    dirs = [fake_run(tmp_path / f"r{s}", metrics, recipe="toy-check", seed=s) for s in (0, 1)]
    assert compare(dirs).columns[0] == "b/c"  # unknown kind: its first plain numbers
    declare(monkeypatch, Recipe("toy-check", headlines=("zz/a",), tradeoff=True))
    assert compare(dirs).columns == ["zz/a"]
    assert 'id="unlearning-trade-off"' in render_comparison(compare(dirs))


def test_recipe_declarations_import_no_torch_transformers_or_matplotlib():
    import os

    src = Path(recipes.__file__).resolve().parents[2]  # src/mnemoscope/recipes/__init__.py → src
    code = ("import sys; from mnemoscope.recipes import declarations; "
            "names = [d.name for d in declarations()]; "
            "print(len(names), sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(src)})
    assert done.stdout.split(" ", 1) == [str(len(recipes.RECIPES) + len(recipes.RUN_KINDS)), "[]\n"]


def test_every_declaration_is_consistent_with_its_registry_line():
    for name in recipes.RECIPES:
        declared = recipes.declaration(name)
        assert declared.name == name and declared.module and declared.claim is not None
    for name in recipes.RUN_KINDS:
        assert recipes.declaration(name).module is None  # written by a command, not `mnemoscope run`
    for declared in recipes.declarations():
        for module in declared.sections:
            assert Path(src_file(module)).is_file(), module
    assert recipes.declaration("no-such-kind") is None
    with pytest.raises(Exception, match="unknown recipe 'toy'"):
        recipes.get_recipe("toy")


def src_file(module: str) -> str:
    import importlib.util

    return importlib.util.find_spec(module).origin


def test_scale_is_a_named_preset_in_every_recipe(tmp_path):
    """``--set scale=NAME`` means one thing everywhere: a preset in the recipe's ``SCALES`` whose
    sections override the defaults (and the user's overrides win); a number is refused."""
    from mnemoscope.errors import MnemoscopeError
    from mnemoscope.recipes import RECIPES, get_recipe
    from mnemoscope.recipes.common import resolve_scaled

    scaled = []
    for name in RECIPES:
        module = get_recipe(name)
        if "scale" not in module.DEFAULTS:
            continue
        scaled.append(name)
        assert isinstance(module.DEFAULTS["scale"], str) and module.DEFAULTS["scale"] in module.SCALES, name
        for preset, sections in module.SCALES.items():
            cfg = resolve_scaled(module.DEFAULTS, module.SCALES, {"scale": preset})
            for section, values in sections.items():
                assert all(cfg[section][k] == v for k, v in values.items()), (name, preset, section)
    assert "unlearning" in scaled and len(scaled) >= 7
    unlearning = get_recipe("unlearning")
    cfg = resolve_scaled(unlearning.DEFAULTS, unlearning.SCALES, {"scale": "x2", "corpus.n_docs": 10})
    assert cfg["world"]["n_people"] == 2 * unlearning.DEFAULTS["world"]["n_people"] and cfg["corpus"]["n_docs"] == 10
    with pytest.raises(MnemoscopeError, match="unknown scale '2': use one of tiny, x2, x4"):
        unlearning.run(tmp_path / "run", {"scale": 2}, log=lambda m: None)
    assert not (tmp_path / "run").exists()
