"""Reasoning: memorization versus reasoning on Knights-and-Knaves puzzles (PROTOCOLS §9, after Xie et al.
2024, "On Memorization of Large Language Models in Logical Reasoning").

Read top to bottom: generate training puzzles and disjoint unseen puzzles → tokenizer → model →
fine-tune on "puzzle + Answer: (1) <name> is a knight … " with the loss on the answer tokens only,
for several epochs; at the start, at log-spaced epochs and at the end, answer greedily (one generate
call per split) → accuracy on the training puzzles, on their local answer-changing perturbations
(``perturb_statement`` by default) and on the unseen puzzles; consistency ratio CR and LiMem = Acc ·
(1 − CR) over training → run directory → report.

High accuracy on the training puzzles with a low CR (the perturbed puzzle, whose answer differs, is
answered wrongly) is memorization; accuracy that carries over to unseen puzzles is reasoning.
``--set scale=gpu``: more and larger puzzles and a larger model. ``puzzles.sweep`` (``--set scale=powered``):
one fresh model per training-set size on nested sets, a step budget (``train.steps``) and a capped,
seeded evaluation subset (``eval.max_puzzles``); the sweep's analysis is ``sweep.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import Typed
from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import text_ids
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.limem import limem_eval
from mnemoscope.families.reasoning import evaluate_puzzles, puzzle_prompt
from mnemoscope.files import write_parquet
from mnemoscope.lab.factory import make_model
from mnemoscope.lab.tiny import count_parameters
from mnemoscope.metrics.bootstrap import bootstrap_ci
from mnemoscope.metrics.dynamics import log_spaced_steps
from mnemoscope.probes.knights_knaves import (
    generate_puzzles,
    render_puzzle,
    render_solution,
)
from mnemoscope.recipes.common import (
    finish_lab_run,
    resolve_scaled,
    train_config,
)
from mnemoscope.recipes.reasoning.sweep import baseline_by_people, eval_subset, sweep_metrics
from mnemoscope.train.phase import train_phase

DEFAULTS = {
    "seed": 0,
    "scale": "tiny",  # tiny | powered | gpu
    "model": {"size": "tiny", "hidden": 128, "layers": 4, "heads": 4, "intermediate": 352, "vocab_size": 1024,
              "init": Typed(str), "device": "auto"},  # init: a model directory / hub id to start from
    # n_train / n_unseen puzzles for each number of people; perturb: statement | leaf;
    # sweep: training-set sizes (per number of people), each a fresh model on the first N puzzles ([] = n_train)
    "puzzles": {"n_people": [2, 3], "n_train": 48, "n_unseen": 48, "depth": 2, "width": 2, "perturb": "statement",
                "instruction": False, "sweep": []},
    # steps: a step budget (each sweep size the same) instead of epochs
    "train": {"epochs": 40, "steps": Typed(int), "batch_size": 8, "lr": 2e-3, "warmup": 20, "schedule": "cosine",
              "checkpoint_every": 100, "bf16": False},
    # max_puzzles: a seeded subset of each split evaluated (the same at every evaluation; null = all);
    # points: evaluations evenly spaced over training, the first and the last included (null = by epochs)
    "eval": {"max_puzzles": Typed(int), "points": Typed(int)},
    "analysis": {"n_boot": 200},
}

# powered: the training-set sweep of docs/recipes.md ("Powered design for reasoning's training-set sweep"),
# written before its seeds ran; sized to ≈ 8 CPU minutes a seed on one thread (the session's budget)
SCALES = {
    "tiny": {},
    "powered": {
        "puzzles": {"n_train": 4000, "n_unseen": 500, "sweep": [100, 4000]},
        "train": {"steps": 2000},
        "eval": {"max_puzzles": 400, "points": 3},
    },
    "gpu": {
        "model": {"size": "small", "hidden": None, "layers": None, "heads": None, "intermediate": None,
                  "vocab_size": 4096},
        "puzzles": {"n_people": [2, 3, 4, 5, 6, 7, 8], "n_train": 1000, "n_unseen": 100, "instruction": True},
        "train": {"epochs": 100, "batch_size": 32, "lr": 5e-4, "warmup": 200, "checkpoint_every": 1000, "bf16": True},
    },
}

SPLITS = ("train", "perturbed", "unseen")


def run(out: str | Path = "runs/reasoning", overrides: dict | None = None, log=print) -> Path:
    cfg = resolve_scaled(DEFAULTS, SCALES, overrides)
    seed, pz, ev = cfg["seed"], cfg["puzzles"], cfg["eval"]
    sizes = check_sizes(pz, ev)
    run = rundir.Run(out, cfg, "reasoning")
    out = run.out

    with run.phase("data"):
        train_all, unseen = make_puzzle_sets({**pz, "n_train": max(sizes)}, seed)
        unseen_eval = eval_subset(unseen, ev["max_puzzles"], seed)
        texts = [training_text(p, pz["instruction"]) for p in train_all] + [render_puzzle(p) for p in unseen]
        baseline = baseline_by_people(train_all)
    fits = {}
    for n in sizes:
        train_set = first_per_people(train_all, n, pz["n_people"])
        name = "train" if not pz["sweep"] else f"train_n{n}"
        with run.phase(name):
            fits[n] = fit_and_probe(cfg, out, name, texts, train_set, unseen_eval, log)
    with run.phase("analysis"):
        metrics, tables = analyze_run(fits, bool(pz["sweep"]), baseline, cfg["analysis"]["n_boot"], seed)
    run.metrics.update(metrics)
    for name, table in tables.items():
        run.add_table(name, table)
    last = fits[sizes[-1]]
    return finish_lab_run(run, last["model"], last["history"], extra={
        "steps_per_epoch": {n: f["steps_per_epoch"] for n, f in fits.items()} if pz["sweep"]
        else last["steps_per_epoch"],
        "eval_epochs": last["eval_epochs"], "seq_len": last["seq_len"]})


def check_sizes(pz: dict, ev: dict) -> list[int]:
    """The training-set sizes to run (``puzzles.sweep``, or ``[puzzles.n_train]``), checked."""
    sizes = list(pz["sweep"]) or [pz["n_train"]]
    if any(int(n) != n or n < 1 for n in sizes) or sorted(set(sizes)) != sizes:
        raise MnemoscopeError(f"puzzles.sweep: training-set sizes must be increasing integers ≥ 1 (got {sizes})")
    if pz["sweep"] and max(sizes) > pz["n_train"]:
        raise MnemoscopeError(f"puzzles.sweep: the largest size {max(sizes)} exceeds puzzles.n_train "
                              f"({pz['n_train']}); raise puzzles.n_train")
    for key in ("max_puzzles", "points"):
        if ev[key] is not None and ev[key] < (2 if key == "points" else 1):
            raise MnemoscopeError(f"eval.{key} must be ≥ {2 if key == 'points' else 1} or null (got {ev[key]})")
    return [int(n) for n in sizes]


def fit_and_probe(cfg: dict, out: Path, name: str, texts: list[str], train_set: list, unseen_eval: list, log) -> dict:
    """A fresh model fine-tuned on ``train_set`` (epochs or the step budget), probed on a seeded subset of
    its training puzzles (``eval.max_puzzles``) and on ``unseen_eval``; its rows and training history."""
    seed, t, pz, ev = cfg["seed"], cfg["train"], cfg["puzzles"], cfg["eval"]
    model, tokenizer = make_model(cfg, texts, out)
    data = AnswerBatches(tokenizer, train_set, pz["instruction"], t["batch_size"], seed)
    steps = t["steps"] or t["epochs"] * data.steps_per_epoch
    answer_tokens = max(len(text_ids(tokenizer, " " + render_solution(p))) for p in train_set + unseen_eval)
    eval_steps = evaluation_steps(steps, data.steps_per_epoch, t["steps"] is None and ev["points"] is None,
                                  t["epochs"], ev["points"])
    n_params = count_parameters(model)
    train_eval = eval_subset(train_set, ev["max_puzzles"], seed)
    log(f"{name}: model {n_params / 1e6:.2f} M parameters; {len(train_set)} training puzzles ({len(train_eval)} "
        f"evaluated), {len(unseen_eval)} unseen evaluated; {steps} steps, evaluated at steps {eval_steps}")
    probe = PuzzleProbe(tokenizer, train_eval, unseen_eval, eval_steps, perturb=pz["perturb"],
                        instruction=pz["instruction"], max_new_tokens=answer_tokens + 4, seed=seed)
    tcfg = train_config({k: v for k, v in {**t, "seq_len": data.seq_len}.items() if k != "steps"}, steps, seed)
    history = train_phase(model, data.batch, tcfg, out / "phases" / name, log, probe=probe, loss_fn=answer_loss)
    rows = probe.frame()
    rows["epoch"] = rows["step"] // data.steps_per_epoch
    return {"model": model, "history": history, "rows": rows, "n_params": n_params, "steps": steps,
            "steps_per_epoch": data.steps_per_epoch, "seq_len": data.seq_len, "n_train_eval": len(train_eval),
            "eval_epochs": sorted({int(s) // data.steps_per_epoch for s in eval_steps})}


def evaluation_steps(steps: int, steps_per_epoch: int, by_epoch: bool, epochs: int, points: int | None) -> list[int]:
    """By epoch (the default): the start, log-spaced epochs and the end; else ``points`` evenly spaced
    steps from 0 to ``steps`` (2 when unset: the start and the end)."""
    if by_epoch:
        return [e * steps_per_epoch for e in sorted({0, epochs} | set(log_spaced_steps(epochs)))]
    return sorted({int(round(x)) for x in np.linspace(0, steps, points or 2)})


def analyze_run(fits: dict, sweep: bool, baseline: dict, n_boot: int, seed: int) -> tuple[dict, dict]:
    """Metrics and tables of the run: one size (the default) as before; a sweep tags every size's metrics
    with ``n_train=N`` and adds :func:`sweep.sweep_metrics`."""
    metrics: dict[str, float] = {}
    rows_all, curves, limem, histories = [], [], {}, []
    for n, fit in fits.items():
        rows = fit["rows"]
        m, curve = analyze(rows, n_boot=n_boot, seed=seed)
        m["reasoning/limem/n_skipped"] = float(fit["n_train_eval"] - m["reasoning/n@split=train,phase=after"])
        limem[n] = m["reasoning/limem/limem@phase=after"]
        if sweep:
            m = {_tagged(k, f"n_train={n}"): v for k, v in m.items()}
            m[f"model/parameters@n_train={n}"] = fit["n_params"]
            m[f"reasoning/sweep/epochs@n_train={n}"] = fit["steps"] / fit["steps_per_epoch"]
        else:
            m["model/parameters"] = fit["n_params"]
        metrics |= m
        rows_all.append(rows.assign(n_train=n))
        curves.append(curve.assign(n_train=n))
        histories.append(pd.DataFrame(fit["history"]).assign(n_train=n))
    rows, curve = pd.concat(rows_all, ignore_index=True), pd.concat(curves, ignore_index=True)
    last = rows.groupby("n_train")["step"].transform("max")  # each size's final evaluation
    if sweep:
        metrics |= sweep_metrics(rows[(rows["split"] == "unseen") & (rows["step"] == last)], baseline, limem)
    samples = rows[(rows["step"] == 0) | (rows["step"] == last)].assign(
        phase=lambda f: np.where(f["step"] == 0, "before", "after"))
    if not sweep:
        rows, curve = rows.drop(columns="n_train"), curve.drop(columns="n_train")
        samples = samples.drop(columns="n_train")
    tables = {"curves": pd.concat(histories, ignore_index=True) if sweep else histories[0].drop(columns="n_train"),
              "samples": samples.reset_index(drop=True), "probe_rows": rows,
              ("reasoning_sweep" if sweep else "reasoning_curve"): curve}
    return metrics, tables


def _tagged(key: str, tag: str) -> str:
    """``a/b@x=1`` → ``a/b@x=1,tag``; ``a/b`` → ``a/b@tag``."""
    return f"{key},{tag}" if "@" in key else f"{key}@{tag}"


# --------------------------------------------------------------------------- data


def first_per_people(puzzles: list, n: int, people: list[int]) -> list:
    """The first ``n`` puzzles of each number of people (nested training sets across a sweep)."""
    return [p for k in people for p in [q for q in puzzles if q.n_people == k][:n]]


def make_puzzle_sets(pz: dict, seed: int):
    """Training and unseen puzzles for each number of people; an unseen puzzle never equals a training one."""
    train_set, unseen = [], []
    for n in pz["n_people"]:
        kw = {"depth": pz["depth"], "width": pz["width"]}
        train_set += generate_puzzles(pz["n_train"], n, seed=seed * 1000 + n, id_prefix="train", **kw)
        seen = {render_puzzle(p) for p in train_set}
        more = generate_puzzles(2 * pz["n_unseen"], n, seed=seed * 1000 + 500 + n, id_prefix="unseen", **kw)
        fresh = [p for p in more if render_puzzle(p) not in seen][:pz["n_unseen"]]
        if len(fresh) < pz["n_unseen"]:
            raise MnemoscopeError(f"puzzles: only {len(fresh)} unseen {n}-person puzzles differ from the training "
                                  "ones; lower puzzles.n_unseen or raise puzzles.depth")
        unseen += fresh
    return train_set, unseen


def training_text(puzzle, instruction: bool) -> str:
    """``puzzle_prompt(puzzle) + " " + render_solution(puzzle)``."""
    return puzzle_prompt(puzzle, instruction=instruction) + " " + render_solution(puzzle)


class AnswerBatches:
    """Batch ``step``: ``batch_size`` training puzzles (a seeded reshuffle each epoch), right-padded to
    the longest text; labels are the answer tokens and the closing EOS (−100 elsewhere)."""

    def __init__(self, tokenizer, puzzles, instruction: bool, batch_size: int, seed: int):
        eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        self.rows, self.labels = [], []
        for p in puzzles:
            prompt = text_ids(tokenizer, puzzle_prompt(p, instruction=instruction))
            full = text_ids(tokenizer, training_text(p, instruction)) + [eos]
            if full[:len(prompt)] != prompt:  # BPE merged across the boundary: split at the prompt's length anyway
                prompt = full[:len(prompt)]
            self.rows.append(full)
            self.labels.append([-100] * len(prompt) + full[len(prompt):])
        self.seq_len = max(len(r) for r in self.rows)
        self.pad, self.batch_size, self.seed = pad, batch_size, seed
        self.steps_per_epoch = math.ceil(len(puzzles) / batch_size)

    def batch(self, step: int) -> dict[str, np.ndarray]:
        epoch, k = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng(self.seed + epoch).permutation(len(self.rows))
        idx = [int(order[(k * self.batch_size + j) % len(order)]) for j in range(self.batch_size)]
        ids = np.full((self.batch_size, self.seq_len), self.pad, dtype=np.int64)
        labels = np.full((self.batch_size, self.seq_len), -100, dtype=np.int64)
        for r, i in enumerate(idx):
            ids[r, :len(self.rows[i])], labels[r, :len(self.labels[i])] = self.rows[i], self.labels[i]
        return {"input_ids": ids, "labels": labels}


def answer_loss(model, batch):
    """Mean NLL of the labelled (answer) tokens; pads sit after the text and are never attended to by it."""
    import torch

    device = next(model.parameters()).device
    ids = torch.as_tensor(batch["input_ids"], device=device)
    return model(input_ids=ids, labels=torch.as_tensor(batch["labels"], device=device)).loss


# --------------------------------------------------------------------------- measurement


class PuzzleProbe:
    """``train``'s ProbeHook: LiMem on the training puzzles (originals + perturbations, one generate
    call) and accuracy on the unseen puzzles, per puzzle, at the wanted steps."""

    FILE = "puzzle_rows.parquet"

    def __init__(self, tokenizer, train_set, unseen, steps, *, perturb: str, instruction: bool,
                 max_new_tokens: int, seed: int):
        self.tokenizer, self.train_set, self.unseen = tokenizer, train_set, unseen
        self.steps = {int(s) for s in steps}
        self.kw = {"instruction": instruction, "max_new_tokens": max_new_tokens}
        self.perturb, self.seed = perturb, seed
        self.rows: list[dict] = []
        self.notes: dict[str, str] = {}

    def wants(self, step: int) -> bool:
        return step in self.steps

    def measure(self, step: int, model) -> None:
        was_training = model.training
        model.eval()
        try:
            engine = Engine(model, self.tokenizer)
            lim, _, notes = limem_eval(engine, self.train_set, perturb=self.perturb, seed=self.seed, **self.kw)
            uns, _, _ = evaluate_puzzles(engine, self.unseen, **self.kw)
        finally:
            model.train(was_training)
        self.notes = notes
        new = [{"step": step, "id": r.id, "split": "train", "n_people": int(r.n_people),
                "correct": bool(r.correct_original), "correct_perturbed": bool(r.correct_perturbed),
                "generated": r.generated_original} for r in lim.itertuples()]
        new += [{"step": step, "id": r.id, "split": "unseen", "n_people": int(r.n_people), "correct": bool(r.correct),
                 "correct_perturbed": None, "generated": r.generated} for r in uns.itertuples()]
        self.rows = [r for r in self.rows if r["step"] != step] + new

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows).sort_values(["step", "split", "id"], kind="mergesort").reset_index(drop=True)

    def save(self, directory: Path) -> None:
        if self.rows:
            write_parquet(Path(directory) / self.FILE, self.frame())

    def restore(self, directory: Path) -> None:
        path = Path(directory) / self.FILE
        if path.is_file():
            frame = pd.read_parquet(path)
            self.rows = frame.astype(object).where(frame.notna(), None).to_dict("records")


# --------------------------------------------------------------------------- analysis


def limem_row(train: pd.DataFrame) -> dict[str, float]:
    """Acc, accuracy on the perturbed versions, CR (nan when nothing is solved) and LiMem = Acc·(1 − CR)."""
    orig = train["correct"].to_numpy(dtype=bool)
    pert = train["correct_perturbed"].to_numpy(dtype=bool)
    acc = float(orig.mean())
    cr = float((orig & pert).sum() / orig.sum()) if orig.sum() else math.nan
    return {"acc_train": acc, "acc_perturbed": float(pert.mean()), "consistency_ratio": cr,
            "limem": acc * (1 - cr) if orig.sum() else 0.0}


def analyze(rows: pd.DataFrame, *, n_boot: int, seed: int) -> tuple[dict[str, float], pd.DataFrame]:
    """Per evaluated step: accuracies (train, perturbed, unseen), CR, LiMem (the curve); metrics at the
    first (before) and last (after) evaluation with bootstrap CIs over puzzles, and by number of people."""
    rng = np.random.default_rng(seed)
    curve = []
    for (step, epoch), part in rows.groupby(["step", "epoch"], sort=True):
        train, unseen = part[part["split"] == "train"], part[part["split"] == "unseen"]
        curve.append({"step": int(step), "epoch": int(epoch), **limem_row(train),
                      "acc_unseen": float(unseen["correct"].astype(bool).mean())})
    curve = pd.DataFrame(curve)
    metrics: dict[str, float] = {}
    for phase, step in (("before", rows["step"].min()), ("after", rows["step"].max())):
        part = rows[rows["step"] == step]
        train, unseen = part[part["split"] == "train"], part[part["split"] == "unseen"]
        values = {"train": train["correct"], "perturbed": train["correct_perturbed"], "unseen": unseen["correct"]}
        for split, v in values.items():
            v = v.to_numpy(dtype=np.float64)
            tag = f"@split={split},phase={phase}"
            metrics[f"reasoning/accuracy{tag}"] = float(v.mean())
            lo, hi = bootstrap_ci(v, np.mean, n_boot, rng)
            metrics[f"reasoning/accuracy/ci_lo{tag}"], metrics[f"reasoning/accuracy/ci_hi{tag}"] = lo, hi
            metrics[f"reasoning/n{tag}"] = float(v.size)
        lim = limem_row(train)
        for key in ("consistency_ratio", "limem"):
            if not (key == "consistency_ratio" and math.isnan(lim[key])):
                metrics[f"reasoning/limem/{key}@phase={phase}"] = lim[key]
        for (split, n), g in part.groupby(["split", "n_people"], sort=True):
            metrics[f"reasoning/accuracy@split={split},people={n},phase={phase}"] = float(g["correct"].astype(bool).mean())
    metrics["reasoning/generalization_gap@phase=after"] = (metrics["reasoning/accuracy@split=train,phase=after"]
                                                          - metrics["reasoning/accuracy@split=unseen,phase=after"])
    return metrics, curve
