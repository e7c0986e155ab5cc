"""Capacity: how many bits of fictional biographies a model stores, by number of exposures
(PROTOCOLS §10, after Allen-Zhu & Li, Physics of Language Models 3.3).

Read top to bottom: fictional world (attributes drawn uniformly from fixed pools) → people split into
exposure groups (0 = never trained, the control; then e.g. 1, 10, 100 exposures; exposure k of a
person is biography version k mod (n_paraphrases + 1)) → tokenizer → model trained from scratch on
one shuffled pass over all biography copies (nothing else, as in the paper) while every attribute
probe ("<name> was born in " → value) is scored at log-spaced steps → per group and attribute the
loss in bits of the whole value, bits = Σ_attr N·max(0, log2|pool| − loss_bits) → bits per person
with bootstrap intervals over people, a fitted line bits/person = c + s·log10(exposures), and the
capacity ratio bits / parameters → run directory → report.

``--set scale=powered``: a 0.1 M-parameter model and 300 people at 100 exposures (against 300 never
trained), to read bits per parameter with its interval (docs/recipes.md, "Powered capacity design").
``--set scale=gpu``: more people and the paper's exposure counts (100 and 1000) with a larger model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import Typed
from mnemoscope.engine.encoding import text_ids
from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.factory import make_model
from mnemoscope.lab.tiny import count_parameters
from mnemoscope.metrics.bootstrap import bootstrap_ci, percentile_interval, stratified_replicates
from mnemoscope.metrics.capacity import bits_stored, capacity_ratio, nats_to_bits
from mnemoscope.metrics.dynamics import log_spaced_steps
from mnemoscope.probes.fictional import WorldConfig, capacity_pools, make_world
from mnemoscope.recipes.common import (
    finish_lab_run,
    fit_log_line,
    resolve_scaled,
    train_config,
)
from mnemoscope.train.packing import pack_background
from mnemoscope.train.phase import train_phase
from mnemoscope.train.probing import Prober

DEFAULTS = {
    "seed": 0,
    "scale": "tiny",  # tiny | powered | gpu (see SCALES)
    "model": {"size": "tiny", "hidden": 128, "layers": 4, "heads": 4, "intermediate": 352, "vocab_size": 2048,
              "init": Typed(str), "device": "auto"},  # init: a model directory / hub id to start from
    # per_group people for each exposure count (0 = never trained: the control group)
    "world": {"per_group": 48, "exposures": [0, 1, 10, 30, 100], "n_paraphrases": 3,
              "attributes": ["birth_date", "birth_city", "university", "major", "employer", "mentor"]},
    "train": {"batch_size": 8, "seq_len": 128, "lr": 2e-3, "warmup": 20, "schedule": "cosine",
              "checkpoint_every": 100, "bf16": False},
    "analysis": {"n_boot": 200},
}

# powered: bits per parameter at 100 exposures with the smallest width that stores bits, at the population
# where stored bits stopped growing with more people in the pilot (docs/recipes.md, "Powered capacity
# design"); the design's wider model adds --set model.hidden=64 --set model.intermediate=172.
SCALES = {
    "tiny": {},
    "powered": {
        "model": {"hidden": 48, "layers": 2, "heads": 4, "intermediate": 128, "vocab_size": 1024},
        "world": {"per_group": 300, "exposures": [0, 100]},
        "train": {"lr": 1e-2, "warmup": 50, "checkpoint_every": 1000},
    },
    "gpu": {
        "model": {"size": "small", "hidden": None, "layers": None, "heads": None, "intermediate": None,
                  "vocab_size": 16384},
        "world": {"per_group": 2000, "exposures": [0, 100, 1000]},
        "train": {"batch_size": 96, "seq_len": 512, "lr": 1e-3, "warmup": 500, "checkpoint_every": 2000, "bf16": True},
    },
}


def run(out: str | Path = "runs/capacity", overrides: dict | None = None, log=print) -> Path:
    cfg = resolve_scaled(DEFAULTS, SCALES, overrides)
    run = rundir.Run(out, cfg, "capacity")
    out = run.out
    seed, t, w = cfg["seed"], cfg["train"], cfg["world"]

    with run.phase("data"):
        world, groups = make_groups(w["per_group"], w["exposures"], w["n_paraphrases"], seed)
        copies = biography_copies(world, groups)
        model, tokenizer = make_model(cfg, [d["text"] for d in world.documents if d["kind"] == "document"], out)
        token_docs = text_ids(tokenizer, copies)
        total = sum(len(d) + 1 for d in token_docs)
        steps = math.ceil(total / (t["batch_size"] * t["seq_len"]))
        rows = pack_background(token_docs, n_rows=steps * t["batch_size"], seq_len=t["seq_len"],
                               eos_id=tokenizer.eos_token_id, seed=seed)
        probes = attribute_probes(world, groups, w["attributes"])
    n_params = count_parameters(model)
    log(f"model: {n_params / 1e6:.2f} M parameters; {len(copies)} biography copies ({total} tokens) in {steps} steps; "
        f"{len(probes)} attribute probes")
    with run.phase("train"):
        prober = Prober(tokenizer, probes, [0, steps] + log_spaced_steps(steps))
        history = train_phase(model, lambda s: rows[s * t["batch_size"]:(s + 1) * t["batch_size"]],
                              train_config(t, steps, seed), out / "phases" / "train", log, probe=prober)
    with run.phase("analysis"):
        curves_long = prober.frame()
        info = pd.DataFrame(probes)[["id", "person_id", "attribute", "exposures"]].rename(columns={"id": "probe_id"})
        curves_long = curves_long.merge(info, on="probe_id")
        curves_long["loss_bits"] = nats_to_bits(curves_long["target_nll"] * curves_long["n_target_tokens"])
        pools = capacity_pools(world)
        final = curves_long[curves_long["step"] == steps]
        metrics, samples = analyze(final, pools, n_params, n_boot=cfg["analysis"]["n_boot"], seed=seed,
                                   n_embedding=model.get_input_embeddings().weight.numel())
        bits_curve = bits_over_training(curves_long, pools)
    metrics["model/parameters"] = n_params
    metrics["capacity/steps"] = steps
    metrics["capacity/tokens"] = steps * t["batch_size"] * t["seq_len"]
    run.metrics.update(metrics)
    tables = {"curves": pd.DataFrame(history), "samples": samples, "probe_curves": curves_long, "bits_curve": bits_curve}
    for name, table in tables.items():
        run.add_table(name, table)
    return finish_lab_run(run, model, history, extra={
        "pools": {a: pools[a] for a in w["attributes"]}, "steps": steps, "biography_copies": len(copies),
        "biography_tokens": total})


# --------------------------------------------------------------------------- data


def make_groups(per_group: int, exposures: list[int], n_paraphrases: int, seed: int):
    """A world of per_group × len(exposures) people, assigned to exposure groups in a seeded order."""
    if sorted(set(exposures)) != list(exposures) or exposures[0] < 0:
        raise MnemoscopeError(f"world.exposures must be distinct, ascending and ≥ 0 (got {exposures})")
    if per_group < 1:
        raise MnemoscopeError(f"world.per_group must be ≥ 1 (got {per_group})")
    world = make_world(WorldConfig(n_people=max(per_group * len(exposures), 5), n_paraphrases=n_paraphrases,
                                   seed=seed))
    order = np.random.default_rng(seed).permutation(len(world.people))
    groups = {world.people[int(i)]["person_id"]: int(exposures[k // per_group])
              for k, i in enumerate(order[:per_group * len(exposures)])}
    return world, groups


def biography_copies(world, groups: dict[str, int]) -> list[str]:
    """Exposure k (0-based) of a person = their biography version k mod (n_paraphrases + 1)."""
    versions: dict[str, list[str]] = {}
    for d in sorted((d for d in world.documents if d["kind"] == "document"), key=lambda d: (d["person_id"], d["version"])):
        versions.setdefault(d["person_id"], []).append(d["text"])
    copies = [versions[pid][k % len(versions[pid])] for pid, e in sorted(groups.items()) for k in range(e)]
    if not copies:
        raise MnemoscopeError("world.exposures: every group has 0 exposures, there is nothing to train on")
    return copies


def attribute_probes(world, groups: dict[str, int], attributes: list[str]) -> list[dict]:
    """The memorization probe ("<name> was born in " → value) of every grouped person and attribute."""
    unknown = set(attributes) - set(capacity_pools(world))
    if unknown:
        raise MnemoscopeError(f"world.attributes: unknown {sorted(unknown)}; use some of {sorted(capacity_pools(world))}")
    return [dict(p, group=str(groups[p["person_id"]]), exposures=groups[p["person_id"]])
            for p in world.probes
            if p["kind"] == "memorization" and p["attribute"] in attributes and p["person_id"] in groups]


# --------------------------------------------------------------------------- analysis


def person_bits(frame: pd.DataFrame, pools: dict[str, int]) -> pd.DataFrame:
    """One row per person: loss in bits per attribute and bits = Σ_attr max(0, log2|pool| − loss)."""
    wide = frame.pivot_table(index=["person_id", "exposures"], columns="attribute", values="loss_bits").reset_index()
    attrs = [c for c in wide.columns if c not in ("person_id", "exposures")]
    wide["bits"] = sum(np.maximum(0.0, math.log2(pools[a]) - wide[a]) for a in attrs)
    return wide.rename(columns={a: f"loss_bits/{a}" for a in attrs})


def analyze(final: pd.DataFrame, pools: dict[str, int], n_params: int, *, n_boot: int, seed: int,
            n_embedding: int = 0) -> tuple[dict[str, float], pd.DataFrame]:
    """Per exposure group: bits (metrics.capacity.bits_stored on the group's mean loss per attribute),
    bits per person with a bootstrap CI over people, loss per attribute; trained groups together:
    bits and bits per parameter (all parameters, and without the ``n_embedding`` embedding ones) with
    intervals over people (:func:`ratio_interval`); fit bits/person = c + s·log10(exposures) over trained
    groups."""
    rng = np.random.default_rng(seed)
    samples = person_bits(final, pools)
    attrs = sorted(final["attribute"].unique())
    metrics: dict[str, float] = {}
    total = 0.0
    for e, part in final.groupby("exposures", sort=True):
        loss = part.groupby("attribute")["loss_bits"].mean().to_dict()
        people = samples[samples["exposures"] == e]
        bits = bits_stored(len(people), pools, loss)
        tag = f"@exposures={e}"
        metrics[f"capacity/bits{tag}"] = bits
        metrics[f"capacity/bits_per_person{tag}"] = bits / len(people)
        per = people["bits"].to_numpy(dtype=np.float64)
        lo, hi = bootstrap_ci(per, np.mean, n_boot, rng)
        metrics[f"capacity/person_bits/mean{tag}"] = float(per.mean())
        metrics[f"capacity/person_bits/mean/ci_lo{tag}"], metrics[f"capacity/person_bits/mean/ci_hi{tag}"] = lo, hi
        metrics[f"capacity/n_people{tag}"] = float(len(people))
        for a in attrs:
            metrics[f"capacity/loss_bits@attribute={a},exposures={e}"] = float(loss[a])
        if e > 0:
            total += bits
    metrics["capacity/bits"] = total
    metrics["capacity/bits_per_parameter"] = capacity_ratio(total, n_params)
    control = metrics.get("capacity/bits_per_person@exposures=0")
    if control is not None:
        trained = samples[samples["exposures"] > 0]
        metrics["capacity/bits_net"] = float(max(0.0, total - control * len(trained)))
        metrics["capacity/bits_net_per_parameter"] = capacity_ratio(metrics["capacity/bits_net"], n_params)
    for a in attrs:
        metrics[f"capacity/pool_bits@attribute={a}"] = math.log2(pools[a])
    metrics.update(_exposure_fit(samples, n_boot, rng))
    extra = ratio_interval(final, pools, n_params, n_embedding, n_boot, rng)
    metrics.update({k: v for k, v in extra.items() if k not in metrics})  # the ratio itself stays as computed above
    return metrics, samples


def ratio_interval(final: pd.DataFrame, pools: dict[str, int], n_params: int, n_embedding: int, n_boot: int,
                   rng: np.random.Generator) -> dict[str, float]:
    """Bits per parameter of the trained groups with a 95% interval resampling people within groups (people
    are the unit; each replicate recomputes every group's bits from its resampled mean losses); the same per
    non-embedding parameter (n_params − n_embedding); the share of the possible bits stored
    (bits / Σ_trained people Σ_attr log2|pool|)."""
    trained = final[final["exposures"] > 0]
    if trained.empty:
        return {}
    attrs = sorted(trained["attribute"].unique())
    groups = [part.pivot_table(index="person_id", columns="attribute", values="loss_bits")[attrs].to_numpy(np.float64)
              for _, part in trained.groupby("exposures", sort=True)]

    def bits(values: list[np.ndarray]) -> float:
        return sum(bits_stored(len(v), pools, dict(zip(attrs, v.mean(axis=0)))) for v in values)

    best = bits(groups)
    boots = np.array(stratified_replicates(groups, bits, n_boot, rng))
    possible = sum(len(v) for v in groups) * sum(math.log2(pools[a]) for a in attrs)
    out = {"capacity/possible_bits": possible, "capacity/bits_share": best / possible,
           "model/embedding_parameters": float(n_embedding)}
    ratios = {"bits_per_parameter": n_params}
    if n_embedding > 0:
        ratios["bits_per_nonembedding_parameter"] = n_params - n_embedding
    for name, denominator in ratios.items():
        out[f"capacity/{name}"] = capacity_ratio(best, denominator)
        out[f"capacity/{name}/ci_lo"], out[f"capacity/{name}/ci_hi"] = percentile_interval(boots / denominator)
    return out


def _exposure_fit(samples: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> dict[str, float]:
    """bits/person = c + s·log10(E) over the trained groups; CIs by resampling people within groups."""
    trained = samples[samples["exposures"] > 0]
    groups = {e: p["bits"].to_numpy(dtype=np.float64) for e, p in trained.groupby("exposures", sort=True)}
    if len(groups) < 2:
        return {}
    e = np.array(list(groups), dtype=np.float64)

    def fit(values: list[np.ndarray]) -> dict[str, float]:
        return fit_log_line(e, np.array([v.mean() for v in values]))

    best = fit(list(groups.values()))
    boots = stratified_replicates(list(groups.values()), fit, n_boot, rng)
    out = {"capacity/fit/slope_per_decade": -best["a"], "capacity/fit/intercept": best["b"], "capacity/fit/r2": best["r2"]}
    for name, key, sign in (("slope_per_decade", "a", -1), ("intercept", "b", 1)):
        values = sign * np.array([b[key] for b in boots])
        out[f"capacity/fit/{name}/ci_lo"], out[f"capacity/fit/{name}/ci_hi"] = percentile_interval(values)
    return out


def bits_over_training(curves: pd.DataFrame, pools: dict[str, int]) -> pd.DataFrame:
    """Bits per person of each exposure group at every probed step (same formula as the final bits)."""
    rows = []
    for (step, e), part in curves.groupby(["step", "exposures"], sort=True):
        loss = part.groupby("attribute")["loss_bits"].mean().to_dict()
        n = part["person_id"].nunique()
        rows.append({"step": int(step), "exposures": int(e), "bits_per_person": bits_stored(n, pools, loss) / n})
    return pd.DataFrame(rows)
