"""Target log-probability (Chang et al. 2024): how likely is a known continuation of a probe?

Per (prefix, target) probe: the mean NLL of the target's tokens given the prefix, and the first
target token's NLL, from one batched score call over all pairs (the target's tokens only; the
prefix's trailing whitespace moves onto the target).

Config section ``target``: ``file`` (records with ``prefix``, ``target`` and an optional
``group``/``kind`` label). Keys ``target/nll/mean``, ``target/first_token_nll/mean``,
``target/n``, each also ``@group=<label>`` when every probe has a group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import (
    Context,
    Result,
    encode_each,
    field_pair,
    plan_and_measure,
)
from mnemoscope.metrics import knowledge as km
from mnemoscope.probes import formats

NAME = "target"
TITLE = "Target log-probability"
DEFAULTS = {"target": {"file": ""}}
PATH_KEYS = ("target.file",)
NEEDS = ("logprobs",)
PREFIX = "target"
HEADLINE = (f"{PREFIX}/nll/mean",)


@dataclass
class Inputs:
    probes: list[dict]  # {id, prefix, target, group}


@dataclass
class Plan:
    inputs: Inputs
    pairs: list[Encoded]


def load_probes(path: str) -> list[dict]:
    """prefix / target records with an optional ``group`` (or ``kind``) label."""
    out = []
    for index, (where, rec) in enumerate(formats.read_rows(path)):
        item = {"id": str(rec.get("id", index))}
        for key in ("prefix", "target"):
            if key not in rec:
                raise MnemoscopeError(f"{where}: missing field '{key}' (fields present: "
                                      f"{', '.join(sorted(map(str, rec))) or 'none'}; expected: prefix, target)")
            if not isinstance(rec[key], str) or not rec[key].strip():
                raise MnemoscopeError(f"{where}: field '{key}' must be a non-empty string, got {rec[key]!r}")
            item[key] = rec[key]
        group = rec.get("group", rec.get("kind"))
        if group is not None and (not isinstance(group, (str, int)) or str(group).strip() == ""):
            raise MnemoscopeError(f"{where}: field 'group' must be a non-empty string, got {group!r}")
        item["group"] = None if group is None else str(group)
        out.append(item)
    return out


def read(cfg: dict, ctx: Context) -> Inputs | None:
    return Inputs(load_probes(cfg["target"]["file"])) if cfg["target"]["file"] else None


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    return Plan(inputs, encode_each(lambda p: engine.encode_pair(p["prefix"], p["target"]), inputs.probes,
                                    "target probe", [p["id"] for p in inputs.probes]))


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    probes = plan.inputs.probes
    result = Result()
    if not probes:
        result.not_computed(f"{PREFIX}/nll/mean", "target: no probes")
        return result
    scored = engine.score_encoded(plan.pairs)
    samples = pd.DataFrame({
        "id": [p["id"] for p in probes],
        "prefix": [p["prefix"] for p in probes],
        "target": [p["target"] for p in probes],
        "target_nll": [km.target_nll(s.logprobs) for s in scored],
        "first_token_nll": [km.first_token_nll(s.logprobs) for s in scored],
        "n_target_tokens": [s.n_scored for s in scored],
    })
    groups = [p["group"] for p in probes]
    frames = [("", samples)]
    if all(g is not None for g in groups):
        samples["group"] = groups
        frames += [(f"@group={g}", samples[samples["group"] == g]) for g in dict.fromkeys(groups)]
    for suffix, frame in frames:
        result.metrics[f"{PREFIX}/nll/mean{suffix}"] = float(frame["target_nll"].mean())
        result.metrics[f"{PREFIX}/first_token_nll/mean{suffix}"] = float(frame["first_token_nll"].mean())
        result.metrics[f"{PREFIX}/n{suffix}"] = float(len(frame))
    result.samples = samples
    return result


def target_nll(engine: Backend, probes: Sequence, *, groups: Sequence[str] | None = None) -> Result:
    """Target NLL of ``probes`` ((prefix, target) pairs or objects with those fields) with optional
    ``groups`` (one label per probe, e.g. the probe kind)."""
    items = []
    for i, x in enumerate(probes):
        prefix, target = field_pair(x, ("prefix", "target"), f"probe {i}")
        items.append({"id": str(i), "prefix": prefix, "target": target, "group": None})
    if groups is not None:
        if len(groups) != len(items):
            raise MnemoscopeError(f"target_nll: {len(groups)} group labels for {len(items)} probes; pass one per probe")
        for item, g in zip(items, groups):
            item["group"] = str(g)
    return plan_and_measure(plan, measure, Inputs(items), engine)
