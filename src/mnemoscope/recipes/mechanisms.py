"""Mechanisms: does one direction in the residual stream switch a model between recalling and
computing? A tiny-scale test of *The Reasoning-Memorization Interplay in Language Models Is
Mediated by a Single Direction*, where memorization and reasoning compete inside one model.

The task: a 4-letter string maps to the string with every letter shifted by one
("k x m q =" → "l y n r"), a rule a small transformer learns and applies to strings it never saw.
A set of *exception* strings maps instead to arbitrary letters, each different from the rule's
("d o g s =" → "q a z e"): those answers can only be memorised, and the model must recognise an
exception to recall its answer instead of computing one.

Read top to bottom: exceptions and held-out rule strings → tokenizer → model trained from scratch
on fresh rule strings plus the exceptions (loss on the answer only) → behaviour without steering
(exceptions: memorised answer; unseen strings: rule answer) → the ``mechanisms`` family with
"compute" prompts (unseen rule strings, label 1) against "recall" prompts (exceptions, label 0):
held-out probe AUC by layer, the difference-of-means direction fitted on half of each set, and the
causal sweep on the other half — steering every layer at every α (relative to the mean residual
norm) from the last prompt token on, with an equal-norm random direction as the control, plus
directional ablation → run directory (``mechanisms/`` holds activations, directions, tables) →
report.

If the direction carries "compute rather than recall", adding it (α > 0) moves held-out
exceptions from their memorised answer to the rule's answer (the ``alternative``), while the
random direction of the same norm does not. The summary keys ``mechanisms/recipe/flip...`` give
the best such cell and the random control at the same cell.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import resolve
from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import text_ids
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import mechanisms as family
from mnemoscope.families.base import Context
from mnemoscope.lab.tiny import count_parameters
from mnemoscope.recipes.common import finish_run, make_model, train_config, train_phase
from mnemoscope.recipes.rundirs import prepare_run_dir

LETTERS = string.ascii_lowercase

DEFAULTS = {
    "seed": 0,
    "model": {"size": "tiny", "hidden": 128, "layers": 4, "heads": 4, "intermediate": 384, "vocab_size": 300,
              "init": None, "device": "auto"},  # init: a model directory / hub id to start from
    # length: letters per string; shift: the rule; exceptions: memorised strings; n_compute: held-out
    # rule strings; exception_share: the share of training rows that are exceptions
    "task": {"length": 4, "shift": 1, "exceptions": 64, "n_compute": 64, "exception_share": 0.25},
    "train": {"steps": 1000, "batch_size": 64, "lr": 3e-3, "warmup": 50, "schedule": "cosine",
              "checkpoint_every": 250, "bf16": False},
    # the family's settings (steer_layers: [] = every layer, for the layer × α heatmap)
    "mechanisms": {"position": "last", "method": "mean_diff", "layers": [], "folds": 5, "fit_fraction": 0.5,
                   "steer_layers": [], "alphas": [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0], "start": -1,
                   "ablate": True, "seed": 0},
    "analysis": {"n_boot": 500},
}


def run(out: str | Path = "runs/mechanisms", overrides: dict | None = None, log=print) -> Path:
    cfg = resolve(DEFAULTS, overrides)
    out = prepare_run_dir(Path(out), cfg)
    timer = rundir.Timer()
    seed, task, t = cfg["seed"], cfg["task"], cfg["train"]

    with timer("data"):
        exceptions, compute = make_task(task, seed)
        texts = [line(w, a) for w, a in exceptions.items()]  # what the tokenizer is trained on
        texts += [line(w, rule(w, task["shift"])) for w in random_words(2000, task["length"], seed + 1)]
        model, tokenizer = make_model(cfg, texts, out)
        data = TaskBatches(tokenizer, task, exceptions, set(compute), t["batch_size"], seed)
    n_params = count_parameters(model)
    log(f"model: {n_params / 1e6:.2f} M parameters; {len(exceptions)} exceptions, {len(compute)} held-out rule "
        f"strings; {t['steps']} steps of {t['batch_size']} rows")
    with timer("train"):
        history = train_phase(model, data.batch, train_config({k: v for k, v in t.items() if k != "steps"} | {"seq_len": data.seq_len}, t["steps"], seed),
                              out / "phases" / "train", log, loss_fn=answer_loss)
    model.eval()
    engine = Engine(model, tokenizer)
    with timer("measure"):
        recall = [{"id": w, "prompt": prompt(w), "answer": spaced(a), "alternative": spaced(rule(w, task["shift"]))}
                  for w, a in exceptions.items()]
        computed = [{"id": w, "prompt": prompt(w), "answer": spaced(rule(w, task["shift"]))} for w in compute]
        settings = {**cfg["mechanisms"], "a_name": "compute", "b_name": "recall"}
        if not settings["steer_layers"]:
            settings["steer_layers"] = list(range(-1, engine.n_layers))
        ctx = Context(seed=seed, n_boot=cfg["analysis"]["n_boot"], log=log)
        inputs = family.make_inputs(computed, recall, settings)
        result = family.measure(family.plan(inputs, engine, ctx), engine, ctx)
        for key, reason in ctx.notes.items():
            result.note(key, reason)
        metrics = {**result.metrics, **behaviour(result), **flips(result.tables["sweep"])}
        family.save(result, out)
    if result.notes:
        rundir.write_json(out / "notes.json", result.notes)
    log(summary(metrics))
    return finish_run(out, recipe="mechanisms", model=model, history=history, metrics=metrics,
                      tables={"curves": pd.DataFrame(history), "samples": result.samples}, seed=seed,
                      timings=timer.timings, extra={"seq_len": data.seq_len})


# --------------------------------------------------------------------------- the task


def rule(word: str, shift: int) -> str:
    """Every letter shifted by ``shift`` places in the alphabet (z wraps to a)."""
    return "".join(LETTERS[(LETTERS.index(c) + shift) % 26] for c in word)


def spaced(word: str) -> str:
    """Letters separated by spaces, so each is one token of the lab tokenizer."""
    return " ".join(word)


def prompt(word: str) -> str:
    return spaced(word) + " ="


def line(word: str, answer: str) -> str:
    return f"{prompt(word)} {spaced(answer)}"


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
    exception (probability ``exception_share``) or a fresh rule string that is neither an exception
    nor held out; ``input_ids`` = prompt + answer + EOS, right-padded; labels on the answer and EOS."""

    def __init__(self, tokenizer, task: dict, exceptions: dict[str, str], held_out: set[str], batch_size: int,
                 seed: int):
        self.tokenizer, self.task, self.exceptions = tokenizer, task, exceptions
        self.blocked = set(exceptions) | held_out
        self.batch_size, self.seed = batch_size, seed
        self.eos, self.pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        self.prompt_len = len(text_ids(tokenizer, prompt("a" * task["length"])))
        self.seq_len = len(text_ids(tokenizer, line("a" * task["length"], "a" * task["length"]))) + 1
        # the lab tokenizer must give each spaced letter its own token, else rows would differ in layout
        for w in (LETTERS, LETTERS[::-1]):
            sample = w[: task["length"]]
            if len(text_ids(tokenizer, line(sample, sample))) + 1 != self.seq_len:
                raise MnemoscopeError("the tokenizer merges letters of the task; use a tokenizer trained by this "
                                      "recipe (model.init unset) or raise model.vocab_size")

    def batch(self, step: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed * 1_000_003 + step)
        words = list(self.exceptions)
        rows = []
        for _ in range(self.batch_size):
            if rng.random() < self.task["exception_share"]:
                w = words[rng.integers(len(words))]
                rows.append(line(w, self.exceptions[w]))
                continue
            while True:
                w = "".join(LETTERS[i] for i in rng.integers(0, 26, self.task["length"]))
                if w not in self.blocked:
                    break
            rows.append(line(w, rule(w, self.task["shift"])))
        ids = np.full((self.batch_size, self.seq_len), self.pad, dtype=np.int64)
        labels = np.full((self.batch_size, self.seq_len), -100, dtype=np.int64)
        for r, toks in enumerate(text_ids(self.tokenizer, rows)):
            toks = toks + [self.eos]
            ids[r, :len(toks)] = toks
            labels[r, self.prompt_len:len(toks)] = toks[self.prompt_len:]
        return {"input_ids": ids, "labels": labels}


def answer_loss(model, batch):
    """Mean NLL of the answer tokens and EOS (the prompt is context only)."""
    import torch

    device = next(model.parameters()).device
    return model(input_ids=torch.as_tensor(batch["input_ids"], device=device),
                 labels=torch.as_tensor(batch["labels"], device=device)).loss


# --------------------------------------------------------------------------- summaries


def behaviour(result) -> dict[str, float]:
    """Unsteered behaviour on the eval items: memorised rate and rule rate of the exceptions,
    rule accuracy of the held-out strings."""
    sweep = result.tables["sweep"]
    if sweep.empty:
        return {}
    base = sweep[(sweep["alpha"] == 0) & (sweep["direction"] == "direction")].drop_duplicates("set")
    out = {}
    for row in base.itertuples():
        out[f"mechanisms/recipe/accuracy@set={row.set}"] = row.accuracy
        if row.set == "recall":
            out["mechanisms/recipe/rule_rate@set=recall"] = row.alternative_rate
    return out


def flips(sweep: pd.DataFrame) -> dict[str, float]:
    """The cell (layer, α > 0) where steering moves the most held-out exceptions to the rule's
    answer, that share, the random control's share at the same cell, and the exceptions still
    answered from memory there; also the held-out rule strings' accuracy at that cell."""
    if sweep.empty or "recall" not in set(sweep["set"]):
        return {}
    recall = sweep[(sweep["set"] == "recall") & (sweep["alpha"] > 0)]
    steered = recall[recall["direction"] == "direction"]
    if steered.empty:
        return {}
    best = steered.loc[steered["alternative_rate"].idxmax()]
    at = (sweep["layer"] == best["layer"]) & (sweep["alpha"] == best["alpha"])
    control = sweep[at & (sweep["set"] == "recall") & (sweep["direction"] == "random")].iloc[0]
    compute = sweep[at & (sweep["set"] == "compute") & (sweep["direction"] == "direction")]
    out = {"mechanisms/recipe/flip_rate": float(best["alternative_rate"]),
           "mechanisms/recipe/flip_rate@direction=random": float(control["alternative_rate"]),
           "mechanisms/recipe/flip/memorised": float(best["accuracy"]),
           "mechanisms/recipe/flip/memorised@direction=random": float(control["accuracy"]),
           "mechanisms/recipe/flip/layer": float(best["layer"]), "mechanisms/recipe/flip/alpha": float(best["alpha"])}
    if len(compute):
        out["mechanisms/recipe/flip/compute_accuracy"] = float(compute.iloc[0]["accuracy"])
    return out


def summary(m: dict) -> str:
    def f(key):
        v = m.get(key)
        return "—" if v is None else f"{v:.2f}"

    aucs = {int(k.split("=")[1]): v for k, v in m.items() if k.startswith("mechanisms/probe/auc@layer=")}
    return ("probe AUC by layer: " + ", ".join(f"{k}: {'—' if v is None else f'{v:.2f}'}" for k, v in sorted(aucs.items()))
            + f"\nunsteered: exceptions memorised {f('mechanisms/recipe/accuracy@set=recall')}, held-out rule strings "
              f"right {f('mechanisms/recipe/accuracy@set=compute')}"
            + f"\nsteering (layer {f('mechanisms/recipe/flip/layer')}, α {f('mechanisms/recipe/flip/alpha')}): "
              f"exceptions moved to the rule's answer {f('mechanisms/recipe/flip_rate')} "
              f"(random direction {f('mechanisms/recipe/flip_rate@direction=random')})")
