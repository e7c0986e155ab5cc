"""One evaluation of one model of an unlearning run — the original, the retrained model, each
method's result — shared by the lab recipe (``recipes.unlearning.lab``) and ``mnemoscope unlearn``
(``recipes.unlearning.user``).

:class:`Evaluator` holds what every model is measured on and collects what it measured:
:meth:`Evaluator.evaluate` is the six-way table with TOFU's numbers (``evaluation.six_way``), the
robustness checks, the adversarial probes, the residue probe, lm-eval tasks and the quantized
evaluation; :meth:`Evaluator.relearn` the relearning curves and the benign and in-context
relearning routes (``unlearn.stress``). Keys are ``unlearn/<model>/<metric>``; a metric not
computed is NaN with its reason in ``notes``. The recipe writes ``metrics``, ``notes`` and
:meth:`Evaluator.tables` into its run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.unlearning import relearn_recovery
from mnemoscope.unlearn import evaluation as ev
from mnemoscope.unlearn import stress


def eval_switches(e: Mapping) -> dict:
    """The ``eval`` section's switches that reproduce the published code, as ``EvalData`` fields."""
    if e["min_k_rounding"] not in ("up", "down"):
        raise MnemoscopeError(f"eval.min_k_rounding must be 'up' or 'down', got {e['min_k_rounding']!r}")
    return {"min_k_rounding": e["min_k_rounding"], "knowmem_trailing_space": bool(e["knowmem_trailing_space"]),
            "tofu_eos": bool(e["tofu_eos"])}


def prefixed(name: str, values: Mapping) -> dict:
    """``unlearn/<name>/<key>`` for every key of ``values``."""
    return {f"unlearn/{name}/{k}": v for k, v in values.items()}


@dataclass
class RelearnSet:
    """One relearning curve: fine-tune on ``learn`` and measure KnowMem on ``test_qa``. ``facts``:
    how many facts of each person ``learn`` teaches (the lab; keys ``…@facts=<n>``), None for a
    user's relearn file (keys without a suffix)."""

    facts: int | None
    learn: list
    test_qa: list[dict]


@dataclass
class Evaluator:
    """What every model of one run is measured on, and what was measured (see the module)."""

    tokenizer: object
    data: ev.EvalData
    stress: stress.Settings
    attacks: stress.Inputs
    out: Path  # relearning runs go to out/relearn/<model>/, the stress routes to out/stress/<model>/
    batch_size: int
    max_length: int
    seed: int
    probes: Sequence[Mapping] = ()
    residue_sets: Sequence | None = None  # (fit, test, control) prompts and labels: the residue probe
    lm_eval: Mapping = field(default_factory=lambda: {"tasks": [], "limit": None, "include": ""})
    relearn_sets: Sequence[RelearnSet] = ()
    relearn_steps: Sequence[int] = (5, 10, 20)
    relearn_lr: float = 1e-3
    original_state: Mapping | None = None  # the original's weights: quantization reports the weights it changes
    robust_original: bool = True  # False: the original model skips the robustness checks
    phase: Callable[[str], contextlib.AbstractContextManager] = lambda name: contextlib.nullcontext()
    metrics: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    frames: list = field(default_factory=list)
    probe_frames: list = field(default_factory=list)
    relearn_rows: list = field(default_factory=list)
    stress_rows: list = field(default_factory=list)

    def evaluate(self, name: str, model, reference: ev.Reference | None) -> dict:
        """Six ways + TOFU, robustness, adversarial probes, residue, lm-eval tasks when asked, and the
        quantized evaluation of ``model`` as ``name``; returns its values (unprefixed)."""
        engine = Engine(model, self.tokenizer)
        six, samples, notes = ev.six_way(engine, self.data, reference)
        values = dict(six)
        if name != "original" or self.robust_original:
            rob, rnotes = ev.robustness(engine, self.data)
            values.update({f"robust/{k}": v for k, v in rob.items()})
            notes.update({f"robust/{k}": r for k, r in rnotes.items()})
        if self.probes:
            adv, frame = ev.adversarial(engine, self.probes)
            values.update(adv)
            self.probe_frames.append(frame.assign(model=name))
        if self.residue_sets:
            self._residue(name, model, values, notes)
        if self.lm_eval["tasks"]:
            from mnemoscope.unlearn.lm_eval_bridge import utility

            scores = utility(model, self.tokenizer, self.lm_eval["tasks"], limit=self.lm_eval["limit"],
                             include_path=self.lm_eval["include"], seed=self.seed)
            values.update({f"utility/{k}": v for k, v in scores.items()})
        with self.phase("quantize"):
            quant, qnotes = stress.quantized_eval(model, self.tokenizer, self.data, reference, self.stress.modes,
                                                  self.attacks.retain_texts[:self.stress.max_retain_texts],
                                                  original_state=self.original_state)
        values.update(quant)
        notes.update(qnotes)
        self.metrics.update(prefixed(name, values))
        self.notes.update(prefixed(name, notes))
        self.frames.append(samples.assign(model=name))
        return values

    def _residue(self, name: str, model, values: dict, notes: dict) -> None:
        """The linear probe for residue in the hidden states (of a composite: its base model's)."""
        inner = getattr(model, "hidden_model", model)
        res = ev.residue(Engine(inner, self.tokenizer), *self.residue_sets, seed=self.seed)
        values.update({f"residue/{k}": v for k, v in res.items()})
        if inner is not model:
            notes["residue/accuracy"] = (f"{name} combines models at decoding time: the probe reads its base "
                                         "model's hidden states, which the method leaves unchanged (the original's)")

    def relearn(self, name: str, model) -> None:
        """Relearning curves (for each set: KnowMem on what was not relearned, before and after each
        step), then benign and in-context relearning (``stress.relearn_routes``)."""
        for rs in self.relearn_sets:
            if rs.test_qa:
                self._relearn_curve(name, model, rs)
            else:
                self.notes[f"unlearn/{name}/relearn/recovery"] = (
                    "the relearning curve measures KnowMem on the forget QA; the forget file has none")
        with self.phase("stress_relearn"):
            routes, rnotes, rows = stress.relearn_routes(model, self.tokenizer, self.data, self.stress,
                                                         self.attacks.benign, self.attacks.near,
                                                         self.out / "stress" / name, batch_size=self.batch_size,
                                                         max_length=self.max_length)
        self.metrics.update(prefixed(name, routes))
        self.notes.update(prefixed(name, rnotes))
        self.stress_rows.extend({"model": name, **r} for r in rows)

    def _relearn_curve(self, name: str, model, rs: RelearnSet) -> None:
        suffix = "" if rs.facts is None else f"@facts={rs.facts}"
        out = self.out / "relearn" / name / ("" if rs.facts is None else f"facts{rs.facts}")
        curve = ev.relearn_curve(model, self.tokenizer, rs.learn, rs.test_qa, self.data, out,
                                 steps=max(self.relearn_steps), eval_steps=self.relearn_steps, lr=self.relearn_lr,
                                 batch_size=self.batch_size, max_length=self.max_length)
        self.relearn_rows.extend({"model": name, **({} if rs.facts is None else {"facts": rs.facts}), **p}
                                 for p in curve)
        values = {"relearn/knowmem_before": curve[0]["knowmem"], f"relearn/knowmem_after{suffix}": curve[-1]["knowmem"]}
        rec = relearn_recovery([p["step"] for p in curve], [p["knowmem"] for p in curve])
        values.update({f"relearn/{k}{suffix}": v for k, v in rec.items()})
        if rs.facts is not None:  # the lab keeps each point; a user's curve is in its table
            values.update({f"relearn/knowmem{suffix},step={p['step']}": p["knowmem"] for p in curve[1:]})
        self.metrics.update(prefixed(name, values))

    def tables(self) -> dict[str, pd.DataFrame | list]:
        """``samples`` (the per-model frames), the relearning and stress curves, the adversarial probes."""
        tables = {"samples": self.frames, "stress_curves": pd.DataFrame(self.stress_rows)}
        if self.relearn_rows:
            tables["relearn_curves"] = pd.DataFrame(self.relearn_rows)
        if self.probe_frames:
            tables["adversarial_probes"] = pd.concat(self.probe_frames, ignore_index=True)
        return tables
