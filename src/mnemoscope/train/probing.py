"""Probing during training: a probe schedule and a hook that scores every probe at those steps.

Schedule (docs/metrics.md): every step in [t_i, t_i + window] for each injection step t_i;
after the last injection, log-spaced offsets t_last + {1..10, 20..100 by 10, 200..1000 by 100, …}
up to the end of training; before the first injection, step 0 and log-spaced steps 1, 2, …, 10,
20, … below it. The value recorded
at step t is measured *before* the update of step t (so ℓ(t_i) is the loss just before the
injected text is learned); step ``total_steps`` is the model after the last update.

:class:`Prober` scores all probes with one batched ``Engine.score_encoded`` call per probed step
(the probes are encoded once, with the engine's BOS policy and context/target split), in eval mode
under ``torch.inference_mode`` and puts the model back in the mode it was in. It never touches the
RNG or the weights, so training with and without probing gives the same weights.

Rows (long format, one per probe and probed step): step, probe_id, kind, group, target_nll (mean
NLL of the target tokens), first_token_nll, n_target_tokens. Recipes write them to
``probe_curves.parquet``; ``curves.parquet`` keeps the per-step training loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope.errors import MnemoscopeError
from mnemoscope.files import write_parquet
from mnemoscope.metrics.dynamics import log_spaced_steps

COLUMNS = ("step", "probe_id", "kind", "group", "target_nll", "first_token_nll", "n_target_tokens")
ROWS_FILE = "probe_rows.parquet"


def probe_schedule(injection_steps: Sequence[int], total_steps: int, window: int = 50) -> list[int]:
    """Sorted probed steps in [0, total_steps] (see the module docstring)."""
    if total_steps < 1:
        raise MnemoscopeError(f"total_steps must be ≥ 1 (got {total_steps})")
    if window < 0:
        raise MnemoscopeError(f"probe window must be ≥ 0 steps (got {window})")
    inj = sorted(int(s) for s in injection_steps)
    if inj and (inj[0] < 0 or inj[-1] >= total_steps):
        raise MnemoscopeError(f"injection steps must lie in [0, {total_steps}) (got {inj[0]}..{inj[-1]})")
    steps = {0, total_steps}
    first = inj[0] if inj else total_steps
    if first >= 1:
        steps.update(log_spaced_steps(first))
    for t in inj:
        steps.update(range(t, min(t + window, total_steps) + 1))
    if inj and total_steps > inj[-1]:
        steps.update(inj[-1] + k for k in log_spaced_steps(total_steps - inj[-1]))
    return sorted(s for s in steps if 0 <= s <= total_steps)


class Prober:
    """Scores (prefix, target) probes at scheduled steps; implements ``train``'s ProbeHook.

    ``probes``: dicts with id, kind, group, prefix, target (other keys are ignored).
    ``own_steps``: probe id → the steps at which that probe is scored (a subset of ``steps``, e.g.
    its own :func:`probe_schedule` when people are injected on shifted schedules); probes not named
    are scored at every step of ``steps``.
    """

    def __init__(self, tokenizer, probes: Iterable[dict], steps: Iterable[int], *, bos: str = "auto",
                 max_batch_size: int = 256, max_tokens: int = 65536,
                 own_steps: dict[str, Iterable[int]] | None = None):
        from mnemoscope.engine.encoding import Encoder

        self.probes = [dict(p) for p in probes]
        if not self.probes:
            raise MnemoscopeError("no probes to measure: give at least one (prefix, target) probe")
        for p in self.probes:
            missing = [k for k in ("id", "prefix", "target") if not isinstance(p.get(k), str)]
            if missing:
                raise MnemoscopeError(f"probe {p.get('id', '?')!r} lacks string field(s) {', '.join(missing)}")
        self.tokenizer = tokenizer
        self.steps = set(int(s) for s in steps)
        self.own_steps = {pid: {int(s) for s in v} for pid, v in (own_steps or {}).items()}
        self.bos = bos
        self.max_batch_size, self.max_tokens = max_batch_size, max_tokens
        encoder = Encoder(tokenizer, bos=bos)
        self.items = [encoder.encode_pair(p["prefix"], p["target"]) for p in self.probes]
        self.rows: list[dict] = []
        self.seconds = 0.0
        self.calls = 0

    def wants(self, step: int) -> bool:
        return step in self.steps

    def measure(self, step: int, model) -> list[dict]:
        """Score every probe due at ``step`` (one batched engine call) and append the rows for ``step``."""
        import time

        from mnemoscope.engine import Engine

        began = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            engine = Engine(model, self.tokenizer, bos=self.bos, max_batch_size=self.max_batch_size,
                            max_tokens=self.max_tokens)
            due = [i for i, p in enumerate(self.probes) if step in self.own_steps.get(p["id"], self.steps)]
            scores = engine.score_encoded([self.items[i] for i in due]) if due else []
        finally:
            model.train(was_training)
        new = []
        for p, s in zip([self.probes[i] for i in due], scores):
            lp = s.logprobs.astype(np.float64)
            new.append({"step": int(step), "probe_id": p["id"], "kind": p.get("kind"), "group": p.get("group"),
                        "target_nll": float(-lp.mean()), "first_token_nll": float(-lp[0]),
                        "n_target_tokens": int(lp.size)})
        self.rows = [r for r in self.rows if r["step"] != step] + new
        self.seconds += time.perf_counter() - began
        self.calls += 1
        return new

    def frame(self) -> pd.DataFrame:
        """All rows so far, sorted by step then probe order (long format)."""
        if not self.rows:
            return pd.DataFrame({c: [] for c in COLUMNS})
        return pd.DataFrame(self.rows, columns=list(COLUMNS)).sort_values("step", kind="mergesort").reset_index(drop=True)

    def save(self, directory: Path) -> None:
        write_parquet(Path(directory) / ROWS_FILE, self.frame())

    def restore(self, directory: Path) -> None:
        path = Path(directory) / ROWS_FILE
        if not path.is_file():
            raise MnemoscopeError(f"{path} is missing: the checkpoint was written without probing; delete it to start over")
        frame = pd.read_parquet(path)
        frame = frame.astype(object).where(frame.notna(), None)
        self.rows = frame.to_dict("records")
        for r in self.rows:
            r["step"], r["n_target_tokens"] = int(r["step"]), int(r["n_target_tokens"])
