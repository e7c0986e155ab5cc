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

Examples are (prompt, target) pairs: the loss covers the target's tokens only. A plain text is
``Example("", text)`` (every token after the first is a target token).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mnemoscope import rundir
from mnemoscope.engine.encoding import Encoder, text_ids
from mnemoscope.errors import MnemoscopeError
from mnemoscope.train.loop import TrainConfig, train
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.methods import METHODS, get_method
from mnemoscope.unlearn.methods.base import Method, Step

QA_TEMPLATE = "Question: {question}\nAnswer:"
DONE = "done.json"
CURVE = "curve.jsonl"
LAST_GOOD = "last_good.safetensors"
STOP = "stop.safetensors"
FINAL = "model.safetensors"


# --------------------------------------------------------------------------- examples


@dataclass(frozen=True)
class Example:
    """One training item: ``prompt + target`` is the text; the loss covers ``target`` only.
    ``refusal``: an "I don't know"-style answer to the same prompt, for methods that train towards
    one (``Method.needs_refusals``; ``unlearn.refusals``)."""

    prompt: str
    target: str
    id: str = ""
    refusal: str = ""


def text_examples(texts: Sequence[str], ids: Sequence[str] | None = None) -> list[Example]:
    """Plain texts (MUSE-style corpora): the whole text is the target."""
    ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
    return [Example("", t, i) for t, i in zip(texts, ids)]


def qa_examples(qa: Sequence[Mapping], template: str = QA_TEMPLATE) -> list[Example]:
    """QA records (``question``, ``answer``) → ``Example(template(q), " " + answer)``."""
    return [Example(template.format(question=r["question"]), " " + r["answer"], str(r.get("id", i)))
            for i, r in enumerate(qa)]


def _key(e: Example) -> str:
    return e.prompt + "\x00" + e.target


def check_overlap(
    forget: Sequence[Example], retain: Sequence[Example], *, drop: bool = False
) -> tuple[list[Example], list[Example], int]:
    """Count examples present in both sets (same prompt and target). Overlap is refused unless
    ``drop``: then the shared examples are removed from the *retain* set (they must be forgotten).
    Returns (forget, retain, n_overlap)."""
    shared = {_key(e) for e in forget} & {_key(e) for e in retain}
    if shared and not drop:
        raise MnemoscopeError(
            f"retain set: {len(shared)} example(s) also appear in the forget set; remove them from "
            "the retain file or pass --drop-overlap to drop them from the retain set"
        )
    kept = [e for e in retain if _key(e) not in shared]
    return list(forget), kept, len(shared)


# --------------------------------------------------------------------------- token batches


@dataclass(frozen=True)
class TrainItem:
    """Token ids and labels (``IGNORE_INDEX`` on prompt tokens) of one example window."""

    ids: tuple[int, ...]
    labels: tuple[int, ...]
    source: str


def encode_examples(examples: Sequence[Example], tokenizer, *, max_length: int, bos: str = "auto") -> list[TrainItem]:
    """Tokenize under the engine's BOS policy. Texts longer than ``max_length`` are cut into
    consecutive windows (each a new sequence; a BOS, when used, only at position 0); a prompted
    example keeps its target and drops the oldest prompt tokens. Windows with no target token
    after the first position are dropped."""
    if max_length < 2:
        raise MnemoscopeError(f"unlearn.max_length must be ≥ 2, got {max_length}")
    enc = Encoder(tokenizer, bos=bos, max_length=max_length, truncation="truncate")
    prefix = enc.prefix_ids()
    out: list[TrainItem] = []
    for e in examples:
        if not e.target:
            raise MnemoscopeError(f"example {e.id or '?'}: empty target; every example needs text to unlearn")
        if e.prompt:
            item = enc.encode_pair(e.prompt, e.target)
            labels = [L.IGNORE_INDEX] * item.score_from + list(item.ids[item.score_from:])
            out.append(TrainItem(tuple(item.ids), tuple(labels), e.id))
            continue
        body = text_ids(tokenizer, e.target)
        width = max_length - len(prefix)
        for start in range(0, len(body), width):
            ids = prefix + body[start : start + width]
            if len(ids) >= 2:
                out.append(TrainItem(tuple(ids), tuple(ids), e.id))
    if not out:
        raise MnemoscopeError("no example has a token to unlearn after tokenization; check the forget file")
    return out


@dataclass
class TokenBatch:
    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    labels: torch.Tensor  # [B, T], IGNORE_INDEX on prompt and pad
    sources: list[str]

    def split_rows(self, parts: int) -> list["TokenBatch"]:
        """``parts`` equal slices of rows (for gradient accumulation and data-parallel processes)."""
        n = self.input_ids.shape[0]
        if n % parts:
            raise MnemoscopeError(f"an unlearning batch of {n} rows does not split into {parts} equal parts "
                                  "(processes): make unlearn.batch_size a multiple of the number of processes")
        k = n // parts
        return [TokenBatch(self.input_ids[i * k:(i + 1) * k], self.attention_mask[i * k:(i + 1) * k],
                           self.labels[i * k:(i + 1) * k], self.sources[i * k:(i + 1) * k]) for i in range(parts)]


def collate(items: Sequence[TrainItem], pad_id: int) -> TokenBatch:
    """Right-pad to the longest item; pads are masked out of attention and labels."""
    width = max(len(it.ids) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), L.IGNORE_INDEX, dtype=torch.long)
    for b, it in enumerate(items):
        n = len(it.ids)
        ids[b, :n] = torch.tensor(it.ids)
        mask[b, :n] = 1
        labels[b, :n] = torch.tensor(it.labels)
    return TokenBatch(ids, mask, labels, [it.source for it in items])


class BatchStream:
    """Batch ``step`` of a seeded epoch-wise shuffle of ``items`` (deterministic, resumable)."""

    def __init__(self, items: Sequence[TrainItem], batch_size: int, seed: int, pad_id: int):
        if not items:
            raise MnemoscopeError("an unlearning set is empty after tokenization")
        self.items, self.batch_size, self.seed, self.pad_id = list(items), max(1, batch_size), seed, pad_id
        self.per_epoch = max(1, math.ceil(len(self.items) / self.batch_size))
        self._orders: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(len(self.items)))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            self._orders[epoch] = order
        return self._orders[epoch]

    def indices(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.per_epoch)
        return self._order(epoch)[k * self.batch_size : (k + 1) * self.batch_size]

    def batch(self, step: int) -> TokenBatch:
        return collate([self.items[i] for i in self.indices(step)], self.pad_id)


def _to(batch: TokenBatch, device) -> TokenBatch:
    return TokenBatch(batch.input_ids.to(device), batch.attention_mask.to(device), batch.labels.to(device), batch.sources)


# --------------------------------------------------------------------------- loss functions


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


def make_loss_fn(method: Method, hp: Mapping[str, float], reference=None) -> Callable:
    """``loss_fn(model, batch) -> (loss, extras)`` for the training loop; ``batch`` is the
    runner's ``{"step", "forget": TokenBatch, "retain": TokenBatch | None}``. Raises
    :class:`Diverged` on a non-finite loss."""
    if method.needs_reference and reference is None:
        raise MnemoscopeError(f"method '{method.name}' needs a reference model (the model before unlearning)")
    hp = dict(hp)

    def loss_fn(model, batch):
        device = next(model.parameters()).device
        batches = {"forget": _to(batch["forget"], device)}
        for extra in ("retain", "pair"):
            if batch.get(extra) is not None:
                batches[extra] = _to(batch[extra], device)
        if method.needs_retain and "retain" not in batches:
            raise MnemoscopeError(f"method '{method.name}' needs a retain set; pass --retain FILE")
        loss, extras = method.loss(Step(model, reference, batches, int(batch.get("step", -1))), hp)
        if not torch.isfinite(loss):
            raise Diverged(int(batch.get("step", -1)), float(loss.detach()))
        return loss, extras

    return loss_fn


# --------------------------------------------------------------------------- LoRA


def require_peft():
    """Import peft or explain how to get it."""
    try:
        import peft  # noqa: F401
    except ImportError:
        raise MnemoscopeError(
            "unlearn.lora needs the 'peft' package, which is not installed: run `pip install peft` "
            "(or set unlearn.lora=false for full fine-tuning)"
        ) from None
    return peft


def apply_lora(model, rank: int, alpha: float, target_modules: Sequence[str] | None = None):
    """Wrap ``model`` with LoRA adapters (peft); only adapter weights train."""
    peft = require_peft()
    config = peft.LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=0.0, task_type="CAUSAL_LM",
                             target_modules=list(target_modules) if target_modules else None)
    return peft.get_peft_model(model, config)


def enable_checkpointing(model) -> None:
    """Gradient checkpointing on a transformers model: activations are recomputed in the backward
    pass instead of stored. Non-reentrant checkpointing, so frozen inputs (LoRA: only the adapters
    train, the embeddings are frozen) still carry gradients to the adapters inside each block."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers ≥ 5.x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        raise MnemoscopeError(f"unlearn.gradient_checkpointing: {type(model).__name__} does not support gradient "
                              "checkpointing; set unlearn.gradient_checkpointing=false")


def disable_checkpointing(model) -> None:
    if hasattr(model, "activation_checkpointing_disable"):
        if getattr(model, "is_activation_checkpointing", False):
            model.activation_checkpointing_disable()
    elif getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()


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


def encode_forget(forget: Sequence[Example], tokenizer, method: Method, hp: dict, *, max_length: int,
                  bos: str) -> tuple[list[TrainItem], list[TrainItem] | None]:
    """The forget items and, for a method with ``needs_pairs``, each item's partner (the paired
    example of its source example, repeated for every window of a long text), row for row."""
    if not method.needs_pairs:
        return encode_examples(forget, tokenizer, max_length=max_length, bos=bos), None
    items, pairs = [], []
    for e in forget:
        own = encode_examples([e], tokenizer, max_length=max_length, bos=bos)
        partner = encode_examples([method.paired(e, hp)], tokenizer, max_length=max_length, bos=bos)[0]
        items += own
        pairs += [partner] * len(own)
    return items, pairs


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

    Writes ``out/{checkpoints/, curve.jsonl, model.safetensors, done.json}``; a rerun with a
    complete ``done.json`` reloads the result instead of training, and an interrupted run
    resumes from its newest checkpoint.

    ``accelerator``: an ``accelerate.Accelerator`` for multi-process data parallelism (see
    ``train.loop``): each process takes its slice of every batch; the main process alone
    evaluates, applies the stopping rule and writes files, the others wait for it. Its result
    is the run's result.
    """
    main = accelerator is None or accelerator.is_main_process
    method = cfg.method if isinstance(cfg.method, Method) else get_method(cfg.method)
    name = method.name
    hp = resolve_hparams(method, cfg.hparams)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = log or (lambda _m: None)
    if cfg.lora and not method.lora:
        raise MnemoscopeError(f"unlearn.lora: {name} cannot train LoRA adapters; set unlearn.lora=false for it")
    start_fp = fingerprint(model)
    done = out / DONE
    if done.exists():
        saved = json.loads(done.read_text())
        result_model = method.result_model(model, {}, method.trainee(model, hp), hp) if method.combines else model
        _load(result_model, out / FINAL)
        result_model.eval()
        log(f"{name}: already done, reusing {out / FINAL}")
        saved.pop("model", None)
        return UnlearnResult(**saved, model=result_model)

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    f_items, p_items = encode_forget(forget, tokenizer, method, hp, max_length=cfg.max_length, bos=cfg.bos)
    r_items = encode_examples(retain, tokenizer, max_length=cfg.max_length, bos=cfg.bos) if retain else None
    if method.needs_retain and not r_items:
        raise MnemoscopeError(f"method '{name}' needs a retain set; pass --retain FILE or pick one of "
                              f"{', '.join(n for n in METHODS if not get_method(n).needs_retain)}")
    f_stream = BatchStream(f_items, cfg.batch_size, cfg.seed, pad)
    p_stream = BatchStream(p_items, cfg.batch_size, cfg.seed, pad) if p_items else None  # same order as F's
    r_stream = BatchStream(r_items, cfg.batch_size, cfg.seed + 1, pad) if r_items else None

    def batch_fn(step: int) -> dict:
        return {"step": step, "forget": f_stream.batch(step),
                "pair": p_stream.batch(step) if p_stream is not None else None,
                "retain": r_stream.batch(step) if r_stream is not None and method.needs_retain else None}

    # π_ref is a frozen copy of the model before unlearning (taken before any adapter is added).
    ref_model = None
    if method.needs_reference:
        ref_model = copy.deepcopy(model).eval()
        for p in ref_model.parameters():
            p.requires_grad_(False)
    train_model = method.trainee(model, hp)
    # A method that trains another module and writes its result into the model (task vectors)
    # needs the original weights at every eval point: keep them.
    keeps_model = train_model is model or method.combines
    base_state = {} if keeps_model else {k: v.detach().clone() for k, v in model.state_dict().items()}
    if cfg.gradient_checkpointing:
        enable_checkpointing(train_model)
    if cfg.lora:
        train_model = apply_lora(train_model, cfg.lora_rank, cfg.lora_alpha)

    def eval_model():
        return method.result_model(model, base_state, train_model, hp)

    method.start(train_model, ref_model, hp, cfg.seed)
    loss_fn = make_loss_fn(method, hp, reference=ref_model)
    curve_path = out / CURVE
    tcfg = cfg.train_config()
    every = cfg.eval_every
    at = {int(s) for s in cfg.eval_steps}
    state = {"stop_step": None, "good_step": None}
    curve = _read_curve(curve_path)
    if (out / STOP).exists():
        state["stop_step"] = next((p["step"] for p in curve if p.get("stop")), None)
    if accelerator is not None:  # every process reads the saved state before the main one writes
        accelerator.wait_for_everyone()

    def record_point(steps_done: int, loss: float | None) -> None:
        if main:
            write_point(steps_done, loss)
        if accelerator is not None:
            accelerator.wait_for_everyone()

    def write_point(steps_done: int, loss: float | None) -> None:
        m = eval_model()
        was_training = train_model.training
        m.eval()
        point = {"step": steps_done, **(evaluate(m) if evaluate else {})}
        if loss is not None:
            point["loss"] = loss
        if stop_when is not None and state["stop_step"] is None and evaluate and stop_when(point):
            _save(m, out / STOP)
            state["stop_step"] = steps_done
            point["stop"] = True
        _save(train_model, out / LAST_GOOD)
        state["good_step"] = steps_done
        curve[:] = [p for p in curve if p["step"] < steps_done] + [point]  # a resumed run redoes later points
        rundir.write_text(curve_path, "".join(json.dumps(rundir.json_safe(p)) + "\n" for p in curve))
        if was_training:
            train_model.train()
        shown = [f"{k} {v:.2f}" for k, v in point.items()  # a value not measured (NaN) is left out, not printed
                 if k not in ("step", "stop") and isinstance(v, float) and math.isfinite(v)]
        log(f"{name} step {steps_done}" + (": " + ", ".join(shown) if shown else ""))

    def on_step(step: int, rec: dict) -> None:
        n = step + 1
        if (every and n % every == 0) or n in at or n == cfg.steps:
            record_point(n, rec["loss"])

    resuming = bool(curve)
    if not resuming:
        record_point(0, None)
    notes: list[str] = []
    diverged_at = restored = None
    history: list[dict] = []
    try:
        history = train(train_model, batch_fn, tcfg, out, loss_fn=loss_fn, on_step=on_step, log=log,
                        accelerator=accelerator)
    except Diverged as exc:
        diverged_at = exc.step
        if (out / LAST_GOOD).exists():
            _load(train_model, out / LAST_GOOD)
            restored = state["good_step"] if state["good_step"] is not None else max(p["step"] for p in curve)
        notes.append(f"{name}: the loss diverged ({exc.value}) at step {exc.step}; stopped and restored "
                     f"the last good state (step {restored}); lower unlearn.lr")
        log(notes[-1])
    finally:
        method.stop()
    train_model.eval()
    result_model = eval_model()
    if state["stop_step"] is not None:
        _load(result_model, out / STOP)
        notes.append(f"{name}: stopping rule met at step {state['stop_step']}; that state is the result")
    elif stop_when is not None:
        notes.append(f"{name}: stopping rule never met within {cfg.steps} steps; the last state is the result")
    if cfg.lora:
        train_model = train_model.merge_and_unload()
        result_model = method.result_model(model, base_state, train_model, hp) if method.combines else (
            train_model if result_model is not model else result_model)
    if cfg.gradient_checkpointing:
        disable_checkpointing(train_model)
    result_model.eval()
    steps_run = history[-1]["step"] + 1 if history else (diverged_at or 0)
    result = UnlearnResult(name, steps_run, history, curve, state["stop_step"], diverged_at, restored,
                           start_fp, fingerprint(result_model), notes, result_model)
    if main:
        _save(result_model, out / FINAL)
        rundir.write_json(done, result.to_dict())
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return result


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
