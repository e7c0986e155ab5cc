"""One training phase, resumable, used by every recipe that trains.

Layout of a phase directory: ``checkpoints/step-NNNNNN/`` while training (the newest is resumed
after an interruption), then ``final/model.safetensors`` and ``final/training.json`` (the
per-step history) — and the probe's state when one watched the phase. A rerun finds ``final/``
and reloads it instead of training.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mnemoscope import rundir
from mnemoscope.errors import MnemoscopeError
from mnemoscope.train.loop import TrainConfig, train


def train_phase(model, batch_fn: Callable[[int], object], tcfg: TrainConfig, out: Path, log=print, *,
                probe=None, loss_fn=None, name: str | None = None) -> list[dict]:
    """Train ``model`` for ``tcfg.steps`` steps in ``out`` (resuming), or reload the finished phase.
    Logs the loss five times per phase under ``name`` (default: the directory's name)."""
    from safetensors.torch import load_model, save_model

    out = Path(out)
    name = name or out.name
    final = out / "final"
    done = final / "training.json"
    if done.exists():
        load_model(model, str(final / "model.safetensors"), strict=False)
        model.eval()
        if probe is not None:
            probe.restore(final)
        log(f"{name}: already complete, reusing the saved model")
        return json.loads(done.read_text())["history"]
    every = max(1, tcfg.steps // 5)
    extra = {"loss_fn": loss_fn} if loss_fn is not None else {}
    history = train(model, batch_fn, tcfg, out, log=log, probe=probe,
                    on_step=lambda s, r: log(f"{name} step {s + 1}/{tcfg.steps} loss {r['loss']:.3f}")
                    if (s + 1) % every == 0 else None, **extra)
    if len(history) < tcfg.steps:
        raise MnemoscopeError("training stopped early; rerun the same command to resume")
    final.mkdir(parents=True, exist_ok=True)
    with rundir.atomic_path(final / "model.safetensors") as tmp:
        save_model(model, str(tmp))
    if probe is not None:
        probe.save(final)
    rundir.write_json(done, {"history": history})
    return history
