"""Shadow-model LiRA for the quickstart lab (``lira.shadows`` ≥ 4).

The candidate pool is every canary, members and held-out controls alike. Shadow j trains exactly
like the target (same size, background distribution, steps and schedule; its own seed for the
initialisation, the background rows and the injection positions) on the candidates
``shadow_keep`` gives it, each at its *LiRA dose*: a member's own dose; for a control, a dose drawn
from the same kind's member doses (cycled over a seeded permutation), so that the hypothetical
doses of members and controls have the same distribution and LiRA learns nothing from them.
Then the target's and the shadows' per-canary scores give ``score/lira_online`` and
``score/lira_offline`` (``recipes.lira``), the pooled trials and the gaps to LiRA.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope.recipes import lira
from mnemoscope.recipes.shadows import (
    ShadowJob,
    available_bytes,
    check_shadow_memory,
    check_workers,
    lab_training_bytes,
    run_shadows,
    shadow_keep,
)
from mnemoscope.summary import fmt


def check(cfg: dict) -> None:
    """The ``lira`` section and the memory the shadows need, before any run directory."""
    from mnemoscope.engine.loading import resolve_device
    from mnemoscope.lab.tiny import get_preset

    section = cfg["lira"]
    lira.check_lira_settings(section)
    if not section["shadows"]:
        return
    p, t = get_preset(cfg["model"]["size"]), cfg["train"]
    per_model = lab_training_bytes(vocab=cfg["model"]["vocab_size"], hidden=p.hidden, layers=p.layers,
                                   intermediate=p.intermediate, heads=p.heads, batch_size=t["batch_size"],
                                   seq_len=t["seq_len"])
    device = cfg["model"]["device"]
    check_workers(section["workers"], device, key="lira")
    check_shadow_memory(section["shadows"], section["workers"], per_model, available_bytes(device),
                        resolve_device(device).type)


def lira_doses(canaries, seed: int) -> dict[str, int]:
    """Each canary's dose when a shadow trains on it (see the module docstring)."""
    rng = np.random.default_rng(seed)
    doses = {k.id: k.dose for k in canaries if k.dose > 0}
    for kind in sorted({k.kind for k in canaries}):
        member = [k.dose for k in canaries if k.kind == kind and k.dose > 0]
        controls = [k for k in canaries if k.kind == kind and k.dose == 0]
        if not member:
            member = [k.dose for k in canaries if k.dose > 0]
        drawn = np.resize(rng.permutation(member), len(controls))
        doses.update({k.id: int(d) for k, d in zip(controls, drawn)})
    return doses


def shadow_seed(seed: int, index: int) -> int:
    return 10_000 * (index + 1) + seed


def _setup(index: int, keep: np.ndarray, *, cfg: dict, tokenizer_dir: str, ids: tuple[str, ...],
           texts: tuple[str, ...], doses: dict[str, int]):
    """(model, tokenizer, batch_fn, TrainConfig) of shadow ``index`` trained on ``ids[keep]``."""
    from transformers import AutoTokenizer

    from mnemoscope.engine.encoding import text_ids
    from mnemoscope.lab.factory import lab_model
    from mnemoscope.probes.corpus import background_documents
    from mnemoscope.train.data import InjectedData, plan_injections
    from mnemoscope.train.loop import TrainConfig
    from mnemoscope.train.packing import pack_background

    seed = shadow_seed(cfg["seed"], index)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    t = cfg["train"]
    kept = [i for i, k in enumerate(keep) if k]
    doc_ids = {ids[i]: text_ids(tokenizer, texts[i]) for i in kept}
    plan = plan_injections({k: len(v) for k, v in doc_ids.items()}, {ids[i]: doses[ids[i]] for i in kept},
                           steps=t["steps"], batch_size=t["batch_size"], seq_len=t["seq_len"], seed=seed)
    docs = background_documents(cfg["corpus"]["n_docs"], seed=cfg["seed"])
    background = pack_background(text_ids(tokenizer, docs), n_rows=t["steps"] * t["batch_size"],
                                 seq_len=t["seq_len"], eos_id=tokenizer.eos_token_id, seed=seed)
    data = InjectedData(background, t["batch_size"], plan, doc_ids, tokenizer.eos_token_id)
    model = lab_model(cfg["model"], tokenizer, seed=seed)
    return model, tokenizer, data.batch, TrainConfig(seed=seed, **t)


def attach(run, cfg: dict, canaries, samples: pd.DataFrame, log=print) -> pd.DataFrame:
    """Train the shadows, add the target's LiRA columns to ``samples``, the pooled and gap
    metrics to ``run.metrics``, and the ``lira_shadows`` table."""
    from mnemoscope.families.membership import membership_metrics

    section, seed = cfg["lira"], cfg["seed"]
    k = section["shadows"]
    ids = tuple(c.id for c in canaries)
    texts = tuple(c.text for c in canaries)
    doses = lira_doses(canaries, seed)
    keep = shadow_keep(k, len(ids), seed)
    setup = functools.partial(_setup, cfg=cfg, tokenizer_dir=str(Path(run.out) / "model"), ids=ids, texts=texts,
                              doses=doses)
    jobs = [ShadowJob(j, Path(run.out) / "shadows" / f"shadow-{j:02d}", setup, keep[j], texts, cfg["audit"]["k"])
            for j in range(k)]
    log(f"lira: {k} shadow models, each on ≈ half of {len(ids)} canaries")
    frames = run_shadows(jobs, workers=section["workers"], device=cfg["model"]["device"], log=log)
    samples = samples.copy()
    samples["lira_dose"] = [doses[i] for i in ids]
    samples = pd.concat([samples, lira.target_columns(samples, frames, keep, section)], axis=1)
    run.add_table("lira_shadows", lira.shadow_table(frames, keep, list(ids), section["clamp_probability"]))
    n_boot = cfg["audit"]["n_boot"]
    pooled = lira.pooled_trials(samples, samples["label"].to_numpy(), frames, keep, section)
    if pooled is None:
        run.note("mia_pooled", f"pooled trials need lira.shadows ≥ {lira.MIN_POOLED} (got {k})")
    else:
        labels, scores = pooled
        pooled_metrics = membership_metrics(labels, scores, prefix="mia_pooled", n_boot=n_boot, seed=seed)
        run.metrics.update(pooled_metrics)
        run.metrics.update(lira.gaps(pooled_metrics, "mia_pooled", "lira/gap_pooled"))
    run.metrics["lira/shadows"] = k
    return samples


def target_gaps(metrics: dict) -> dict[str, float]:
    """Each cheap attack's distance to online LiRA on the target's own candidates."""
    return lira.gaps(metrics, "mia", "lira/gap")  # exact keys: the @dose=D ones are not read


def summary_lines(metrics: dict) -> list[str]:
    """LiRA next to Min-K%++ for the end-of-run summary: AUC and TPR at 1% FPR, on the target
    and (K ≥ 6) on the pooled trials; "-" where null (underpowered)."""
    def g(key: str) -> str:
        return fmt(metrics.get(key), 2, whole="none")

    lines = [f"LiRA with {int(metrics['lira/shadows'])} shadows{'':>6} {'AUC':>5} {'TPR@1%FPR':>10} "
             f"{'pooled AUC':>11} {'pooled TPR@1%FPR':>17}"]
    for attack in ("lira_online", "lira_offline", "min_k_pp", "loss"):
        lines.append(f"  {attack:<26} {g(f'mia/{attack}/auc'):>5} {g(f'mia/{attack}/tpr@fpr=0.01'):>10} "
                     f"{g(f'mia_pooled/{attack}/auc'):>11} {g(f'mia_pooled/{attack}/tpr@fpr=0.01'):>17}")
    return lines
