"""Unlearning, the lab: write a fictional world into a tiny model, then remove part of it and check.

Read top to bottom (:func:`run`): world (forget / retain / holdout people; 30 forget and 30
holdout people by default, and the CIs resample people; ``world.py``) → tokenizer (trained on
every person alike) → data stream → train on everything → retrain from scratch on the same stream
minus the forget documents (the gold standard) → for each method, a small sweep (learning rate ×
steps; a shorter run is a prefix of a longer one, so the steps axis is read off each run's
evaluation points) with the stopping rule "first point where KnowMem on F and the
forget-vs-holdout membership AUC both reach the retrained model's level"; the trade-off frontier
of all points and each method's best point → six-way table (MUSE) with PrivLeak's CI, TOFU forget
quality → robustness: membership inference, extraction, RWKU-style adversarial probes with
locality on neighbours, relearning curves (relearning some facts of F, measuring the others), a
linear probe for residue in the hidden states (every model's evaluation is
``unlearn.model_eval.Evaluator``) → scalability (nested forget sets) and sustainability (requests
one after another) → report.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import Typed
from mnemoscope.engine import Engine
from mnemoscope.engine.loading import resolve_device
from mnemoscope.recipes.common import resolve_scaled
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.blind import blind_baseline
from mnemoscope.families.blind import headline as blind_headline
from mnemoscope.lab.factory import lab_model
from mnemoscope.lab.tiny import Preset, count_parameters
from mnemoscope.probes.fictional import ATTRIBUTES
from mnemoscope.recipes import ulira
from mnemoscope.recipes.unlearning import world as lab_world
from mnemoscope.recipes.unlearning.finish import finish
from mnemoscope.unlearn import evaluation as ev
from mnemoscope.unlearn import stress
from mnemoscope.unlearn.methods import METHODS, get_method
from mnemoscope.unlearn.model_eval import Evaluator, RelearnSet, prefixed
from mnemoscope.unlearn.runner import UnlearnConfig, fingerprint, unlearn, unlearn_sequence

ALL_METHODS = list(METHODS)

DEFAULTS = {
    "seed": 0,
    "scale": "tiny",  # tiny | x2 | x4 (see SCALES)
    "model": {"hidden": 128, "layers": 4, "heads": 4, "intermediate": 344, "vocab_size": 2048, "device": "auto"},
    # 30 forget people (120 forget texts) against 30 holdout people (never trained): the retrained model's
    # forget-vs-holdout AUC moved 0.67 / 0.53 / 0.33 over seeds with 13 a side (a person's texts are alike,
    # so people are the unit); 30 a side narrows that spread by √(13/30) (docs/unlearning.md, "How many
    # people"); 6 majors, so the residue probe has classes to read
    "world": {"n_people": 100, "forget_fraction": 0.3, "holdout_fraction": 0.3, "never_seen_fraction": 0.0,
              "n_cities": 60, "n_universities": 30, "n_companies": 30, "n_majors": 6},
    "corpus": {"n_docs": 200, "n_ppl_docs": 40},
    "train": {"epochs": 20, "batch_size": 16, "seq_len": 128, "lr": 3e-3, "warmup": 20},
    # stop_on: the keys the stopping rule brings to the retrained model's level (knowmem_forget, mia_auc)
    "unlearn": {"methods": ALL_METHODS, "batch_size": 8, "stop_on": ["knowmem_forget", "mia_auc"],
                "lora": False, "gradient_checkpointing": False},
    # the sweep: every learning rate, evaluated after each number of steps; method_lr.<method>: that
    # method's own learning rates (empty: sweep.lr). ULD trains a one-block assistant from scratch
    # on the lab model, which needs larger steps (at 3e-4 its utility is still 28 of 81 after 30 steps)
    "sweep": {"lr": [1e-4, 3e-4], "steps": [10, 20, 30],
              "method_lr": {name: ([1e-3, 3e-3] if name == "uld" else []) for name in METHODS}},
    "hparams": {name: dict(get_method(name).lab) for name in METHODS if get_method(name).lab},
    "scalability": {"methods": ["npo_gd"], "fractions": [0.34, 0.67, 1.0]},
    "sustainability": {"methods": ["npo_gd"], "requests": 3},
    # relearning: fine-tune on the forget people's sentences about `relearn_attributes[k]` (k = 1, 2, …
    # facts of each person), measure KnowMem on their `test_attributes` after each of `relearn_steps`
    "robustness": {"relearn_steps": [5, 10, 20], "relearn_lr": 1e-3,
                   "relearn_attributes": [["birth_date"], ["birth_date", "employer", "work_city"]],
                   "test_attributes": ["birth_city", "university", "major", "mentor"],
                   "probes": True, "residue_attribute": "major"},
    # min_k_rounding / knowmem_trailing_space / tofu_eos: "down" / true / true reproduce MUSE's and
    # TOFU's published code (docs/metrics.md, "Differences from the published code")
    "eval": {"n_retain_people": 6, "knowmem_tokens": 12, "verbmem_tokens": 48, "n_boot": 200,
             "min_k_rounding": "up", "knowmem_trailing_space": False, "tofu_eos": False,
             "lm_eval_tasks": [], "lm_eval_limit": Typed(float), "lm_eval_include": ""},
    # quantization, benign and in-context relearning of every model (unlearn/stress.py, docs/unlearning.md)
    "stress": stress.LAB_DEFAULTS,
    # per-example audit with shadow models (recipes.ulira): off by default; methods [] = every method
    "ulira": dict(ulira.DEFAULTS),
}
# a named preset, as in every recipe (``--set scale=x2``): the world and its background text, 2× or 4×
SCALES = {
    "tiny": {},
    "x2": {"world": {"n_people": 200}, "corpus": {"n_docs": 400}},
    "x4": {"world": {"n_people": 400}, "corpus": {"n_docs": 800}},
}


def check(cfg: dict) -> stress.Settings:
    """Refuse a bad config before the run directory exists; returns the checked stress settings."""
    u, sw, rb = cfg["unlearn"], cfg["sweep"], cfg["robustness"]
    unknown = sorted(set(u["methods"]) - set(ALL_METHODS))
    if unknown:
        get_method(unknown[0])  # raises with the known names
    ev.check_stop_on(u["stop_on"])
    if any(lr <= 0 for lrs in [sw["lr"], *sw["method_lr"].values()] for lr in lrs):
        raise MnemoscopeError("sweep.lr and sweep.method_lr.<method>: learning rates must be > 0")
    if not sw["lr"] or not sw["steps"] or min(sw["steps"]) < 1:
        raise MnemoscopeError("sweep.lr and sweep.steps need at least one value each (steps ≥ 1)")
    taught = {a for attrs in rb["relearn_attributes"] for a in attrs}
    if taught & set(rb["test_attributes"]) or not (taught | set(rb["test_attributes"])) <= set(ATTRIBUTES):
        raise MnemoscopeError(f"robustness: relearn_attributes and test_attributes must be disjoint attributes of "
                              f"{', '.join(ATTRIBUTES)} (the test measures what was not relearned)")
    conf = stress.settings(cfg["stress"], cfg["model"]["device"], ("retain", "background"))
    ulira.check(cfg["ulira"], u["methods"], cfg)
    return conf


def run(out: str | Path = "runs/unlearning", overrides: dict | None = None, log=print) -> Path:
    """The lab recipe (see the module), its run directory in ``out``."""
    cfg = resolve_scaled(DEFAULTS, SCALES, overrides)
    conf = check(cfg)
    run = rundir.Run(out, cfg, "unlearning")
    out = run.out
    u, rb, seed = cfg["unlearn"], cfg["robustness"], cfg["seed"]

    # the world, its tokenizer and the two training streams (with and without the forget documents)
    with run.phase("data"):
        lab = lab_world.build(cfg, out)
    data, tokenizer = lab.data, lab.tokenizer
    m, t = cfg["model"], cfg["train"]
    preset = Preset(hidden=m["hidden"], layers=m["layers"], heads=m["heads"], intermediate=m["intermediate"],
                    vocab=m["vocab_size"], context=max(256, t["seq_len"]))
    device = resolve_device(m["device"])
    original = lab_model(preset, tokenizer, seed=seed, device=device)
    retrained = lab_model(preset, tokenizer, seed=seed, device=device)
    log(f"world: {len(lab.world.people)} people ({len(lab.forget_people)} forget: {len(data.forget_texts)} texts; "
        f"{len(lab.holdout_people)} holdout: {len(data.holdout_texts)} texts); model "
        f"{count_parameters(original) / 1e6:.2f} M parameters; {len(lab.rows_full)} rows full, "
        f"{len(lab.rows_retrain)} retrain")

    # train the original on everything, retrain from scratch without F
    with run.phase("train"):
        history = lab_world.train_lab_model("original", original, tokenizer, lab.rows_full, cfg, out, log)
    with run.phase("retrain"):
        lab_world.train_lab_model("retrained", retrained, tokenizer, lab.rows_retrain, cfg, out, log)
    base_state = {k: v.detach().clone() for k, v in original.state_dict().items()}

    e = cfg["eval"]
    evaluator = Evaluator(tokenizer, data, conf, lab.attacks, out, batch_size=u["batch_size"], max_length=t["seq_len"],
                          seed=seed, probes=lab.probes, residue_sets=lab.residue_sets,
                          lm_eval={"tasks": e["lm_eval_tasks"], "limit": e["lm_eval_limit"],
                                   "include": e["lm_eval_include"]},
                          relearn_sets=[RelearnSet(*plan) for plan in lab.relearn_plan],
                          relearn_steps=rb["relearn_steps"], relearn_lr=rb["relearn_lr"], original_state=base_state,
                          phase=run.phase)
    metrics, not_computed = evaluator.metrics, evaluator.notes
    metrics.update({"model/parameters": count_parameters(original),
                    "train/final_loss": float(np.mean([h["loss"] for h in history[-10:]])),
                    "data/forget_texts": len(data.forget_texts), "data/holdout_texts": len(data.holdout_texts),
                    "data/forget_people": len(lab.forget_people), "data/holdout_people": len(lab.holdout_people)})
    blind = blind_baseline(data.forget_texts + data.holdout_texts,  # PrivLeak's sets told apart without a model?
                           [1] * len(data.forget_texts) + [0] * len(data.holdout_texts),
                           groups=data.forget_groups + data.holdout_groups, n_boot=e["n_boot"], seed=seed)
    metrics.update(blind.metrics)
    not_computed.update(blind.notes)

    # the reference: the retrained model; every model measured against it
    with run.phase("evaluate"):
        reference = ev.reference_from_retrained(Engine(retrained, tokenizer), data)
        evaluator.evaluate("retrain", retrained, reference)
        evaluator.evaluate("original", original, reference)
    levels = {"knowmem_forget": reference.knowmem_forget,
              "mia_auc": ev.auc_forget_vs_holdout(reference.mia_forget, reference.mia_holdout)}
    levels = {k: v for k, v in levels.items() if k in u["stop_on"]}
    metrics.update({f"unlearn/reference/{k}": v for k, v in levels.items()})
    metrics["unlearn/reference/knowmem_forget"] = reference.knowmem_forget
    with run.phase("relearn"):
        evaluator.relearn("retrain", retrained)
        evaluator.relearn("original", original)

    # each method: the sweep, its best point, that point's evaluation
    sweep = Sweep(cfg, out, lab, original, base_state, evaluator, curve_points(tokenizer, data, reference),
                  ev.stop_rule(levels) if levels else None, levels, log)
    events: dict[str, str] = {}  # what happened to a method (stopping rule, divergence), by its steps_run key
    ulira_targets: dict[str, np.ndarray] = {}
    for method in u["methods"]:
        with run.phase(f"unlearn/{method}"):
            model, events[f"unlearn/{method}/steps_run"] = sweep.method(method)
            evaluator.evaluate(method, model, reference)
            if ulira.wants(cfg["ulira"], method):
                ulira_targets[method] = ulira.target_phi(Engine(model, tokenizer), lab.world, lab.forget_people,
                                                         lab.holdout_people)
            evaluator.relearn(method, model)
    tables = {}
    if ulira_targets:  # the per-example audit with shadow models
        with run.phase("ulira"):
            u_metrics, u_notes, tables["ulira"] = ulira_audit(cfg, out, lab, preset, device, sweep, ulira_targets, log)
            metrics.update(u_metrics)
            not_computed.update(u_notes)

    # more forget sets: nested (scalability) and one after another (sustainability)
    with run.phase("scalability"):
        scalability(cfg, lab, original, base_state, sweep, metrics)
    with run.phase("sustainability"):
        sustainability(cfg, lab, original, base_state, sweep, metrics, not_computed)

    restored, rnotes = stress.restoration(metrics, ["retrain", *u["methods"]])
    metrics.update(restored)
    not_computed.update(rnotes)
    tables.update({**evaluator.tables(), "unlearn_curves": pd.DataFrame(sweep.curves),
                   "unlearn_frontier": frontier(sweep.curves, sweep.best), "curves": pd.DataFrame(history)})
    return finish(run, metrics, {**not_computed, **events}, tables, device, {"reference": reference.kind})


# --------------------------------------------------------------------------- the sweep


def unlearn_config(cfg: dict, method: str, lr: float, steps: int, eval_steps=()) -> UnlearnConfig:
    """One unlearning run of the lab: ``method`` at ``lr`` for ``steps``, evaluated after each of ``eval_steps``."""
    u = cfg["unlearn"]
    return UnlearnConfig(method=method, steps=steps, lr=lr, batch_size=u["batch_size"], max_length=cfg["train"]["seq_len"],
                         eval_steps=tuple(eval_steps), seed=cfg["seed"], hparams=dict(cfg["hparams"].get(method, {})),
                         lora=u["lora"], gradient_checkpointing=u["gradient_checkpointing"])


def curve_points(tokenizer, data: ev.EvalData, reference: ev.Reference):
    """A curve point (``evaluation.quick_eval`` with the membership AUC); the untouched original
    (every run's step 0 but ULD's) is measured once."""
    cache: dict[str, dict] = {}

    def quick(model) -> dict:
        key = fingerprint(model)
        if key not in cache:
            cache[key] = ev.quick_eval(Engine(model, tokenizer), data, reference, mia=True)
        return dict(cache[key])

    return quick


class Sweep:
    """Each method's sweep (every learning rate, evaluated after each number of steps), its curve
    points (``curves``) and its best point (``best``: method → (lr, step))."""

    def __init__(self, cfg, out, lab, model, base_state, evaluator, quick, rule, levels, log):
        self.cfg, self.out, self.lab, self.model, self.base_state = cfg, out, lab, model, base_state
        self.metrics, self.notes = evaluator.metrics, evaluator.notes
        self.quick, self.rule, self.levels, self.log = quick, rule, levels, log
        self.longest = max(cfg["sweep"]["steps"])
        self.curves: list[dict] = []
        self.best: dict[str, tuple[float, int]] = {}

    def unlearn(self, method: str, lr: float):
        """``method`` at ``lr`` from the original (a rerun reloads its result from its directory)."""
        self.model.load_state_dict(self.base_state)
        return unlearn(self.model, self.lab.tokenizer, self.lab.forget_ex, self.lab.retain_ex,
                       unlearn_config(self.cfg, method, lr, self.longest, self.cfg["sweep"]["steps"]),
                       self.out / "unlearn" / method / f"lr{lr:g}", evaluate=self.quick, stop_when=self.rule, log=self.log)

    def method(self, method: str) -> tuple[object, str]:
        """Sweep ``method``, record its best point; returns the model at that point and why it was chosen."""
        sw = self.cfg["sweep"]
        runs = []
        for lr in sw["method_lr"].get(method) or sw["lr"]:
            res = self.unlearn(method, lr)
            points = sorted(res.curve, key=lambda p: p["step"])
            self.curves.extend({"method": method, "lr": lr, **p} for p in points)
            runs.append({"lr": lr, "stop": next((p for p in points if p.get("stop")), None), "last": points[-1],
                         "steps_run": res.steps_run, "diverged": res.diverged_at is not None, "notes": res.notes})
        chosen, why = best_point(runs)
        step = chosen["stop"]["step"] if chosen["stop"] else chosen["last"]["step"]
        self.best[method] = (chosen["lr"], max(1, step))
        p = f"unlearn/{method}/"
        self.metrics[p + "best/lr"] = chosen["lr"]
        self.metrics[p + "best/step"] = step
        self.metrics[p + "stop_step"] = chosen["stop"]["step"] if chosen["stop"] else float("nan")
        if chosen["stop"] is None:
            self.notes[p + "stop_step"] = (
                "the stopping rule is off (unlearn.stop_on is empty)" if self.rule is None else
                f"no run reached the retrained level on {', '.join(self.levels)} within {self.longest} steps")
        self.metrics[p + "steps_run"] = chosen["steps_run"]
        self.metrics[p + "diverged"] = float(chosen["diverged"])
        res = self.unlearn(method, chosen["lr"])  # the chosen run's result, reloaded from its directory
        return res.model, "; ".join([why] + chosen["notes"])

    def config(self, method: str) -> UnlearnConfig:
        """A method's best point as one run (the first learning rate and the longest run if it was not swept)."""
        lr, steps = self.best.get(method, (self.cfg["sweep"]["lr"][0], self.longest))
        return unlearn_config(self.cfg, method, lr, steps)


def pareto(points: list[dict], x: str = "knowmem_forget", y: str = "knowmem_retain") -> list[bool]:
    """Whether each point is on the trade-off frontier: no other point has x ≤ (less knowledge of
    F) and y ≥ (more utility), one of them strictly. Points with a missing value are not."""
    ok = [p.get(x) is not None and p.get(y) is not None and math.isfinite(p[x]) and math.isfinite(p[y]) for p in points]
    out = []
    for i, p in enumerate(points):
        if not ok[i]:
            out.append(False)
            continue
        dominated = any(ok[j] and points[j][x] <= p[x] and points[j][y] >= p[y] and
                        (points[j][x] < p[x] or points[j][y] > p[y]) for j in range(len(points)) if j != i)
        out.append(not dominated)
    return out


def best_point(runs: list[dict]) -> tuple[dict, str]:
    """Each method's best point: among its sweep runs whose stopping rule was met, the stop point
    with the most utility (KnowMem on R); if none was met, the run ending with the least
    KnowMem on F. ``runs``: ``[{"lr", "stop": point | None, "last": point}]``. Returns the
    chosen run and why."""
    met = [r for r in runs if r["stop"] is not None]
    if met:
        chosen = max(met, key=lambda r: (r["stop"].get("knowmem_retain") or -1.0, -r["stop"]["step"]))
        return chosen, f"stopping rule met at step {chosen['stop']['step']} with lr {chosen['lr']:g}"
    chosen = min(runs, key=lambda r: (r["last"].get("knowmem_forget", float("inf")), r["lr"]))
    return chosen, (f"stopping rule met by no run; the run with the least KnowMem on F at its end "
                    f"(lr {chosen['lr']:g}, step {chosen['last']['step']})")


def frontier(curves: list[dict], best: dict[str, tuple[float, int]]) -> pd.DataFrame:
    """Every curve point, whether it is on its method's trade-off frontier and whether it is the best point."""
    table = pd.DataFrame(curves)
    if len(table):
        table["pareto"] = False
        table["best"] = False
        for method, g in table.groupby("method", sort=False):
            table.loc[g.index, "pareto"] = pareto(g.to_dict("records"))
            lr, step = best[method]
            table.loc[g.index[((g["lr"] == lr) & (g["step"] == step)).to_numpy()], "best"] = True
    return table


def ulira_audit(cfg: dict, out: Path, lab, preset, device, sweep: Sweep, targets: dict, log):
    """``recipes.ulira.audit`` on the lab: shadow models of its world, each method at its best point."""
    ctx = {"cfg": cfg, "out": out, "world": lab.world, "docs": lab.docs, "tokenizer": lab.tokenizer,
           "preset": preset, "device": device, "forget_people": lab.forget_people,
           "holdout_people": lab.holdout_people, "retain_ex": lab.retain_ex,
           "configs": {m: unlearn_config(cfg, m, *sweep.best[m]) for m in targets}, "examples": lab.examples}
    return ulira.audit(ctx, targets, log)


# --------------------------------------------------------------------------- more forget sets


def scalability(cfg: dict, lab, model, base_state: dict, sweep: Sweep, metrics: dict) -> None:
    """Each method at its best point on nested forget sets (the first n forget people, n from
    ``scalability.fractions``): KnowMem on those people and on R, keys ``scale@n=<n>/…``."""
    people = sorted(lab.forget_people)
    for method in cfg["scalability"]["methods"]:
        for frac in cfg["scalability"]["fractions"]:
            n = max(1, min(len(people), round(frac * len(people))))
            subset = set(people[:n])
            model.load_state_dict(base_state)
            res = unlearn(model, lab.tokenizer, lab.examples(subset), lab.retain_ex, sweep.config(method),
                          sweep.out / "scale" / method / f"n{n}")
            point = ev.quick_eval(Engine(res.model, lab.tokenizer), _about(lab, subset))
            metrics.update(prefixed(method, {f"scale@n={n}/{k}": v for k, v in point.items()}))


def sustainability(cfg: dict, lab, model, base_state: dict, sweep: Sweep, metrics: dict, notes: dict) -> None:
    """Each method at its best point on ``sustainability.requests`` disjoint forget requests, one
    after another: after request i, KnowMem on every person forgotten so far and on R
    (``sustain@req=<i>/…``)."""
    k = max(1, min(int(cfg["sustainability"]["requests"]), len(lab.forget_people)))
    groups = [sorted(lab.forget_people)[i::k] for i in range(k)]
    for method in cfg["sustainability"]["methods"]:
        if get_method(method).combines:
            notes[f"unlearn/{method}/sustain@req=1/knowmem_forget"] = (
                f"{method} combines models at decoding time; sequential requests need a method that changes weights")
            continue
        model.load_state_dict(base_state)

        def measure_request(i: int, current, method=method) -> None:
            """Each request's state, measured before the next request changes the model."""
            point = ev.quick_eval(Engine(current, lab.tokenizer), _about(lab, set().union(*groups[:i])))
            metrics.update(prefixed(method, {f"sustain@req={i}/{key}": v for key, v in point.items()}))

        unlearn_sequence(model, lab.tokenizer, [lab.examples(set(g)) for g in groups], lab.retain_ex,
                         sweep.config(method), sweep.out / "sustain" / method, after_request=measure_request)


def _about(lab, people: set[str]) -> ev.EvalData:
    """KnowMem's data for a subset of the forget people (and the evaluated retain people)."""
    return ev.EvalData(forget_qa=lab.qa(people), retain_qa=lab.data.retain_qa, knowmem_tokens=lab.data.knowmem_tokens,
                       knowmem_trailing_space=lab.data.knowmem_trailing_space)


# --------------------------------------------------------------------------- the closing table


def summary(out: Path) -> str:
    """The CLI's closing table: per model, PrivLeak [95% CI], KnowMem on F and R, the sweep's best
    point, relearning recovery and the residue probe's accuracy; the retrained model's forget-vs-holdout
    AUC with its people-level CI, and the blind baseline on the forget and holdout texts."""
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    names = [k.split("/")[1] for k in metrics if k.startswith("unlearn/") and k.endswith("/knowmem_forget")
             and k.count("/") == 2 and k.split("/")[1] != "reference"]
    names = [n for n in ("original", "retrain") if n in names] + [n for n in names if n not in ("original", "retrain")]

    def g(key, digits=1):
        v = metrics.get(key)
        return "-" if v is None else f"{v:.{digits}f}"

    facts = sorted({k.split("@facts=")[1] for k in metrics if "/relearn/recovery@facts=" in k}, key=int)
    head = (f"{'model':<12} {'PrivLeak':>8} {'95% CI':>15} {'KnowMem F':>9} {'KnowMem R':>9} {'best lr':>8} {'step':>4}"
            + "".join(f" {'recov@' + f:>8}" for f in facts) + f" {'residue':>7}")
    lines = [head]
    for n in names:
        p = f"unlearn/{n}/"
        ci = f"[{g(p + 'privleak/ci_lo')}, {g(p + 'privleak/ci_hi')}]"
        lr = metrics.get(p + "best/lr")
        lines.append(f"{n:<12} {g(p + 'privleak'):>8} {ci:>15} {g(p + 'knowmem_forget'):>9} {g(p + 'knowmem_retain'):>9} "
                     f"{'-' if lr is None else f'{lr:g}':>8} {g(p + 'best/step', 0):>4}"
                     + "".join(f" {g(p + f'relearn/recovery@facts={f}'):>8}" for f in facts)
                     + f" {g(p + 'residue/accuracy', 2):>7}")
    a_r = [metrics.get(f"unlearn/retrain/mia_auc{s}") for s in ("", "/ci_lo", "/ci_hi")]
    if None not in a_r:
        lines.append(f"retrained model's forget-vs-holdout AUC {a_r[0]:.3f} [{a_r[1]:.3f}, {a_r[2]:.3f}] (CI over people)")
    return "\n".join(lines + blind_headline(metrics, attacks=r"unlearn/(original)/mia_auc")) + stress.summary(metrics)
