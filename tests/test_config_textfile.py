"""Config overrides and the user's text files: every bad input is a one-line error naming the place."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mnemoscope.config import Typed, flatten, merge_sections, parse_overrides, resolve
from mnemoscope.errors import MnemoscopeError
from mnemoscope.probes.textfile import load_texts

DEFAULTS = {"seed": 0, "train": {"steps": 10, "lr": 1e-3, "schedule": "cosine"}, "doses": [0, 1], "flag": False}


def test_overrides_parse_yaml_values():
    got = parse_overrides(["train.steps=50", "doses=[0, 4, 16]", "flag=true", "train.lr=3e-3"])
    assert got == {"train.steps": 50, "doses": [0, 4, 16], "flag": True, "train.lr": 3e-3}


def test_resolve_applies_overrides_without_touching_defaults():
    cfg = resolve(DEFAULTS, {"train.steps": 5, "train.lr": 1})
    assert cfg["train"]["steps"] == 5
    assert cfg["train"]["lr"] == 1.0 and isinstance(cfg["train"]["lr"], float)
    assert DEFAULTS["train"]["steps"] == 10
    assert flatten(cfg)["train.schedule"] == "cosine"


def test_unknown_key_suggests_the_nearest():
    with pytest.raises(MnemoscopeError, match="did you mean 'train.steps'"):
        resolve(DEFAULTS, {"train.step": 3})


def test_typed_leaves_default_to_null_and_check_their_type():
    tree = {"engine": {"max_length": Typed(int), "bins": Typed(list), "init": Typed(str)}}
    assert resolve(tree) == {"engine": {"max_length": None, "bins": None, "init": None}}
    cfg = resolve(tree, {"engine.max_length": 512.0, "engine.bins": (0, 4), "engine.init": "runs/x/model"})
    assert cfg["engine"] == {"max_length": 512, "bins": [0, 4], "init": "runs/x/model"}
    assert resolve(tree, {"engine.max_length": None})["engine"]["max_length"] is None
    with pytest.raises(MnemoscopeError, match="'engine.max_length' expects int or null, got 'long'"):
        resolve(tree, {"engine.max_length": "long"})
    with pytest.raises(MnemoscopeError, match="expects int or null"):
        resolve(tree, {"engine.max_length": True})
    with pytest.raises(MnemoscopeError, match="expects str or null"):
        resolve(tree, {"engine.init": 3})


def test_sections_merge_and_a_leaf_declared_twice_is_a_bug():
    merged = merge_sections({"a": {"x": 1}, "seed": 0}, {"a": {"y": 2}, "b": {"z": 3}})
    assert merged == {"a": {"x": 1, "y": 2}, "seed": 0, "b": {"z": 3}}
    with pytest.raises(ValueError, match="'x' is declared twice"):
        merge_sections({"a": {"x": 1}}, {"a": {"x": 2}})


@pytest.mark.parametrize("override, pattern", [
    ({"seed": -1}, r"'seed' \(--set seed=\.\.\. or its flag\) must be a whole number ≥ 0, got -1"),
    ({"train.lr": 0.0}, r"'train.lr' .* must be a number > 0"),
    ({"train.lr": float("nan")}, r"'train.lr' .* must be a finite number, got nan"),
    ({"train.lr": float("inf")}, r"finite number"),
    ({"train.steps": 0}, r"'train.steps' .* must be ≥ 1, got 0"),
    ({"doses": [0, "a"]}, r"'doses' in --set expects a list of whole numbers"),
    ({"doses": [0, 1.5]}, r"expects a list of whole numbers"),
    ({"names": ["a", 3]}, r"'names' in --set expects a list of strings"),
    ({"audit.k": 1.5}, r"'audit.k' .* fraction in \(0, 1\]"),
    ({"audit.k": 0}, r"fraction in \(0, 1\]"),
    ({"sweep.lr": [1e-4, -1e-3]}, r"'sweep.lr' .* a number > 0"),
    ({"sweep.steps": [10, 0]}, r"'sweep.steps' .* ≥ 1"),
])
def test_shared_settings_out_of_range_are_refused(override, pattern):
    tree = {**DEFAULTS, "names": ["x"], "audit": {"k": 0.2, "n_boot": 100},
            "sweep": {"lr": [1e-4], "steps": [10]}}
    resolve(tree, {"doses": [0, 2.0], "audit.k": 1, "sweep.steps": [], "names": []})  # the edges that are fine
    with pytest.raises(MnemoscopeError, match=pattern):
        resolve(tree, override)


def test_every_recipe_default_passes_its_own_checks():
    from mnemoscope.recipes import RECIPES, get_recipe
    from mnemoscope.recipes.audit import recipe as audit
    from mnemoscope.recipes.unlearning import recipe as u

    for name in RECIPES:
        resolve(get_recipe(name).DEFAULTS)
    resolve(audit.DEFAULTS)
    resolve(u.USER_DEFAULTS, where="a file")


def test_wrong_type_is_refused():
    with pytest.raises(MnemoscopeError, match="expects int"):
        resolve(DEFAULTS, {"train.steps": "many"})
    with pytest.raises(MnemoscopeError, match="key=value"):
        parse_overrides(["train.steps"])


# ---------------------------------------------------------------- text files


def test_jsonl_txt_parquet(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n\n{"text": "two", "x": 1}\n')
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    pd.DataFrame({"text": ["one", "two"]}).to_parquet(tmp_path / "a.parquet")
    for name in ("a.jsonl", "a.txt", "a.parquet"):
        assert load_texts(tmp_path / name) == ["one", "two"]


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("", "holds no texts"),
        ('{"text": "ok"}\nnot json\n', r"a.jsonl:2: not valid JSON"),
        ('{"text": "ok"}\n{"body": "x"}\n', r"a.jsonl:2: missing field 'text' \(fields present: body\)"),
        ('{"text": "   "}\n', r"a.jsonl:1: field 'text' is empty"),
        ('{"text": 3}\n', r"a.jsonl:1: field 'text' must be a string"),
        ("[1, 2]\n", "expected a JSON object"),
    ],
)
def test_bad_jsonl(tmp_path, content, pattern):
    path = tmp_path / "a.jsonl"
    path.write_text(content)
    with pytest.raises(MnemoscopeError, match=pattern) as err:
        load_texts(path)
    assert "\n" not in str(err.value)


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(MnemoscopeError, match=r"a.txt:2: not valid UTF-8"):
        load_texts(path)


def test_empty_txt_line_and_unknown_suffix_and_missing(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\ntwo\n")
    with pytest.raises(MnemoscopeError, match="a.txt:2: empty line"):
        load_texts(tmp_path / "a.txt")
    (tmp_path / "a.csv").write_text("text\nx\n")
    with pytest.raises(MnemoscopeError, match="unknown format"):
        load_texts(tmp_path / "a.csv")
    with pytest.raises(MnemoscopeError, match="no such file"):
        load_texts(tmp_path / "missing.jsonl")


def test_parquet_missing_column(tmp_path):
    pd.DataFrame({"body": ["x"]}).to_parquet(tmp_path / "a.parquet")
    with pytest.raises(MnemoscopeError, match="missing column 'text'"):
        load_texts(tmp_path / "a.parquet")
    (tmp_path / "b.parquet").write_text(json.dumps({"not": "parquet"}))
    with pytest.raises(MnemoscopeError, match="not a readable Parquet"):
        load_texts(tmp_path / "b.parquet")


def test_texts_and_groups(tmp_path):
    from mnemoscope.probes.textfile import load_texts_and_groups

    path = tmp_path / "g.jsonl"
    path.write_text('{"text": "a", "group": "p1"}\n{"text": "b", "group": 7}\n')
    assert load_texts_and_groups(path) == (["a", "b"], ["p1", "7"])
    plain = tmp_path / "plain.txt"
    plain.write_text("a\nb\n")
    assert load_texts_and_groups(plain) == (["a", "b"], None)
    path.write_text('{"text": "a", "group": "p1"}\n{"text": "b"}\n')
    with pytest.raises(MnemoscopeError, match="record 2 has no 'group' while others have one"):
        load_texts_and_groups(path)
    path.write_text('{"text": "a", "group": "p1"}\n{"text": "b", "group": [1]}\n')
    with pytest.raises(MnemoscopeError, match="record 2: field 'group' must be a non-empty string or an integer"):
        load_texts_and_groups(path)
