"""Contamination: did a model see a benchmark? The user's command and the lab's proof.

``run_user`` is ``mnemoscope contamination``: a benchmark file, a model, optionally the training
corpus (or its saved index) and a reference set → the four signals of
``families.contamination`` in a run directory with a report.

``run`` is the lab recipe (``mnemoscope run contamination``). Read top to bottom: background
corpus → tokenizer → a multiple-choice benchmark of the lab's own (random words, so nothing about
it is predictable) → at each dose d, some items planted d times as single documents under a
``<dataset> <split>`` header, and groups of items planted d times as one document in canonical
order → train → the command on every item (overlap with the training corpus, membership against
a held-out reference set drawn like the benchmark, guided completion) and the order test on each
dose's groups → each signal's detection rate by dose against the never-planted items (dose 0), and
the order test's power by dose (share of groups with p ≤ 0.05; dose 0 and the single items of the
top dose are its controls: never seen, and seen but not in order).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import merge_sections, resolve
from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import text_ids
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import contamination as family
from mnemoscope.families.base import Context
from mnemoscope.lab.factory import lab_model, lab_tokenizer
from mnemoscope.metrics.roc import roc_auc
from mnemoscope.probes.benchmark import BenchmarkItem
from mnemoscope.probes.canaries import WORDS
from mnemoscope.probes.corpus import background_documents
from mnemoscope.recipes.common import finish_lab_run, finish_run, train_config
from mnemoscope.summary import fmt
from mnemoscope.train.data import InjectedData, plan_injections
from mnemoscope.train.packing import pack_background
from mnemoscope.train.phase import train_phase

ALPHA = 0.05  # the order test's level for its power

# --------------------------------------------------------------------------- the user's command


def user_defaults() -> dict:
    from mnemoscope.recipes.audit.recipe import COMMON

    return merge_sections(COMMON, family.DEFAULTS)


def run_user(out: str | Path, overrides: dict, log=print, warn=None, loaded: tuple | None = None) -> Path:
    """read (no model) → load the model → plan (every prompt checked) → run directory → measure.
    ``loaded``: an in-memory ``(model, tokenizer)`` instead of loading ``model.name`` (the Python API)."""
    from mnemoscope.recipes.audit.recipe import in_memory_engine, open_engine

    cfg = resolve(user_defaults(), overrides)
    if not cfg["model"]["name"]:
        raise MnemoscopeError("contamination needs --model PATH_OR_HUB_ID")
    if not cfg["contamination"]["benchmark"]:
        raise MnemoscopeError("contamination needs --benchmark FILE (.jsonl, .parquet or an lm-eval samples export)")
    ctx = Context(seed=cfg["seed"], n_boot=cfg["audit"]["n_boot"], log=log, **({"warn": warn} if warn else {}))
    inputs = family.read(cfg, ctx)
    engine = open_engine(cfg, cfg["model"]["name"]) if loaded is None else in_memory_engine(cfg, *loaded)
    try:
        for need in family.NEEDS:
            engine.require(need, family.TITLE)
        plan = family.plan(inputs, engine, ctx)
        run = rundir.Run(out, cfg, "contamination-check")
        with run.phase("contamination"), engine.working_on(family.TITLE):
            result = family.measure(plan, engine, ctx)
        for key, reason in ctx.notes.items():
            result.note(key, reason)
        run.add(result, "family_samples/contamination")
        for key, reason in run.notes.items():
            log(f"note: {key}: {reason}")
        return finish_run(run, device=str(getattr(engine, "device", cfg["model"]["device"])),
                          extra={"model": cfg["model"]["name"], "bos": engine.bos, "backend": engine.name})
    finally:
        engine.close()


# --------------------------------------------------------------------------- the lab

DEFAULTS = {
    "seed": 0,
    "model": {"size": "tiny", "vocab_size": 8192, "device": "auto", "layers": 4},
    "corpus": {"n_docs": 3000},
    "benchmark": {"doses": [0, 1, 4, 16, 64], "singles": 8, "groups": 4, "group_size": 5, "n_reference": 32,
                  "question_words": 4, "choices": 3, "dataset": "labbench", "split": "test"},
    "train": {"steps": 500, "batch_size": 8, "seq_len": 128, "lr": 3e-3, "warmup": 20, "checkpoint_every": 200},
    "contamination": {"span_n": 8, "prefix_fraction": 0.5, "max_new_tokens": 16, "bleu_threshold": 0.75,
                      "order_permutations": 39, "order_resamples": 9999},
    "audit": {"n_boot": 1000},
}
GUIDED, GENERAL = "{dataset} {split}\n{first}", "{first}"


def make_items(n: int, b: dict, rng: random.Random, prefix: str) -> list[BenchmarkItem]:
    """``n`` multiple-choice items of random words: a question, ``choices`` one-word options, an answer."""
    items = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(b["question_words"])]
        question = f"Which {words[0]} " + " ".join(words[1:]) + "?"
        choices = tuple(rng.sample(WORDS, b["choices"]))
        items.append(BenchmarkItem(f"{prefix}{i}", question, choices, rng.choice(choices), b["split"], b["dataset"]))
    return items


def lab_benchmark(b: dict, seed: int) -> tuple[pd.DataFrame, list[BenchmarkItem], list[BenchmarkItem]]:
    """The benchmark (one row per item: id, dose, mode single|ordered, group) in canonical order, and
    held-out reference items drawn the same way."""
    rng = random.Random(seed + 101)
    rows, items = [], []
    for dose in sorted(set(b["doses"])):
        for it in make_items(b["singles"], b, rng, f"d{dose}-s"):
            rows.append({"id": it.id, "dose": dose, "mode": "single", "group": ""})
            items.append(it)
        for g in range(b["groups"]):
            for it in make_items(b["group_size"], b, rng, f"d{dose}-g{g}-"):
                rows.append({"id": it.id, "dose": dose, "mode": "ordered", "group": f"d{dose}-g{g}"})
                items.append(it)
    reference = make_items(b["n_reference"], b, rng, "ref")
    texts = {it.text for it in items}
    if len(texts) < len(items) or texts & {r.text for r in reference}:
        raise MnemoscopeError("benchmark: two generated items coincide; raise benchmark.question_words")
    return pd.DataFrame(rows), items, reference


def planted_documents(table: pd.DataFrame, items: list[BenchmarkItem], tokenizer, header: str) -> tuple[dict, dict]:
    """Token ids and dose of each planted document: a single item under the header, or a group's
    items under one header in canonical order (each item's text + newline, tokenized apart, as the
    order test concatenates them)."""
    by_id = {it.id: it for it in items}
    head = text_ids(tokenizer, header)
    docs, doses = {}, {}
    for _, row in table[table["dose"] > 0].iterrows():
        if row["mode"] == "single":
            docs[row["id"]] = head + text_ids(tokenizer, by_id[row["id"]].text)
            doses[row["id"]] = int(row["dose"])
    for group, part in table[(table["dose"] > 0) & (table["mode"] == "ordered")].groupby("group", sort=False):
        docs[group] = head + [t for i in part["id"] for t in text_ids(tokenizer, by_id[i].text + "\n")]
        doses[group] = int(part["dose"].iloc[0])
    return docs, doses


def run(out: str | Path = "runs/contamination", overrides: dict | None = None, log=print) -> Path:
    cfg = resolve(DEFAULTS, overrides)
    b, t = cfg["benchmark"], cfg["train"]
    if 0 not in b["doses"]:
        raise MnemoscopeError("benchmark.doses must include 0: the never-planted items are the baseline")
    run = rundir.Run(out, cfg, "contamination")
    seed = cfg["seed"]
    with run.phase("data"):
        docs = background_documents(cfg["corpus"]["n_docs"], seed=seed)
        table, items, reference = lab_benchmark(b, seed)
        # the tokenizer knows the benchmark's words (a tokenizer is not a model: it learns no item)
        tokenizer = lab_tokenizer(run.out, docs + [it.text for it in items + reference], cfg)
        header = GUIDED.removesuffix("{first}").format(dataset=b["dataset"], split=b["split"])
        planted, doses = planted_documents(table, items, tokenizer, header)
        plan = plan_injections({k: len(v) for k, v in planted.items()}, doses, steps=t["steps"],
                               batch_size=t["batch_size"], seq_len=t["seq_len"], seed=seed)
        background = pack_background(text_ids(tokenizer, docs), n_rows=t["steps"] * t["batch_size"],
                                     seq_len=t["seq_len"], eos_id=tokenizer.eos_token_id, seed=seed)
        data = InjectedData(background, t["batch_size"], plan, planted, tokenizer.eos_token_id)
        corpus = docs + [tokenizer.decode(v) for v in planted.values()]
    model = lab_model(cfg["model"], tokenizer, seed=seed, device=cfg["model"]["device"])
    with run.phase("train"):
        history = train_phase(model, data.batch, train_config({k: v for k, v in t.items() if k != "steps"},
                                                              t["steps"], seed), run.out / "train", log)
    engine = Engine(model.eval(), tokenizer)
    ctx = Context(seed=seed, n_boot=cfg["audit"]["n_boot"], log=log)
    c = cfg["contamination"]
    settings = {**c, "guided_template": GUIDED, "general_template": GENERAL}
    with run.phase("contamination"):
        log("measuring: overlap, membership, guided completion")
        result = family.contamination(engine, items, corpus=corpus, reference=[r.text for r in reference],
                                      settings={**settings, "signals": ["overlap", "membership", "guided"]}, ctx=ctx)
        samples = table.merge(result.samples, on="id")
        run.metrics.update(result.metrics)
        for key, why in result.notes.items():
            run.note(key, why)
        run.metrics.update(detection_by_dose(samples, b["doses"]))
        log("measuring: order test")
        order_rows = order_tests(engine, table, items, settings, ctx, b)
        run.metrics.update(order_by_dose(order_rows, b["doses"]))
    run.add_table("samples", samples)
    run.add_table("order", order_rows)
    return finish_lab_run(run, model, history, extra={"bos": engine.bos})


SCORES = {"overlap": "overlap/longest_span", "membership": "membership/score", "guided": "guided/rouge_l_diff"}


def detection_by_dose(samples: pd.DataFrame, doses: list[int]) -> dict[str, float | None]:
    """Per signal and dose: the share of items flagged (``contam/<signal>/detect@dose=d``; dose 0 is
    the false-positive rate) and the AUC of its score against the never-planted items."""
    out: dict[str, float | None] = {}
    never = samples[samples["dose"] == 0]
    for signal, score in SCORES.items():
        flag = f"flag/{signal}"
        if flag not in samples:
            continue
        for dose in sorted(set(doses)):
            part = samples[samples["dose"] == dose]
            out[f"contam/{signal}/detect@dose={dose}"] = float(part[flag].fillna(False).astype(float).mean())
            if dose > 0:
                both = pd.concat([part, never])
                y = (both["dose"] > 0).astype(int).to_numpy()
                out[f"contam/{signal}/auc@dose={dose}"] = roc_auc(y, both[score].to_numpy(dtype=float))
    for dose in sorted(set(doses)):
        part = samples[samples["dose"] == dose]
        out[f"contam/multi/rate@dose={dose}"] = float((part["flags"] >= 2).mean())
    return out


def order_tests(engine, table: pd.DataFrame, items: list[BenchmarkItem], settings: dict, ctx: Context,
                b: dict) -> pd.DataFrame:
    """The order test on each group alone (one shard: its power by dose), on each dose's groups
    together (one shard per group: the paper's sharded test), and on the single items of each dose."""
    by_id = {it.id: it for it in items}
    rows = []

    def test(ids: list[str], shards: int, **label) -> None:
        s = {**settings, "signals": ["order"], "order_shards": shards}
        r = family.contamination(engine, [by_id[i] for i in ids], settings=s, ctx=ctx)
        rows.append({**label, "n_items": len(ids), "shards": shards, "p_value": r.metrics.get("contam/order/p_value"),
                     "p_value_t": r.metrics.get("contam/order/p_value_t"),
                     "mean_diff": r.metrics.get("contam/order/mean_diff")})

    for dose in sorted(set(b["doses"])):
        ordered = table[(table["dose"] == dose) & (table["mode"] == "ordered")]
        for group, part in ordered.groupby("group", sort=False):
            test(list(part["id"]), 1, dose=dose, scope="group", mode="ordered", group=group)
        test(list(ordered["id"]), b["groups"], dose=dose, scope="dose", mode="ordered", group="")
        singles = list(table[(table["dose"] == dose) & (table["mode"] == "single")]["id"])
        test(singles, max(1, len(singles) // b["group_size"]), dose=dose, scope="dose", mode="single", group="")
    return pd.DataFrame(rows)


def order_by_dose(rows: pd.DataFrame, doses: list[int]) -> dict[str, float | None]:
    """``contam/order/power@dose=d`` (share of groups with p ≤ 0.05), the sharded test's p-values
    (ours, and the paper's t-test) per dose, and the single items' p-value (a seen-but-unordered control)."""
    out: dict[str, float | None] = {}
    for dose in sorted(set(doses)):
        groups = rows[(rows["dose"] == dose) & (rows["scope"] == "group")]
        out[f"contam/order/power@dose={dose}"] = float((groups["p_value"] <= ALPHA).mean())
        whole = rows[(rows["dose"] == dose) & (rows["scope"] == "dose") & (rows["mode"] == "ordered")].iloc[0]
        single = rows[(rows["dose"] == dose) & (rows["scope"] == "dose") & (rows["mode"] == "single")].iloc[0]
        out[f"contam/order/p_value@dose={dose}"] = whole["p_value"]
        t = whole["p_value_t"]
        out[f"contam/order/p_value_t@dose={dose}"] = None if t is None or not np.isfinite(t) else float(t)
        out[f"contam/order/p_value@dose={dose},mode=single"] = single["p_value"]
    return out


def summary(out: Path) -> str:
    """By dose: each signal's detection rate, the order test's power and p-value."""
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    if not any(k.startswith("contam/order/power@") for k in metrics):  # the user's command
        return "\n".join(family.headline(metrics))
    doses = sorted({int(k.split("@dose=")[1]) for k in metrics if k.startswith("contam/overlap/detect@dose=")})

    def g(key: str) -> str:
        return fmt(metrics.get(key), 2, whole="none")

    lines = [f"{'dose':>5} {'overlap':>8} {'membership':>11} {'guided':>7} {'≥2 signals':>11} {'order power':>12} "
             f"{'order p':>8}"]
    for d in doses:
        lines.append(f"{d:>5} {g(f'contam/overlap/detect@dose={d}'):>8} {g(f'contam/membership/detect@dose={d}'):>11} "
                     f"{g(f'contam/guided/detect@dose={d}'):>7} {g(f'contam/multi/rate@dose={d}'):>11} "
                     f"{g(f'contam/order/power@dose={d}'):>12} {metrics.get(f'contam/order/p_value@dose={d}', '-'):>8}")
    return "\n".join(lines)
