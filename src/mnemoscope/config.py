"""Nested experiment configs: defaults, ``key=value`` overrides, and strict key checking.

A recipe (and each measurement family) declares its defaults as a nested dict, in one place;
a leaf's type is its default's type, or ``Typed(type)`` for a leaf whose default is None.
``--set train.steps=50`` overrides one leaf; values are parsed as YAML scalars/lists (``64``,
``1e-3``, ``[0, 1, 4]``, ``true``). An unknown key is an error naming the nearest known key, and a
value of the wrong type is an error naming the key and the type it expects — both before any work.
So is a value out of range for the settings every recipe shares by name (``seed`` ≥ 0; ``lr`` a
finite number > 0; ``steps``, ``epochs``, ``batch_size``, ``max_batch_size``, ``n_boot`` and
``n_perm`` ≥ 1; ``k`` in (0, 1]), a NaN or infinite number anywhere, and a list element of another
kind than the default list's elements.
"""

from __future__ import annotations

import copy
import difflib
import math

import yaml

from mnemoscope.errors import MnemoscopeError


class Typed:
    """A config leaf whose default is None but whose values have a type: ``Typed(int)`` accepts
    null or an int (a float that is whole counts), ``Typed(str)`` null or a string."""

    def __init__(self, type_: type, default=None):
        self.type, self.default = type_, default

    def __repr__(self) -> str:
        return f"Typed({self.type.__name__})"


def _defaults_of(tree):
    """The tree with every ``Typed`` leaf replaced by its default."""
    if isinstance(tree, dict):
        return {k: _defaults_of(v) for k, v in tree.items()}
    return copy.deepcopy(tree.default) if isinstance(tree, Typed) else copy.deepcopy(tree)


def _leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in tree.items():
        path = f"{prefix}{k}"
        keys.extend(_leaf_keys(v, path + ".") if isinstance(v, dict) else [path])
    return keys


def _unknown(key: str, known: list[str], where: str) -> MnemoscopeError:
    near = difflib.get_close_matches(key, known, n=1)
    sections = sorted({k.split(".")[0] for k in known})
    listing = ", ".join(known) if len(known) <= 20 else "sections " + ", ".join(sections)
    hint = f"; did you mean '{near[0]}'?" if near else f"; known: {listing}"
    return MnemoscopeError(f"unknown config key '{key}' in {where}{hint}")


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """['a.b=1', 'c=[1, 2]'] → {'a.b': 1, 'c': [1, 2]}."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise MnemoscopeError(f"--set '{pair}' is not key=value (example: --set train.steps=50)")
        key, raw = pair.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise MnemoscopeError(f"--set {key}: cannot parse value '{raw}'") from exc
        out[key.strip()] = _number_or_value(value)
    return out


def _number_or_value(value):
    """YAML 1.1 reads '3e-3' as a string; treat anything float() accepts as a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def resolve(defaults: dict, overrides: dict[str, object] | None = None, where: str = "--set") -> dict:
    """Defaults with dotted-key overrides applied; unknown keys and type changes are errors."""
    config = _defaults_of(defaults)
    known = _leaf_keys(defaults)
    for key, value in (overrides or {}).items():
        if key not in known:
            raise _unknown(key, known, where)
        *parents, leaf = key.split(".")
        node, spec = config, defaults
        for p in parents:
            node, spec = node[p], spec[p]
        old = node[leaf]
        if isinstance(spec[leaf], Typed):
            node[leaf] = _typed(key, spec[leaf].type, value)
            continue
        if old is not None and value is not None and not _compatible(old, value):
            raise MnemoscopeError(
                f"config key '{key}' expects {type(old).__name__}, got {value!r} ({type(value).__name__})"
            )
        if isinstance(old, list) and isinstance(value, list):
            _check_elements(key, old, value, where)
        node[leaf] = float(value) if isinstance(old, float) and isinstance(value, int) else value
    check_ranges(config, where)
    return config


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_elements(key: str, default: list, value: list, where: str) -> None:
    """A list of numbers takes numbers (whole ones where the default's are), a list of strings
    takes strings."""
    if not default:
        return
    if all(_is_number(d) for d in default):
        want_int = all(isinstance(d, int) for d in default)
        for x in value:
            if not _is_number(x) or (want_int and not float(x).is_integer()):
                kind = "whole numbers" if want_int else "numbers"
                raise MnemoscopeError(f"config key '{key}' in {where} expects a list of {kind}, got {value!r}")
    elif all(isinstance(d, str) for d in default):
        for x in value:
            if not isinstance(x, str):
                raise MnemoscopeError(f"config key '{key}' in {where} expects a list of strings, got {value!r}")


_AT_LEAST_ONE = ("steps", "epochs", "batch_size", "max_batch_size", "n_boot", "n_perm")


def _range_error(key: str, where: str, rule: str, value) -> MnemoscopeError:
    source = f"--set {key}=... or its flag" if where == "--set" else where
    return MnemoscopeError(f"config key '{key}' ({source}) must be {rule}, got {value!r}")


def check_ranges(config: dict, where: str = "--set", prefix: str = "") -> None:
    """Range rules for the settings shared by name (see the module docstring); one-line errors
    naming the key, before any work."""
    for name, value in config.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            check_ranges(value, where, key + ".")
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise _range_error(key, where, "a finite number", value)
        if value is None:
            continue
        if name == "seed" and (not isinstance(value, int) or value < 0):
            raise _range_error(key, where, "a whole number ≥ 0", value)
        if name == "lr" and not all(_is_number(v) and v > 0 for v in values):
            raise _range_error(key, where, "a number > 0 (a learning rate)", value)
        if name in _AT_LEAST_ONE and not all(_is_number(v) and v >= 1 for v in values):
            raise _range_error(key, where, "≥ 1", value)
        if name == "k" and not (_is_number(value) and 0 < value <= 1):
            raise _range_error(key, where, "a fraction in (0, 1]", value)


def _typed(key: str, type_: type, value):
    if value is None or (type_ is float and isinstance(value, int) and not isinstance(value, bool)):
        return None if value is None else float(value)
    if type_ is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if type_ is list and isinstance(value, tuple):
        return list(value)
    if isinstance(value, bool) != (type_ is bool) or not isinstance(value, type_):
        raise MnemoscopeError(f"config key '{key}' expects {type_.__name__} or null, got {value!r} "
                              f"({type(value).__name__})")
    return value


def _compatible(old, new) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)):
        return isinstance(new, (int, float))
    if isinstance(old, (list, tuple)):
        return isinstance(new, (list, tuple))
    return isinstance(new, type(old))


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def merge_sections(*trees: dict) -> dict:
    """One defaults tree from several (a command's common sections and each family's): sections
    merge key by key; the same leaf declared twice is a bug and raises."""
    out: dict = {}
    for tree in trees:
        for key, value in tree.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge_sections(out[key], value)
            elif key in out:
                raise ValueError(f"config key '{key}' is declared twice")
            else:
                out[key] = copy.deepcopy(value)
    return out
