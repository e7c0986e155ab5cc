"""The training loop: AdamW, warmup + cosine/constant schedule, gradient accumulation, bf16
autocast, checkpoints, exact resume, probing hooks, and multi-process data parallelism.

Checkpoints live in ``<out>/checkpoints/step-NNNNNN/`` (model weights as safetensors, optimizer
state, trainer state, and the probe rows measured so far) and are written to a temporary
directory then renamed, so an interrupted run leaves either a complete checkpoint or none.
``train`` resumes from the newest one.

One optimizer step = one *global* batch ``batch_fn(step)``. Under an ``accelerate.Accelerator``
with W processes, process r takes the r-th of W equal contiguous slices of the global batch; each
process then splits its slice into ``grad_accum`` equal micro-batches and back-propagates
``loss_k / grad_accum`` for each. Gradients are averaged over processes, so the update equals one
step on the whole global batch (within float tolerance) whatever W and ``grad_accum`` are, as
long as each micro-batch loss is a mean over the same number of tokens (true for token rows).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.files import atomic_directory


@dataclass
class TrainConfig:
    steps: int = 100
    batch_size: int = 16  # global batch (rows per optimizer step, over all processes)
    seq_len: int = 128
    lr: float = 1e-3
    warmup: int = 10
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    checkpoint_every: int = 50
    keep_checkpoints: int = 1
    seed: int = 0
    grad_accum: int = 1  # micro-batches per optimizer step (per process)
    bf16: bool = False  # bf16 autocast on CUDA; no effect on CPU

    def validate(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "grad_accum"):
            if getattr(self, name) < 1:
                raise MnemoscopeError(f"train.{name} must be ≥ 1 (got {getattr(self, name)})")
        if self.schedule not in ("cosine", "constant"):
            raise MnemoscopeError(f"unknown train.schedule '{self.schedule}': use cosine or constant")
        if not self.lr > 0 or self.lr == float("inf"):  # NaN fails `> 0`
            raise MnemoscopeError(f"train.lr must be a finite number > 0 (got {self.lr})")


class ProbeHook(Protocol):
    """What ``train(probe=...)`` calls: measure before the update of step t (and at t = steps
    after the last update), and store/restore its rows with each checkpoint."""

    def wants(self, step: int) -> bool: ...

    def measure(self, step: int, model) -> None: ...

    def save(self, directory: Path) -> None: ...

    def restore(self, directory: Path) -> None: ...


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to lr over ``warmup`` steps, then constant or cosine down to min_lr_ratio·lr."""
    if cfg.warmup > 0 and step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    floor = cfg.min_lr_ratio
    return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _checkpoints(out: Path) -> list[Path]:
    root = out / "checkpoints"
    if not root.exists():
        return []
    done = [p for p in root.iterdir() if p.name.startswith("step-") and (p / "trainer_state.json").exists()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def save_checkpoint(out: Path, step: int, model, optimizer, history: list[dict], keep: int, probe=None) -> Path:
    from safetensors.torch import save_model

    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    with atomic_directory(final) as tmp:  # a checkpoint folder is whole or absent
        save_model(model, str(tmp / "model.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        if probe is not None:
            probe.save(tmp)
        state = {"step": step, "history": history, "rng": torch.get_rng_state().tolist()}
        (tmp / "trainer_state.json").write_text(json.dumps(state))
    for old in _checkpoints(out)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model, optimizer, probe=None) -> tuple[int, list[dict]]:
    from safetensors.torch import load_model

    load_model(model, str(path / "model.safetensors"))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    if probe is not None:
        probe.restore(path)
    state = json.loads((path / "trainer_state.json").read_text())
    torch.set_rng_state(torch.tensor(state["rng"], dtype=torch.uint8))
    return state["step"], state["history"]


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )


def causal_lm_loss(model, batch) -> "torch.Tensor":
    """Mean next-token NLL over a [batch, seq_len] tensor of token rows (every position but the first)."""
    rows = torch.as_tensor(batch, dtype=torch.long, device=next(model.parameters()).device)
    return model(input_ids=rows, labels=rows).loss


def split_batch(batch, parts: int, index: int | None = None):
    """Split a batch along its first axis into ``parts`` equal slices (all, or only slice ``index``).

    Works for arrays/tensors, for objects with a ``split_rows(parts)`` method, and for dicts,
    lists and tuples of them (each split alike); in a dict, scalars and None (a step number, an
    absent retain batch) go to every slice unchanged.
    """
    if parts == 1:
        return batch if index is not None else [batch]
    if hasattr(batch, "split_rows"):
        out = batch.split_rows(parts)
    elif isinstance(batch, dict):
        pieces = {k: [v] * parts if v is None or isinstance(v, (int, float, str)) else split_batch(v, parts)
                  for k, v in batch.items()}
        out = [{k: pieces[k][i] for k in batch} for i in range(parts)]
    elif isinstance(batch, (list, tuple)):
        pieces = [split_batch(v, parts) for v in batch]
        out = [type(batch)(p[i] for p in pieces) for i in range(parts)]
    elif isinstance(batch, (np.ndarray, torch.Tensor)):
        n = batch.shape[0]
        if n % parts:
            raise MnemoscopeError(
                f"a batch of {n} rows does not split into {parts} equal parts (processes × train.grad_accum): "
                "make train.batch_size a multiple of it"
            )
        size = n // parts
        out = [batch[i * size : (i + 1) * size] for i in range(parts)]
    else:
        raise MnemoscopeError(
            f"cannot split a batch of type {type(batch).__name__} for gradient accumulation or several "
            "processes: return an array, a tensor, or a dict/list of them from batch_fn"
        )
    return out if index is None else out[index]


def _autocast(model, cfg: TrainConfig):
    device = next(model.parameters()).device
    if cfg.bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(
    model,
    batch_fn: Callable[[int], object],
    cfg: TrainConfig,
    out: Path,
    *,
    loss_fn: Callable[[object, object], "torch.Tensor | tuple[torch.Tensor, dict]"] = causal_lm_loss,
    on_step: Callable[[int, dict], None] | None = None,
    stop_after: int | None = None,
    log: Callable[[str], None] | None = None,
    probe: ProbeHook | None = None,
    accelerator=None,
) -> list[dict]:
    """Train for ``cfg.steps`` steps on ``loss_fn(model, batch_fn(step))``.

    ``batch_fn`` returns the global batch, whatever ``loss_fn`` takes (default: [batch, seq_len]
    token rows and the causal LM loss); it is split into micro-batches when ``cfg.grad_accum > 1``
    or several processes run (see the module docstring), and passed unchanged otherwise.
    ``loss_fn`` may return ``(loss, extras)``; extras (floats) join the history. Returns the
    per-step history (step, loss, lr, extras; loss and extras averaged over micro-batches and
    processes). Resumes from the newest checkpoint in ``out``. ``stop_after`` ends early after
    that many steps (used to test interruption). ``probe`` measures the model before the update of
    each step it wants (and after the last update, as step ``cfg.steps``) in eval mode.
    ``accelerator``: an ``accelerate.Accelerator`` for multi-process data parallelism.
    """
    cfg.validate()
    _check_sharding(accelerator)
    out = Path(out)
    torch.manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg)
    start, history = 0, []
    existing = _checkpoints(out)
    if existing:
        start, history = load_checkpoint(existing[-1], model, optimizer, probe)
        if log:
            log(f"resuming from {existing[-1].name}")
    world, rank, main = 1, 0, True
    raw_model = model
    if accelerator is not None:
        world, rank, main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
        model, optimizer = accelerator.prepare(model, optimizer)
    accum = cfg.grad_accum
    model.train()
    done_now = 0
    for step in range(start, cfg.steps):
        if probe is not None and main and probe.wants(step):
            probe.measure(step, raw_model)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = batch_fn(step)
        shard = split_batch(batch, world, rank) if world > 1 else batch
        micro = split_batch(shard, accum) if accum > 1 else [shard]
        optimizer.zero_grad(set_to_none=True)
        total, extras_sum = 0.0, {}
        for k, part in enumerate(micro):
            sync = contextlib.nullcontext()
            if accelerator is not None and k < accum - 1:
                sync = accelerator.no_sync(model)
            with sync:
                with _autocast(raw_model, cfg):
                    result = loss_fn(model, part)
                loss, extras = result if isinstance(result, tuple) else (result, {})
                if not torch.isfinite(loss):
                    raise MnemoscopeError(f"training loss became {loss.item()} at step {step}: lower train.lr")
                scaled = loss / accum if accum > 1 else loss
                if accelerator is not None:
                    accelerator.backward(scaled)
                else:
                    scaled.backward()
            total += float(loss.detach().float().item())
            for key, value in extras.items():
                extras_sum[key] = extras_sum.get(key, 0.0) + float(value)
        if cfg.grad_clip > 0:
            if accelerator is not None:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            else:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        values = {"loss": total / len(micro), **{k: v / len(micro) for k, v in extras_sum.items()}}
        if world > 1:
            values = _mean_over_processes(accelerator, values)
        record = {"step": step, "loss": values.pop("loss"), "lr": lr_at(step, cfg), **values}
        history.append(record)
        if on_step:
            on_step(step, record)
        done_now += 1
        last = step + 1 == cfg.steps
        if last and probe is not None and main and probe.wants(cfg.steps):
            probe.measure(cfg.steps, raw_model)
        if (cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0) or last:
            if main:
                save_checkpoint(out, step + 1, raw_model, optimizer, history, cfg.keep_checkpoints, probe)
            if accelerator is not None:
                accelerator.wait_for_everyone()
        if stop_after is not None and done_now >= stop_after:
            break
    raw_model.eval()
    return history


def _check_sharding(accelerator) -> None:
    """Refuse parameter/optimizer sharding (FSDP, DeepSpeed): checkpoints here are the main
    process's full weights and optimizer state, which sharded processes do not hold."""
    kind = str(getattr(accelerator, "distributed_type", "")).rsplit(".", 1)[-1]
    if kind in ("FSDP", "DEEPSPEED"):
        raise MnemoscopeError(
            f"train: {kind} sharding is not supported by the training loop's checkpoints (they save the main "
            "process's full weights and optimizer state); launch with data parallelism instead "
            "(accelerate launch --multi_gpu, with bf16, gradient checkpointing or LoRA to fit memory)")


def finish_distributed() -> None:
    """End the process group a multi-process run started (``accelerate launch``, ``torchrun``).
    Call it once at the end of the script: without it, gloo processes can abort at exit."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _mean_over_processes(accelerator, values: dict[str, float]) -> dict[str, float]:
    keys = sorted(values)
    device = accelerator.device
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    t = accelerator.reduce(t, reduction="mean")
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def training_config_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)
