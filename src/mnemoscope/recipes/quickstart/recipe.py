"""Quickstart: write canaries into a tiny model at known doses, then audit it by dose.

Read top to bottom: corpus → tokenizer → canaries → injection plan → train → score + extract
→ (with ``lira.shadows``: shadow models and LiRA, ``recipes.quickstart_lira``) → metrics by dose
→ run directory → report. Expected: extraction rate and membership AUC rise
with dose (dose 0 = held-out controls from the same generator).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import resolve
from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import text_ids
from mnemoscope.families.blind import blind_baseline
from mnemoscope.families.blind import headline as blind_headline
from mnemoscope.families.extraction import extraction_table
from mnemoscope.families.membership import membership_metrics, score_texts
from mnemoscope.lab.factory import lab_model, lab_tokenizer, save_model_dir
from mnemoscope.lab.tiny import count_parameters
from mnemoscope.probes.canaries import check_canary_settings, make_canaries
from mnemoscope.probes.corpus import background_documents
from mnemoscope.recipes import lira, quickstart_lira
from mnemoscope.recipes.common import finish_lab_run
from mnemoscope.summary import fmt
from mnemoscope.train.data import InjectedData, plan_injections
from mnemoscope.train.loop import TrainConfig
from mnemoscope.train.packing import pack_background
from mnemoscope.train.phase import train_phase

DEFAULTS = {
    "seed": 0,
    "model": {"size": "tiny", "vocab_size": 8192, "device": "auto"},
    "corpus": {"n_docs": 3000},
    "canaries": {
        "doses": [0, 1, 4, 16, 64],
        "per_dose": 8,
        "n_controls": 32,
        "kinds": ["passphrase", "random_tokens"],
        "passphrase_words": 6,
        "random_tokens": 12,
    },
    # Small batches of short rows: many optimizer steps per second on a CPU, and each canary's
    # tokens are a larger share of its batch (see docs/quickstart.md for the tuning runs).
    "train": {"steps": 500, "batch_size": 8, "seq_len": 64, "lr": 3e-3, "warmup": 20, "checkpoint_every": 100},
    "audit": {"k": 0.2, "prefix_fraction": 0.5, "max_suffix": 32, "n_boot": 1000},
    # Shadow-model LiRA (recipes.quickstart_lira): off by default; each shadow is one more training run.
    "lira": dict(lira.DEFAULTS),
}


def run(out: str | Path = "runs/quickstart", overrides: dict | None = None, log=print) -> Path:
    cfg = resolve(DEFAULTS, overrides)
    check_canary_settings(cfg["canaries"])
    quickstart_lira.check(cfg)
    run = rundir.Run(out, cfg, "quickstart")
    seed = cfg["seed"]

    with run.phase("data"):
        docs = background_documents(cfg["corpus"]["n_docs"], seed=seed)
        tokenizer = lab_tokenizer(run.out, docs, cfg)
        c = cfg["canaries"]
        canaries = make_canaries(
            c["per_dose"], tuple(c["doses"]), kinds=tuple(c["kinds"]), n_controls=c["n_controls"],
            passphrase_words=c["passphrase_words"], random_tokens=c["random_tokens"], tokenizer=tokenizer, seed=seed,
        )
        t = cfg["train"]
        doc_ids = {k.id: text_ids(tokenizer, k.text) for k in canaries}
        plan = plan_injections(
            {k: len(v) for k, v in doc_ids.items()}, {k.id: k.dose for k in canaries if k.dose > 0},
            steps=t["steps"], batch_size=t["batch_size"], seq_len=t["seq_len"], seed=seed,
        )
        background = pack_background(
            text_ids(tokenizer, docs), n_rows=t["steps"] * t["batch_size"],
            seq_len=t["seq_len"], eos_id=tokenizer.eos_token_id, seed=seed,
        )
        data = InjectedData(background, t["batch_size"], plan, doc_ids, tokenizer.eos_token_id)

    model = lab_model(cfg["model"], tokenizer, seed=seed, device=cfg["model"]["device"])
    log(f"model: {count_parameters(model) / 1e6:.2f} M parameters, {len(tokenizer)} tokens; "
        f"{len(plan)} canary injections over {t['steps']} steps")
    with run.phase("train"):
        history = train_phase(model, data.batch, TrainConfig(seed=seed, **t), run.out / "train", log, name="train")
        save_model_dir(model, run.out / "model")  # with the tokenizer already there: a model users can audit

    with run.phase("audit"):
        engine = Engine(model, tokenizer)
        texts = [k.text for k in canaries]
        a = cfg["audit"]
        samples = pd.DataFrame([k.to_dict() for k in canaries])
        samples["label"] = (samples["dose"] > 0).astype(int)
        samples = pd.concat([samples, score_texts(engine, texts, k=a["k"])], axis=1)
        samples = pd.concat(
            [samples, extraction_table(engine, texts, prefix_fraction=a["prefix_fraction"], max_suffix=a["max_suffix"])],
            axis=1,
        )
    if cfg["lira"]["shadows"]:
        with run.phase("shadows"):
            samples = quickstart_lira.attach(run, cfg, canaries, samples, log)
    with run.phase("metrics"):
        run.metrics.update(dose_metrics(samples, n_boot=a["n_boot"], seed=seed))
        blind = blind_baseline(texts, samples["label"].to_numpy(), n_boot=a["n_boot"], seed=seed)  # no model
        run.metrics.update(blind.metrics)
        for key, why in blind.notes.items():
            run.note(key, why)
        if cfg["lira"]["shadows"]:
            run.metrics.update(quickstart_lira.target_gaps(run.metrics))

    curves = pd.DataFrame(history)
    curves["injected_tokens"] = [data.injected_tokens_with_loss(s) for s in curves["step"]]
    run.add_table("samples", samples)
    run.add_table("curves", curves)
    return finish_lab_run(run, model, history, extra={"bos": engine.bos})


def dose_metrics(samples: pd.DataFrame, *, n_boot: int, seed: int) -> dict[str, float]:
    """Membership AUC of each dose's canaries against the dose-0 controls, and extraction rates by dose."""
    metrics: dict[str, float] = {}
    controls = samples[samples["dose"] == 0]
    score_cols = [c for c in samples.columns if c.startswith("score/")]  # ATTACKS, and LiRA's when run
    members = samples[samples["dose"] > 0]
    both = pd.concat([members, controls])
    metrics.update(membership_metrics(both["label"].to_numpy(), both[score_cols], n_boot=n_boot, seed=seed))
    for dose in sorted(samples["dose"].unique()):
        group = samples[samples["dose"] == dose]
        metrics[f"extraction/exact/rate@dose={dose}"] = float(group["extraction/exact"].mean())
        metrics[f"extraction/memorization/mean@dose={dose}"] = float(group["extraction/memorization"].mean())
        metrics[f"mia/loss/mean_nll@dose={dose}"] = float(group["nll"].mean())
        if dose == 0:
            continue
        pair = pd.concat([group, controls])
        metrics.update(
            membership_metrics(pair["label"].to_numpy(), pair[score_cols], suffix=f"@dose={dose}", n_boot=n_boot, seed=seed)
        )
    return metrics


def summary(out: Path) -> str:
    """The dose table printed when the run ends, then the blind baseline (and its verdict)."""
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    doses = sorted({int(k.split("@dose=")[1]) for k in metrics if "@dose=" in k})
    lines = [f"{'dose':>5} {'exact extraction':>17} {'memorization':>13} {'AUC min_k_pp':>13} {'AUC loss':>9}"]
    for d in doses:
        def g(key: str) -> str:
            return fmt(metrics.get(key), 2, whole="none")
        lines.append(f"{d:>5} {g(f'extraction/exact/rate@dose={d}'):>17} {g(f'extraction/memorization/mean@dose={d}'):>13} "
                     f"{g(f'mia/min_k_pp/auc@dose={d}'):>13} {g(f'mia/loss/auc@dose={d}'):>9}")
    if metrics.get("lira/shadows"):
        lines += quickstart_lira.summary_lines(metrics)
    return "\n".join(lines + blind_headline(metrics))

