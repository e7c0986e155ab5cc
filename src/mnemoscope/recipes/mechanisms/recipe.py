"""Mechanisms: does one direction in the residual stream switch a model between recalling and
computing? A tiny-scale test of *The Reasoning-Memorization Interplay in Language Models Is
Mediated by a Single Direction*, where memorization and reasoning compete inside one model.

The task: a 4-letter string maps to the string with every letter shifted by one
("k x m q =" → "l y n r"), a rule a small transformer learns and applies to strings it never saw.
A set of *exception* strings maps instead to arbitrary letters, each different from the rule's
("d o g s :" → "q a z e"): those answers can only be memorised. With ``task.recall_marker`` set
(default ":") an exception is asked with its own operator, so the model is told which mode a
prompt wants — as reasoning and memory questions differ in kind in the paper — and the same
string asked with "=" gets the rule's answer (never trained: generalisation). With an empty
marker the exceptions use "=" too and the model must recognise an exception from the string alone.

Read top to bottom: exceptions and held-out rule strings → tokenizer → model trained from scratch
on fresh rule strings plus the exceptions (loss on the answer only) → the ``mechanisms`` family
with "compute" prompts (label 1: held-out rule strings, and with a marker the exceptions asked
with "=", whose alternative is the memorised answer) against "recall" prompts (label 0: the
exceptions, whose alternative is the rule's answer): held-out probe AUC by layer, the
difference-of-means direction fitted on half of each set (the best layer is chosen on that half
too), and the causal sweep on the other half — ours: adding each layer's direction at that layer
at every α (relative to the mean residual norm) from the last prompt token on; the seed paper's:
scaling the projection on each layer's direction by 1 + s at every layer, on every block input,
attention and MLP output — each with an equal-norm random direction as the control, plus
directional ablation on every residual write → run directory (``mechanisms/`` holds activations,
directions, tables) → report.

If the direction carries "compute rather than recall", adding it (α > 0) moves held-out
exceptions from their memorised answer to the rule's answer, and subtracting it (α < 0) moves
compute prompts of exception strings to the memorised answer, while the random direction of the
same norm does neither. ``mechanisms/recipe/to_rule...`` and ``.../to_memory...`` give the best
such cell and the random control at the same cell (ours untagged, the paper's intervention tagged
``@intervention=scale``).
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import text_ids
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import mechanisms as family
from mnemoscope.families.base import Context
from mnemoscope.lab.factory import make_model
from mnemoscope.lab.tiny import count_parameters
from mnemoscope.recipes.common import finish_lab_run, resolve_scaled, train_config
from mnemoscope.train.phase import train_phase

LETTERS = string.ascii_lowercase

DEFAULTS = {
    "seed": 0,
    "scale": "tiny",  # tiny | powered (see SCALES)
    # torch threads while the recipe runs (0 = torch's default). The model is tiny and overhead-bound:
    # one thread is as fast on a quiet machine and many times faster on a shared, loaded one.
    "threads": 1,
    "model": {"size": "tiny", "hidden": 128, "layers": 4, "heads": 4, "intermediate": 384, "vocab_size": 300,
              "init": None, "device": "auto"},  # init: a model directory / hub id to start from
    # length: letters per string; shift: the rule; exceptions: memorised strings; n_compute: held-out
    # rule strings; exception_share: the share of training rows that are exceptions
    # recall_marker: the operator of exception prompts ("" = "=" like every other prompt)
    "task": {"length": 4, "shift": 1, "exceptions": 64, "n_compute": 64, "exception_share": 0.25,
             "recall_marker": ":"},
    "train": {"steps": 1000, "batch_size": 64, "lr": 3e-3, "warmup": 50, "schedule": "cosine",
              "checkpoint_every": 250, "bf16": False},
    # the family's settings (steer_layers: [] = every layer, for the layer × α heatmap); both
    # interventions: ours (add, grid alphas) and the seed paper's (scale, grid scales)
    "mechanisms": {"position": "last", "method": "mean_diff", "layers": [], "folds": 5, "fit_fraction": 0.5,
                   "steer_layers": [], "interventions": ["add", "scale"],
                   "alphas": [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0],
                   "scales": [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0], "start": -1,
                   "ablate": True, "seed": 0, "pca_layer": None},
    "analysis": {"n_boot": 500},
}


# powered: docs/recipes.md "Powered design for the marker-free mechanisms task" (issue 23 item 6):
# exceptions asked with "=" like every rule string, 4× the items, 3× the training.
SCALES = {
    "tiny": {},
    "powered": {"task": {"recall_marker": "", "exceptions": 256, "n_compute": 256}, "train": {"steps": 3000}},
}


def resolve_config(overrides: dict | None) -> dict:
    """Defaults, then the ``scale`` preset, then the user's overrides."""
    return resolve_scaled(DEFAULTS, SCALES, overrides)


def run(out: str | Path = "runs/mechanisms", overrides: dict | None = None, log=print) -> Path:
    import torch

    cfg = resolve_config(overrides)
    threads = torch.get_num_threads()
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    try:
        return _run(out, cfg, log)
    finally:
        torch.set_num_threads(threads)


def _run(out, cfg: dict, log) -> Path:
    run = rundir.Run(out, cfg, "mechanisms")
    out = run.out
    seed, task, t = cfg["seed"], cfg["task"], cfg["train"]

    with run.phase("data"):
        exceptions, compute = make_task(task, seed)
        op = task["recall_marker"] or "="
        texts = [line(w, a, op) for w, a in exceptions.items()]  # what the tokenizer is trained on
        texts += [line(w, rule(w, task["shift"])) for w in random_words(2000, task["length"], seed + 1)]
        model, tokenizer = make_model(cfg, texts, out)
        data = TaskBatches(tokenizer, task, exceptions, set(compute), t["batch_size"], seed)
    n_params = count_parameters(model)
    log(f"model: {n_params / 1e6:.2f} M parameters; {len(exceptions)} exceptions, {len(compute)} held-out rule "
        f"strings; {t['steps']} steps of {t['batch_size']} rows")
    with run.phase("train"):
        tcfg = train_config({k: v for k, v in t.items() if k != "steps"} | {"seq_len": data.seq_len}, t["steps"], seed)
        history = train_phase(model, data.batch, tcfg, out / "phases" / "train", log, loss_fn=answer_loss)
    model.eval()
    engine = Engine(model, tokenizer)
    with run.phase("measure"):
        recall = [{"id": w, "prompt": prompt(w, op), "answer": spaced(a), "alternative": spaced(rule(w, task["shift"]))}
                  for w, a in exceptions.items()]
        computed = [{"id": w, "prompt": prompt(w), "answer": spaced(rule(w, task["shift"]))} for w in compute]
        if task["recall_marker"]:  # the exceptions asked to compute: their alternative is the memorised answer
            computed += [{"id": f"{w}=", "prompt": prompt(w), "answer": spaced(rule(w, task["shift"])),
                          "alternative": spaced(a)} for w, a in exceptions.items()]
        settings = {**cfg["mechanisms"], "a_name": "compute", "b_name": "recall"}
        if not settings["steer_layers"]:
            settings["steer_layers"] = list(range(-1, engine.n_layers))
        ctx = Context(seed=seed, n_boot=cfg["analysis"]["n_boot"], log=log)
        inputs = family.make_inputs(computed, recall, settings)
        result = family.measure(family.plan(inputs, engine, ctx), engine, ctx)
        for key, reason in ctx.notes.items():
            result.note(key, reason)
        metrics = {**result.metrics, **behaviour(result), **moves(result.tables["sweep"])}
        family.save(result, out)
    run.metrics.update(metrics)
    for key, reason in result.notes.items():
        run.note(key, reason)
    run.add_table("curves", pd.DataFrame(history))
    run.add_table("samples", result.samples)
    return finish_lab_run(run, model, history, extra={"seq_len": data.seq_len, "recall_marker": op})


# --------------------------------------------------------------------------- the task


def rule(word: str, shift: int) -> str:
    """Every letter shifted by ``shift`` places in the alphabet (z wraps to a)."""
    return "".join(LETTERS[(LETTERS.index(c) + shift) % 26] for c in word)


def spaced(word: str) -> str:
    """Letters separated by spaces, so each is one token of the lab tokenizer."""
    return " ".join(word)


def prompt(word: str, op: str = "=") -> str:
    return f"{spaced(word)} {op}"


def line(word: str, answer: str, op: str = "=") -> str:
    return f"{prompt(word, op)} {spaced(answer)}"


def random_words(n: int, length: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(LETTERS[i] for i in row) for row in rng.integers(0, 26, size=(n, length))]


def make_task(task: dict, seed: int) -> tuple[dict[str, str], list[str]]:
    """Exceptions {string: arbitrary answer, every letter unlike the rule's} and distinct held-out
    rule strings (never trained on, never exceptions)."""
    if task["length"] < 1 or task["exceptions"] < 2 or task["n_compute"] < 2:
        raise MnemoscopeError("task.length must be ≥ 1 and task.exceptions, task.n_compute ≥ 2")
    if not 0 < task["exception_share"] < 1:
        raise MnemoscopeError(f"task.exception_share must be in (0, 1), got {task['exception_share']}")
    if task["shift"] % 26 == 0:
        raise MnemoscopeError("task.shift must not be a multiple of 26 (the rule would copy its input)")
    rng = np.random.default_rng(seed)
    pool = iter(random_words(50 * (task["exceptions"] + task["n_compute"]), task["length"], seed))
    exceptions: dict[str, str] = {}
    compute: list[str] = []
    for word in pool:
        if word in exceptions or word in compute:
            continue
        if len(exceptions) < task["exceptions"]:
            wanted = rule(word, task["shift"])
            exceptions[word] = "".join(rng.choice([c for c in LETTERS if c != r]) for r in wanted)
        elif len(compute) < task["n_compute"]:
            compute.append(word)
        else:
            break
    if len(compute) < task["n_compute"]:
        raise MnemoscopeError("task: too few distinct strings; raise task.length")
    return exceptions, compute


class TaskBatches:
    """Batch ``step`` (seeded by step, so a resumed run sees the same rows): each row is an
    exception (probability ``exception_share``, asked with the recall marker) or a fresh rule string
    that is neither an exception nor held out; ``input_ids`` = prompt + answer + EOS, right-padded;
    labels on the answer and EOS."""

    def __init__(self, tokenizer, task: dict, exceptions: dict[str, str], held_out: set[str], batch_size: int,
                 seed: int):
        self.tokenizer, self.task, self.exceptions = tokenizer, task, exceptions
        self.op = task["recall_marker"] or "="
        if not re.fullmatch(r"[^\sA-Za-z]+", self.op):
            raise MnemoscopeError(f"task.recall_marker {self.op!r}: use punctuation without spaces or letters, e.g. ':'")
        self.blocked = set(exceptions) | held_out
        self.batch_size, self.seed = batch_size, seed
        self.eos, self.pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        n = task["length"]
        self.seq_len = max(len(text_ids(tokenizer, line("a" * n, "a" * n, op))) for op in ("=", self.op)) + 1
        # each spaced letter must be its own token, or rows of one kind would differ in layout
        for w in (LETTERS, LETTERS[::-1]):
            sample = w[:n]
            if len(text_ids(tokenizer, spaced(sample))) != n:
                raise MnemoscopeError("the tokenizer merges letters of the task; use a tokenizer trained by this "
                                      "recipe (model.init unset) or raise model.vocab_size")

    def batch(self, step: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed * 1_000_003 + step)
        words = list(self.exceptions)
        rows = []
        for _ in range(self.batch_size):
            if rng.random() < self.task["exception_share"]:
                w = words[rng.integers(len(words))]
                rows.append((w, self.exceptions[w], self.op))
                continue
            while True:
                w = "".join(LETTERS[i] for i in rng.integers(0, 26, self.task["length"]))
                if w not in self.blocked:
                    break
            rows.append((w, rule(w, self.task["shift"]), "="))
        ids = np.full((self.batch_size, self.seq_len), self.pad, dtype=np.int64)
        labels = np.full((self.batch_size, self.seq_len), -100, dtype=np.int64)
        prompts = text_ids(self.tokenizer, [prompt(w, op) for w, _, op in rows])
        fulls = text_ids(self.tokenizer, [line(w, a, op) for w, a, op in rows])
        for r, (head, toks) in enumerate(zip(prompts, fulls)):
            toks = toks + [self.eos]
            ids[r, :len(toks)] = toks
            labels[r, len(head):len(toks)] = toks[len(head):]
        return {"input_ids": ids, "labels": labels}


def answer_loss(model, batch):
    """Mean NLL of the answer tokens and EOS (the prompt is context only)."""
    import torch

    device = next(model.parameters()).device
    return model(input_ids=torch.as_tensor(batch["input_ids"], device=device),
                 labels=torch.as_tensor(batch["labels"], device=device)).loss


# --------------------------------------------------------------------------- summaries


def behaviour(result) -> dict[str, float]:
    """Unsteered behaviour on the eval items of each set: the share giving the set's answer, and the
    share giving the alternative (recall: the rule's answer; compute: the memorised answer)."""
    sweep = result.tables["sweep"]
    if sweep.empty:
        return {}
    base = sweep[(sweep["alpha"] == 0) & (sweep["direction"] == "direction")].drop_duplicates("set")
    out = {}
    for row in base.itertuples():
        out[f"mechanisms/recipe/accuracy@set={row.set}"] = row.accuracy
        if not np.isnan(row.alternative_rate):
            out[f"mechanisms/recipe/alternative_rate@set={row.set}"] = row.alternative_rate
    return out


def moves(sweep: pd.DataFrame) -> dict[str, float]:
    """How far steering moves answers between memory and rule, against the random control, for each
    intervention in the sweep.

    Ours (``add``): ``to_rule``: held-out exceptions (recall set) answered with the rule's answer,
    at the cell (layer, α > 0) where the fitted direction does this most; ``to_memory``: compute
    prompts with an alternative (the exceptions asked with "=") answered with the memorised answer,
    at the best cell with α < 0. The paper's (``scale``, keys tagged ``@intervention=scale``): the
    same at the best cell over every s ≠ 0 (scaling the existing projection has no sign that means
    "toward the rule"). Each comes with the random direction's rate at the same cell, the random
    direction's rate at *its own* best cell on the same side (``.../random_best``: a fair control when
    the direction's cell was chosen for being the best), the share still giving the set's own answer
    there (``.../kept``), and the cell's layer and α (or s)."""
    out: dict[str, float] = {}
    kinds = sweep["intervention"] if "intervention" in sweep else pd.Series("add", index=sweep.index, dtype=object)
    for kind in ("add", "scale"):
        part_kind = sweep[kinds == kind] if len(sweep) else sweep
        tag = "" if kind == "add" else "intervention=scale"
        for name, set_name, sign in (("to_rule", "recall", 1), ("to_memory", "compute", -1)):
            if part_kind.empty:
                continue
            side = np.sign(part_kind["alpha"]) == sign if kind == "add" else part_kind["alpha"] != 0
            part = part_kind[(part_kind["set"] == set_name) & side]
            steered = part[(part["direction"] == "direction") & part["alternative_rate"].notna()]
            if steered.empty:
                continue
            best = steered.loc[steered["alternative_rate"].idxmax()]
            same = (part["layer"] == best["layer"]) & (part["alpha"] == best["alpha"]) & (part["direction"] == "random")
            control = part[same].iloc[0]
            randoms = part[(part["direction"] == "random") & part["alternative_rate"].notna()]
            key = f"mechanisms/recipe/{name}"

            def k(stat: str = "", random: bool = False, key=key) -> str:
                tags = ",".join(t for t in (tag, "direction=random" if random else "") if t)
                return f"{key}{stat}" + (f"@{tags}" if tags else "")

            out.update({k(): float(best["alternative_rate"]), k(random=True): float(control["alternative_rate"]),
                        k("/kept"): float(best["accuracy"]), k("/kept", True): float(control["accuracy"]),
                        k("/layer"): float(best["layer"]), k("/alpha"): float(best["alpha"]),
                        k("/random_best"): float(randoms["alternative_rate"].max())})
    return out


def summary(out: Path) -> str:
    """Probe AUC by layer, the unsteered behaviour and each steering move against the control."""
    m = json.loads((Path(out) / "metrics.json").read_text())

    def f(key):
        v = m.get(key)
        return "—" if v is None else f"{v:.2f}"

    aucs = {int(k.split("=")[1]): v for k, v in m.items() if k.startswith("mechanisms/probe/auc@layer=")}
    lines = ["probe AUC by layer: " + ", ".join(f"{k}: {'—' if v is None else f'{v:.2f}'}" for k, v in sorted(aucs.items())),
             (f"unsteered: exceptions memorised {f('mechanisms/recipe/accuracy@set=recall')}, compute prompts "
              f"right {f('mechanisms/recipe/accuracy@set=compute')}")]
    for name, what in (("to_rule", "exceptions moved to the rule's answer"),
                       ("to_memory", "compute prompts of exceptions moved to the memorised answer")):
        key = f"mechanisms/recipe/{name}"
        if key in m:
            lines.append(f"steering, ours (layer {f(key + '/layer')}, α {f(key + '/alpha')}): {what} {f(key)} "
                         f"(random direction {f(key + '@direction=random')} there, "
                         f"{f(key + '/random_best')} at its own best cell)")
        if key + "@intervention=scale" in m:
            lines.append(f"steering, the paper's (direction of layer {f(key + '/layer@intervention=scale')}, "
                         f"s {f(key + '/alpha@intervention=scale')}): {what} {f(key + '@intervention=scale')} "
                         f"(random direction {f(key + '@intervention=scale,direction=random')} there, "
                         f"{f(key + '/random_best@intervention=scale')} at its own best cell)")
    return "\n".join(lines)
