"""Shadow models for LiRA: K models trained like the target on random halves of a candidate pool.

Any lab recipe whose members it chose can use it (``recipes.lira`` runs the attack):

1. ``shadow_keep(K, n, seed)`` — which candidates each shadow trains on: every candidate is in
   exactly ⌊K/2⌋ shadows (Carlini et al.'s split: per candidate, a random order of the shadows,
   the first half keep it);
2. ``check_shadow_memory(...)`` — refuses, before any run directory or training, a plan whose
   shadows training at once (``min(K, lira.workers)``) do not fit in the free memory, with the
   estimate (``training_bytes``);
3. ``run_shadows(jobs, workers=, device=)`` (through ``map_jobs``, which any picklable per-shadow
   function can use: the unlearning lab's U-LiRA does) — trains each shadow through the one training phase
   (``train.phase.train_phase``: checkpoints, resume, ``final/`` reloaded by a rerun) and scores
   the candidates with it (``families.membership.attack_frame``: every cheap attack's score, and
   the NLL LiRA's confidence reads). ``workers`` > 1 runs shadows in that many spawned processes,
   one device each (``engine.workers.assign_devices``: a GPU each, or one CPU core each at one
   thread).

A recipe describes a shadow by a ``ShadowJob`` whose ``setup(index, keep)`` builds the model,
tokenizer, batch function and ``TrainConfig`` for that inclusion mask. ``setup`` must be picklable
(a module-level function or a ``functools.partial`` of one) so that worker processes can run it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope.errors import MnemoscopeError

GIB = 1024 ** 3


def shadow_keep(n_shadows: int, n_examples: int, seed: int) -> np.ndarray:
    """Boolean (K, n): ``keep[j, i]`` = candidate i is in shadow j's training data. Every column
    has exactly ⌊K/2⌋ True: uniform draws per (shadow, candidate), ranked down each column, the
    ⌊K/2⌋ lowest ranks kept (as the reference's ``keep.argsort(0) < K·pkeep``, pkeep = ½)."""
    if n_shadows < 1 or n_examples < 0:
        raise MnemoscopeError(f"shadow_keep: need ≥ 1 shadow and ≥ 0 examples (got {n_shadows}, {n_examples})")
    draws = np.random.default_rng(seed).random((n_shadows, n_examples))
    ranks = draws.argsort(axis=0).argsort(axis=0)
    return ranks < n_shadows // 2


def llama_parameters(*, vocab: int, hidden: int, layers: int, intermediate: int) -> int:
    """Parameters of the lab's Llama (tied embeddings): V·h + L·(4h² + 3h·I + 2h) + h."""
    return vocab * hidden + layers * (4 * hidden * hidden + 3 * hidden * intermediate + 2 * hidden) + hidden


def training_bytes(n_params: int, *, batch_size: int, seq_len: int, hidden: int, layers: int,
                   intermediate: int, heads: int, vocab: int) -> int:
    """Estimated peak bytes to train one float32 model with AdamW: 16 B per parameter (weights,
    gradients, the two Adam moments) plus the activations kept for the backward pass,
    4 B × batch × seq × (L × (8h + 3I + heads·seq) + 3V) (per layer: the block's inputs, q, k, v,
    attention output and norms ≈ 8h, the MLP's three I-wide tensors, the attention scores; then
    the logits, their log-softmax and its gradient). An estimate, not a measurement."""
    per_token = layers * (8 * hidden + 3 * intermediate + heads * seq_len) + 3 * vocab
    return int(16 * n_params + 4 * batch_size * seq_len * per_token)


def lab_training_bytes(*, vocab: int, hidden: int, layers: int, intermediate: int, heads: int, batch_size: int,
                       seq_len: int) -> int:
    """:func:`training_bytes` of the lab's Llama of these sizes (:func:`llama_parameters`): what one
    shadow needs to train, for every recipe that plans shadows (LiRA's and U-LiRA's)."""
    n_params = llama_parameters(vocab=vocab, hidden=hidden, layers=layers, intermediate=intermediate)
    return training_bytes(n_params, batch_size=batch_size, seq_len=seq_len, hidden=hidden, layers=layers,
                          intermediate=intermediate, heads=heads, vocab=vocab)


def available_bytes(device: str) -> int | None:
    """Free memory where a shadow trains: the smallest free GPU memory over the GPUs (CUDA),
    else MemAvailable of /proc/meminfo (None where neither can be read: the check is skipped)."""
    import torch

    from mnemoscope.engine.loading import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        return min(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_shadow_memory(n_shadows: int, workers: int, per_model: int, free: int | None, where: str,
                        key: str = "lira") -> None:
    """Refuse when ``min(K, workers)`` shadows training at once need more than 90% of ``free`` bytes
    (a GPU each: the per-GPU need is one model; on a CPU they share the machine's memory). ``key``:
    the config section named in the message (``lira``, ``ulira``)."""
    if free is None or n_shadows < 1:
        return
    at_once = 1 if where == "cuda" else min(n_shadows, workers)
    need = at_once * per_model
    if need > 0.9 * free:
        raise MnemoscopeError(
            f"{key}.shadows={n_shadows} with {key}.workers={workers}: {at_once} shadow model(s) training at once "
            f"need ≈ {need / GIB:.2f} GiB ({per_model / GIB:.2f} GiB each: weights, gradients, Adam state, "
            f"activations) but {free / GIB:.2f} GiB is free on {where}; lower {key}.workers, train.batch_size "
            f"or the model size")


def check_workers(workers: int, device: str, key: str = "lira") -> None:
    """``<key>.workers`` processes need as many GPUs, or CPU cores at one thread each."""
    from mnemoscope.engine.workers import assign_devices

    if workers <= 1:
        return
    try:
        assign_devices(device, workers)
    except MnemoscopeError as exc:
        raise MnemoscopeError(f"{key}.workers={workers}: {exc}".replace("--workers", f"{key}.workers")) from None


@dataclass(frozen=True)
class ShadowJob:
    """One shadow: ``setup(index, keep)`` → (model, tokenizer, batch_fn, TrainConfig); the model
    trains in ``out`` and then scores ``texts`` (Min-K% fraction ``k``)."""

    index: int
    out: Path
    setup: Callable
    keep: np.ndarray
    texts: tuple[str, ...]
    k: float = 0.2


def train_and_score(job: ShadowJob, device: str = "cpu", log=print) -> pd.DataFrame:
    """Train (or reload) one shadow and score the candidates: ``attack_frame`` columns, one row
    per text in ``job.texts`` order."""
    from mnemoscope.engine import Engine
    from mnemoscope.families.membership import attack_frame
    from mnemoscope.train.phase import train_phase

    model, tokenizer, batch_fn, tcfg = job.setup(job.index, job.keep)
    model = model.to(device)
    train_phase(model, batch_fn, tcfg, job.out, log, name=f"shadow {job.index}")
    model.eval()
    texts = list(job.texts)
    return attack_frame(texts, Engine(model, tokenizer).score(texts), job.k)


_DEVICE: str | None = None


def _init_worker(devices) -> None:
    import torch

    global _DEVICE
    _DEVICE = devices.get()
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


def _run_in_worker(task: tuple[Callable, object]):
    fn, job = task
    return fn(job, _DEVICE or "cpu", print)


def map_jobs(fn: Callable, jobs: list, *, workers: int = 1, device: str = "auto", log=print) -> list:
    """``[fn(job, device, log) for job in jobs]``, in job order: in this process when ``workers``
    is 1, else in ``workers`` spawned processes, one device each (a GPU each, or one CPU core each
    at one torch thread). ``fn`` and the jobs must be picklable (module-level functions, plain data)."""
    from mnemoscope.engine.loading import resolve_device
    from mnemoscope.engine.workers import assign_devices

    if workers <= 1 or len(jobs) <= 1:
        dev = str(resolve_device(device))
        return [fn(job, dev, log) for job in jobs]
    workers = min(workers, len(jobs))
    devices = assign_devices(device, workers)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for d in devices:
        queue.put(d)
    log(f"shadows: {len(jobs)} models in {workers} processes ({', '.join(devices)})")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(queue,)) as pool:
        return pool.map(_run_in_worker, [(fn, job) for job in jobs], chunksize=1)


def run_shadows(jobs: list[ShadowJob], *, workers: int = 1, device: str = "auto", log=print) -> list[pd.DataFrame]:
    """Every job's score frame (``train_and_score``), in job order, through ``map_jobs``."""
    return map_jobs(train_and_score, jobs, workers=workers, device=device, log=log)
