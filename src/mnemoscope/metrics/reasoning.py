"""Memorization versus reasoning (docs/metrics.md §6): LiMem and the We-Math four dimensions.

**LiMem** (Xie et al. 2024, "On Memorization of Large Language Models in Logical Reasoning")::

    Acc  = (1/N) · Σ_i c_i                                   c_i = original item i solved
    CR   = Σ_i c_i · p_i / Σ_i c_i                           p_i = perturbed item i solved
    LiMem = Acc · (1 − CR)

CR (consistency ratio) is the share of the *correctly solved* originals whose locally perturbed
version (one statement or leaf changed so that the answer changes) is also solved. High
accuracy with low consistency (LiMem near Acc) signals memorization; LiMem = 0 when nothing is
solved or everything solved survives the perturbation. When no original is solved, CR is
undefined (nan) and LiMem is 0 (Acc = 0).

**We-Math** four dimensions (Qiao et al. 2024/2025, arXiv 2407.01284), per composite problem
with sub-problems (one per knowledge concept)::

    IK  composite wrong, at least one sub wrong          (both variants)
    IG  composite wrong, all subs right                  (both variants)
    CM  strict: composite right, all subs right
        loose:  composite right, at least one sub right
    RM  strict: composite right, at least one sub wrong
        loose:  composite right, all subs wrong

In each variant IK + IG + CM + RM = N. RM rate = RM / (CM + RM) (nan when no composite is
right). Score = (N − 0.5·IG − RM − IK) / N, with the variant's RM *count*.

Differences from the paper, stated precisely: the definitions above are the paper's. The paper's leaderboard lists IK, IG and CM as percentages of N but RM as
the RM *rate*; here every dimension is returned as a count plus ``rm_rate``, and the score
uses the RM count, as in the paper's formula. The paper's composites have 2 or 3
sub-problems; any number >= 1 is accepted here (with one sub-problem strict == loose).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnemoscope.errors import MnemoscopeError
from mnemoscope.jsonl import jsonl_objects


def _bool_array(values: Sequence[Any], name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise MnemoscopeError(f"{name}: expected a 1-D array of booleans, got shape {arr.shape}")
    if arr.dtype != bool:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise MnemoscopeError(f"{name}: values must be booleans or 0/1")
        arr = arr.astype(bool)
    return arr


def limem(acc: float, consistency_ratio: float) -> float:
    """LiMem = Acc · (1 − CR); 0 when Acc = 0 (CR may then be nan)."""
    if not 0.0 <= acc <= 1.0:
        raise MnemoscopeError(f"acc={acc}: must be in [0, 1]")
    if acc == 0.0:
        return 0.0
    if math.isnan(consistency_ratio) or not 0.0 <= consistency_ratio <= 1.0:
        raise MnemoscopeError(
            f"consistency_ratio={consistency_ratio}: must be in [0, 1] when acc > 0"
        )
    return float(acc * (1.0 - consistency_ratio))


def limem_from_results(
    correct_original: Sequence[bool], correct_perturbed: Sequence[bool]
) -> dict[str, float]:
    """Acc, CR and LiMem from paired per-item correctness (item i original vs its perturbation).

    Returns ``{"acc", "consistency_ratio", "limem", "n_items", "n_solved", "n_consistent"}``
    where n_solved = Σ c_i and n_consistent = Σ c_i·p_i (see the module docstring).
    """
    orig = _bool_array(correct_original, "correct_original")
    pert = _bool_array(correct_perturbed, "correct_perturbed")
    if orig.shape != pert.shape:
        raise MnemoscopeError(
            f"correct_original has {orig.size} items but correct_perturbed has {pert.size}; "
            "pass one perturbed result per original item"
        )
    if orig.size == 0:
        raise MnemoscopeError("correct_original: no items; LiMem needs at least one puzzle")
    n_solved = int(orig.sum())
    n_consistent = int((orig & pert).sum())
    acc = n_solved / orig.size
    cr = n_consistent / n_solved if n_solved else float("nan")
    return {
        "acc": float(acc),
        "consistency_ratio": float(cr),
        "limem": limem(acc, cr),
        "n_items": int(orig.size),
        "n_solved": n_solved,
        "n_consistent": n_consistent,
    }


def _item_fields(item: Any, where: str) -> tuple[bool, list[bool]]:
    if not isinstance(item, dict):
        raise MnemoscopeError(f"{where}: expected an object with composite_correct, sub_correct")
    for key in ("composite_correct", "sub_correct"):
        if key not in item:
            raise MnemoscopeError(f"{where}: missing field '{key}'")
    composite, subs = item["composite_correct"], item["sub_correct"]
    if not isinstance(composite, (bool, np.bool_)):
        raise MnemoscopeError(f"{where}: field 'composite_correct' must be a boolean")
    if not isinstance(subs, (list, tuple, np.ndarray)) or len(subs) == 0:
        raise MnemoscopeError(f"{where}: field 'sub_correct' must be a non-empty list of booleans")
    if not all(isinstance(s, (bool, np.bool_)) for s in subs):
        raise MnemoscopeError(f"{where}: field 'sub_correct' must hold booleans only")
    return bool(composite), [bool(s) for s in subs]


def wemath_four_dimensions(table: Sequence[dict]) -> dict[str, float]:
    """IK, IG, CM, RM counts, RM rate and score for the strict and loose variants.

    ``table``: items ``{"composite_correct": bool, "sub_correct": [bool, ...]}``.
    Keys: ``n`` and ``{strict,loose}/{ik,ig,cm,rm,rm_rate,score}`` (see the module docstring).
    """
    if len(table) == 0:
        raise MnemoscopeError("We-Math table: no items")
    ik = ig = cm_strict = cm_loose = 0
    for k, item in enumerate(table):
        composite, subs = _item_fields(item, f"We-Math table item {k}")
        if not composite:
            if all(subs):
                ig += 1
            else:
                ik += 1
            continue
        cm_strict += all(subs)
        cm_loose += any(subs)
    n = len(table)
    n_composite_right = n - ik - ig
    out: dict[str, float] = {"n": n}
    for variant, cm in (("strict", cm_strict), ("loose", cm_loose)):
        rm = n_composite_right - cm
        out[f"{variant}/ik"] = ik
        out[f"{variant}/ig"] = ig
        out[f"{variant}/cm"] = cm
        out[f"{variant}/rm"] = rm
        out[f"{variant}/rm_rate"] = rm / (cm + rm) if cm + rm else float("nan")
        out[f"{variant}/score"] = (n - 0.5 * ig - rm - ik) / n
    return out


_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


def _parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise MnemoscopeError(f"{where}: {value!r} is not a boolean (use true/false or 1/0)")


def _parse_subs(value: Any, where: str) -> list[bool]:
    if isinstance(value, str):
        parts = [p for p in value.replace(",", ";").split(";") if p.strip()]
    elif isinstance(value, list):
        parts = value
    else:
        raise MnemoscopeError(f"{where}: expected a list or a string like \"1;0;1\"")
    if not parts:
        raise MnemoscopeError(f"{where}: no sub-problem results")
    return [_parse_bool(p, where) for p in parts]


def _row_to_item(row: dict, where: str) -> dict:
    for key in ("id", "composite_correct", "sub_correct"):
        if key not in row or row[key] is None or row[key] == "":
            raise MnemoscopeError(f"{where}: missing column '{key}'")
    return {
        "id": str(row["id"]),
        "composite_correct": _parse_bool(row["composite_correct"], f"{where}: 'composite_correct'"),
        "sub_correct": _parse_subs(row["sub_correct"], f"{where}: 'sub_correct'"),
    }


def load_wemath_table(path: str | Path) -> list[dict]:
    """Read a per-item correctness table (``.csv``, or ``.jsonl``/``.json`` with one object
    per line) with columns ``id``, ``composite_correct``, ``sub_correct`` (a list, or a string
    such as ``"1;0;1"``). Returns items for :func:`wemath_four_dimensions`.
    """
    path = Path(path)
    if not path.is_file():
        raise MnemoscopeError(f"{path}: We-Math table not found; check the path")
    suffix = path.suffix.lower()
    items: list[dict] = []
    with path.open(encoding="utf-8", newline="") as handle:
        if suffix == ".csv":
            reader = csv.DictReader(handle)
            missing = {"id", "composite_correct", "sub_correct"} - set(reader.fieldnames or [])
            if missing:
                raise MnemoscopeError(
                    f"{path}:1: header lacks column(s) {sorted(missing)}; "
                    "expected id,composite_correct,sub_correct"
                )
            for row in reader:
                items.append(_row_to_item(row, f"{path}:{reader.line_num}"))
        elif suffix in (".jsonl", ".json"):
            items.extend(_row_to_item(row, where) for where, row in jsonl_objects(path))
        else:
            raise MnemoscopeError(f"{path}: unknown table format {suffix!r}; use .csv or .jsonl")
    if not items:
        raise MnemoscopeError(f"{path}: the table has no rows")
    seen: set[str] = set()
    for item in items:
        if item["id"] in seen:
            raise MnemoscopeError(f"{path}: id {item['id']!r} appears twice; ids must be unique")
        seen.add(item["id"])
    return items
