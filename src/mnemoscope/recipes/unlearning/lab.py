"""Unlearning: write a fictional world into a tiny model, then remove part of it and check.

Read top to bottom: world (forget / retain / holdout people; 30 forget and 30 holdout people by
default, and the CIs resample people) → tokenizer (trained on every person alike) → data stream →
train on everything → retrain from scratch on the same stream minus the forget documents (the gold standard) → for
each method, a small sweep (learning rate × steps; a shorter run is a prefix of a longer one,
so the steps axis is read off each run's evaluation points) with the stopping rule "first point
where KnowMem on F and the forget-vs-holdout membership AUC both reach the retrained model's
level"; the trade-off frontier of all points and each method's best point → six-way table
(MUSE) with PrivLeak's CI, TOFU forget quality → robustness: membership inference, extraction,
RWKU-style adversarial probes with locality on neighbours, relearning curves (relearning some
facts of F, measuring the others), a linear probe for residue in the hidden states →
scalability (nested forget sets) and sustainability (requests one after another) → report.

``run_user`` is the same evaluation for a user's own model and files
(``mnemoscope unlearn --model M --forget F --retain R --method NAME [--retrained RM]``).
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import Typed, resolve
from mnemoscope.engine import Engine, load_model
from mnemoscope.engine.encoding import text_ids
from mnemoscope.engine.loading import resolve_device
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.blind import blind_baseline
from mnemoscope.families.blind import headline as blind_headline
from mnemoscope.lab.tiny import (
    Preset,
    build_model,
    count_parameters,
    load_or_train_tokenizer,
)
from mnemoscope.metrics.unlearning import relearn_recovery
from mnemoscope.probes.adversarial import read_probes, world_probes
from mnemoscope.probes.corpus import background_documents
from mnemoscope.probes.fictional import (
    ATTRIBUTES,
    DOC_TEMPLATES,
    QA_TEMPLATES,
    SEMANTIC_TEMPLATES,
    WorldConfig,
    make_world,
)
from mnemoscope.probes.formats import load_multiple_choice
from mnemoscope.recipes import ulira
from mnemoscope.recipes.common import finish_run
from mnemoscope.train.loop import TrainConfig
from mnemoscope.train.phase import train_phase
from mnemoscope.unlearn import evaluation as ev
from mnemoscope.unlearn import stress
from mnemoscope.unlearn.methods import METHODS, get_method
from mnemoscope.unlearn.refusals import LAB_REFUSALS, read_refusals, with_refusals
from mnemoscope.unlearn.runner import (
    QA_TEMPLATE,
    Example,
    UnlearnConfig,
    check_overlap,
    fingerprint,
    qa_examples,
    text_examples,
    unlearn,
    unlearn_sequence,
)

ALL_METHODS = list(METHODS)

DEFAULTS = {
    "seed": 0,
    "scale": 1,  # multiplies the number of people and background documents
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
STOP_KEYS = ("knowmem_forget", "mia_auc")


# --------------------------------------------------------------------------- data stream

def training_order(doc_ids: list[str], epochs: int, seed: int) -> list[str]:
    """Every document once per epoch, each epoch in its own seeded shuffle."""
    rng = random.Random(seed)
    order: list[str] = []
    for _ in range(epochs):
        epoch = list(doc_ids)
        rng.shuffle(epoch)
        order += epoch
    return order


def pack_stream(order: list[str], tokens: dict[str, list[int]], seq_len: int, eos: int) -> tuple[np.ndarray, list[set[str]]]:
    """Concatenate documents (+EOS) in ``order`` and cut into rows of ``seq_len`` (the last row
    EOS-padded). Returns the rows and, per row, the ids of the documents with tokens in it."""
    stream: list[int] = []
    owner: list[str] = []
    for doc in order:
        ids = tokens[doc] + [eos]
        stream += ids
        owner += [doc] * len(ids)
    n_rows = -(-len(stream) // seq_len)
    pad = n_rows * seq_len - len(stream)
    rows = np.asarray(stream + [eos] * pad, dtype=np.int64).reshape(n_rows, seq_len)
    provenance = [set(owner[i * seq_len : (i + 1) * seq_len]) for i in range(n_rows)]
    return rows, provenance


def assert_never_seen(provenance: list[set[str]], forbidden: set[str]) -> None:
    """The retrain stream must hold no forget document: checked on every row."""
    leaked = sorted(set().union(*provenance) & forbidden)
    if leaked:
        raise RuntimeError(f"retrain data stream contains {len(leaked)} forget document(s), e.g. {leaked[0]}")


def qa_text(question: str, answer: str) -> str:
    return f"Question: {question}\nAnswer: {answer}"


def lab_documents(world, background: list[str]) -> tuple[dict[str, str], set[str]]:
    """Training documents (id → text) and the ids that belong to the forget set."""
    docs: dict[str, str] = {}
    forget: set[str] = set()
    for d in world.documents:
        if d["split"] in ("forget", "retain", "background"):
            docs[d["id"]] = d["text"]
            if d["split"] == "forget":
                forget.add(d["id"])
    for q in world.qa:
        if q["split"] in ("forget", "retain"):
            docs[q["id"]] = qa_text(q["question"], q["target"])
            if q["split"] == "forget":
                forget.add(q["id"])
    for i, text in enumerate(background):
        docs[f"bg{i:05d}"] = text
    return docs, forget


def tokenizer_texts(world, background: list[str]) -> list[str]:
    """What the lab's tokenizer is trained on: every person's documents and QA texts — forget,
    retain, holdout and never-seen alike — plus the background documents.

    The tokenizer must not know who was trained on. Trained on the training documents only, it
    merged the forget people's names and phrasings into whole tokens (1.19 tokens/word against
    1.55 for the holdout people), so even the retrained model, which never saw F, separated F
    from the holdout set (Min-40% AUC 0.69). Treating every person alike removes that trace (the
    same 1.19 tokens/word for both) and keeps the forget texts tokenized as before. Only the
    *models'* data differ between the original and the retrained model; the tokenizer is shared.
    """
    people = [d["text"] for d in world.documents if d.get("person_id") is not None]
    qa = [qa_text(q["question"], q["target"]) for q in world.qa]
    companies = [d["text"] for d in world.documents if d.get("person_id") is None]
    return people + qa + companies + list(background)


# --------------------------------------------------------------------------- helpers


def _qa_items(world, people: set[str], attributes=ATTRIBUTES) -> list[dict]:
    """QA in TOFU form with the bare value as the answer (the trained answer)."""
    return [{"id": q["id"], "question": q["question"], "answer": q["target"],
             "paraphrased_answer": q["paraphrased_answer"], "perturbed_answers": q["perturbed_answers"]}
            for q in world.qa if q["person_id"] in people and q["attribute"] in attributes]


def _examples(world, people: set[str]) -> list[Example]:
    """The people's documents and QA, each with one of the lab's refusal answers (IdkDPO's preferred answer)."""
    docs = [d for d in world.documents if d.get("person_id") in people]
    qa = [q for q in world.qa if q["person_id"] in people]
    return with_refusals(text_examples([d["text"] for d in docs], [d["id"] for d in docs]) + qa_examples(
        [{"id": q["id"], "question": q["question"], "answer": q["target"]} for q in qa]), LAB_REFUSALS)


def _eval_data(world, forget: set[str], retain_eval: set[str], holdout: set[str], ppl: list[str], cfg: dict) -> ev.EvalData:
    e = cfg["eval"]
    return ev.EvalData(
        forget_qa=_qa_items(world, forget), retain_qa=_qa_items(world, retain_eval),
        forget_texts=[d["text"] for d in world.documents if d.get("person_id") in forget],
        holdout_texts=[d["text"] for d in world.documents if d.get("person_id") in holdout],
        forget_groups=[d["person_id"] for d in world.documents if d.get("person_id") in forget],  # CIs resample people
        holdout_groups=[d["person_id"] for d in world.documents if d.get("person_id") in holdout],
        holdout_qa=_qa_items(world, holdout), ppl_texts=ppl,
        forget_tofu=_qa_items(world, forget), retain_tofu=_qa_items(world, retain_eval),
        paraphrase_probes=[p for p in world.probes if p["kind"] == "semantic" and p["person_id"] in forget],
        knowmem_tokens=e["knowmem_tokens"], verbmem_tokens=e["verbmem_tokens"], n_boot=e["n_boot"], seed=cfg["seed"],
        mc_forget=mc_items(world, forget, cfg["seed"]), mc_retain=mc_items(world, retain_eval, cfg["seed"]),
        **switches(e))


def mc_items(world, people: set[str], seed: int) -> list[dict]:
    """Multiple-choice items about ``people``: each question with its paraphrased answer among the
    perturbed ones (the same sentence template, as TOFU's truth ratio compares them), in a seeded order."""
    rng = random.Random(seed * 7919 + 1)
    items = []
    for q in world.qa:
        if q["person_id"] in people:
            choices = [q["paraphrased_answer"]] + list(q["perturbed_answers"])
            order = list(range(len(choices)))
            rng.shuffle(order)
            items.append({"id": q["id"], "question": q["question"], "choices": [choices[j] for j in order],
                          "answer": order.index(0)})
    return items


def switches(e: dict) -> dict:
    """The eval section's switches that reproduce the published code, as ``EvalData`` fields."""
    if e["min_k_rounding"] not in ("up", "down"):
        raise MnemoscopeError(f"eval.min_k_rounding must be 'up' or 'down', got {e['min_k_rounding']!r}")
    return {"min_k_rounding": e["min_k_rounding"], "knowmem_trailing_space": bool(e["knowmem_trailing_space"]),
            "tofu_eos": bool(e["tofu_eos"])}


def relearn_sets(world, forget: set[str], attributes: list[str], test_attributes: list[str]) -> tuple[list[Example], list[dict]]:
    """What the relearning attack teaches (every document sentence about ``attributes`` of the
    forget people, in all its wordings) and what it tests (their QA about ``test_attributes``,
    never taught): recovery there is knowledge that came back, not knowledge relearned."""
    people = [p for p in world.people if p["person_id"] in forget]
    texts = [t.format(name=p["name"], v=p[a]) for p in people for a in attributes for t in DOC_TEMPLATES[a]]
    return text_examples(texts), _qa_items(world, forget, tuple(test_attributes))


def residue_items(world, people: set[str], attribute: str) -> tuple[list[str], list[int]]:
    """Prompts that end where a person's ``attribute`` comes next (the trained question, a reworded
    cloze, the document cloze) and a binary label: the attribute's value is in the first half of
    its (sorted) pool. The probe reads the class from the hidden state at the last prompt token."""
    from mnemoscope.probes.adversarial import QA, REWORDED

    values = sorted({p[attribute] for p in world.people})
    if len(values) < 2:
        raise MnemoscopeError(f"robustness.residue_attribute {attribute!r} takes one value in this world; pick another")
    first_half = set(values[: len(values) // 2])
    prompts, labels = [], []
    for p in sorted(world.people, key=lambda p: p["person_id"]):
        if p["person_id"] not in people:
            continue
        name = p["name"]
        for prompt in (QA.format(q=QA_TEMPLATES[attribute][0].format(name=name)),
                       QA.format(q=REWORDED[attribute].format(name=name)),
                       DOC_TEMPLATES[attribute][0].split("{v}")[0].format(name=name).rstrip(),
                       SEMANTIC_TEMPLATES[attribute][0].split("{v}")[0].format(name=name).rstrip()):
            prompts.append(prompt)
            labels.append(int(p[attribute] in first_half))
    return prompts, labels


def _train_lab_model(name, model, tokenizer, rows, cfg, out: Path, log) -> list[dict]:
    """One pass over ``rows`` (the training phase in ``out/train/<name>``), the model and its
    tokenizer also kept as a loadable directory in ``out/models/<name>`` (e.g. for
    ``mnemoscope unlearn --model``)."""
    t = cfg["train"]
    bs = t["batch_size"]
    steps = -(-len(rows) // bs)
    tcfg = TrainConfig(steps=steps, batch_size=bs, seq_len=t["seq_len"], lr=t["lr"], warmup=t["warmup"],
                       checkpoint_every=max(1, steps // 4), seed=cfg["seed"])
    history = train_phase(model, lambda s: rows[s * bs : (s + 1) * bs], tcfg, out / "train" / name, log, name=name)
    if not (out / "models" / name / "config.json").exists():
        model.save_pretrained(out / "models" / name)
    if not (out / "models" / name / "tokenizer_config.json").exists():
        tokenizer.save_pretrained(out / "models" / name)
    return history


def _prefixed(prefix: str, values: dict) -> dict:
    return {f"unlearn/{prefix}/{k}": v for k, v in values.items()}


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


# --------------------------------------------------------------------------- the recipe


def run(out: str | Path = "runs/unlearning", overrides: dict | None = None, log=print) -> Path:
    cfg = resolve(DEFAULTS, overrides)
    u, sw, rb = cfg["unlearn"], cfg["sweep"], cfg["robustness"]
    unknown = sorted(set(u["methods"]) - set(ALL_METHODS))
    if unknown:
        get_method(unknown[0])  # raises with the known names
    if not set(u["stop_on"]) <= set(STOP_KEYS):
        raise MnemoscopeError(f"unlearn.stop_on: unknown key(s) {sorted(set(u['stop_on']) - set(STOP_KEYS))}; "
                              f"use any of {', '.join(STOP_KEYS)}")
    if any(lr <= 0 for lrs in [sw["lr"], *sw["method_lr"].values()] for lr in lrs):
        raise MnemoscopeError("sweep.lr and sweep.method_lr.<method>: learning rates must be > 0")
    if not sw["lr"] or not sw["steps"] or min(sw["steps"]) < 1:
        raise MnemoscopeError("sweep.lr and sweep.steps need at least one value each (steps ≥ 1)")
    taught = {a for attrs in rb["relearn_attributes"] for a in attrs}
    if taught & set(rb["test_attributes"]) or not (taught | set(rb["test_attributes"])) <= set(ATTRIBUTES):
        raise MnemoscopeError(f"robustness: relearn_attributes and test_attributes must be disjoint attributes of "
                              f"{', '.join(ATTRIBUTES)} (the test measures what was not relearned)")
    conf = stress.settings(cfg["stress"], cfg["model"]["device"], ("retain", "background"))
    ulira.check(cfg["ulira"], u["methods"])
    run = rundir.Run(out, cfg, "unlearning")
    out = run.out
    seed, scale = cfg["seed"], max(1, int(cfg["scale"]))

    with run.phase("data"):
        w = cfg["world"]
        world = make_world(WorldConfig(n_people=w["n_people"] * scale, seed=seed, n_cities=w["n_cities"],
                                       n_universities=w["n_universities"], n_companies=w["n_companies"],
                                       n_majors=w["n_majors"], forget_fraction=w["forget_fraction"],
                                       holdout_fraction=w["holdout_fraction"],
                                       never_seen_fraction=w["never_seen_fraction"]))
        corpus = background_documents(cfg["corpus"]["n_docs"] * scale + cfg["corpus"]["n_ppl_docs"], seed=seed)
        background, ppl_docs = corpus[: cfg["corpus"]["n_docs"] * scale], corpus[cfg["corpus"]["n_docs"] * scale :]
        docs, forget_docs = lab_documents(world, background)
        tokenizer = _tokenizer(out, tokenizer_texts(world, background), cfg)
        tokens = {k: text_ids(tokenizer, v) for k, v in docs.items()}
        t = cfg["train"]
        order = training_order(sorted(docs), t["epochs"], seed)
        rows_full, _ = pack_stream(order, tokens, t["seq_len"], tokenizer.eos_token_id)
        rows_retrain, prov = pack_stream([d for d in order if d not in forget_docs], tokens, t["seq_len"],
                                         tokenizer.eos_token_id)
        assert_never_seen(prov, forget_docs)
        splits = world.splits
        forget_people, holdout_people = set(splits["forget"]), set(splits["holdout"])
        retain_people = set(splits["retain"])
        retain_eval = set(sorted(retain_people)[: cfg["eval"]["n_retain_people"]])
        data = _eval_data(world, forget_people, retain_eval, holdout_people, ppl_docs, cfg)
        forget_ex = _examples(world, forget_people)
        retain_ex = _examples(world, retain_people)
        forget_ex, retain_ex, _ = check_overlap(forget_ex, retain_ex)
        probes = world_probes(world, forget_people, retain_people) if rb["probes"] else []
        relearn_plan = [(len(attrs), *relearn_sets(world, forget_people, attrs, rb["test_attributes"]))
                        for attrs in rb["relearn_attributes"]]
        attr = rb["residue_attribute"]
        residue_sets = ([residue_items(world, people, attr) for people in (retain_people, forget_people, holdout_people)]
                        if attr else None)
        attacks = stress.lab_inputs(world, retain_people, retain_eval, background, data.forget_qa, seed)

    m = cfg["model"]
    preset = Preset(hidden=m["hidden"], layers=m["layers"], heads=m["heads"], intermediate=m["intermediate"],
                    vocab=m["vocab_size"], context=max(256, t["seq_len"]))
    device = resolve_device(m["device"])
    original = build_model(preset, tokenizer, seed=seed).to(device)
    retrained = build_model(preset, tokenizer, seed=seed).to(device)
    log(f"world: {len(world.people)} people ({len(forget_people)} forget: {len(data.forget_texts)} texts; "
        f"{len(holdout_people)} holdout: {len(data.holdout_texts)} texts); model "
        f"{count_parameters(original) / 1e6:.2f} M parameters; {len(rows_full)} rows full, {len(rows_retrain)} retrain")
    with run.phase("train"):
        history = _train_lab_model("original", original, tokenizer, rows_full, cfg, out, log)
    with run.phase("retrain"):
        _train_lab_model("retrained", retrained, tokenizer, rows_retrain, cfg, out, log)
    base_state = {k: v.detach().clone() for k, v in original.state_dict().items()}

    metrics: dict[str, float] = {"model/parameters": count_parameters(original),
                                 "train/final_loss": float(np.mean([h["loss"] for h in history[-10:]])),
                                 "data/forget_texts": len(data.forget_texts), "data/holdout_texts": len(data.holdout_texts),
                                 "data/forget_people": len(forget_people), "data/holdout_people": len(holdout_people)}
    not_computed: dict[str, str] = {}
    blind = blind_baseline(data.forget_texts + data.holdout_texts,  # PrivLeak's sets told apart without a model?
                           [1] * len(data.forget_texts) + [0] * len(data.holdout_texts),
                           groups=data.forget_groups + data.holdout_groups, n_boot=cfg["eval"]["n_boot"], seed=seed)
    metrics.update(blind.metrics)
    not_computed.update(blind.notes)
    events: dict[str, str] = {}  # what happened to a method (stopping rule, divergence), by its steps_run key
    frames: list[pd.DataFrame] = []
    probe_frames: list[pd.DataFrame] = []
    curves: list[dict] = []
    relearn_rows: list[dict] = []
    stress_rows: list[dict] = []
    e = cfg["eval"]

    def evaluate_model(name: str, model, reference) -> dict:
        """Six ways + TOFU, robustness, adversarial probes, residue, and lm-eval tasks when asked."""
        engine = Engine(model, tokenizer)
        six, samples, notes = ev.six_way(engine, data, reference)
        rob, rnotes = ev.robustness(engine, data)
        values = {**six, **{f"robust/{k}": v for k, v in rob.items()}}
        notes.update({f"robust/{k}": r for k, r in rnotes.items()})
        if probes:
            adv, frame = ev.adversarial(engine, probes)
            values.update(adv)
            probe_frames.append(frame.assign(model=name))
        if residue_sets:
            inner = getattr(model, "hidden_model", model)
            res = ev.residue(Engine(inner, tokenizer), *residue_sets, seed=seed)
            values.update({f"residue/{k}": v for k, v in res.items()})
            if inner is not model:
                notes["residue/accuracy"] = (f"{name} combines models at decoding time: the probe reads its base "
                                             "model's hidden states, which the method leaves unchanged (the original's)")
        if e["lm_eval_tasks"]:
            from mnemoscope.unlearn.lm_eval_bridge import utility

            scores = utility(model, tokenizer, e["lm_eval_tasks"], limit=e["lm_eval_limit"],
                             include_path=e["lm_eval_include"], seed=seed)
            values.update({f"utility/{k}": v for k, v in scores.items()})
        with run.phase("quantize"):
            quant, qnotes = stress.quantized_eval(model, tokenizer, data, reference, conf.modes,
                                                  attacks.retain_texts[:conf.max_retain_texts], original_state=base_state)
        values.update(quant)
        notes.update(qnotes)
        metrics.update(_prefixed(name, values))
        not_computed.update({f"unlearn/{name}/{k}": r for k, r in notes.items()})
        frames.append(samples.assign(model=name))
        return values

    with run.phase("evaluate"):
        reference = ev.reference_from_retrained(Engine(retrained, tokenizer), data)
        evaluate_model("retrain", retrained, reference)
        evaluate_model("original", original, reference)
    levels = {"knowmem_forget": reference.knowmem_forget,
              "mia_auc": ev.auc_forget_vs_holdout(reference.mia_forget, reference.mia_holdout)}
    levels = {k: v for k, v in levels.items() if k in u["stop_on"]}
    metrics.update({f"unlearn/reference/{k}": v for k, v in levels.items()})
    metrics["unlearn/reference/knowmem_forget"] = reference.knowmem_forget

    def relearn(name: str, model) -> None:
        """Relearning curves: for each number of relearned facts, KnowMem on the facts not relearned."""
        for facts, learn, test_qa in relearn_plan:
            curve = ev.relearn_curve(model, tokenizer, learn, test_qa, data, out / "relearn" / name / f"facts{facts}",
                                     steps=max(rb["relearn_steps"]), eval_steps=rb["relearn_steps"],
                                     lr=rb["relearn_lr"], batch_size=u["batch_size"], max_length=t["seq_len"])
            relearn_rows.extend({"model": name, "facts": facts, **p} for p in curve)
            metrics[f"unlearn/{name}/relearn/knowmem_before"] = curve[0]["knowmem"]
            metrics[f"unlearn/{name}/relearn/knowmem_after@facts={facts}"] = curve[-1]["knowmem"]
            rec = relearn_recovery([p["step"] for p in curve], [p["knowmem"] for p in curve])
            metrics.update({f"unlearn/{name}/relearn/{k}@facts={facts}": v for k, v in rec.items()})
            for p in curve[1:]:
                metrics[f"unlearn/{name}/relearn/knowmem@facts={facts},step={p['step']}"] = p["knowmem"]
        with run.phase("stress_relearn"):  # benign and in-context relearning
            routes, rnotes, rows = stress.relearn_routes(model, tokenizer, data, conf, attacks.benign, attacks.near,
                                                         out / "stress" / name, batch_size=u["batch_size"],
                                                         max_length=t["seq_len"])
        metrics.update(_prefixed(name, routes))
        not_computed.update(_prefixed(name, rnotes))
        stress_rows.extend({"model": name, **r} for r in rows)

    with run.phase("relearn"):
        relearn("retrain", retrained)
        relearn("original", original)

    cache: dict[str, dict] = {}

    def quick(model) -> dict:
        """A curve point; the untouched original (every run's step 0 but ULD's) is measured once."""
        key = fingerprint(model)
        if key not in cache:
            cache[key] = ev.quick_eval(Engine(model, tokenizer), data, reference, mia=True)
        return dict(cache[key])

    def config_for(method: str, lr: float, steps: int, eval_steps=()) -> UnlearnConfig:
        return UnlearnConfig(method=method, steps=steps, lr=lr, batch_size=u["batch_size"], max_length=t["seq_len"],
                             eval_steps=tuple(eval_steps), seed=seed, hparams=dict(cfg["hparams"].get(method, {})),
                             lora=u["lora"], gradient_checkpointing=u["gradient_checkpointing"])

    rule = ev.stop_rule(levels) if levels else None
    ulira_targets: dict[str, np.ndarray] = {}
    longest = max(sw["steps"])
    best: dict[str, tuple[float, int]] = {}
    model = original
    for method in u["methods"]:
        with run.phase(f"unlearn/{method}"):
            runs = []
            for lr in sw["method_lr"].get(method) or sw["lr"]:
                model.load_state_dict(base_state)
                res = unlearn(model, tokenizer, forget_ex, retain_ex, config_for(method, lr, longest, sw["steps"]),
                              out / "unlearn" / method / f"lr{lr:g}", evaluate=quick, stop_when=rule, log=log)
                points = sorted(res.curve, key=lambda p: p["step"])
                curves.extend({"method": method, "lr": lr, **p} for p in points)
                runs.append({"lr": lr, "stop": next((p for p in points if p.get("stop")), None), "last": points[-1],
                             "steps_run": res.steps_run, "diverged": res.diverged_at is not None, "notes": res.notes})
            chosen, why = best_point(runs)
            step = chosen["stop"]["step"] if chosen["stop"] else chosen["last"]["step"]
            best[method] = (chosen["lr"], max(1, step))
            events[f"unlearn/{method}/steps_run"] = "; ".join([why] + chosen["notes"])
            metrics[f"unlearn/{method}/best/lr"] = chosen["lr"]
            metrics[f"unlearn/{method}/best/step"] = step
            metrics[f"unlearn/{method}/stop_step"] = chosen["stop"]["step"] if chosen["stop"] else float("nan")
            if chosen["stop"] is None:
                not_computed[f"unlearn/{method}/stop_step"] = (
                    "the stopping rule is off (unlearn.stop_on is empty)" if rule is None else
                    f"no run reached the retrained level on {', '.join(levels)} within {longest} steps")
            metrics[f"unlearn/{method}/steps_run"] = chosen["steps_run"]
            metrics[f"unlearn/{method}/diverged"] = float(chosen["diverged"])
            model.load_state_dict(base_state)  # the chosen run's result, reloaded from its directory
            res = unlearn(model, tokenizer, forget_ex, retain_ex, config_for(method, chosen["lr"], longest, sw["steps"]),
                          out / "unlearn" / method / f"lr{chosen['lr']:g}", evaluate=quick, stop_when=rule, log=log)
            evaluate_model(method, res.model, reference)
            if ulira.wants(cfg["ulira"], method):
                ulira_targets[method] = ulira.target_phi(Engine(res.model, tokenizer), world, forget_people, holdout_people)
            relearn(method, res.model)

    frontier = pd.DataFrame(curves)
    if len(frontier):
        frontier["pareto"] = False
        frontier["best"] = False
        for method, g in frontier.groupby("method", sort=False):
            frontier.loc[g.index, "pareto"] = pareto(g.to_dict("records"))
            lr, step = best[method]
            frontier.loc[g.index[((g["lr"] == lr) & (g["step"] == step)).to_numpy()], "best"] = True

    def scaled_config(method: str) -> UnlearnConfig:
        lr, steps = best.get(method, (sw["lr"][0], longest))
        return config_for(method, lr, steps)

    if ulira_targets:
        with run.phase("ulira"):
            ctx = {"cfg": cfg, "out": out, "world": world, "docs": docs, "tokenizer": tokenizer, "preset": preset,
                   "device": device, "forget_people": forget_people, "holdout_people": holdout_people,
                   "retain_ex": retain_ex, "configs": {m: config_for(m, *best[m]) for m in ulira_targets},
                   "examples": lambda people: _examples(world, people)}
            u_metrics, u_notes, tables_ulira = ulira.audit(ctx, ulira_targets, log)
            metrics.update(u_metrics)
            not_computed.update(u_notes)

    with run.phase("scalability"):
        people = sorted(forget_people)
        for method in cfg["scalability"]["methods"]:
            for frac in cfg["scalability"]["fractions"]:
                n = max(1, min(len(people), round(frac * len(people))))
                subset = set(people[:n])
                model.load_state_dict(base_state)
                res = unlearn(model, tokenizer, _examples(world, subset), retain_ex, scaled_config(method),
                              out / "scale" / method / f"n{n}")
                sub = ev.EvalData(forget_qa=_qa_items(world, subset), retain_qa=data.retain_qa,
                                  knowmem_tokens=data.knowmem_tokens,
                                  knowmem_trailing_space=data.knowmem_trailing_space)
                point = ev.quick_eval(Engine(res.model, tokenizer), sub)
                metrics.update(_prefixed(method, {f"scale@n={n}/{k}": v for k, v in point.items()}))

    with run.phase("sustainability"):
        k = max(1, min(int(cfg["sustainability"]["requests"]), len(forget_people)))
        groups = [sorted(forget_people)[i::k] for i in range(k)]
        for method in cfg["sustainability"]["methods"]:
            if get_method(method).combines:
                not_computed[f"unlearn/{method}/sustain@req=1/knowmem_forget"] = (
                    f"{method} combines models at decoding time; sequential requests need a method that changes weights")
                continue
            model.load_state_dict(base_state)

            def measure_request(i: int, current, method=method) -> None:
                """Each request's state, measured before the next request changes the model."""
                done = set().union(*groups[:i])
                sub = ev.EvalData(forget_qa=_qa_items(world, done), retain_qa=data.retain_qa,
                                  knowmem_tokens=data.knowmem_tokens,
                                  knowmem_trailing_space=data.knowmem_trailing_space)
                point = ev.quick_eval(Engine(current, tokenizer), sub)
                metrics.update(_prefixed(method, {f"sustain@req={i}/{key}": v for key, v in point.items()}))

            unlearn_sequence(model, tokenizer, [_examples(world, set(g)) for g in groups], retain_ex,
                             scaled_config(method), out / "sustain" / method, after_request=measure_request)

    restored, rnotes = stress.restoration(metrics, ["retrain", *u["methods"]])
    metrics.update(restored)
    not_computed.update(rnotes)
    tables = {"samples": frames, "unlearn_curves": pd.DataFrame(curves), "unlearn_frontier": frontier,
              "relearn_curves": pd.DataFrame(relearn_rows), "curves": pd.DataFrame(history),
              "stress_curves": pd.DataFrame(stress_rows)}
    if ulira_targets:
        tables["ulira"] = tables_ulira
    if probe_frames:
        tables["adversarial_probes"] = pd.concat(probe_frames, ignore_index=True)
    return _finish(run, metrics, {**not_computed, **events}, tables, device, {"reference": reference.kind})


def _finish(run: rundir.Run, metrics: dict, notes: dict, tables: dict, device, extra: dict) -> Path:
    """Metrics (NaN = not computed: null), notes, the tables (``samples``: the per-model frames,
    object columns as text), then the manifest and the report."""
    run.metrics.update(metrics)
    for key, reason in notes.items():
        if reason:
            run.note(key, reason)
    for name, table in tables.items():
        if name == "samples":
            table = pd.concat(table, ignore_index=True)
            table = table.astype({c: str for c in table.columns if table[c].dtype == object})
        run.add_table(name, table)
    return finish_run(run, device=str(device), extra=extra)


def _tokenizer(out: Path, texts: list[str], cfg: dict):
    return load_or_train_tokenizer(out / "models" / "tokenizer", texts, cfg["model"]["vocab_size"])


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


# --------------------------------------------------------------------------- user models


def _hparam_section() -> dict:
    """Every method's hyperparameters with their defaults (``--set hparams.<method>.<name>=...``);
    names without a default (RMU's layer) are typed nulls."""
    section = {}
    for name in METHODS:
        method = get_method(name)
        section[name] = {**dict(method.defaults), **{k: Typed(float) for k in method.extra_hparams}}
    return section


USER_DEFAULTS = {
    "seed": 0,
    "model": {"name": "", "dtype": "auto", "device": "auto", "trust_remote_code": False, "allow_pickle": False},
    "data": {"forget": "", "retain": "", "holdout": "", "ppl": "", "retrained": "", "drop_overlap": False,
             "probes": "", "relearn": "", "benign": "", "refusals": "", "mc_forget": "", "mc_retain": ""},
    # stop_on: keys brought to the reference's level (knowmem_forget; mia_auc needs --retrained and --holdout texts)
    "unlearn": {"method": "npo_gd", "steps": 30, "lr": 1e-5, "batch_size": 4, "max_length": 512, "eval_every": 10,
                "stop_rule": True, "stop_on": ["knowmem_forget"], "lora": False, "lora_rank": 8,
                "gradient_checkpointing": False},
    "hparams": _hparam_section(),
    "eval": {"knowmem_tokens": 32, "verbmem_tokens": 128, "n_boot": 1000,
             "min_k_rounding": "up", "knowmem_trailing_space": False, "tofu_eos": False, "chat_template": False,
             "lm_eval_tasks": [], "lm_eval_limit": Typed(float), "lm_eval_include": "",
             "relearn_steps": [5, 10, 20], "relearn_lr": 1e-5, "mc_description": ""},
    # quantization, benign relearning (sources: retain = the retain file, benign = data.benign) and
    # in-context relearning of the original, retrained and unlearned model (unlearn/stress.py)
    "stress": stress.USER_DEFAULTS,
}


def read_unlearn_file(path: str, template: str = QA_TEMPLATE) -> dict:
    """A forget / retain / holdout file in any supported layout → ``{examples, qa, tofu, texts, verbmem}``
    (``verbmem``: MUSE's (prompt, gt) pairs, used as given for VerbMem). QA examples are prompted
    with ``template`` (a ``{question}`` template: ``unlearn.chat.chat_template`` for chat models).

    TOFU-style (question, answer, paraphrased_answer, perturbed_answer[s]), QA (question/answer),
    MUSE VerbMem (prompt, gt) and plain texts (text) are recognised from the first record's fields.
    """
    from mnemoscope.probes import formats

    first = formats.read_rows(path)[0][1]
    if "paraphrased_answer" in first and any(k in first for k in formats.PERTURBED_KEYS):
        tofu = formats.load_tofu(path)
        return {"examples": qa_examples(tofu, template), "qa": tofu, "tofu": tofu, "texts": [], "verbmem": []}
    if any(k in first for k in formats.QUESTION_KEYS):
        qa = formats.load_qa(path)
        return {"examples": qa_examples(qa, template), "qa": qa, "tofu": [], "texts": [], "verbmem": []}
    if "prompt" in first:
        pc = formats.load_prompt_continuations(path)
        texts = [r["prompt"] + r["continuation"] for r in pc]
        return {"examples": [Example(r["prompt"], r["continuation"], r["id"]) for r in pc], "qa": [], "tofu": [],
                "texts": texts, "verbmem": [(r["prompt"], r["continuation"]) for r in pc]}
    texts = formats.load_texts_any(path)
    return {"examples": text_examples(texts), "qa": [], "tofu": [], "texts": texts, "verbmem": []}


def run_user(out: str | Path, overrides: dict, log=print) -> Path:
    """Unlearn a user's model: one method, the six-way table, robustness, stop rule; adversarial
    probes, a relearning curve and lm-eval tasks when asked."""
    cfg = resolve(USER_DEFAULTS, overrides)
    d, u, e, m = cfg["data"], cfg["unlearn"], cfg["eval"], cfg["model"]
    if not cfg["model"]["name"]:
        raise MnemoscopeError("unlearn needs --model PATH_OR_HUB_ID")
    for flag in ("forget", "retain"):
        if not d[flag]:
            raise MnemoscopeError(f"unlearn needs --{flag} FILE")
    method = u["method"]
    if get_method(method).needs_refusals and not d["refusals"]:
        raise MnemoscopeError(f"method {method} trains towards refusal answers: pass --refusals FILE (one refusal a "
                              "line, e.g. \"I don't know.\") or pick another method")
    hp = {k: v for k, v in cfg["hparams"][method].items() if v is not None}
    from mnemoscope.unlearn.runner import resolve_hparams

    resolve_hparams(method, hp)  # a bad value fails here, before the model loads
    if not set(u["stop_on"]) <= set(STOP_KEYS):
        raise MnemoscopeError(f"unlearn.stop_on: unknown key(s) {sorted(set(u['stop_on']) - set(STOP_KEYS))}; "
                              f"use any of {', '.join(STOP_KEYS)}")
    if u["lora"]:
        from mnemoscope.unlearn.runner import require_peft

        require_peft()
    if e["lm_eval_tasks"]:
        from mnemoscope.unlearn.lm_eval_bridge import require_lm_eval

        require_lm_eval()
    conf = stress.settings(cfg["stress"], m["device"], ("retain", "benign") if d["benign"] else ("retain",))
    forget, retain = read_unlearn_file(d["forget"]), read_unlearn_file(d["retain"])
    check_overlap(forget["examples"], retain["examples"], drop=d["drop_overlap"])
    holdout = read_unlearn_file(d["holdout"]) if d["holdout"] else {"qa": [], "texts": []}
    ppl = read_unlearn_file(d["ppl"])["texts"] if d["ppl"] else []
    probes = read_probes(d["probes"]) if d["probes"] else []
    relearn_ex = read_unlearn_file(d["relearn"])["examples"] if d["relearn"] else []
    refusals = read_refusals(d["refusals"]) if d["refusals"] else []
    mc = {k: load_multiple_choice(d[f"mc_{k}"]) if d[f"mc_{k}"] else [] for k in ("forget", "retain")}
    load = dict(dtype=m["dtype"], device=m["device"], trust_remote_code=m["trust_remote_code"], allow_pickle=m["allow_pickle"])
    loaded = load_model(m["name"], **load)
    tokenizer = loaded.tokenizer
    chat = {}
    if e["chat_template"]:
        from mnemoscope.unlearn.chat import chat_prompt, chat_template

        template = chat_template(tokenizer)
        forget, retain = read_unlearn_file(d["forget"], template), read_unlearn_file(d["retain"], template)
        if d["relearn"]:
            relearn_ex = read_unlearn_file(d["relearn"], template)["examples"]
        chat = {"qa_prompt": chat_prompt(tokenizer), "tofu_template": template}
    forget_ex, retain_ex, n_overlap = check_overlap(forget["examples"], retain["examples"], drop=d["drop_overlap"])
    if d["refusals"]:
        forget_ex = with_refusals(forget_ex, refusals, cfg["seed"])
    if n_overlap:
        print(f"warning: dropped {n_overlap} example(s) of {d['retain']} that are also in {d['forget']}", file=sys.stderr)
    run = rundir.Run(out, cfg, "unlearn")
    out = run.out
    kept = {(x.prompt, x.target) for x in retain_ex}
    retain_qa = [r for r, x in zip(retain["qa"], retain["examples"]) if (x.prompt, x.target) in kept]
    data = ev.EvalData(forget_qa=forget["qa"], retain_qa=retain_qa, forget_texts=forget["texts"],
                       holdout_texts=holdout["texts"], holdout_qa=holdout["qa"], ppl_texts=ppl,
                       forget_tofu=forget["tofu"], retain_tofu=[r for r in retain["tofu"] if r in retain_qa],
                       knowmem_tokens=e["knowmem_tokens"], verbmem_tokens=e["verbmem_tokens"], n_boot=e["n_boot"],
                       seed=cfg["seed"], verbmem_pairs=forget["verbmem"], mc_forget=mc["forget"],
                       mc_retain=mc["retain"], mc_description=e["mc_description"], **switches(e), **chat)
    not_computed: dict[str, str] = {}
    metrics: dict[str, float] = {"model/parameters": count_parameters(loaded.model)}
    attacks = stress.Inputs(benign={"retain": retain_ex, "benign": read_unlearn_file(d["benign"])["examples"] if d["benign"] else []},
                            near=stress.neighbours(len(data.forget_qa)), retain_texts=retain["texts"])
    retrained = None
    with run.phase("reference"):
        if d["retrained"]:
            retrained = load_model(d["retrained"], **load).model
            reference = ev.reference_from_retrained(Engine(retrained, tokenizer), data)
        elif data.holdout_qa:
            reference = ev.reference_from_holdout(Engine(loaded.model, tokenizer), data)
        else:
            reference = None
            not_computed["unlearn/reference"] = ("no retrained model (--retrained) and no held-out QA (--holdout): "
                                                 "the stopping rule, PrivLeak and forget quality are not computed")
    levels: dict[str, float] = {}
    if reference is not None and data.forget_qa and "knowmem_forget" in u["stop_on"]:
        levels["knowmem_forget"] = reference.knowmem_forget
    if "mia_auc" in u["stop_on"]:
        if reference is not None and reference.mia_forget is not None:
            levels["mia_auc"] = ev.auc_forget_vs_holdout(reference.mia_forget, reference.mia_holdout)
        else:
            not_computed["unlearn/reference/mia_auc"] = ("unlearn.stop_on names mia_auc, which needs --retrained and "
                                                        "forget and --holdout texts; the rule leaves it out")
    frames, probe_frames = [], []
    relearn_rows: list[dict] = []
    stress_rows: list[dict] = []

    def evaluate(name: str, model, ref) -> None:
        engine = Engine(model, tokenizer)
        six, samples, notes = ev.six_way(engine, data, ref)
        values = dict(six)
        if name != "original":
            rob, rnotes = ev.robustness(engine, data)
            values.update({f"robust/{k}": v for k, v in rob.items()})
            notes.update({f"robust/{k}": r for k, r in rnotes.items()})
        if probes:
            adv, frame = ev.adversarial(engine, probes)
            values.update(adv)
            probe_frames.append(frame.assign(model=name))
        if e["lm_eval_tasks"]:
            from mnemoscope.unlearn.lm_eval_bridge import utility

            values.update({f"utility/{k}": v for k, v in utility(
                model, tokenizer, e["lm_eval_tasks"], limit=e["lm_eval_limit"], include_path=e["lm_eval_include"],
                seed=cfg["seed"]).items()})
        if relearn_ex and data.forget_qa:
            curve = ev.relearn_curve(model, tokenizer, relearn_ex, data.forget_qa, data, out / "relearn" / name,
                                     steps=max(e["relearn_steps"]), eval_steps=e["relearn_steps"], lr=e["relearn_lr"],
                                     batch_size=u["batch_size"], max_length=u["max_length"])
            relearn_rows.extend({"model": name, **p} for p in curve)
            values["relearn/knowmem_before"], values["relearn/knowmem_after"] = curve[0]["knowmem"], curve[-1]["knowmem"]
            values.update({f"relearn/{k}": v for k, v in relearn_recovery(
                [p["step"] for p in curve], [p["knowmem"] for p in curve]).items()})
        elif relearn_ex:
            notes["relearn/recovery"] = "the relearning curve measures KnowMem on the forget QA; the forget file has none"
        with run.phase("quantize"):
            quant, qnotes = stress.quantized_eval(model, tokenizer, data, ref, conf.modes,
                                                  attacks.retain_texts[:conf.max_retain_texts])
        routes, rnotes, rows = stress.relearn_routes(model, tokenizer, data, conf, attacks.benign, attacks.near,
                                                     out / "stress" / name, batch_size=u["batch_size"],
                                                     max_length=u["max_length"])
        values.update({**quant, **routes})
        notes.update({**qnotes, **rnotes})
        stress_rows.extend({"model": name, **r} for r in rows)
        metrics.update(_prefixed(name, values))
        not_computed.update({f"unlearn/{name}/{k}": r for k, r in notes.items()})
        frames.append(samples.assign(model=name))

    with run.phase("original"):
        evaluate("original", loaded.model, reference)
    if retrained is not None:
        with run.phase("retrain"):
            evaluate("retrain", retrained, reference)
    ucfg = UnlearnConfig(method=method, steps=u["steps"], lr=u["lr"], batch_size=u["batch_size"],
                         max_length=u["max_length"], eval_every=u["eval_every"], seed=cfg["seed"], lora=u["lora"],
                         lora_rank=u["lora_rank"], gradient_checkpointing=u["gradient_checkpointing"], hparams=hp)
    use_stop = u["stop_rule"] and bool(levels)
    mia_in_curve = "mia_auc" in levels
    no_qa = [name for name, qa in (("forget", data.forget_qa), ("retain", retain_qa)) if not qa]
    if no_qa:
        sets = " and ".join(f"--{n}" for n in no_qa)
        log(f"note: {sets} {'hold' if len(no_qa) > 1 else 'holds'} plain texts, not question/answer records, so "
            f"KnowMem on {' and '.join(no_qa)} is not measured and the progress lines leave it out")
    with run.phase("unlearn"):
        res = unlearn(loaded.model, tokenizer, forget_ex, retain_ex, ucfg, out / "unlearn" / method,
                      evaluate=lambda mdl: ev.quick_eval(Engine(mdl, tokenizer), data, reference, mia=mia_in_curve),
                      stop_when=ev.stop_rule(levels) if use_stop else None, log=log)
    metrics[f"unlearn/{method}/stop_step"] = float("nan") if res.stop_step is None else res.stop_step
    if res.stop_step is None:
        not_computed[f"unlearn/{method}/stop_step"] = (
            "no reference level (pass --retrained or --holdout with QA) or no forget QA" if not use_stop
            else f"never reached the reference level on {', '.join(levels)}")
    metrics[f"unlearn/{method}/steps_run"] = res.steps_run
    metrics[f"unlearn/{method}/diverged"] = float(res.diverged_at is not None)
    with run.phase("evaluate"):
        evaluate(method, res.model, reference)
    not_computed[f"unlearn/{method}/steps_run"] = "; ".join(res.notes)
    restored, rnotes = stress.restoration(metrics, ["retrain", method])
    metrics.update(restored)
    not_computed.update(rnotes)
    tables = {"samples": frames, "unlearn_curves": pd.DataFrame([{"method": method, **p} for p in res.curve]),
              "stress_curves": pd.DataFrame(stress_rows)}
    if relearn_rows:
        tables["relearn_curves"] = pd.DataFrame(relearn_rows)
    if probe_frames:
        tables["adversarial_probes"] = pd.concat(probe_frames, ignore_index=True)
    return _finish(run, metrics, not_computed, tables, loaded.device,
                   {"model": loaded.name, "reference": reference.kind if reference else "none"})
