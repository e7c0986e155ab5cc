"""Apply an unlearning method on the shared training loop.

A method is a plug-in (``unlearn.methods``): its loss, what it needs and how it finishes. The
loop, checkpoints, resume and optimizer are ``mnemoscope.train.loop.train``'s. This module knows
no method by name: it turns examples into token batches, keeps a frozen reference copy when the
method needs π_ref, trains a copy when the method's result is computed from the trained weights
(task vectors), and watches the run:

- an ``evaluate(model) -> dict`` callback at step 0, every ``eval_every`` steps and at the end
  (the trade-off curve), persisted to ``curve.jsonl`` so a resumed run keeps its points;
- a stopping rule ``stop_when(point) -> bool``: the first eval point that satisfies it is
  saved (``stop.safetensors``) and becomes the result, reported with its step;
- divergence: a non-finite loss stops the run and restores the last good state (saved at every
  eval point as ``last_good.safetensors``), and the result says so.

One run is an :class:`UnlearnRun` in named phases — ``prepare`` (token batches, the reference
copy, the module to train, LoRA, the method's per-run state), ``step`` (the loss of one batch,
called by the loop), ``evaluate`` (a curve point), ``stop`` (the stopping rule on that point),
``restore`` (after a divergence) and ``finish`` (the result) — and :func:`unlearn` runs them. A
method object is shared and stateless: what it keeps during a run (RMU's layer taps and control
vector) is returned by ``Method.start``, held by the run and handed back in every ``Step``.

Examples (``unlearn.examples``) are (prompt, target) pairs: the loss covers the target's tokens
only. A plain text is ``Example("", text)`` (every token after the first is a target token).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mnemoscope import rundir
from mnemoscope.errors import MnemoscopeError
from mnemoscope.train.loop import TrainConfig, train
from mnemoscope.unlearn.adapters import apply_lora, disable_checkpointing, enable_checkpointing, require_peft
from mnemoscope.unlearn.batches import (
    BatchStream,
    TokenBatch,
    TrainItem,
    collate,
    encode_examples,
    encode_forget,
    to_device,
)
from mnemoscope.unlearn.examples import QA_TEMPLATE, Example, check_overlap, qa_examples, text_examples
from mnemoscope.unlearn.methods import METHODS, get_method
from mnemoscope.unlearn.methods.base import Method, Step

__all__ = [  # the runner's API; examples, batches and adapters are re-exported for callers that import them from here
    "BatchStream", "Diverged", "Example", "FINETUNE", "QA_TEMPLATE", "TokenBatch", "TrainItem", "UnlearnConfig",
    "UnlearnResult", "UnlearnRun", "apply_lora", "check_overlap", "collate", "disable_checkpointing",
    "enable_checkpointing", "encode_examples", "encode_forget", "finetune", "fingerprint", "make_loss_fn",
    "qa_examples", "require_peft", "resolve_hparams", "text_examples", "unlearn", "unlearn_sequence",
]

DONE = "done.json"
CURVE = "curve.jsonl"
LAST_GOOD = "last_good.safetensors"
STOP = "stop.safetensors"
START = "start.json"  # the starting model's fingerprint: a rerun from another model is refused
FINAL = "model.safetensors"


# --------------------------------------------------------------------------- the loss


class Diverged(Exception):
    """Raised inside the loop when a loss is NaN/inf (caught by :func:`unlearn`)."""

    def __init__(self, step: int, value: float):
        super().__init__(f"loss became {value} at step {step}")
        self.step, self.value = step, value


def resolve_hparams(method: str | Method, overrides: Mapping[str, object] | None) -> dict:
    """The method's defaults with ``overrides`` applied (None = keep the default); an unknown name
    lists the known ones. A value is a float unless its default is a string."""
    m = get_method(method) if isinstance(method, str) else method
    known = dict(m.defaults)
    for k, v in (overrides or {}).items():
        if k not in known and k not in m.extra_hparams:
            names = ", ".join(sorted(set(known) | set(m.extra_hparams))) or "none"
            raise MnemoscopeError(f"unlearn hparam '{k}' does not apply to method '{m.name}'; known: {names}")
        if v is None:
            continue
        if isinstance(known.get(k), str):
            known[k] = str(v)
            continue
        try:
            known[k] = float(v)
        except (TypeError, ValueError):
            raise MnemoscopeError(f"unlearn hparam '{m.name}.{k}' must be a number, got {v!r}") from None
        if not math.isfinite(known[k]) or (k == "beta" and known[k] <= 0):
            rule = "a finite number > 0 (NPO's inverse temperature)" if k == "beta" else "a finite number"
            raise MnemoscopeError(f"unlearn hparam '{m.name}.{k}' must be {rule}, got {v!r}")
    m.check(known)
    return known


def make_loss_fn(method: Method, hp: Mapping[str, float], reference=None, state=None) -> Callable:
    """``loss_fn(model, batch) -> (loss, extras)`` for the training loop; ``batch`` is the
    runner's ``{"step", "forget": TokenBatch, "retain": TokenBatch | None}``; ``state`` is the
    method's per-run state (``Method.start``), handed to it in every ``Step``. Raises
    :class:`Diverged` on a non-finite loss."""
    if method.needs_reference and reference is None:
        raise MnemoscopeError(f"method '{method.name}' needs a reference model (the model before unlearning)")
    hp = dict(hp)

    def loss_fn(model, batch):
        device = next(model.parameters()).device
        batches = {"forget": to_device(batch["forget"], device)}
        for extra in ("retain", "pair"):
            if batch.get(extra) is not None:
                batches[extra] = to_device(batch[extra], device)
        if method.needs_retain and "retain" not in batches:
            raise MnemoscopeError(f"method '{method.name}' needs a retain set; pass --retain FILE")
        loss, extras = method.loss(Step(model, reference, batches, int(batch.get("step", -1)), state), hp)
        if not torch.isfinite(loss):
            raise Diverged(int(batch.get("step", -1)), float(loss.detach()))
        return loss, extras

    return loss_fn


# --------------------------------------------------------------------------- the run


@dataclass
class UnlearnConfig:
    """One unlearning run. ``method``: a registered name (``unlearn.methods.METHODS``) or a
    :class:`Method`; ``hparams`` override its defaults (e.g. beta; RMU also takes ``layer``)."""

    method: str | Method
    steps: int = 30
    lr: float = 1e-4
    batch_size: int = 8
    max_length: int = 256
    warmup: int = 0
    schedule: str = "constant"
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    eval_every: int = 0  # 0: evaluate only before and after
    checkpoint_every: int = 0  # 0: same as eval_every (or only at the end)
    seed: int = 0
    bos: str = "auto"
    hparams: dict = field(default_factory=dict)
    lora: bool = False
    lora_rank: int = 8
    lora_alpha: float = 16.0
    gradient_checkpointing: bool = False
    eval_steps: tuple[int, ...] = ()  # evaluate after these steps too (besides eval_every and the end)

    def train_config(self) -> TrainConfig:
        every = self.checkpoint_every or self.eval_every or self.steps
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, seq_len=self.max_length, lr=self.lr,
                           warmup=self.warmup, schedule=self.schedule, min_lr_ratio=1.0 if self.schedule == "constant" else 0.1,
                           weight_decay=self.weight_decay, grad_clip=self.grad_clip, checkpoint_every=every,
                           keep_checkpoints=1, seed=self.seed)


@dataclass
class UnlearnResult:
    """What happened: steps run, per-step history, eval curve, the stop point and any divergence."""

    method: str
    steps_run: int
    history: list[dict]
    curve: list[dict]
    stop_step: int | None = None
    diverged_at: int | None = None
    restored_step: int | None = None
    start_fingerprint: str = ""
    end_fingerprint: str = ""
    notes: list[str] = field(default_factory=list)
    model: object = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("model")
        return d


def fingerprint(model) -> str:
    """SHA-1 of every parameter's bytes (in name order): equal states ↔ equal fingerprints."""
    h = hashlib.sha1()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


def _save(model, path: Path) -> None:
    from safetensors.torch import save_model

    with rundir.atomic_path(path) as tmp:
        save_model(model, str(tmp))


def _load(model, path: Path) -> None:
    from safetensors.torch import load_model

    load_model(model, str(path))


def _read_curve(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

class UnlearnRun:
    """One unlearning run (see :func:`unlearn`), in named phases: :meth:`prepare`, :meth:`step`
    (called by the training loop for every batch), :meth:`evaluate` (a curve point, where
    :meth:`stop` applies the stopping rule), :meth:`restore` (after a divergence) and
    :meth:`finish`. :meth:`run` runs them in order. The method's per-run state (``Method.start``)
    lives here, in ``method_state``, never on the shared method object."""

    def __init__(self, model, tokenizer, forget: Sequence[Example], retain: Sequence[Example] | None,
                 cfg: UnlearnConfig, out: str | Path, *, evaluate: Callable[[object], dict] | None = None,
                 stop_when: Callable[[dict], bool] | None = None, log: Callable[[str], None] | None = None,
                 accelerator=None):
        self.model, self.tokenizer, self.forget, self.retain, self.cfg = model, tokenizer, forget, retain, cfg
        self.out = Path(out)
        self.measure, self.stop_when = evaluate, stop_when
        self.log = log or (lambda _m: None)
        self.accelerator = accelerator
        self.main = accelerator is None or accelerator.is_main_process  # only the main process evaluates and writes
        self.method = cfg.method if isinstance(cfg.method, Method) else get_method(cfg.method)
        self.name = self.method.name
        self.hp = resolve_hparams(self.method, cfg.hparams)
        self.method_state = None  # what Method.start returned (e.g. RMU's layer taps and control vector)
        self.curve: list[dict] = []
        self.stop_step: int | None = None  # the first curve point that met the stopping rule
        self.good_step: int | None = None  # the newest state saved as last good
        self.diverged_at: int | None = None
        self.restored: int | None = None
        self.history: list[dict] = []
        self.notes: list[str] = []

    def run(self) -> UnlearnResult:
        self.out.mkdir(parents=True, exist_ok=True)
        if self.cfg.lora and not self.method.lora:
            raise MnemoscopeError(f"unlearn.lora: {self.name} cannot train LoRA adapters; set unlearn.lora=false for it")
        self.start_fingerprint = fingerprint(self.model)
        self.check_start()
        if (self.out / DONE).exists():
            return self.reuse()
        self.prepare()
        if not self.curve:  # a resumed run keeps its points
            self.evaluate(0, None)
        try:
            self.history = train(self.trained, self.batch, self.cfg.train_config(), self.out, loss_fn=self.step,
                                 on_step=self.after_step, log=self.log, accelerator=self.accelerator)
        except Diverged as exc:
            self.restore(exc)
        finally:
            self.method.stop(self.method_state)
        return self.finish()

    # ------------------------------------------------------------------ prepare

    def check_start(self) -> None:
        """Refuse a folder that a run from another starting model filled (its ``done.json`` or
        ``start.json`` names another fingerprint): reusing it would report that model's results; then
        record this run's start."""
        for path, key in ((self.out / DONE, "start_fingerprint"), (self.out / START, "fingerprint")):
            saved = json.loads(path.read_text()).get(key) if path.exists() else None
            if saved and saved != self.start_fingerprint:
                raise MnemoscopeError(
                    f"{self.out}: a run from another starting model (fingerprint {saved}; this one "
                    f"{self.start_fingerprint}) left its results here; delete that folder or give another output folder")
        if self.main and not (self.out / START).exists():
            rundir.write_json(self.out / START, {"fingerprint": self.start_fingerprint})

    def reuse(self) -> UnlearnResult:
        """A finished run (``done.json``): reload its result instead of training."""
        method, model = self.method, self.model
        saved = json.loads((self.out / DONE).read_text())
        result_model = method.result_model(model, {}, method.trainee(model, self.hp), self.hp) if method.combines else model
        _load(result_model, self.out / FINAL)
        result_model.eval()
        self.log(f"{self.name}: already done, reusing {self.out / FINAL}")
        saved.pop("model", None)
        return UnlearnResult(**saved, model=result_model)

    def prepare(self) -> None:
        """Token batches, the frozen reference, the module to train, the method's per-run state, and
        what an interrupted run had saved (its curve and stop point)."""
        self._prepare_batches()
        self._prepare_models()
        self.method_state = self.method.start(self.trained, self.reference, self.hp, self.cfg.seed)
        self.loss_fn = make_loss_fn(self.method, self.hp, reference=self.reference, state=self.method_state)
        self.curve = _read_curve(self.out / CURVE)
        if (self.out / STOP).exists():
            self.stop_step = next((p["step"] for p in self.curve if p.get("stop")), None)
        self._barrier()  # every process reads the saved state before the main one writes

    def _prepare_batches(self) -> None:
        cfg, method, tokenizer = self.cfg, self.method, self.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        f_items, p_items = encode_forget(self.forget, tokenizer, method, self.hp, max_length=cfg.max_length, bos=cfg.bos)
        r_items = encode_examples(self.retain, tokenizer, max_length=cfg.max_length, bos=cfg.bos) if self.retain else None
        if method.needs_retain and not r_items:
            raise MnemoscopeError(f"method '{self.name}' needs a retain set; pass --retain FILE or pick one of "
                                  f"{', '.join(n for n in METHODS if not get_method(n).needs_retain)}")
        self.streams = {"forget": BatchStream(f_items, cfg.batch_size, cfg.seed, pad),
                        "pair": BatchStream(p_items, cfg.batch_size, cfg.seed, pad) if p_items else None,  # F's order
                        "retain": BatchStream(r_items, cfg.batch_size, cfg.seed + 1, pad) if r_items else None}

    def _prepare_models(self) -> None:
        """π_ref, a frozen copy of the model before unlearning (taken before any adapter is added);
        the module to train; the original weights when the method writes its result into the model
        (task vectors) and so needs them at every eval point."""
        model, method, cfg = self.model, self.method, self.cfg
        self.reference = None
        if method.needs_reference:
            self.reference = copy.deepcopy(model).eval()
            for p in self.reference.parameters():
                p.requires_grad_(False)
        self.trained = method.trainee(model, self.hp)
        keeps_model = self.trained is model or method.combines
        self.base_state = {} if keeps_model else {k: v.detach().clone() for k, v in model.state_dict().items()}
        if cfg.gradient_checkpointing:
            enable_checkpointing(self.trained)
        if cfg.lora:
            self.trained = apply_lora(self.trained, cfg.lora_rank, cfg.lora_alpha)

    # ------------------------------------------------------------------ step

    def batch(self, step: int) -> dict:
        """The loop's batch ``step``: forget rows, their partners, retain rows when the method uses them."""
        s = self.streams
        return {"step": step, "forget": s["forget"].batch(step),
                "pair": s["pair"].batch(step) if s["pair"] is not None else None,
                "retain": s["retain"].batch(step) if s["retain"] is not None and self.method.needs_retain else None}

    def step(self, model, batch: dict):
        """The method's loss on one batch (raises :class:`Diverged` on a non-finite loss)."""
        return self.loss_fn(model, batch)

    def after_step(self, step: int, record: dict) -> None:
        n = step + 1
        cfg = self.cfg
        if (cfg.eval_every and n % cfg.eval_every == 0) or n in {int(s) for s in cfg.eval_steps} or n == cfg.steps:
            self.evaluate(n, record["loss"])

    # ------------------------------------------------------------------ evaluate and stop

    def result_model(self):
        """What to evaluate now: the trained module, the original with new weights, or a composite."""
        return self.method.result_model(self.model, self.base_state, self.trained, self.hp)

    def evaluate(self, steps_done: int, loss: float | None) -> None:
        """A curve point after ``steps_done`` steps (the main process measures and writes; the others wait)."""
        if self.main:
            self._write_point(steps_done, loss)
        self._barrier()

    def _write_point(self, steps_done: int, loss: float | None) -> None:
        m = self.result_model()
        was_training = self.trained.training
        m.eval()
        point = {"step": steps_done, **(self.measure(m) if self.measure else {})}
        if loss is not None:
            point["loss"] = loss
        if self.stop(point):
            _save(m, self.out / STOP)
            self.stop_step = steps_done
            point["stop"] = True
        _save(self.trained, self.out / LAST_GOOD)
        self.good_step = steps_done
        self.curve[:] = [p for p in self.curve if p["step"] < steps_done] + [point]  # a resumed run redoes later points
        rundir.write_text(self.out / CURVE, "".join(json.dumps(rundir.json_safe(p)) + "\n" for p in self.curve))
        if was_training:
            self.trained.train()
        shown = [f"{k} {v:.2f}" for k, v in point.items()  # a value not measured (NaN) is left out, not printed
                 if k not in ("step", "stop") and isinstance(v, float) and math.isfinite(v)]
        self.log(f"{self.name} step {steps_done}" + (": " + ", ".join(shown) if shown else ""))

    def stop(self, point: dict) -> bool:
        """Whether ``point`` is where the run stops: the first point that meets the stopping rule."""
        return (self.stop_when is not None and self.stop_step is None and self.measure is not None
                and self.stop_when(point))

    def restore(self, exc: Diverged) -> None:
        """A non-finite loss: keep the last good state (saved at every curve point) and say so."""
        self.diverged_at = exc.step
        if (self.out / LAST_GOOD).exists():
            _load(self.trained, self.out / LAST_GOOD)
            self.restored = self.good_step if self.good_step is not None else max(p["step"] for p in self.curve)
        self.notes.append(f"{self.name}: the loss diverged ({exc.value}) at step {exc.step}; stopped and restored "
                          f"the last good state (step {self.restored}); lower unlearn.lr")
        self.log(self.notes[-1])

    # ------------------------------------------------------------------ finish

    def finish(self) -> UnlearnResult:
        """The result: the stop point's state if the rule was met, else the last; LoRA merged; saved."""
        cfg, method = self.cfg, self.method
        self.trained.eval()
        result_model = self.result_model()
        if self.stop_step is not None:
            _load(result_model, self.out / STOP)
            self.notes.append(f"{self.name}: stopping rule met at step {self.stop_step}; that state is the result")
        elif self.stop_when is not None:
            self.notes.append(f"{self.name}: stopping rule never met within {cfg.steps} steps; the last state is the result")
        if cfg.lora:
            self.trained = self.trained.merge_and_unload()
            self.trained.requires_grad_(True)  # peft froze the base weights: the result trains like any model
            result_model = self.result_model() if method.combines else (
                self.trained if result_model is not self.model else result_model)
        if cfg.gradient_checkpointing:
            disable_checkpointing(self.trained)
        result_model.eval()
        steps_run = self.history[-1]["step"] + 1 if self.history else (self.diverged_at or 0)
        result = UnlearnResult(self.name, steps_run, self.history, self.curve, self.stop_step, self.diverged_at,
                               self.restored, self.start_fingerprint, fingerprint(result_model), self.notes, result_model)
        if self.main:
            _save(result_model, self.out / FINAL)
            rundir.write_json(self.out / DONE, result.to_dict())
        self._barrier()
        return result

    def _barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()


def unlearn(
    model,
    tokenizer,
    forget: Sequence[Example],
    retain: Sequence[Example] | None,
    cfg: UnlearnConfig,
    out: str | Path,
    *,
    evaluate: Callable[[object], dict] | None = None,
    stop_when: Callable[[dict], bool] | None = None,
    log: Callable[[str], None] | None = None,
    accelerator=None,
) -> UnlearnResult:
    """Unlearn ``forget`` from ``model``; ``result.model`` is what to evaluate: ``model`` itself
    with new weights (trained in place, or written by the method, e.g. a negated task vector; with
    LoRA the adapters merged), or a composite that combines ``model`` with a module the method
    trained (``Method.combines``: WHP, ULD), leaving ``model``'s weights unchanged.

    ``evaluate(model) -> dict`` is called at step 0, every ``cfg.eval_every`` steps, after each of
    ``cfg.eval_steps`` and at the end (the curve, persisted to ``curve.jsonl``); the first point
    that meets ``stop_when(point)`` is saved (``stop.safetensors``) and becomes the result; a
    non-finite loss stops the run and restores the last good state (saved at every curve point).

    Writes ``out/{checkpoints/, curve.jsonl, model.safetensors, done.json}``; a rerun with a
    complete ``done.json`` reloads the result instead of training, and an interrupted run
    resumes from its newest checkpoint.

    ``accelerator``: an ``accelerate.Accelerator`` for multi-process data parallelism (see
    ``train.loop``): each process takes its slice of every batch; the main process alone
    evaluates, applies the stopping rule and writes files, the others wait for it. Its result
    is the run's result.
    """
    return UnlearnRun(model, tokenizer, forget, retain, cfg, out, evaluate=evaluate, stop_when=stop_when, log=log,
                      accelerator=accelerator).run()


class FineTune(Method):
    """Plain fine-tuning (mean NLL on the given set): the relearning attack, never an unlearning
    method, so it is not registered in ``methods.METHODS``."""

    def forget_loss(self, step, hp):
        return step.nll("forget").mean()


FINETUNE = FineTune("finetune", "plain fine-tuning on the given examples")


def finetune(model, tokenizer, examples: Sequence[Example], cfg: UnlearnConfig, out: str | Path,
             log: Callable[[str], None] | None = None,
             evaluate: Callable[[object], dict] | None = None) -> UnlearnResult:
    """Fine-tune ``model`` in place on ``examples`` with the unlearning loop's settings (``cfg.method``
    is ignored): checkpoints, resume, divergence handling and ``evaluate`` curve points as for
    :func:`unlearn`."""
    return unlearn(model, tokenizer, examples, None, dataclasses.replace(cfg, method=FINETUNE, hparams={}), out,
                   log=log, evaluate=evaluate)


def unlearn_sequence(
    model,
    tokenizer,
    requests: Sequence[Sequence[Example]],
    retain: Sequence[Example] | None,
    cfg: UnlearnConfig,
    out: str | Path,
    *,
    evaluate: Callable[[object], dict] | None = None,
    after_request: Callable[[int, object], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[UnlearnResult]:
    """Sustainability: disjoint forget requests unlearned one after another. Request k starts
    from request k−1's saved result (``out/req-{k-1}/model.safetensors``), request 1 from ``model``.

    The model is updated in place, so every ``UnlearnResult.model`` is the same object holding the
    LAST state: measure each request's state in ``after_request(k, model)``, called right after it.
    """
    method = cfg.method if isinstance(cfg.method, Method) else get_method(cfg.method)
    if method.combines:
        raise MnemoscopeError(f"sustainability: {method.name} combines models at decoding time, so request k cannot "
                              "start from request k−1's weights; pick a method that changes the weights")
    out = Path(out)
    results: list[UnlearnResult] = []
    for k, forget in enumerate(requests, 1):
        if k > 1:
            _load(model, out / f"req-{k - 1}" / FINAL)
        res = unlearn(model, tokenizer, forget, retain, cfg, out / f"req-{k}", evaluate=evaluate, log=log)
        model = res.model
        if after_request is not None:
            after_request(k, model)
        results.append(res)
    return results
