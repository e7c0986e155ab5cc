"""Retention: recognition and recall of a study set after 1, 2, 3 exposures, and how they fade under
continued training on other text (PROTOCOLS §5, after Orhan 2023; continual metrics §8).

Read top to bottom: one corpus, split into pretraining text / study items / foils / other text →
tokenizer → model → (1) pretrain on the background text → (2) study: the study items are trained
0, 1, 2 or 3 times (one exposure per study epoch; an item with e exposures is in the *last* e
epochs, so every group's last exposure is in the final epoch) → (3) continued training on other
text, probing at log-spaced steps (1..10, 20..100 by 10, …): two-alternative forced-choice
recognition (seen item vs a novel foil from the same source; chance 50%) and cued recall (first
half of the tokens → greedy continuation of the rest, scored on the continuation only) → per
group: accuracy right after study, retention curves with fitted log-decay lines and bootstrap
confidence intervals over items; continual metrics with the study set and the other text as two
tasks → run directory → report.

Exposure group 0 (items never studied) is the control: its recognition accuracy is chance by
construction. ``--set scale=gpu`` switches to a larger model, more items and longer phases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import Typed
from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import text_ids
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.recall import recall
from mnemoscope.families.recognition import make_foils, two_afc
from mnemoscope.files import write_parquet
from mnemoscope.lab.factory import make_model
from mnemoscope.lab.tiny import count_parameters
from mnemoscope.metrics import continual
from mnemoscope.metrics.bootstrap import bootstrap_ci, percentile_interval, replicates, stratified_replicates
from mnemoscope.metrics.dynamics import log_spaced_steps
from mnemoscope.metrics.recognition import unguessed_recall
from mnemoscope.probes.corpora import load_corpus
from mnemoscope.recipes.common import (
    finish_lab_run,
    fit_log_line,
    phase_curves,
    resolve_scaled,
    train_config,
)
from mnemoscope.train.data import InjectedData, place_events
from mnemoscope.train.packing import pack_corpus

STUDY, OTHER = "study", "other"  # the two continual-learning tasks

from mnemoscope.train.phase import train_phase

DEFAULTS = {
    "seed": 0,
    "scale": "tiny",  # tiny | gpu (see SCALES)
    "model": {"size": "tiny", "hidden": 128, "layers": 4, "heads": 4, "intermediate": 352, "vocab_size": 2048,
              "init": Typed(str), "device": "auto"},  # init: a model directory / hub id to start from
    "corpus": {"source": "generated", "n_docs": 6000, "field": "text", "split": "train"},
    # exposures: one group of per_group items for each count (0 = never studied, the control);
    # other_items: documents of the continued-training text tested as the second task.
    "study": {"exposures": [0, 1, 2, 3], "per_group": 48, "max_tokens": 64, "foil_kinds": ["novel"],
              "other_items": 48, "n_other_docs": 1500},
    "train": {"batch_size": 8, "seq_len": 128, "lr": 1e-3, "warmup": 20, "schedule": "constant",
              "checkpoint_every": 100, "bf16": False},
    # pretrain_steps: background LM training; steps_per_exposure: study steps per study epoch;
    # retention_steps: continued training on the other text (probed at log-spaced steps)
    "phases": {"pretrain_steps": 400, "steps_per_exposure": 12, "study_lr": 2e-3, "study_warmup": 0,
               "retention_steps": 300},
    "analysis": {"n_boot": 200, "window": 3},
}

SCALES = {
    "tiny": {},
    "gpu": {
        "model": {"size": "small", "hidden": None, "layers": None, "heads": None, "intermediate": None,
                  "vocab_size": 16384},
        "corpus": {"n_docs": 60000},
        "study": {"per_group": 200, "other_items": 200, "n_other_docs": 20000, "max_tokens": 120},
        "train": {"batch_size": 32, "seq_len": 256, "lr": 6e-4, "warmup": 200, "checkpoint_every": 500, "bf16": True},
        "phases": {"pretrain_steps": 5000, "steps_per_exposure": 40, "study_lr": 3e-4, "study_warmup": 0,
                   "retention_steps": 5000},
    },
}


def run(out: str | Path = "runs/retention", overrides: dict | None = None, log=print) -> Path:
    cfg = resolve_scaled(DEFAULTS, SCALES, overrides)
    run = rundir.Run(out, cfg, "retention")
    out = run.out
    seed, t, ph, st = cfg["seed"], cfg["train"], cfg["phases"], cfg["study"]

    with run.phase("data"):
        c = cfg["corpus"]
        texts = load_corpus(c["source"], n_docs=c["n_docs"], seed=seed, field=c["field"], split=c["split"])
        model, tokenizer = make_model(cfg, texts, out)
        split = split_corpus(texts, tokenizer, st["exposures"], st["per_group"], st["other_items"],
                             st["n_other_docs"], st["max_tokens"], seed)
        items = make_items(split, st["foil_kinds"], seed)
    log(f"model: {count_parameters(model) / 1e6:.2f} M parameters; {len(split['study'])} study items in "
        f"exposure groups {st['exposures']}, {len(items)} recognition pairs")

    with run.phase("evaluate"):
        initial = measure_items(Engine(model, tokenizer), items).assign(phase="initial")
    with run.phase("pretrain"):
        bg = pack_corpus(split["pretrain"], tokenizer, n_rows=ph["pretrain_steps"] * t["batch_size"],
                         seq_len=t["seq_len"], batch_size=t["batch_size"], seed=seed)
        history = [dict(h, phase="pretrain") for h in train_phase(
            model, lambda s: bg[s * t["batch_size"]:(s + 1) * t["batch_size"]],
            train_config(t, ph["pretrain_steps"], seed), out / "phases" / "pretrain", log)]
    with run.phase("evaluate"):
        # what the model can guess of each continuation before study: recall is scored on the rest
        reference = continuation_hits(Engine(model, tokenizer), list(dict.fromkeys(items["text"])))
        before = measure_items(Engine(model, tokenizer), items, reference).assign(phase="before_study")
    with run.phase("study"):
        data = study_data(split, tokenizer, t, ph, seed)
        history += [dict(h, phase="study") for h in train_phase(
            model, data.batch, train_config(t, data.steps, seed, lr=ph["study_lr"], warmup=ph["study_warmup"]), out / "phases" / "study", log)]
    with run.phase("retention"):
        check_other_coverage(split["other"], tokenizer, ph["retention_steps"] * t["batch_size"] * t["seq_len"])
        other = pack_corpus(split["other"], tokenizer, n_rows=ph["retention_steps"] * t["batch_size"],
                            seq_len=t["seq_len"], batch_size=t["batch_size"], seed=seed + 3)
        probe = ItemProbe(tokenizer, items, [0, ph["retention_steps"]] + log_spaced_steps(ph["retention_steps"]),
                          reference)
        history += [dict(h, phase="retention") for h in train_phase(
            model, lambda s: other[s * t["batch_size"]:(s + 1) * t["batch_size"]],
            train_config(t, ph["retention_steps"], seed), out / "phases" / "retention", log, probe=probe)]
    with run.phase("analysis"):
        rows = probe.frame()
        samples = pd.concat([initial, before,
                             rows[rows["step"] == 0].drop(columns="step").assign(phase="after_study"),
                             rows[rows["step"] == rows["step"].max()].drop(columns="step").assign(phase="end")],
                            ignore_index=True)
        a = cfg["analysis"]
        metrics, retention = analyze(samples, rows, n_boot=a["n_boot"], window=a["window"], seed=seed)
    run.metrics.update(metrics)
    tables = {"curves": phase_curves(history), "samples": samples, "probe_rows": rows, "retention": retention}
    for name, table in tables.items():
        run.add_table(name, table)
    return finish_lab_run(run, model, history, extra={
        "phase_steps": {"pretrain": ph["pretrain_steps"], "study": data.steps, "retention": ph["retention_steps"]},
        "injection_log": data.injection_log()})


# --------------------------------------------------------------------------- data


def split_corpus(texts: list[str], tokenizer, exposures: Sequence[int], per_group: int, other_items: int,
                 n_other_docs: int, max_tokens: int, seed: int) -> dict:
    """Disjoint parts of one corpus, in a seeded order: study items (``per_group`` per exposure
    count, at most ``max_tokens`` tokens each), as many foils, the other text (its first
    ``other_items`` documents are tested) and the rest for pretraining."""
    if sorted(set(exposures)) != list(exposures) or exposures[0] < 0:
        raise MnemoscopeError(f"study.exposures must be distinct, ascending and ≥ 0 (got {list(exposures)})")
    rng = np.random.default_rng(seed)
    order = [texts[int(i)] for i in rng.permutation(len(texts))]
    lengths = [len(ids) for ids in text_ids(tokenizer, order)]
    short = [i for i, n in enumerate(lengths) if 4 <= n <= max_tokens]
    n_items = per_group * len(exposures)
    if len(short) < 2 * n_items:
        raise MnemoscopeError(
            f"the corpus has {len(short)} documents of 4–{max_tokens} tokens, fewer than the {2 * n_items} needed "
            "for study items and foils: raise corpus.n_docs or study.max_tokens, or lower study.per_group")
    chosen = set(short[:2 * n_items])
    rest = [order[i] for i in range(len(order)) if i not in chosen]
    if len(rest) < n_other_docs + 100 or other_items > n_other_docs:
        raise MnemoscopeError(
            f"corpus: {len(rest)} documents left after the study items, need study.n_other_docs "
            f"({n_other_docs}) + 100 for pretraining and other_items ≤ n_other_docs: raise corpus.n_docs")
    study = [{"item_id": f"s{k:04d}", "task": STUDY, "exposures": int(exposures[k // per_group]),
              "text": order[i]} for k, i in enumerate(short[:n_items])]
    return {"study": study, "foils": [order[i] for i in short[n_items:2 * n_items]],
            "other": rest[:n_other_docs], "other_items": rest[:other_items], "pretrain": rest[n_other_docs:]}


def make_items(split: dict, kinds: Sequence[str], seed: int) -> pd.DataFrame:
    """One recognition pair per (item, foil kind): study items and other-text items, each against a
    foil made by ``families.recognition.make_foils`` (kind ``novel`` draws from the held-out foils)."""
    other = [{"item_id": f"o{k:04d}", "task": OTHER, "exposures": -1, "text": x}
             for k, x in enumerate(split["other_items"])]
    base = pd.DataFrame(split["study"] + other)
    vocab = sorted({w for x in split["foils"] for w in x.split()})
    foils, notes = make_foils(list(base["text"]), kinds, seed, vocab=vocab, pool=split["foils"])
    if notes:
        raise MnemoscopeError(f"study.foil_kinds: {notes[0]}")
    pairs = base.iloc[foils["seen_index"].to_numpy()].reset_index(drop=True)
    return pairs.assign(foil=foils["foil"].to_numpy(), foil_kind=foils["kind"].to_numpy())


def study_data(split: dict, tokenizer, t: dict, ph: dict, seed: int) -> InjectedData:
    """Study batches: epoch k (1..E) carries every item with ≥ E − k + 1 exposures once, spread over
    ``steps_per_exposure`` steps, on top of pretraining-text rows (injections replace background)."""
    study = [s for s in split["study"] if s["exposures"] > 0]
    if not study:
        raise MnemoscopeError("study.exposures: no group with exposures > 0, nothing to study")
    e_max = max(s["exposures"] for s in study)
    spe = ph["steps_per_exposure"]
    events = []
    for k in range(e_max):  # epoch k holds items whose exposures ≥ e_max − k
        chosen = [s for s in study if s["exposures"] >= e_max - k]
        order = np.random.default_rng(seed + k).permutation(len(chosen))
        events += [(k * spe + j % spe, chosen[int(i)]["item_id"]) for j, i in enumerate(order)]
    doc_ids = {s["item_id"]: text_ids(tokenizer, s["text"]) for s in study}
    steps = e_max * spe
    plan = place_events(events, {k: len(v) for k, v in doc_ids.items()}, steps=steps, batch_size=t["batch_size"],
                        seq_len=t["seq_len"], seed=seed)
    bg = pack_corpus(split["pretrain"], tokenizer, n_rows=steps * t["batch_size"], seq_len=t["seq_len"],
                     batch_size=t["batch_size"], seed=seed + 2)
    return InjectedData(bg, t["batch_size"], plan, doc_ids, tokenizer.eos_token_id)


def check_other_coverage(texts: list[str], tokenizer, trained_tokens: int) -> None:
    """Every other-text document is trained at least once only if the phase covers the whole text."""
    total = sum(len(ids) + 1 for ids in text_ids(tokenizer, texts))
    if trained_tokens < total:
        raise MnemoscopeError(
            f"continued training covers {trained_tokens} tokens but the other text has {total}: some tested "
            "documents would never be trained; raise phases.retention_steps or lower study.n_other_docs")


# --------------------------------------------------------------------------- measurement


def continuation_hits(engine: Engine, texts: list[str]) -> dict[str, np.ndarray]:
    """Per text: for each token of its continuation (the tokens after recall's cue, the first
    ⌊n/2⌋), whether it is the model's most likely next token given the true text before it."""
    model = engine.model
    was_training = model.training
    model.eval()
    try:
        scores = engine.score(texts)
    finally:
        model.train(was_training)
    out = {}
    for text, s in zip(texts, scores):
        n = len(engine.text_ids(text))
        out[text] = np.asarray(s.argmax, dtype=bool)[len(s.argmax) - (n - n // 2):]
    return out


def measure_items(engine: Engine, items: pd.DataFrame, reference: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Per pair: 2AFC correctness (NLL(seen) < NLL(foil), tie = ½) and, once per distinct text, cued
    recall: greedy (token match rate, exact, ROUGE-L F1 of the continuation) and token by token
    (``recall_tf``: share of the continuation's tokens that are the most likely next token given
    the true text before them; ``recall_unguessed``: the same share over the tokens ``reference``
    — the model before study — got wrong, ``metrics.recognition.unguessed_recall``)."""
    model = engine.model
    was_training = model.training
    model.eval()
    try:
        afc, _, _ = two_afc(engine, list(items["text"]), list(items["foil"]), list(items["foil_kind"]))
        texts = list(dict.fromkeys(items["text"]))
        rec, _, _ = recall(engine, texts)
    finally:
        model.train(was_training)
    hits = continuation_hits(engine, texts)
    out = items[["item_id", "task", "exposures", "foil_kind"]].reset_index(drop=True).copy()
    out["nll_seen"], out["nll_foil"], out["correct"] = afc["nll_seen"], afc["nll_foil"], afc["correct"]
    by_text = {texts[int(r.text_index)]: r for r in rec.itertuples()} if len(rec) else {}
    for col in ("match_rate", "exact", "rouge_l_f1"):
        out[col] = [float(getattr(by_text[x], col)) if x in by_text else math.nan for x in items["text"]]
    out["recall_tf"] = [float(hits[x].mean()) if hits[x].size else math.nan for x in items["text"]]
    unguessed = {x: unguessed_recall(hits[x], reference[x]) if reference is not None else (math.nan, 0) for x in texts}
    out["recall_unguessed"] = [unguessed[x][0] for x in items["text"]]
    out["n_unguessed"] = [unguessed[x][1] for x in items["text"]]
    return out


class ItemProbe:
    """``train``'s ProbeHook: :func:`measure_items` at the wanted steps; rows saved with checkpoints."""

    FILE = "item_rows.parquet"

    def __init__(self, tokenizer, items: pd.DataFrame, steps: Sequence[int], reference: dict | None = None):
        self.tokenizer, self.items, self.steps = tokenizer, items, {int(s) for s in steps}
        self.reference = reference
        self.rows: list[pd.DataFrame] = []

    def wants(self, step: int) -> bool:
        return step in self.steps

    def measure(self, step: int, model) -> None:
        rows = measure_items(Engine(model, self.tokenizer), self.items, self.reference).assign(step=int(step))
        self.rows = [r for r in self.rows if int(r["step"].iloc[0]) != step] + [rows]

    def frame(self) -> pd.DataFrame:
        return pd.concat(self.rows, ignore_index=True).sort_values("step", kind="mergesort").reset_index(drop=True)

    def save(self, directory: Path) -> None:
        if self.rows:
            write_parquet(Path(directory) / self.FILE, self.frame())

    def restore(self, directory: Path) -> None:
        path = Path(directory) / self.FILE
        frame = pd.read_parquet(path) if path.is_file() else pd.DataFrame()
        self.rows = [g for _, g in frame.groupby("step", sort=True)] if len(frame) else []


# --------------------------------------------------------------------------- analysis


def _group_label(task: str, exposures: int) -> str:
    return OTHER if task == OTHER else str(int(exposures))


def analyze(samples: pd.DataFrame, rows: pd.DataFrame, *, n_boot: int, window: int,
            seed: int) -> tuple[dict[str, float], pd.DataFrame]:
    """Flat metrics and the aggregated retention curves (step × group × foil kind).

    Per phase × exposure group: 2AFC accuracy with a 95% bootstrap CI over items, recall means;
    per group: log fit accuracy(t) = b − a·log10(t) over the retention probes t ≥ 1 (a, b with
    bootstrap CIs over items); group comparison: accuracy gap between the most and the fewest
    (non-zero) exposures; continual metrics over the tasks study / other.
    """
    rng = np.random.default_rng(seed)
    metrics: dict[str, float] = {}
    samples = samples.assign(group=[_group_label(t, e) for t, e in zip(samples["task"], samples["exposures"])])
    rows = rows.assign(group=[_group_label(t, e) for t, e in zip(rows["task"], rows["exposures"])])
    kinds = list(dict.fromkeys(samples["foil_kind"]))
    for (phase, group), part in samples.groupby(["phase", "group"], sort=False):
        sel = f"exposures={group}" if group != OTHER else f"task={OTHER}"
        tag = f"@{sel},phase={phase}"
        acc = part["correct"].to_numpy(dtype=np.float64)
        lo, hi = bootstrap_ci(acc, np.mean, n_boot, rng)
        metrics[f"recognition/2afc/accuracy{tag}"] = float(acc.mean())
        metrics[f"recognition/2afc/accuracy/ci_lo{tag}"], metrics[f"recognition/2afc/accuracy/ci_hi{tag}"] = lo, hi
        metrics[f"recognition/2afc/n{tag}"] = float(len(part))
        for kind in kinds if len(kinds) > 1 else []:
            k = part[part["foil_kind"] == kind]
            metrics[f"recognition/2afc/accuracy@{sel},phase={phase},foil={kind}"] = float(k["correct"].mean())
        rec = part.drop_duplicates("item_id")
        metrics[f"recall/match_rate/mean{tag}"] = float(rec["match_rate"].mean())
        metrics[f"recall/rouge_l_f1/mean{tag}"] = float(rec["rouge_l_f1"].mean())
        metrics[f"recall/exact/rate{tag}"] = float(rec["exact"].mean())
        metrics[f"recall/teacher_forced/mean{tag}"] = float(rec["recall_tf"].mean())
        if rec["recall_unguessed"].notna().any():
            metrics[f"recall/unguessed/mean{tag}"] = float(rec["recall_unguessed"].mean())
    metrics.update(gains_vs_control(samples, n_boot, rng))
    studied = sorted({int(e) for e in samples["exposures"] if e > 0})
    if len(studied) >= 2:
        lo_e, hi_e = studied[0], studied[-1]
        a = samples[(samples["phase"] == "after_study") & (samples["exposures"] == hi_e)]["correct"].to_numpy(float)
        b = samples[(samples["phase"] == "after_study") & (samples["exposures"] == lo_e)]["correct"].to_numpy(float)
        gap = float(a.mean() - b.mean())
        boots = [rng.choice(a, a.size).mean() - rng.choice(b, b.size).mean() for _ in range(n_boot)]
        tag = f"@a={hi_e},b={lo_e},phase=after_study"
        metrics[f"retention/compare/accuracy_gap{tag}"] = gap
        metrics[f"retention/compare/accuracy_gap/ci_lo{tag}"] = float(np.quantile(boots, 0.025))
        metrics[f"retention/compare/accuracy_gap/ci_hi{tag}"] = float(np.quantile(boots, 0.975))
    retention = (rows.groupby(["step", "group", "foil_kind"], sort=True)
                 .agg(accuracy=("correct", "mean"), match_rate=("match_rate", "mean"),
                      recall_unguessed=("recall_unguessed", "mean"), n=("correct", "size"))
                 .reset_index())
    primary = rows[rows["foil_kind"] == kinds[0]]
    for group, part in primary.groupby("group", sort=False):
        sel = f"exposures={group}" if group != OTHER else f"task={OTHER}"
        metrics.update(_retention_fits(part, sel, n_boot, rng))
    metrics.update(continual_metrics(samples, primary, window))
    return metrics, retention


def gains_vs_control(samples: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> dict[str, float]:
    """Studied minus never-studied, after study and at the end, per exposure count E > 0: 2AFC
    accuracy (``recognition/2afc/gain``) and unguessed recall (``recall/unguessed/gain``), each with
    a 95% bootstrap interval resampling the items of both groups."""
    out: dict[str, float] = {}
    study = samples[samples["task"] == STUDY]
    for phase in ("after_study", "end"):
        part = study[study["phase"] == phase]
        for name, col, one_per_text in (("recognition/2afc", "correct", False), ("recall/unguessed", "recall_unguessed", True)):
            frame = part.drop_duplicates("item_id") if one_per_text else part
            control = frame.loc[frame["exposures"] == 0, col].dropna().to_numpy(np.float64)
            for e in sorted({int(x) for x in frame["exposures"] if x > 0}):
                studied = frame.loc[frame["exposures"] == e, col].dropna().to_numpy(np.float64)
                if not control.size or not studied.size:
                    continue
                tag = f"@exposures={e},phase={phase}"
                out[f"{name}/gain{tag}"] = float(studied.mean() - control.mean())
                boots = stratified_replicates([studied, control], lambda s: s[0].mean() - s[1].mean(), n_boot, rng)
                out[f"{name}/gain/ci_lo{tag}"], out[f"{name}/gain/ci_hi{tag}"] = percentile_interval(boots)
    return out


def _retention_fits(part: pd.DataFrame, sel: str, n_boot: int, rng: np.random.Generator) -> dict[str, float]:
    """Log fits of recognition accuracy and recall match rate against steps after study (t ≥ 1)."""
    out: dict[str, float] = {}
    later = part[part["step"] >= 1]
    if later["step"].nunique() < 2:
        return out
    for name, col in (("recognition", "correct"), ("recall", "match_rate"), ("recall_unguessed", "recall_unguessed")):
        wide = later.pivot_table(index="item_id", columns="step", values=col, aggfunc="mean").dropna(axis=0)
        if wide.empty:
            continue
        t, y = wide.columns.to_numpy(dtype=np.float64), wide.to_numpy(dtype=np.float64)
        fit = fit_log_line(t, y.mean(axis=0))
        boots = replicates(y, lambda rows: fit_log_line(t, rows.mean(axis=0)), n_boot, rng)
        for stat in ("a", "b"):
            values = np.array([bt[stat] for bt in boots])
            out[f"retention/{name}/decay_{stat}@{sel}"] = fit[stat]
            lo, hi = percentile_interval(values)
            out[f"retention/{name}/decay_{stat}/ci_lo@{sel}"] = lo
            out[f"retention/{name}/decay_{stat}/ci_hi@{sel}"] = hi
        out[f"retention/{name}/decay_r2@{sel}"] = fit["r2"]
        out[f"retention/{name}/final@{sel}"] = float(y[:, -1].mean())
    return out


def continual_metrics(samples: pd.DataFrame, rows: pd.DataFrame, window: int) -> dict[str, float]:
    """Tasks: 0 = study set (exposures > 0), 1 = other text. A[0, j] after study, A[1, j] after the
    continued training; b_j = the initial model (random init unless model.init); Min-ACC / WC-ACC over the probes."""
    def acc(frame: pd.DataFrame, task: str) -> float:
        sel = frame[(frame["task"] == task) & ((frame["task"] == OTHER) | (frame["exposures"] > 0))]
        return float(sel["correct"].mean())

    kind = rows["foil_kind"].iloc[0]
    samples = samples[samples["foil_kind"] == kind]
    after, end, init = (samples[samples["phase"] == p] for p in ("after_study", "end", "initial"))
    tasks = (STUDY, OTHER)
    A = np.array([[acc(after, j) for j in tasks], [acc(end, j) for j in tasks]])
    out = {f"continual/accuracy@after={i},task={j}": float(A[a, b])
           for a, i in enumerate(tasks) for b, j in enumerate(tasks)}
    out[f"continual/forgetting@task={STUDY}"] = float(continual.forgetting(A)[0])
    out["continual/bwt"] = continual.bwt(A)
    out[f"continual/fwt@task={OTHER}"] = float(continual.fwt(A, [acc(init, j) for j in tasks])[0])
    steps = sorted(rows["step"].unique())
    history = np.array([[acc(rows[rows["step"] == s], j) for j in tasks] for s in steps])
    # the study task is learned at the first probe (step 0); the other text only at the end
    min_acc = continual.min_acc(history, np.array([0, len(steps) - 1]))
    out["continual/min_acc"] = min_acc
    out["continual/wc_acc"] = continual.wc_acc(float(history[-1, 1]), min_acc, 2)
    out[f"continual/windowed_forgetting@task={STUDY},window={window}"] = continual.windowed_forgetting(
        history[:, 0], window)
    return out


# --------------------------------------------------------------------------- shared helpers
