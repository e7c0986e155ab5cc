"""U-LiRA in the unlearning lab: a per-example audit of each method with shadow models
(Hayes, Shumailov, Triantafillou, Khalifa, Papernot 2024, *Inexact Unlearning Needs More Careful
Evaluations to Avoid a False Sense of Privacy*), scaled to the lab.

The candidates are the texts of the forget and the holdout people (the lab's own target model
trained on the first and never saw the second). K shadow models (``ulira.shadows``) are trained
like the lab's original model, each on the retain people, the background and a random half of the
candidate *people* (``recipes.shadows.shadow_keep`` over people: each person in ⌊K/2⌋ shadows).
For each method, each shadow then unlearns the candidate people it trained on, with the method's
chosen learning rate and number of steps from the lab's sweep (the same method and budget as the
target). A candidate text's IN sample is its logit-scaled confidence (``metrics.lira``) under the
shadows that trained on its person and unlearned it; its OUT sample, under those that never saw
it. The lab's unlearned model is the target: forget texts are IN (trained, then unlearned),
holdout texts OUT. A method that unlearned exactly leaves nothing to tell them apart.

Keys, per method M: ``ulira/M/online/{auc,auc/ci_lo,auc/ci_hi,accuracy,tpr@fpr=F,...}`` and the
same for ``offline`` (``accuracy``, online only: the balanced accuracy of the likelihood-ratio
test Λ > 0; offline has no natural threshold), ``ulira/shadows``. The per-example
unit is a text; texts of one person are alike, so the AUC's CI resamples people (the cluster
bootstrap, ``metrics.roc``), not texts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.lira import lira_offline, lira_online
from mnemoscope.recipes import lira
from mnemoscope.recipes.shadows import (
    available_bytes,
    check_shadow_memory,
    check_workers,
    lab_training_bytes,
    llama_parameters,
    map_jobs,
    shadow_keep,
)

# workers: shadows trained (and unlearned) at once, each in its own process (a GPU or a CPU core each)
DEFAULTS = {"shadows": 0, "methods": [], "variance": "auto", "workers": 1}


def check(section: dict, methods: list[str], cfg: dict | None = None) -> None:
    """Refuse, before the run directory, a ``ulira`` section the audit cannot run with; given the
    recipe's ``cfg``, also ``workers`` the device cannot host and shadows that do not fit in memory."""
    k = section["shadows"]
    if k != 0 and k < lira.MIN_SHADOWS:
        raise MnemoscopeError(f"ulira.shadows={k}: use 0 (off) or ≥ {lira.MIN_SHADOWS} (each candidate person needs "
                              f"≥ 2 shadows that trained on and unlearned it and ≥ 2 that never saw it)")
    unknown = sorted(set(section["methods"]) - set(methods))
    if unknown:
        raise MnemoscopeError(f"ulira.methods: {', '.join(unknown)} not among unlearn.methods ({', '.join(methods)})")
    if section["variance"] not in lira.VARIANCES:
        raise MnemoscopeError(f"ulira.variance='{section['variance']}': use one of {', '.join(lira.VARIANCES)}")
    if k and cfg is not None:
        check_resources(section, cfg)


def check_resources(section: dict, cfg: dict) -> None:
    """``ulira.workers`` processes need as many GPUs (or CPU cores), and the shadows training at
    once must fit in the free memory: each trains with AdamW (``shadows.lab_training_bytes``) and then
    unlearns beside a frozen reference copy (4 bytes per parameter more)."""
    from mnemoscope.engine.loading import resolve_device

    workers, device, m, t = section["workers"], cfg["model"]["device"], cfg["model"], cfg["train"]
    if workers < 1:
        raise MnemoscopeError(f"ulira.workers={workers}: use 1 (one shadow at a time) or more")
    check_workers(workers, device, key="ulira")
    n_params = llama_parameters(vocab=m["vocab_size"], hidden=m["hidden"], layers=m["layers"],
                                intermediate=m["intermediate"])
    per_model = 4 * n_params + lab_training_bytes(vocab=m["vocab_size"], hidden=m["hidden"], layers=m["layers"],
                                                  intermediate=m["intermediate"], heads=m["heads"],
                                                  batch_size=t["batch_size"], seq_len=t["seq_len"])
    check_shadow_memory(section["shadows"], workers, per_model, available_bytes(device), resolve_device(device).type,
                        key="ulira")


def wants(section: dict, method: str) -> bool:
    """Whether the audit runs for ``method``: shadows on, and the method listed (or no list)."""
    return bool(section["shadows"]) and (not section["methods"] or method in section["methods"])


def candidate_texts(world, people: list[str]) -> tuple[list[str], list[str]]:
    """(texts, person of each text): the documents of ``people`` in the world's order."""
    chosen = set(people)
    docs = [d for d in world.documents if d.get("person_id") in chosen]
    return [d["text"] for d in docs], [d["person_id"] for d in docs]


def person_documents(world, people: set[str]) -> dict[str, str]:
    """Training documents (id → text) of ``people``: their documents and their QA texts."""
    from mnemoscope.recipes.unlearning.world import qa_text

    out = {d["id"]: d["text"] for d in world.documents if d.get("person_id") in people}
    out.update({q["id"]: qa_text(q["question"], q["target"]) for q in world.qa if q["person_id"] in people})
    return out


def shadow_training_docs(world, docs: dict[str, str], candidates: list[str], kept: set[str]) -> dict[str, str]:
    """The lab's training documents with every candidate person's documents removed, then the
    documents of the ``kept`` candidates added."""
    drop = set(person_documents(world, set(candidates)))
    out = {k: v for k, v in docs.items() if k not in drop}
    out.update(person_documents(world, kept))
    return out


def phi_of(engine, texts: list[str]) -> np.ndarray:
    """Logit-scaled sequence confidence of each text under ``engine``."""
    from mnemoscope.families.membership import attack_frame

    return lira.confidence(attack_frame(texts, engine.score(texts)))


def target_phi(engine, world, forget_people, holdout_people) -> np.ndarray:
    """φ of the candidate texts (forget then holdout people) under a lab model: the U-LiRA target."""
    return phi_of(engine, candidate_texts(world, sorted(forget_people) + sorted(holdout_people))[0])


def per_example_metrics(labels: np.ndarray, online: np.ndarray, offline: np.ndarray, *, n_boot: int,
                        seed: int, groups=None) -> dict[str, float]:
    """AUC [CI], TPR at 0.1/1/5% FPR (null when underpowered) of both scores, and the balanced
    accuracy of the online likelihood-ratio test Λ > 0 (½·(TPR + TNR) at that threshold).
    ``groups`` (the person of each text): the CIs resample people, not texts."""
    from mnemoscope.families.membership import membership_metrics

    frame = pd.DataFrame({"score/online": online, "score/offline": offline})
    out = membership_metrics(labels, frame, prefix="ulira", n_boot=n_boot, seed=seed, groups=groups)
    pred = online > 0
    pos, neg = labels == 1, labels == 0
    out["ulira/online/accuracy"] = 0.5 * (float(pred[pos].mean()) + float((~pred[neg]).mean()))
    return out


@dataclass(frozen=True)
class ShadowAudit:
    """Shadow ``index`` of the audit: trained like the lab's original model on ``docs`` (the lab's
    training documents with only the kept candidate people's), then unlearned with each method's
    ``configs[method]`` on ``forget`` (the kept people's examples); φ of ``texts`` after each."""

    index: int
    cfg: dict
    out: Path
    tokenizer: object
    preset: object
    docs: dict
    forget: list
    retain: list
    configs: dict
    texts: tuple[str, ...]


def shadow_phis(job: ShadowAudit, device: str = "cpu", log=print) -> dict[str, np.ndarray]:
    """Train (or reload) one shadow, unlearn it with every method and return φ of the candidate
    texts after each: method → (n_texts,)."""
    from mnemoscope.engine import Engine
    from mnemoscope.lab.factory import lab_model
    from mnemoscope.recipes.unlearning.world import train_lab_model, training_order
    from mnemoscope.train.packing import pack_stream
    from mnemoscope.unlearn.runner import unlearn

    cfg, tok, j = job.cfg, job.tokenizer, job.index
    t, seed = cfg["train"], cfg["seed"]
    tokens = {d: _ids(tok, v) for d, v in job.docs.items()}
    rows, _ = pack_stream(training_order(sorted(job.docs), t["epochs"], seed + 1 + j), tokens, t["seq_len"],
                          tok.eos_token_id)
    model = lab_model(job.preset, tok, seed=lira_seed(seed, j), device=device)
    train_lab_model(f"ulira-shadow-{j:02d}", model, tok, rows, cfg, job.out, log)
    trained = {name: v.detach().clone() for name, v in model.state_dict().items()}
    phis = {}
    for m, config in job.configs.items():
        model.load_state_dict(trained)
        res = unlearn(model, tok, job.forget, job.retain, config, job.out / "ulira" / m / f"shadow-{j:02d}", log=None)
        phis[m] = phi_of(Engine(res.model, tok), list(job.texts))
    return phis


def shadow_jobs(ctx: dict, people: list[str], keep_people: np.ndarray, texts: list[str]) -> list[ShadowAudit]:
    """One ``ShadowAudit`` per row of ``keep_people`` (which candidate people each shadow trains on)."""
    jobs = []
    for j, row in enumerate(keep_people):
        kept = {p for p, flag in zip(people, row) if flag}
        if not kept:
            raise MnemoscopeError(f"ulira: shadow {j} drew no candidate person ({len(people)} forget + holdout people); "
                                  "use more people (world.n_people) or another ulira.shadows")
        jobs.append(ShadowAudit(index=j, cfg=ctx["cfg"], out=Path(ctx["out"]), tokenizer=ctx["tokenizer"],
                                preset=ctx["preset"], docs=shadow_training_docs(ctx["world"], ctx["docs"], people, kept),
                                forget=ctx["examples"](kept), retain=ctx["retain_ex"], configs=ctx["configs"],
                                texts=tuple(texts)))
    return jobs


def audit(ctx: dict, targets: dict[str, np.ndarray], log=print) -> tuple[dict[str, float], dict[str, str], pd.DataFrame]:
    """Train the shadows, unlearn each method on each, and test the lab's unlearned models.

    ``ctx`` (from the unlearning recipe): ``cfg``, ``out``, ``world``, ``docs`` (training documents),
    ``tokenizer``, ``preset``, ``forget_people``, ``holdout_people``, ``retain_ex``, ``configs``
    (method → its chosen ``UnlearnConfig``), ``examples`` (people → unlearning examples).
    ``targets``: method → the φ of ``candidate_texts(forget + holdout)`` under the lab's unlearned
    model. Shadows run ``ulira.workers`` at a time (``recipes.shadows.map_jobs``). Returns
    (metrics, notes, the per-(method, text) table)."""
    cfg, world = ctx["cfg"], ctx["world"]
    section, seed = cfg["ulira"], cfg["seed"]
    k = section["shadows"]
    methods = list(targets)
    people = sorted(ctx["forget_people"]) + sorted(ctx["holdout_people"])
    texts, owners = candidate_texts(world, people)
    keep_people = shadow_keep(k, len(people), seed)
    index = {p: i for i, p in enumerate(people)}
    keep = keep_people[:, [index[o] for o in owners]]  # (K, n_texts)
    labels = np.array([int(o in ctx["forget_people"]) for o in owners])
    jobs = shadow_jobs({**ctx, "configs": {m: ctx["configs"][m] for m in methods}}, people, keep_people, texts)
    results = map_jobs(shadow_phis, jobs, workers=section["workers"], device=cfg["model"]["device"], log=log)
    phis = {m: np.stack([r[m] for r in results]) for m in methods}
    log(f"ulira: {k} shadows trained on half of {len(people)} candidate people each, unlearned with "
        f"{len(methods)} method(s)")
    return _audit_metrics(section, k, methods, targets, phis, keep, labels, owners, cfg)


def _audit_metrics(section, k, methods, targets, phis, keep, labels, owners, cfg):
    fixed = lira.fixed_variance(section, k)
    seed = cfg["seed"]
    metrics: dict[str, float] = {"ulira/shadows": k}
    notes: dict[str, str] = {}
    rows_out = []
    n_boot = cfg["eval"]["n_boot"]
    for m in methods:
        online = lira_online(targets[m], phis[m], keep, fix_variance=fixed)
        offline = lira_offline(targets[m], phis[m], keep, fix_variance=fixed)
        for key, value in per_example_metrics(labels, online, offline, n_boot=n_boot, seed=seed,
                                              groups=owners).items():
            metrics[key.replace("ulira/", f"ulira/{m}/", 1)] = value
            if isinstance(value, float) and math.isnan(value) and "tpr@" in key:
                notes[key.replace("ulira/", f"ulira/{m}/", 1)] = "underpowered: fewer holdout texts than 1/FPR"
        rows_out.append(pd.DataFrame({"method": m, "person": owners, "label": labels, "phi": targets[m],
                                      "score/online": online, "score/offline": offline}))
    return metrics, notes, pd.concat(rows_out, ignore_index=True) if rows_out else pd.DataFrame()


def _ids(tokenizer, text: str) -> list[int]:
    from mnemoscope.engine.encoding import text_ids

    return text_ids(tokenizer, text)


def lira_seed(seed: int, index: int) -> int:
    """Shadow ``index``'s initialisation seed (never the lab model's)."""
    return 10_000 * (index + 1) + seed
