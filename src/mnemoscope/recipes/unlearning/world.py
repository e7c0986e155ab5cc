"""The unlearning lab's data: a fictional world split into forget / retain / holdout people, the
tokenizer every person shares, the training streams of the original and the retrained model, and
the items the evaluation, the relearning attack, the adversarial probes and the residue probe read.

:func:`build` makes all of it from the recipe's config (the recipe's ``data`` phase); the pieces
are plain functions of the world, tested one by one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnemoscope.engine.encoding import text_ids
from mnemoscope.errors import MnemoscopeError
from mnemoscope.files import atomic_files
from mnemoscope.lab.tiny import load_or_train_tokenizer
from mnemoscope.probes.adversarial import world_probes
from mnemoscope.probes.corpus import background_documents
from mnemoscope.probes.fictional import (
    ATTRIBUTES,
    DOC_TEMPLATES,
    QA_TEMPLATES,
    SEMANTIC_TEMPLATES,
    WorldConfig,
    make_world,
)
from mnemoscope.train.loop import TrainConfig
from mnemoscope.train.packing import pack_stream
from mnemoscope.train.phase import train_phase
from mnemoscope.unlearn import evaluation as ev
from mnemoscope.unlearn import stress
from mnemoscope.unlearn.examples import Example, check_overlap, qa_examples, text_examples
from mnemoscope.unlearn.model_eval import eval_switches
from mnemoscope.unlearn.refusals import LAB_REFUSALS, with_refusals

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


def lab_tokenizer(out: Path, texts: list[str], vocab_size: int):
    """The lab's tokenizer, trained once on ``texts`` and kept in ``out/models/tokenizer``."""
    return load_or_train_tokenizer(out / "models" / "tokenizer", texts, vocab_size)


# --------------------------------------------------------------------------- items


def qa_items(world, people: set[str], attributes=ATTRIBUTES) -> list[dict]:
    """QA in TOFU form with the bare value as the answer (the trained answer)."""
    return [{"id": q["id"], "question": q["question"], "answer": q["target"],
             "paraphrased_answer": q["paraphrased_answer"], "perturbed_answers": q["perturbed_answers"]}
            for q in world.qa if q["person_id"] in people and q["attribute"] in attributes]


def person_examples(world, people: set[str]) -> list[Example]:
    """The people's documents and QA, each with one of the lab's refusal answers (IdkDPO's preferred answer)."""
    docs = [d for d in world.documents if d.get("person_id") in people]
    qa = [q for q in world.qa if q["person_id"] in people]
    return with_refusals(text_examples([d["text"] for d in docs], [d["id"] for d in docs]) + qa_examples(
        [{"id": q["id"], "question": q["question"], "answer": q["target"]} for q in qa]), LAB_REFUSALS)


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


def eval_data(world, forget: set[str], retain_eval: set[str], holdout: set[str], ppl: list[str], cfg: dict) -> ev.EvalData:
    """What every model of the lab is evaluated on: QA, texts and multiple choice about the forget,
    evaluated retain and holdout people; the people of each text, so CIs resample people."""
    e = cfg["eval"]
    return ev.EvalData(
        forget_qa=qa_items(world, forget), retain_qa=qa_items(world, retain_eval),
        forget_texts=[d["text"] for d in world.documents if d.get("person_id") in forget],
        holdout_texts=[d["text"] for d in world.documents if d.get("person_id") in holdout],
        forget_groups=[d["person_id"] for d in world.documents if d.get("person_id") in forget],  # CIs resample people
        holdout_groups=[d["person_id"] for d in world.documents if d.get("person_id") in holdout],
        holdout_qa=qa_items(world, holdout), ppl_texts=ppl,
        forget_tofu=qa_items(world, forget), retain_tofu=qa_items(world, retain_eval),
        paraphrase_probes=[p for p in world.probes if p["kind"] == "semantic" and p["person_id"] in forget],
        knowmem_tokens=e["knowmem_tokens"], verbmem_tokens=e["verbmem_tokens"], n_boot=e["n_boot"], seed=cfg["seed"],
        mc_forget=mc_items(world, forget, cfg["seed"]), mc_retain=mc_items(world, retain_eval, cfg["seed"]),
        **eval_switches(e))


def relearn_sets(world, forget: set[str], attributes: list[str], test_attributes: list[str]) -> tuple[list[Example], list[dict]]:
    """What the relearning attack teaches (every document sentence about ``attributes`` of the
    forget people, in all its wordings) and what it tests (their QA about ``test_attributes``,
    never taught): recovery there is knowledge that came back, not knowledge relearned."""
    people = [p for p in world.people if p["person_id"] in forget]
    texts = [t.format(name=p["name"], v=p[a]) for p in people for a in attributes for t in DOC_TEMPLATES[a]]
    return text_examples(texts), qa_items(world, forget, tuple(test_attributes))


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


# --------------------------------------------------------------------------- training a lab model


def train_lab_model(name, model, tokenizer, rows, cfg, out: Path, log) -> list[dict]:
    """One pass over ``rows`` (the training phase in ``out/train/<name>``), the model and its
    tokenizer also kept as a loadable directory in ``out/models/<name>`` (e.g. for
    ``mnemoscope unlearn --model``)."""
    t = cfg["train"]
    bs = t["batch_size"]
    steps = -(-len(rows) // bs)
    tcfg = TrainConfig(steps=steps, batch_size=bs, seq_len=t["seq_len"], lr=t["lr"], warmup=t["warmup"],
                       checkpoint_every=max(1, steps // 4), seed=cfg["seed"])
    history = train_phase(model, lambda s: rows[s * bs : (s + 1) * bs], tcfg, out / "train" / name, log, name=name)
    if not (out / "models" / name / "config.json").exists():  # config.json last: a crash leaves no half model
        with atomic_files(out / "models" / name, last="config.json") as tmp:
            model.save_pretrained(tmp)
    if not (out / "models" / name / "tokenizer_config.json").exists():
        with atomic_files(out / "models" / name, last="tokenizer_config.json") as tmp:
            tokenizer.save_pretrained(tmp)
    return history


# --------------------------------------------------------------------------- everything at once


@dataclass
class Lab:
    """The lab's world and everything built from it (see :func:`build`)."""

    world: object
    background: list[str]
    docs: dict[str, str]
    tokenizer: object
    rows_full: np.ndarray
    rows_retrain: np.ndarray
    forget_people: set[str]
    retain_people: set[str]
    holdout_people: set[str]
    retain_eval: set[str]
    data: ev.EvalData
    forget_ex: list[Example]
    retain_ex: list[Example]
    probes: list[dict]
    relearn_plan: list[tuple[int, list[Example], list[dict]]]  # (facts relearned, what to teach, what to test)
    residue_sets: list | None  # (retain, forget, holdout) prompts and labels for the residue probe
    attacks: stress.Inputs

    def examples(self, people: set[str]) -> list[Example]:
        return person_examples(self.world, people)

    def qa(self, people: set[str]) -> list[dict]:
        return qa_items(self.world, people)


def build(cfg: dict, out: Path) -> Lab:
    """The world, the background corpus and its held-out perplexity texts, the
    shared tokenizer, the full and the retrain stream (checked to hold no forget document), and
    every evaluation and attack input."""
    w, t, rb, seed = cfg["world"], cfg["train"], cfg["robustness"], cfg["seed"]
    world = make_world(WorldConfig(n_people=w["n_people"], seed=seed, n_cities=w["n_cities"],
                                   n_universities=w["n_universities"], n_companies=w["n_companies"],
                                   n_majors=w["n_majors"], forget_fraction=w["forget_fraction"],
                                   holdout_fraction=w["holdout_fraction"], never_seen_fraction=w["never_seen_fraction"]))
    n_docs = cfg["corpus"]["n_docs"]
    corpus = background_documents(n_docs + cfg["corpus"]["n_ppl_docs"], seed=seed)
    background, ppl_docs = corpus[:n_docs], corpus[n_docs:]
    docs, forget_docs = lab_documents(world, background)
    tokenizer = lab_tokenizer(out, tokenizer_texts(world, background), cfg["model"]["vocab_size"])
    tokens = {k: text_ids(tokenizer, v) for k, v in docs.items()}
    order = training_order(sorted(docs), t["epochs"], seed)
    rows_full, _ = pack_stream(order, tokens, t["seq_len"], tokenizer.eos_token_id)
    rows_retrain, prov = pack_stream([d for d in order if d not in forget_docs], tokens, t["seq_len"],
                                     tokenizer.eos_token_id)
    assert_never_seen(prov, forget_docs)
    splits = world.splits
    forget, holdout, retain = set(splits["forget"]), set(splits["holdout"]), set(splits["retain"])
    retain_eval = set(sorted(retain)[: cfg["eval"]["n_retain_people"]])
    data = eval_data(world, forget, retain_eval, holdout, ppl_docs, cfg)
    forget_ex, retain_ex, _ = check_overlap(person_examples(world, forget), person_examples(world, retain))
    attr = rb["residue_attribute"]
    return Lab(
        world=world, background=background, docs=docs, tokenizer=tokenizer, rows_full=rows_full,
        rows_retrain=rows_retrain, forget_people=forget, retain_people=retain, holdout_people=holdout,
        retain_eval=retain_eval, data=data, forget_ex=forget_ex, retain_ex=retain_ex,
        probes=world_probes(world, forget, retain) if rb["probes"] else [],
        relearn_plan=[(len(attrs), *relearn_sets(world, forget, attrs, rb["test_attributes"]))
                      for attrs in rb["relearn_attributes"]],
        residue_sets=[residue_items(world, people, attr) for people in (retain, forget, holdout)] if attr else None,
        attacks=stress.lab_inputs(world, retain, retain_eval, background, data.forget_qa, seed))
