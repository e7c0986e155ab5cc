"""Palimpsestic provenance test (Kuditipudi et al. 2025, *Blackbox Model Provenance via Palimpsestic
Membership Inference*): was the audited model derived from the model whose training order we know?

Inputs: the original model's training examples (``provenance.texts``: records with ``id`` and
``text``) and their training order (``provenance.order``: a ``.txt`` file with one id per line,
earliest first, or a ``.jsonl``/``.parquet`` file of records with ``id`` and a numeric
``position``). The suspect is the audited model. Statistic: Spearman ρ between each example's
log-likelihood under the suspect (−NLL; with ``provenance.ref_model`` the difference to that
reference model's, as in the authors' query test with a reference) and its position; p-value by
permutation of the positions, exact under the null (``metrics.provenance``). A small p means the
suspect remembers the original's late examples best: it was derived from it.

Keys: ``provenance/rho``, ``provenance/p_value`` (ours: one-sided permutation, what the claims
use), ``provenance/p_value_two_sided`` (the authors': scipy's two-sided Spearman p, t
approximation), ``provenance/n``, ``provenance/n_perm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result
from mnemoscope.jsonl import read_utf8
from mnemoscope.metrics.provenance import provenance_test
from mnemoscope.probes import formats
from mnemoscope.probes.textfile import load_records

NAME = "provenance"
TITLE = "Provenance (palimpsestic membership)"
DEFAULTS = {"provenance": {"texts": "", "order": "", "n_perm": 9999, "ref_model": ""}}
PATH_KEYS = ("provenance.texts", "provenance.order")
MODEL_KEYS = ("provenance.ref_model",)
NEEDS = ("logprobs",)
HEADLINE = ("provenance/rho", "provenance/p_value", "provenance/p_value_two_sided")


@dataclass
class Inputs:
    ids: list[str]
    texts: list[str]
    positions: np.ndarray
    n_perm: int


def read_order(path: str | Path) -> list[tuple[str, float]]:
    """(id, position) pairs: a .txt file lists ids in training order (position = line number − 1);
    other formats hold records with ``id`` and a numeric ``position``."""
    path = Path(path)
    if path.suffix == ".txt":
        if not path.is_file():
            raise MnemoscopeError(f"{path}: no such file; check provenance.order")
        lines = [ln.strip() for ln in read_utf8(path).split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        if not lines:
            raise MnemoscopeError(f"{path}: the order file holds no ids")
        for i, ln in enumerate(lines, 1):
            if not ln:
                raise MnemoscopeError(f"{path}:{i}: empty line; the order file holds one id per line")
        return [(ln, float(i)) for i, ln in enumerate(lines)]
    out = []
    for where, rec in formats.read_rows(path):
        if "id" not in rec or "position" not in rec:
            raise MnemoscopeError(f"{where}: an order record needs fields 'id' and 'position' (fields present: "
                                  f"{', '.join(sorted(rec))})")
        pos = rec["position"]
        if isinstance(pos, bool) or not isinstance(pos, (int, float)) or not np.isfinite(pos):
            raise MnemoscopeError(f"{where}: field 'position' must be a finite number, got {pos!r}")
        out.append((str(rec["id"]), float(pos)))
    return out


def read(cfg: dict, ctx: Context | None = None) -> Inputs | None:
    p = cfg["provenance"]
    if not p["texts"] and not p["order"]:
        return None
    if not p["texts"] or not p["order"]:
        raise MnemoscopeError("provenance needs both provenance.texts (the training examples) and provenance.order "
                              "(their training order)")
    if int(p["n_perm"]) < 1:
        raise MnemoscopeError(f"provenance.n_perm must be ≥ 1, got {p['n_perm']}")
    records = load_records(p["texts"])
    ids = []
    for i, r in enumerate(records, 1):
        if "id" not in r:
            raise MnemoscopeError(f"{p['texts']}: record {i} has no 'id' field; provenance examples need ids to match "
                                  "the order file")
        ids.append(str(r["id"]))
    dup = sorted({x for x in ids if ids.count(x) > 1}) if len(set(ids)) < len(ids) else []
    if dup:
        raise MnemoscopeError(f"{p['texts']}: duplicate id(s) {dup[:3]}; every training example needs its own id")
    order = read_order(p["order"])
    seen: dict[str, float] = {}
    for oid, pos in order:
        if oid in seen:
            raise MnemoscopeError(f"{p['order']}: id {oid!r} appears twice; give each example one position")
        seen[oid] = pos
    unknown = [oid for oid in seen if oid not in set(ids)]
    missing = [x for x in ids if x not in seen]
    if unknown or missing:
        what = []
        if unknown:
            what.append(f"{len(unknown)} id(s) not in {p['texts']} (e.g. {unknown[0]!r})")
        if missing:
            what.append(f"{len(missing)} example(s) without a position (e.g. {missing[0]!r})")
        raise MnemoscopeError(f"{p['order']} does not match the training set: " + " and ".join(what)
                              + "; the order file must list exactly the ids of provenance.texts")
    return Inputs(ids, [r["text"] for r in records], np.array([seen[x] for x in ids]), int(p["n_perm"]))


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Inputs:
    engine.check_texts(inputs.texts)
    ref = (ctx.engines.get("provenance.ref_model") if ctx else None)
    if ref is not None:
        ref.check_texts(inputs.texts)
    return inputs


def measure(plan: Inputs, engine: Backend, ctx: Context | None = None) -> Result:
    ctx = ctx or Context()
    nll = np.array([s.nll for s in engine.score(plan.texts)])
    stat = -nll
    frame = pd.DataFrame({"id": plan.ids, "position": plan.positions, "nll": nll})
    ref = ctx.engines.get("provenance.ref_model")
    if ref is not None:
        ref_nll = np.array([s.nll for s in ref.score(plan.texts)])
        frame["ref_nll"] = ref_nll
        stat = stat + ref_nll  # −NLL_suspect − (−NLL_ref)
    res = provenance_test(stat, plan.positions, n_perm=plan.n_perm, seed=ctx.seed)
    return Result(samples=frame, metrics={"provenance/rho": res["rho"], "provenance/p_value": res["p_value"],
                                          "provenance/p_value_two_sided": res["p_value_two_sided"],
                                          "provenance/n": res["n"], "provenance/n_perm": float(plan.n_perm)})
