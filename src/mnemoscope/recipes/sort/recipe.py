"""SORT: episodic order memory before and after training on a text (PROTOCOLS §6, after Pink et al.
2024, "Assessing Episodic Memory in LLMs with Sequence Order Recall Tasks").

Read top to bottom: one corpus → a "book" (consecutive documents, cut into excerpts of L_E words) and
disjoint background text → tokenizer → model → pretrain on the background → *format*: the model is
taught the question and its answer on a practice book cut from other documents (both conditions,
loss on the answer token only), so that order knowledge, not the unfamiliar format, decides its
answers on the real book → SORT before study:
counterbalanced pairs of L_S-word segments from one excerpt, "which came first?", answered by the
higher log-probability of " A" / " B", in two conditions: the excerpt in the context (short-term)
and only the question (long-term) → study: every excerpt is trained ``exposures`` times, each copy
replacing part of a background row → SORT after study, both conditions → accuracy (chance 50%)
overall and by segment distance, with bootstrap intervals over pairs and the paired after − before
change; the excerpts' NLL before and after shows whether the text itself was learned → run
directory → report.

``--set scale=gpu``: the paper's segment length 50 words, longer excerpts, a larger model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import Typed
from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import text_ids
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.sort import sort_in_context
from mnemoscope.lab.factory import make_model
from mnemoscope.lab.tiny import count_parameters
from mnemoscope.metrics.bootstrap import bootstrap_ci
from mnemoscope.probes.corpora import load_corpus
from mnemoscope.probes.sort import make_sort_pairs, sort_prompt
from mnemoscope.recipes.common import (
    finish_lab_run,
    phase_curves,
    resolve_scaled,
    train_config,
)
from mnemoscope.train.data import InjectedData, plan_injections

CONDITIONS = (("short_term", True), ("long_term", False))

from mnemoscope.train.packing import pack_corpus
from mnemoscope.train.phase import train_phase

DEFAULTS = {
    "seed": 0,
    "scale": "tiny",  # tiny | gpu
    "model": {"size": "tiny", "hidden": 128, "layers": 4, "heads": 4, "intermediate": 352, "vocab_size": 2048,
              "init": Typed(str), "device": "auto"},  # init: a model directory / hub id to start from
    "corpus": {"source": "generated", "n_docs": 3000, "field": "text", "split": "train"},
    # the book: n_excerpts excerpts of excerpt_words words; pairs of segment_words-word segments
    "book": {"n_excerpts": 8, "excerpt_words": 120, "segment_words": 20, "n_pairs": 64, "distance_bins": Typed(list)},
    "train": {"batch_size": 8, "seq_len": 256, "lr": 1e-3, "warmup": 20, "schedule": "constant",
              "checkpoint_every": 100, "bf16": False},
    # format_steps: answer-only training on SORT questions about a practice book of practice_excerpts
    # excerpts (other documents; 0 = off, the model never sees the question format before the test)
    "phases": {"pretrain_steps": 300, "format_steps": 300, "format_lr": 1e-3, "practice_excerpts": 24,
               "study_steps": 150, "exposures": 10},
    "analysis": {"n_boot": 200},
}

SCALES = {
    "tiny": {},
    "gpu": {
        "model": {"size": "small", "hidden": None, "layers": None, "heads": None, "intermediate": None,
                  "vocab_size": 16384},
        "corpus": {"n_docs": 60000},
        "book": {"n_excerpts": 40, "excerpt_words": 300, "segment_words": 50, "n_pairs": 400},
        "train": {"batch_size": 32, "seq_len": 1024, "lr": 6e-4, "warmup": 200, "checkpoint_every": 500, "bf16": True},
        "phases": {"pretrain_steps": 5000, "format_steps": 1000, "format_lr": 3e-4, "practice_excerpts": 120,
                   "study_steps": 1000, "exposures": 20},
    },
}


def run(out: str | Path = "runs/sort", overrides: dict | None = None, log=print) -> Path:
    cfg = resolve_scaled(DEFAULTS, SCALES, overrides)
    run = rundir.Run(out, cfg, "sort")
    out = run.out
    seed, t, ph, bk = cfg["seed"], cfg["train"], cfg["phases"], cfg["book"]

    with run.phase("data"):
        c = cfg["corpus"]
        texts = load_corpus(c["source"], n_docs=c["n_docs"], seed=seed, field=c["field"], split=c["split"])
        book, background = make_book(texts, bk["n_excerpts"] * bk["excerpt_words"])
        excerpts = excerpt_texts(book, bk["excerpt_words"])
        records = make_sort_pairs(book, bk["segment_words"], bk["excerpt_words"], n_pairs=bk["n_pairs"],
                                  distance_bins=bk["distance_bins"], seed=seed)
        practice: list[dict] = []
        if ph["format_steps"] > 0:  # the practice book: the next documents, never part of any training row
            practice_book, background = make_book(background, ph["practice_excerpts"] * bk["excerpt_words"])
            practice = make_sort_pairs(practice_book, bk["segment_words"], bk["excerpt_words"],
                                       n_pairs=max(1, ph["format_steps"] * (t["batch_size"] // 2) // 4),
                                       distance_bins=bk["distance_bins"], seed=seed + 7)
        model, tokenizer = make_model(cfg, background + excerpts, out)
    log(f"model: {count_parameters(model) / 1e6:.2f} M parameters; a book of {len(excerpts)} excerpts × "
        f"{bk['excerpt_words']} words, {len(records)} SORT records")

    with run.phase("pretrain"):
        bg = pack_corpus(background, tokenizer, n_rows=ph["pretrain_steps"] * t["batch_size"], seq_len=t["seq_len"],
                         batch_size=t["batch_size"], seed=seed)
        history = [dict(h, phase="pretrain") for h in train_phase(
            model, lambda s: bg[s * t["batch_size"]:(s + 1) * t["batch_size"]],
            train_config(t, ph["pretrain_steps"], seed), out / "phases" / "pretrain", log)]
    if practice:
        with run.phase("format"):
            n_bg = t["batch_size"] - t["batch_size"] // 2
            rows = pack_corpus(background, tokenizer, n_rows=ph["format_steps"] * n_bg, seq_len=t["seq_len"],
                               batch_size=n_bg, seed=seed + 2)
            fmt = FormatBatches(tokenizer, practice, rows, t["batch_size"], seed)
            if fmt.seq_len > model.config.max_position_embeddings:
                raise MnemoscopeError(f"a practice SORT question is {fmt.seq_len} tokens, longer than the model's "
                                      f"context ({model.config.max_position_embeddings}): lower book.excerpt_words")
            history += [dict(h, phase="format") for h in train_phase(
                model, fmt.batch, train_config({**t, "seq_len": fmt.seq_len, "lr": ph["format_lr"]},
                                               ph["format_steps"], seed), out / "phases" / "format", log,
                loss_fn=answer_loss)]
    with run.phase("evaluate"):
        before, before_nll = evaluate(Engine(model, tokenizer), records, excerpts)
    with run.phase("study"):
        data = study_data(excerpts, background, tokenizer, t, ph, seed)
        history += [dict(h, phase="study") for h in train_phase(
            model, data.batch, train_config(t, ph["study_steps"], seed), out / "phases" / "study", log)]
    with run.phase("evaluate"):
        after, after_nll = evaluate(Engine(model, tokenizer), records, excerpts)
    with run.phase("analysis"):
        samples = pd.concat([before.assign(phase="before"), after.assign(phase="after")], ignore_index=True)
        nll = pd.DataFrame({"excerpt_id": range(len(excerpts)), "nll_before": before_nll, "nll_after": after_nll})
        metrics = analyze(samples, nll, n_boot=cfg["analysis"]["n_boot"], seed=seed)
    run.metrics.update(metrics)
    for name, table in {"curves": phase_curves(history), "samples": samples, "excerpts": nll}.items():
        run.add_table(name, table)
    return finish_lab_run(run, model, history, extra={
        "injection_log": data.injection_log(),
        "phase_steps": {"pretrain": ph["pretrain_steps"], "format": ph["format_steps"] if practice else 0,
                        "study": ph["study_steps"]}})


# --------------------------------------------------------------------------- data


def make_book(texts: list[str], n_words: int) -> tuple[str, list[str]]:
    """The first documents, joined, cut to ``n_words`` words (the book), and the remaining documents."""
    words: list[str] = []
    k = 0
    while len(words) < n_words and k < len(texts):
        words += texts[k].split()
        k += 1
    if len(words) < n_words or len(texts) - k < 10:
        raise MnemoscopeError(f"the corpus is too small for a book of {n_words} words plus background text: "
                              "raise corpus.n_docs or lower book.n_excerpts / book.excerpt_words")
    return " ".join(words[:n_words]), texts[k:]


def excerpt_texts(book: str, excerpt_words: int) -> list[str]:
    """The book's consecutive excerpts of ``excerpt_words`` words (as ``make_sort_pairs`` cuts them)."""
    words = book.split()
    return [" ".join(words[i:i + excerpt_words]) for i in range(0, len(words) - excerpt_words + 1, excerpt_words)]


def study_data(excerpts: list[str], background: list[str], tokenizer, t: dict, ph: dict, seed: int) -> InjectedData:
    """Background rows with every excerpt injected ``exposures`` times at random (step, row) slots."""
    doc_ids = {f"e{i:03d}": text_ids(tokenizer, x) for i, x in enumerate(excerpts)}
    plan = plan_injections({k: len(v) for k, v in doc_ids.items()}, {k: ph["exposures"] for k in doc_ids},
                           steps=ph["study_steps"], batch_size=t["batch_size"], seq_len=t["seq_len"], seed=seed)
    bg = pack_corpus(background, tokenizer, n_rows=ph["study_steps"] * t["batch_size"], seq_len=t["seq_len"],
                     batch_size=t["batch_size"], seed=seed + 1)
    return InjectedData(bg, t["batch_size"], plan, doc_ids, tokenizer.eos_token_id)


class FormatBatches:
    """Batch ``step``: ⌊batch_size/2⌋ practice questions (a seeded reshuffle each epoch; every record
    in both conditions), each the SORT prompt followed by the right choice and EOS, labelled on the
    answer's tokens and the EOS only (−100 elsewhere), and the rest background rows labelled on every
    token; right-padded. Without the background rows the model unlearns the language: taught only to
    answer, it predicts " A" or " B" everywhere (excerpt NLL 1.4 → 13 nats at the default size)."""

    def __init__(self, tokenizer, records: list[dict], background: np.ndarray, batch_size: int, seed: int):
        eos, self.pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        self.rows, self.labels = [], []
        for r in records:
            for with_excerpt in (True, False):
                context, _ = sort_prompt(r, with_excerpt)
                prompt = text_ids(tokenizer, context)
                answer = text_ids(tokenizer, r["answer"])
                self.rows.append(prompt + answer + [eos])
                self.labels.append([-100] * len(prompt) + answer + [eos])
        self.background = np.asarray(background)
        self.seq_len = max(max(len(r) for r in self.rows), self.background.shape[1])
        self.batch_size, self.seed = batch_size, seed
        self.n_questions = batch_size // 2
        self.steps_per_epoch = -(-len(self.rows) // self.n_questions)

    def batch(self, step: int) -> dict[str, np.ndarray]:
        epoch, k = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng(self.seed + epoch).permutation(len(self.rows))
        q = self.n_questions
        idx = [int(order[(k * q + j) % len(order)]) for j in range(q)]
        n_bg = self.batch_size - q
        bg = self.background[(step * n_bg) % len(self.background):][:n_bg]
        ids = np.full((self.batch_size, self.seq_len), self.pad, dtype=np.int64)
        labels = np.full((self.batch_size, self.seq_len), -100, dtype=np.int64)
        for row, i in enumerate(idx):
            ids[row, :len(self.rows[i])], labels[row, :len(self.labels[i])] = self.rows[i], self.labels[i]
        for row, r in enumerate(bg, start=q):
            ids[row, :len(r)] = labels[row, :len(r)] = r
        return {"input_ids": ids, "labels": labels}


def answer_loss(model, batch):
    """Mean NLL of the labelled (answer) tokens; pads sit after the text and are never attended to by it."""
    import torch

    device = next(model.parameters()).device
    ids = torch.as_tensor(batch["input_ids"], device=device)
    return model(input_ids=ids, labels=torch.as_tensor(batch["labels"], device=device)).loss


# --------------------------------------------------------------------------- measurement


def evaluate(engine: Engine, records: list[dict], excerpts: list[str]) -> tuple[pd.DataFrame, list[float]]:
    """SORT records in both conditions (``families.sort.sort_in_context``) and each excerpt's NLL."""
    model = engine.model
    was_training = model.training
    model.eval()
    try:
        frames = [sort_in_context(engine, records, with_excerpt=w).samples for _, w in CONDITIONS]
        nll = [s.nll for s in engine.score(excerpts)]
    finally:
        model.train(was_training)
    return pd.concat(frames, ignore_index=True), nll


# --------------------------------------------------------------------------- analysis


def _pair_accuracy_boot(part: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    """Bootstrap CI of record accuracy, resampling pairs (each pair's two counterbalanced records together)."""
    per_pair = part.groupby("pair_id")["correct"].agg(["sum", "size"])
    s, n = per_pair["sum"].to_numpy(dtype=np.float64), per_pair["size"].to_numpy(dtype=np.float64)
    idx = np.arange(len(s))
    return bootstrap_ci(idx, lambda i: s[i.astype(int)].sum() / n[i.astype(int)].sum(), n_boot, rng)


def analyze(samples: pd.DataFrame, nll: pd.DataFrame, *, n_boot: int, seed: int) -> dict[str, float]:
    """Per condition × phase: accuracy (+ bootstrap CI over pairs), A-choice rate, pair accuracy, accuracy
    by distance bin; per condition: the paired change after − before (+ CI); excerpt NLL before/after."""
    rng = np.random.default_rng(seed)
    metrics: dict[str, float] = {}
    for (condition, phase), part in samples.groupby(["condition", "phase"], sort=True):
        tag = f"phase={phase}"
        correct = part["correct"].to_numpy(dtype=bool)
        metrics[f"sort/{condition}/accuracy@{tag}"] = float(correct.mean())
        lo, hi = _pair_accuracy_boot(part, n_boot, rng)
        metrics[f"sort/{condition}/accuracy/ci_lo@{tag}"], metrics[f"sort/{condition}/accuracy/ci_hi@{tag}"] = lo, hi
        metrics[f"sort/{condition}/n@{tag}"] = float(len(part))
        metrics[f"sort/{condition}/chose_a_rate@{tag}"] = float(part["chose_a"].mean())
        metrics[f"sort/{condition}/pair_accuracy@{tag}"] = float(part.groupby("pair_id")["correct"].all().mean())
        for label, b in part.groupby("bin_label", sort=False):
            metrics[f"sort/{condition}/accuracy@bin={label},{tag}"] = float(b["correct"].mean())
    for condition in samples["condition"].unique():
        wide = samples[samples["condition"] == condition].pivot_table(
            index=["pair_id", "a_first"], columns="phase", values="correct", aggfunc="first").astype(float)
        if {"before", "after"} <= set(wide.columns):
            diff = (wide["after"] - wide["before"]).groupby(level=0).mean().to_numpy()
            metrics[f"sort/{condition}/accuracy_change"] = float(diff.mean())
            lo, hi = bootstrap_ci(diff, np.mean, n_boot, rng)
            metrics[f"sort/{condition}/accuracy_change/ci_lo"], metrics[f"sort/{condition}/accuracy_change/ci_hi"] = lo, hi
    metrics["sort/excerpt_nll@phase=before"] = float(nll["nll_before"].mean())
    metrics["sort/excerpt_nll@phase=after"] = float(nll["nll_after"].mean())
    return metrics
