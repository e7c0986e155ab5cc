"""Mechanisms: a direction in the residual stream between two labelled prompt sets, and what
steering along it does (after *The Reasoning-Memorization Interplay in Language Models Is
Mediated by a Single Direction*).

Two prompt sets, A (label 1, e.g. reasoning or "compute" prompts) and B (label 0, e.g. memory or
"recall" prompts), optionally with answers:

1. **Read.** The residual stream of every prompt at every probed layer (−1 = embeddings, then each
   decoder block) under a position rule (``last`` prompt token, ``mean`` over the prompt, or
   ``answer``: the mean over the answer's tokens), one batched ``engine.activations`` call.
2. **Probe.** At each layer, held-out ROC-AUC (stratified k-fold over all items, 95% bootstrap
   CI) and accuracy of the projection on a direction fitted without the held-out fold
   (``metrics.directions.probe``): the per-layer curve. The *best layer* is chosen on the fit half
   only: the decoder block with the highest k-fold AUC *within the fit split* (ties: the earliest;
   the embeddings only when no block can be probed), and its AUC is reported on the eval split
   (projection on the direction fitted on the fit split), so neither the choice nor the number
   sees an item that steering is later measured on.
3. **Direction.** r̂_l = (mean_A h − mean_B h)/‖·‖ (or the logistic/PCA alternative) fitted on a
   seeded, stratified *fit* split of each set (``fit_fraction``); the other items form the *eval*
   split on which the causal effect is measured, so an item never steers with a direction fitted
   on itself (``fit_fraction: 1`` uses every item for both, noted). A ``direction`` file from an
   earlier run (same model) replaces the fit.
4. **Steer.** On the eval items with answers, with each steering layer's direction and each value
   of the grid, one or both interventions (``interventions``):
   ``add`` (ours): ``h ← h + α·‖h̄_l‖·r̂_l`` at layer l only (α is relative to the mean residual
   norm at l over all items; both are reported) from ``start`` on (−1: the last prompt token and
   every generated token); ``scale`` (the seed paper's ``set_act_modify_hooks``):
   ``h ← h + s·(h·r̂_l)r̂_l`` on every block's input, attention output and MLP output at every
   layer and every position (grid ``scales``). Measured: greedy accuracy (the continuation begins
   with the answer: ``metrics.directions.answer_match``), the rate of the ``alternative`` answer
   when items give one, and the answer's log-probability (sum over its tokens, scored as the pair
   (prompt, " " + answer)). The same grids with a seeded random unit direction of the same norm
   are the control. **Ablate**: h ← h − (h·r̂)r̂ on every write to the residual stream (the
   embeddings, every attention and every MLP output) with the best layer's direction, and with
   the random one.

Config section ``mechanisms``: ``a``, ``b`` (prompt files, ``probes.formats.load_prompts``:
``prompt`` + optional ``answer`` / ``alternative``), ``a_name``, ``b_name`` (labels used in
keys), ``position``, ``method`` (mean_diff | logistic | pca), ``layers`` ([] = all), ``folds``,
``fit_fraction``, ``steer_layers`` ([] = the best layer), ``interventions`` (``add``, ``scale``:
default ours only), ``alphas`` (add), ``scales`` (scale), ``start`` (null = every position; add
only), ``ablate``, ``max_new_tokens`` (0 = longest answer + 2), ``seed`` (the random control
and the fit split), ``direction`` (a directions.safetensors to use instead of fitting),
``pca_layer`` (the layer of the PCA picture and the per-item projections; null = the best layer).

Keys: ``mechanisms/probe/auc@layer=L`` (+ ``/ci_lo``, ``/ci_hi``), ``mechanisms/probe/accuracy@layer=L``,
``mechanisms/probe/fit_auc@layer=L`` (k-fold within the fit half), ``mechanisms/best_layer`` (chosen
by ``fit_auc``), ``mechanisms/best_layer/auc`` (+ ``/ci_lo``, ``/ci_hi``: on the eval half),
``mechanisms/mean_norm@layer=L``, ``mechanisms/pca/explained@component={1,2}``, and on the first
steering layer ``mechanisms/steer/{accuracy,alternative_rate,answer_logprob}@set=S,layer=L,alpha=A,direction=D``
(ours; D = ``direction`` or ``random``), ``mechanisms/steer/shift@set=S,direction=D`` (accuracy at the
largest α minus accuracy at α = 0), the paper's intervention under ``mechanisms/scale/...`` with
``scale=A`` in place of ``alpha=A``, and ``mechanisms/ablate/accuracy@set=S,direction=D``. The sweep
table's ``intervention`` column says which; its ``alpha`` column holds α or s.
The full sweep, probe table, activations and directions go to ``<run>/mechanisms/`` (:func:`save`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.engine import Backend
from mnemoscope.engine.activations import POSITIONS, Activations, check_layers
from mnemoscope.engine.encoding import Encoded
from mnemoscope.engine.steering import INTERVENTIONS, Ablate, Add, ScaleProjection, load_directions, save_directions
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result, check_generation
from mnemoscope.metrics.directions import (
    METHODS,
    answer_match,
    fit_direction,
    pca_2d,
    probe,
    project,
    random_direction,
)
from mnemoscope.metrics.roc import bootstrap_auc_ci, roc_auc
from mnemoscope.probes import formats
from mnemoscope.summary import fmt, fmt_metric

NAME = "mechanisms"
TITLE = "Mechanisms (a direction in the residual stream, and steering along it)"
DEFAULTS = {"mechanisms": {
    "a": "", "b": "", "a_name": "a", "b_name": "b",
    "position": "last", "method": "mean_diff", "layers": [], "folds": 5, "fit_fraction": 0.5,
    "steer_layers": [], "alphas": [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0], "start": -1, "ablate": True,
    "interventions": ["add"], "scales": [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0],
    "max_new_tokens": 0, "seed": 0, "direction": "", "pca_layer": None,
}}
PATH_KEYS = ("mechanisms.a", "mechanisms.b", "mechanisms.direction")
NEEDS = ("activations", "steer", "logprobs", "generate")

DIR = "mechanisms"  # the family's folder in a run directory
KINDS = ("direction", "random")


@dataclass
class Inputs:
    a: list[dict]  # {id, prompt, answer, alternative}; label 1
    b: list[dict]  # label 0
    settings: dict  # the validated ``mechanisms`` section


@dataclass
class Plan:
    inputs: Inputs
    items: list[dict]  # a then b, each with set, label, split
    features: list[Encoded]  # what ``activations`` reads
    prompts: list[list[int]]  # generation prompts
    answers: list[Encoded | None]  # (prompt, " " + answer) pairs
    alternatives: list[Encoded | None]
    probe_layers: list[int]
    steer_layers: list[int]  # [] = the best probe layer, decided when measuring
    max_new_tokens: int
    file_directions: dict[int, np.ndarray] | None
    identity: dict


@dataclass
class MechanismsResult(Result):
    """A Result plus what :func:`save` writes to ``<run>/mechanisms/``."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    activations: Activations | None = None
    directions: dict[int, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- read


def read(cfg: dict, ctx: Context | None = None) -> Inputs | None:
    s = cfg["mechanisms"]
    if not s["a"] and not s["b"]:
        return None
    if not s["a"] or not s["b"]:
        raise MnemoscopeError("mechanisms: give both prompt sets, mechanisms.a and mechanisms.b")
    return make_inputs(formats.load_prompts(s["a"]), formats.load_prompts(s["b"]), s,
                       where=(str(s["a"]), str(s["b"])))


def make_inputs(a: list[dict], b: list[dict], settings: dict | None = None,
                where: tuple[str, str] = ("mechanisms.a", "mechanisms.b")) -> Inputs:
    """Validated inputs from two lists of ``{prompt, answer?, alternative?, id?}`` and the section
    (missing keys take their defaults)."""
    s = {**DEFAULTS["mechanisms"], **(settings or {})}
    sets = []
    for items, w in zip((a, b), where):
        rows = []
        for i, x in enumerate(items):
            prompt = x.get("prompt") if isinstance(x, dict) else None
            if not isinstance(prompt, str) or not prompt.strip():
                raise MnemoscopeError(f"{w}: item {i} has no prompt (a non-empty string)")
            rows.append({"id": str(x.get("id", i)), "prompt": prompt, "answer": x.get("answer"),
                         "alternative": x.get("alternative")})
        if len(rows) < 2:
            raise MnemoscopeError(f"{w}: {len(rows)} prompt(s); a direction needs at least 2 prompts in each set")
        with_answer = sum(r["answer"] is not None for r in rows)
        if 0 < with_answer < len(rows):
            raise MnemoscopeError(f"{w}: {with_answer} of {len(rows)} prompts have an answer; give every prompt "
                                  "an answer or none")
        if any(r["alternative"] is not None and r["answer"] is None for r in rows):
            raise MnemoscopeError(f"{w}: an item has an alternative but no answer; give the answer too")
        sets.append(rows)
    shared = {r["prompt"].strip() for r in sets[0]} & {r["prompt"].strip() for r in sets[1]}
    if shared:
        raise MnemoscopeError(f"mechanisms: {len(shared)} prompt(s) are in both sets (e.g. {min(shared)!r}); "
                              "the two classes must not overlap")
    _check_settings(s)
    return Inputs(sets[0], sets[1], s)


def _check_settings(s: dict) -> None:
    for key in ("a_name", "b_name"):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(s[key])):
            raise MnemoscopeError(f"mechanisms.{key} {s[key]!r}: use letters, digits, '_', '.', '-' (it names "
                                  "metric keys)")
    if s["a_name"] == s["b_name"]:
        raise MnemoscopeError("mechanisms.a_name and mechanisms.b_name must differ")
    if s["position"] not in POSITIONS:
        raise MnemoscopeError(f"mechanisms.position '{s['position']}': use one of {', '.join(POSITIONS)}")
    if s["method"] not in METHODS:
        raise MnemoscopeError(f"mechanisms.method '{s['method']}': use one of {', '.join(METHODS)}")
    if not 0 < float(s["fit_fraction"]) <= 1:
        raise MnemoscopeError(f"mechanisms.fit_fraction must be in (0, 1], got {s['fit_fraction']}")
    if int(s["folds"]) < 2:
        raise MnemoscopeError(f"mechanisms.folds must be ≥ 2, got {s['folds']}")
    alphas = s["alphas"]
    if not isinstance(alphas, list) or not alphas or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in alphas):
        raise MnemoscopeError(f"mechanisms.alphas must be a non-empty list of numbers, got {alphas!r}")
    scales = s["scales"]
    if not isinstance(scales, list) or not scales or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in scales):
        raise MnemoscopeError(f"mechanisms.scales must be a non-empty list of numbers, got {scales!r}")
    kinds = s["interventions"]
    if not isinstance(kinds, list) or not kinds or any(k not in INTERVENTIONS for k in kinds) \
            or len(set(kinds)) != len(kinds):
        raise MnemoscopeError(f"mechanisms.interventions {kinds!r}: a list of distinct names from "
                              f"{', '.join(INTERVENTIONS)} (add: ours, h + α·‖h̄‖·r̂ at one layer; scale: the paper's, "
                              "h + s·(h·r̂)r̂ at every layer)")
    if s["start"] is not None and (isinstance(s["start"], bool) or not isinstance(s["start"], int)):
        raise MnemoscopeError(f"mechanisms.start must be an integer token position or null, got {s['start']!r}")
    if int(s["max_new_tokens"]) < 0:
        raise MnemoscopeError(f"mechanisms.max_new_tokens must be ≥ 0, got {s['max_new_tokens']}")


# --------------------------------------------------------------------------- plan


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    ctx = ctx or Context()
    s = inputs.settings
    for capability in NEEDS:
        engine.require(capability, "the mechanisms family")
    n_layers = engine.n_layers  # an architecture whose blocks cannot be found stops here
    probe_layers = check_layers(s["layers"] or None, n_layers, "mechanisms.layers")
    steer_layers = check_layers(s["steer_layers"], n_layers, "mechanisms.steer_layers")
    if s["pca_layer"] is not None:
        (pca_layer,) = check_layers([s["pca_layer"]], n_layers, "mechanisms.pca_layer")
        probe_layers = sorted(set(probe_layers) | {pca_layer})
    identity = engine.model_identity()
    file_directions = None
    if s["direction"]:
        file_directions, meta = load_directions(s["direction"], identity)
        missing = [layer for layer in steer_layers if layer not in file_directions]
        if missing:
            raise MnemoscopeError(f"{s['direction']}: no direction for steering layer(s) {missing}; the file has "
                                  f"layers {sorted(file_directions)}")
        steer_layers = steer_layers or sorted(file_directions)
        if meta.get("position") != s["position"]:
            ctx.note("mechanisms/best_layer", f"mechanisms: the direction file was computed with position rule "
                                              f"'{meta.get('position')}', this run reads '{s['position']}'")
    items = _split([("a", 1, x) for x in inputs.a] + [("b", 0, x) for x in inputs.b], s)
    if s["position"] == "answer" and any(x["answer"] is None for x in items):
        raise MnemoscopeError("mechanisms.position 'answer' needs an answer for every prompt")
    features, prompts, answers, alternatives = [], [], [], []
    for x in items:
        prompt = x["prompt"].rstrip()
        ids = engine.encode_prompt(prompt)
        prompts.append(ids)
        answers.append(engine.encode_pair(prompt, " " + x["answer"].strip()) if x["answer"] is not None else None)
        alternatives.append(engine.encode_pair(prompt, " " + x["alternative"].strip())
                            if x["alternative"] is not None else None)
        features.append(answers[-1] if s["position"] == "answer" else Encoded(ids, len(ids), engine.bos))
        if not engine.fits(len(features[-1].ids)):
            raise MnemoscopeError(f"mechanisms item {x['id']!r}: {len(features[-1].ids)} tokens exceed the model's "
                                  f"context ({engine.max_length}); shorten it")
    max_new = int(s["max_new_tokens"]) or 2 + max(
        [len(p.ids) - p.score_from for p in answers + alternatives if p is not None], default=0)
    if any(a is not None for a in answers):
        check_generation(engine, prompts, max_new, "mechanisms prompt", "mechanisms.max_new_tokens",
                         ids=[x["id"] for x in items])
    return Plan(inputs, items, features, prompts, answers, alternatives, probe_layers, steer_layers, max_new,
                file_directions, identity)


def _split(tagged: list[tuple[str, int, dict]], s: dict) -> list[dict]:
    """Items in order (set a, then b) with ``split`` fit/eval: per set a seeded shuffle, the first
    round(fit_fraction·n) items (at least 1, and at most n − 1 below fit_fraction 1) fit."""
    rng = np.random.default_rng(int(s["seed"]))
    out = []
    for tag in ("a", "b"):
        group = [x for t, _, x in tagged if t == tag]
        label = 1 if tag == "a" else 0
        frac = float(s["fit_fraction"])
        n_fit = len(group) if frac >= 1 else min(len(group) - 1, max(1, round(frac * len(group))))
        fit = set(rng.permutation(len(group))[:n_fit].tolist())
        for i, x in enumerate(group):
            out.append({**x, "set": s[f"{tag}_name"], "label": label,
                        "split": "fit" if i in fit else "eval", "in_eval": frac >= 1 or i not in fit})
    return out


# --------------------------------------------------------------------------- measure


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> MechanismsResult:
    ctx = ctx or Context()
    s = plan.inputs.settings
    result = MechanismsResult()
    items = plan.items
    y = np.array([x["label"] for x in items])
    fit = np.array([x["split"] == "fit" for x in items])
    if float(s["fit_fraction"]) >= 1:
        result.note("mechanisms/steer", "mechanisms: fit_fraction = 1, so the causal sweep steers the same items "
                                        "the direction was fitted on")
    layers = sorted(set(plan.probe_layers) | set(plan.steer_layers))
    acts = engine.activations(plan.features, layers=layers, position=s["position"])
    result.activations = acts
    probes = _probe_and_fit(result, plan, acts, layers, y, fit, ctx)
    best = _best_layer(result, probes, acts, y, fit, s, ctx)
    wanted = plan.steer_layers or ([best] if best is not None else [])
    steer_layers = [layer for layer in wanted if layer in result.directions]
    for layer in sorted(set(wanted) - set(steer_layers)):
        result.note(f"mechanisms/direction@layer={layer}", f"mechanisms: layer {layer} is not steered (no direction)")
    norms = dict(zip(probes["layer"], probes["mean_norm"]))

    # per-item table: projection and 2-D PCA at pca_layer (default: the best layer)
    shown = best if s["pca_layer"] is None else int(s["pca_layer"])
    samples = pd.DataFrame([{k: x[k] for k in ("id", "set", "label", "split", "prompt", "answer", "alternative")}
                            for x in items])
    if shown is not None:
        h = acts.at(shown)
        coords, ratio = pca_2d(h)
        samples["layer"] = shown
        samples["projection"] = project(h, result.directions[shown]) if shown in result.directions else math.nan
        samples["pca_1"], samples["pca_2"] = coords[:, 0], coords[:, 1]
        result.metrics["mechanisms/pca/explained@component=1"] = float(ratio[0])
        result.metrics["mechanisms/pca/explained@component=2"] = float(ratio[1])

    # the causal sweeps and the ablation
    evaluated = [i for i, x in enumerate(items) if x["in_eval"] and x["answer"] is not None]
    sweep, ablation = pd.DataFrame(), pd.DataFrame()
    if not evaluated:
        result.not_computed("mechanisms/steer/shift", "mechanisms: no prompt has an answer, so steering has "
                                                      "nothing to measure (give answers to measure accuracy)")
    elif not steer_layers:
        result.not_computed("mechanisms/steer/shift", "mechanisms: no direction to steer with")
    else:
        control = random_direction(engine.hidden_size, int(s["seed"]))
        baseline = _evaluate(engine, plan, evaluated)
        generated, correct = [None] * len(items), [None] * len(items)
        for i, x in zip(evaluated, baseline):
            generated[i], correct[i] = x["generated"], x["correct"]
        samples["generated"], samples["correct"] = generated, correct  # unsteered; None: not evaluated
        sweep = _sweep(engine, plan, result, evaluated, baseline, steer_layers, control, norms)
        if s["ablate"] and best is not None and best in result.directions:
            ablation = _ablation(engine, plan, result, evaluated, baseline, best, control)
    result.samples = samples
    result.tables = {"probe": probes, "sweep": sweep, "ablation": ablation}
    result.meta = {**plan.identity, "position": s["position"], "method": s["method"],
                   "labels": {"1": s["a_name"], "0": s["b_name"]}, "orientation": f"{s['a_name']} minus {s['b_name']}",
                   "fit_fraction": float(s["fit_fraction"]), "n_fit": int(fit.sum()),
                   "mean_norm": {str(k): v for k, v in norms.items()}}
    return result


def _probe_and_fit(result: MechanismsResult, plan: Plan, acts: Activations, layers: list[int], y: np.ndarray,
                   fit: np.ndarray, ctx: Context) -> pd.DataFrame:
    """Per layer: mean norm, the k-fold probe over all items (``auc``), the k-fold probe within the
    fit half (``fit_auc``: what chooses the best layer) and the direction fitted on the fit half."""
    s = plan.inputs.settings
    fit_folds = min(int(s["folds"]), int(min((y[fit] == 1).sum(), (y[fit] == 0).sum())))
    rows = []
    for layer in layers:
        h = acts.at(layer)
        norm = float(np.linalg.norm(h, axis=1).mean())
        result.metrics[f"mechanisms/mean_norm@layer={layer}"] = norm
        row = {"layer": layer, "mean_norm": norm, "auc": math.nan, "auc/ci_lo": math.nan, "auc/ci_hi": math.nan,
               "accuracy": math.nan, "fit_auc": math.nan, "probed": layer in plan.probe_layers}
        if layer in plan.probe_layers:
            try:
                row.update(probe(h, y, s["method"], int(s["folds"]), ctx.n_boot, ctx.seed))
                for key in ("auc", "auc/ci_lo", "auc/ci_hi", "accuracy"):
                    result.metrics[f"mechanisms/probe/{key}@layer={layer}"] = row[key]
            except MnemoscopeError as exc:  # e.g. identical features in both sets at this layer
                result.not_computed(f"mechanisms/probe/auc@layer={layer}", f"mechanisms: layer {layer}: {exc}")
            if fit_folds >= 2:
                try:
                    row["fit_auc"] = probe(h[fit], y[fit], s["method"], fit_folds, 0, ctx.seed)["auc"]
                    result.metrics[f"mechanisms/probe/fit_auc@layer={layer}"] = row["fit_auc"]
                except MnemoscopeError as exc:
                    result.not_computed(f"mechanisms/probe/fit_auc@layer={layer}", f"mechanisms: layer {layer}, "
                                        f"fit half: {exc}")
        if plan.file_directions is not None:
            if layer in plan.file_directions:
                result.directions[layer] = np.asarray(plan.file_directions[layer], dtype=np.float64)
        else:
            try:
                result.directions[layer] = fit_direction(h[fit], y[fit], s["method"])
            except MnemoscopeError as exc:
                result.note(f"mechanisms/direction@layer={layer}", f"mechanisms: no direction at layer {layer}: {exc}")
        rows.append(row)
    return pd.DataFrame(rows)


def _best_layer(result: MechanismsResult, probes: pd.DataFrame, acts: Activations, y: np.ndarray, fit: np.ndarray,
                s: dict, ctx: Context) -> int | None:
    """The decoder block with the highest k-fold probe AUC *within the fit half* (ties: the earliest;
    the embeddings only when no block can be probed), and ``mechanisms/best_layer/auc``: the AUC on
    the eval half of the projection on the direction fitted on the fit half, at that layer."""
    scored = probes[probes["probed"] & probes["fit_auc"].notna()]
    if (scored["layer"] >= 0).any():  # a decoder block when one separates at all; the embeddings only as a fallback
        scored = scored[scored["layer"] >= 0]
    if scored.empty:
        result.not_computed("mechanisms/best_layer", "mechanisms: no layer could be probed on the fit half (each "
                                                     "set needs at least 2 fit items that differ)")
        result.not_computed("mechanisms/best_layer/auc", "mechanisms: no best layer")
        return None
    best = int(scored.loc[scored["fit_auc"].idxmax(), "layer"])  # idxmax: the first (earliest) of ties
    result.metrics["mechanisms/best_layer"] = float(best)
    held = ~fit
    if float(s["fit_fraction"]) >= 1:
        result.not_computed("mechanisms/best_layer/auc", "mechanisms: fit_fraction = 1 leaves no held-out items")
    elif best not in result.directions or len(set(y[held])) < 2:
        result.not_computed("mechanisms/best_layer/auc", f"mechanisms: no direction or no held-out items of both "
                                                         f"sets at layer {best}")
    else:
        scores = project(acts.at(best)[held], result.directions[best])
        lo, hi = bootstrap_auc_ci(y[held], scores, n_boot=ctx.n_boot, seed=ctx.seed) if ctx.n_boot > 0 \
            else (math.nan, math.nan)
        result.metrics["mechanisms/best_layer/auc"] = roc_auc(y[held], scores)
        result.metrics["mechanisms/best_layer/auc/ci_lo"] = lo
        result.metrics["mechanisms/best_layer/auc/ci_hi"] = hi
    return best


def _sweep(engine: Backend, plan: Plan, result: MechanismsResult, evaluated: list[int], baseline: list[dict],
           steer_layers: list[int], control: np.ndarray, norms: dict) -> pd.DataFrame:
    """Every chosen intervention at each steering layer's direction and the random control, over its
    grid (``add``: α × mean ‖h‖ at the layer; ``scale``: s); the 0 entry reuses the unsteered run
    (bit-identical)."""
    s = plan.inputs.settings
    rows = []
    for kind in s["interventions"]:
        grid = s["alphas"] if kind == "add" else s["scales"]
        for layer in steer_layers:
            for direction, r in zip(KINDS, (result.directions[layer], control)):
                for value in grid:
                    if value == 0:
                        outcome = baseline
                    else:
                        iv = Add(layer, r, value * norms[layer], start=s["start"]) if kind == "add" \
                            else ScaleProjection(r, value)
                        with engine.steer(iv):
                            outcome = _evaluate(engine, plan, evaluated)
                    rows += _summarise(outcome, plan.items, evaluated, intervention=kind, layer=layer,
                                       alpha=float(value),
                                       alpha_abs=float(value) * norms[layer] if kind == "add" else math.nan,
                                       direction=direction)
    sweep = pd.DataFrame(rows)
    for kind in s["interventions"]:
        _sweep_metrics(result, sweep[sweep["intervention"] == kind], steer_layers[0],
                       s["alphas"] if kind == "add" else s["scales"], kind)
    return sweep


def _ablation(engine: Backend, plan: Plan, result: MechanismsResult, evaluated: list[int], baseline: list[dict],
              best: int, control: np.ndarray) -> pd.DataFrame:
    """Directional ablation on every residual write with the best layer's direction, the random one,
    and none."""
    rows = []
    for kind, r in zip(KINDS, (result.directions[best], control)):
        with engine.steer(Ablate(r)):
            rows += _summarise(_evaluate(engine, plan, evaluated), plan.items, evaluated, layer=best,
                               alpha=math.nan, alpha_abs=math.nan, direction=kind)
    rows += _summarise(baseline, plan.items, evaluated, layer=best, alpha=math.nan, alpha_abs=math.nan,
                       direction="none")
    ablation = pd.DataFrame(rows)
    for row in ablation.itertuples():
        if row.direction != "none":
            result.metrics[f"mechanisms/ablate/accuracy@set={row.set},direction={row.direction}"] = row.accuracy
    return ablation


def _evaluate(engine: Backend, plan: Plan, idx: list[int]) -> list[dict]:
    """Greedy answers and answer log-probabilities of items ``idx`` under whatever steering is on."""
    gens = engine.generate([plan.prompts[i] for i in idx], max_new_tokens=plan.max_new_tokens)
    pairs = [plan.answers[i] for i in idx] + [plan.alternatives[i] for i in idx if plan.alternatives[i] is not None]
    scores = engine.score_encoded(pairs)
    answer_lp = [float(sc.logprobs.astype(np.float64).sum()) for sc in scores[:len(idx)]]
    alt_iter = iter(scores[len(idx):])
    out = []
    for k, i in enumerate(idx):
        x = plan.items[i]
        alt = x["alternative"]
        out.append({"generated": gens[k].text, "correct": answer_match(gens[k].text, x["answer"]),
                    "alternative": answer_match(gens[k].text, alt) if alt is not None else None,
                    "answer_logprob": answer_lp[k],
                    "alternative_logprob": float(next(alt_iter).logprobs.astype(np.float64).sum())
                    if alt is not None else None})
    return out


def _summarise(outcome: list[dict], items: list[dict], idx: list[int], **tags) -> list[dict]:
    """One row per set: accuracy, alternative rate, mean answer (and alternative) log-probability."""
    frame = pd.DataFrame(outcome).assign(set=[items[i]["set"] for i in idx])
    rows = []
    for name, part in frame.groupby("set", sort=False):
        alt = part["alternative"].dropna()
        alt_lp = part["alternative_logprob"].dropna()
        rows.append({"set": name, **tags, "n": len(part), "accuracy": float(part["correct"].mean()),
                     "alternative_rate": float(alt.astype(bool).mean()) if len(alt) else math.nan,
                     "answer_logprob": float(part["answer_logprob"].mean()),
                     "alternative_logprob": float(alt_lp.astype(float).mean()) if len(alt_lp) else math.nan})
    return rows


PREFIX = {"add": ("mechanisms/steer", "alpha"), "scale": ("mechanisms/scale", "scale")}  # key prefix, grid tag


def _sweep_metrics(result: Result, sweep: pd.DataFrame, layer: int, grid: list[float], kind: str = "add") -> None:
    prefix, tag_name = PREFIX[kind]
    part = sweep[sweep["layer"] == layer]
    for row in part.itertuples():
        alpha = fmt(row.alpha, 6, significant=True, whole="none")  # 6 significant digits, as f"{α:g}"
        tag = f"@set={row.set},layer={layer},{tag_name}={alpha},direction={row.direction}"
        result.metrics[f"{prefix}/accuracy{tag}"] = row.accuracy
        result.metrics[f"{prefix}/answer_logprob{tag}"] = row.answer_logprob
        if not math.isnan(row.alternative_rate):
            result.metrics[f"{prefix}/alternative_rate{tag}"] = row.alternative_rate
    top = max(grid)
    if top > 0 and 0 in grid:
        for (name, direction), g in part.groupby(["set", "direction"], sort=False):
            at = dict(zip(g["alpha"], g["accuracy"]))
            result.metrics[f"{prefix}/shift@set={name},direction={direction}"] = at[top] - at[0.0]
    else:
        result.note(f"{prefix}/shift", f"mechanisms: the {tag_name} grid needs 0 and a positive value for the shift")


# --------------------------------------------------------------------------- files


def save(result: MechanismsResult, out: Path) -> Path:
    """Write ``out/mechanisms/``: probe, sweep, ablation and items tables (Parquet), the activations
    (``activations.safetensors``: ``values`` [items, layers, hidden] float32, layers and item ids in
    its header) and the directions (``directions.safetensors``, loadable with
    ``engine.steering.load_directions``). Each file is written atomically."""
    from safetensors.numpy import save_file

    folder = Path(out) / DIR
    for name, frame in {**result.tables, "items": result.samples}.items():
        if len(frame):
            rundir.write_parquet(folder / f"{name}.parquet", frame)
    if result.activations is not None:
        header = {"layers": ",".join(map(str, result.activations.layers)), "position": result.activations.position,
                  "ids": "\n".join(f"{s}/{i}" for s, i in zip(result.samples["set"], result.samples["id"]))}
        with rundir.atomic_path(folder / "activations.safetensors") as tmp:
            save_file({"values": np.ascontiguousarray(result.activations.values, dtype=np.float32)}, str(tmp),
                      metadata=header)
    if result.directions:
        save_directions(folder / "directions.safetensors", result.directions, result.meta)
    return folder


def headline(metrics: dict) -> list[str]:
    """The best layer with its probe AUC, then each set's steering shift: direction vs random."""
    best = metrics.get("mechanisms/best_layer")
    if best is None:
        return []
    layer = int(best)
    line = (f"{TITLE}: best layer {layer} (chosen on the fit half), held-out AUC "
            f"{fmt_metric('auc', metrics.get('mechanisms/best_layer/auc'))}")
    shifts = sorted(k for k in metrics if k.startswith("mechanisms/steer/shift@") and metrics[k] is not None)
    if shifts:
        line += "; accuracy shift " + ", ".join(f"{k.split('@', 1)[1]} {fmt_metric(k, metrics[k])}" for k in shifts)
    return [line]

