"""A pretraining phase shared by runs: train a lab model on background text once, reuse it after.

Chang et al. (2024) inject facts into a model mid-pretraining, whose language-model loss has
flattened; a random-init lab model is still learning the language while facts are injected, so a
never-seen control drifts as much as the injected probes move. :func:`pretrained_start` trains the
lab model (tokenizer included) on the background texts for ``pretrain.steps`` steps in a cache
directory named by a fingerprint of everything that determines it, and every later run with the
same settings — another seed, another group — loads it instead of training again.

Concurrent runs (seeds in parallel processes) wait on a lock file: the first trains, the others
then find ``train/final`` and load it. The cache holds ``model/`` (tokenizer), ``train/`` (the
phase: checkpoints, then ``final/``) and ``pretrain.json`` (settings and loss summary).
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mnemoscope import rundir
from mnemoscope.lab.factory import lab_model, lab_tokenizer
from mnemoscope.provenance import config_sha256
from mnemoscope.train.loop import TrainConfig
from mnemoscope.train.packing import pack_corpus
from mnemoscope.train.phase import train_phase


def fingerprint(settings: dict) -> str:
    """12 hex digits naming ``settings`` (a JSON-able dict; key order does not matter): the first
    digits of ``provenance.config_sha256``, the hash a run's provenance records for its config."""
    return config_sha256(settings)[:12]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def loss_flatness(history: list[dict], tail: float = 0.2) -> dict[str, float]:
    """Mean training loss over the last ``tail`` share of steps and its least-squares slope there,
    in nats per 1,000 steps (≈ 0: the loss has flattened)."""
    losses = np.array([h["loss"] for h in history], dtype=np.float64)
    k = max(2, int(round(len(losses) * tail)))
    y = losses[-k:]
    x = np.arange(len(losses) - k, len(losses), dtype=np.float64)
    slope = float(np.polyfit(x, y, 1)[0]) * 1000.0
    return {"final_loss": float(y.mean()), "slope_per_1k_steps": slope, "tail_steps": k}


def pretrained_start(model_cfg: dict, train: dict, texts: list[str], *, steps: int, seed: int, cache: Path,
                     settings: dict, log=print):
    """(model, tokenizer, summary): the lab model of ``model_cfg`` pretrained on ``texts`` for ``steps``
    steps (``train``: batch_size, seq_len, lr, warmup, schedule, checkpoint_every) under ``seed``.

    ``cache``: the folder holding one directory per fingerprint of ``settings`` (which must name
    everything that decides ``texts``) with the model section, the train settings, steps and seed.
    """
    tcfg = TrainConfig(seed=seed, steps=steps, **{k: train[k] for k in
                                                  ("batch_size", "seq_len", "lr", "warmup", "schedule",
                                                   "checkpoint_every") if k in train})
    key = fingerprint({"settings": settings, "model": model_cfg, "train": tcfg.__dict__})
    where = Path(cache) / f"pretrain-{key}"
    with _locked(Path(cache) / f"pretrain-{key}.lock"):
        tokenizer = lab_tokenizer(where, texts, {"model": model_cfg})
        model = lab_model(model_cfg, tokenizer, seed=seed, device=model_cfg.get("device"))
        rows = None  # a finished phase is reloaded without a batch: pack the text only to train
        if not (where / "train" / "final" / "training.json").exists():
            log(f"pretraining {steps} steps into {where} (reused by later runs with the same settings)")
            rows = pack_corpus(texts, tokenizer, n_rows=steps * tcfg.batch_size, seq_len=tcfg.seq_len,
                               batch_size=tcfg.batch_size, seed=seed)
        history = train_phase(model, lambda s: rows[s * tcfg.batch_size:(s + 1) * tcfg.batch_size], tcfg,
                              where / "train", log, name="pretrain")
        summary = {"dir": str(where), "fingerprint": key, "steps": steps, **loss_flatness(history)}
        if not (where / "pretrain.json").exists():
            rundir.write_json(where / "pretrain.json", {"summary": summary, "settings": settings})
    return model, tokenizer, summary
