"""Unlearning under stress: the ways an "unlearned" model gives its knowledge back without being
shown the forget set's answers again.

- **Quantization** (Zhang et al., ICLR 2025): every model measured again with its decoder weights
  quantized (``unlearn.quantize``): KnowMem and VerbMem on F and R, the forget-vs-holdout
  membership AUC and PrivLeak, per mode. Keys ``quant@<mode>/<metric>``.
- **Benign relearning** (Lynch et al. 2024): fine-tuning on text that holds no forget data (the
  retain set's texts, background text) for a few steps; KnowMem on F after each evaluation step.
  Keys ``benign_<source>/knowmem_before``, ``/knowmem@step=s``, ``/recovery``, ``/peak_step``,
  ``/final_change`` (``metrics.unlearning.relearn_recovery``).
- **In-context relearning** (Hu et al. 2024; Lynch et al. 2024): each forget question asked with k
  neighbouring forget facts (the same person's other facts in the lab; the nearest items in file
  order for a user's file) as few-shot QA pairs before it; KnowMem on F for each k (k = 0: the
  plain question). Keys ``in_context/knowmem_before``, ``/knowmem@facts=k``, ``/recovery``, …
- **Knowledge restored** (``metrics.restoration.knowledge_restored``) by each of them and by the
  recipe's own relearning attack, against the original model:
  ``restored/<route>/knowmem_forget`` (and ``/verbmem_forget`` for quantization).

The recipes call :func:`settings` (before the run directory), :func:`quantized_eval` per model,
:func:`relearn_routes` per model and :func:`restoration` once at the end.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.restoration import knowledge_restored
from mnemoscope.metrics.unlearning import relearn_recovery
from mnemoscope.unlearn import evaluation as ev
from mnemoscope.unlearn.quantize import QuantMode, check_available, parse_modes, quantized, weights_changed

NAN = float("nan")
IN_CONTEXT = "in_context"
# the lab: its layers are 128 wide, so a group of 128 would be one scale per row (= per channel)
# max_retain_texts: VerbMem on R reads at most this many retain texts (each a generation per mode and model)
LAB_DEFAULTS = {"quantize": {"modes": ["int8-channel", "int4-channel", "int4-group"], "group_size": 32,
                             "max_retain_texts": 100},
                "benign": {"sources": ["retain", "background"], "steps": [5, 10, 20], "lr": 1e-3},
                "in_context": {"facts": [1, 2, 4]}}
USER_DEFAULTS = {"quantize": {"modes": ["int8-channel", "int4-channel", "int4-group"], "group_size": 128,
                              "max_retain_texts": 100},
                 "benign": {"sources": ["retain"], "steps": [5, 10, 20], "lr": 1e-5},
                 "in_context": {"facts": [1, 2, 4]}}


@dataclass
class Settings:
    """The ``stress`` config section, checked."""

    modes: list[QuantMode] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    lr: float = 1e-3
    facts: list[int] = field(default_factory=list)
    max_retain_texts: int = 100


def settings(section: Mapping, device: str, sources: Sequence[str]) -> Settings:
    """Check the ``stress`` section before any work: known quantization modes this machine can run
    (``device``: the model's device setting, "auto" = CUDA when present), benign sources among
    ``sources``, steps and numbers of facts ≥ 1, a learning rate > 0."""
    q, b, c = section["quantize"], section["benign"], section["in_context"]
    modes = parse_modes(q["modes"], q["group_size"], where="stress.quantize.modes")
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    for mode in modes:
        check_available(mode, dev)
    unknown = sorted(set(b["sources"]) - set(sources))
    if unknown:
        raise MnemoscopeError(f"stress.benign.sources: unknown source {unknown[0]!r}; use any of {', '.join(sources)}")
    for key, values in (("stress.benign.steps", b["steps"]), ("stress.in_context.facts", c["facts"]),
                        ("stress.quantize.max_retain_texts", [q["max_retain_texts"]])):
        if any(isinstance(v, bool) or int(v) != v or v < 1 for v in values):
            raise MnemoscopeError(f"{key}: every value must be a whole number ≥ 1, got {list(values)}")
    if b["sources"] and not b["steps"]:
        raise MnemoscopeError("stress.benign.steps: give at least one step (or stress.benign.sources=[] to skip)")
    if not (isinstance(b["lr"], (int, float)) and math.isfinite(b["lr"]) and b["lr"] > 0):
        raise MnemoscopeError(f"stress.benign.lr must be a finite number > 0, got {b['lr']}")
    return Settings(modes, list(b["sources"]), sorted({int(s) for s in b["steps"]}), float(b["lr"]),
                    sorted({int(k) for k in c["facts"]}), int(q["max_retain_texts"]))


# --------------------------------------------------------------------------- quantization


def verbmem_mean(engine: Engine, texts: Sequence[str], data: ev.EvalData, pairs=()) -> float:
    """Mean MUSE VerbMem (×100) of ``pairs`` (prompt, continuation) or of ``texts`` split as the
    six-way evaluation splits them; NaN without any."""
    from mnemoscope.families.verbmem import verbmem

    split = list(pairs) or [ev.split_text(t, data.verbmem_prompt_fraction) for t in texts]
    if not split:
        return NAN
    _, m, _ = verbmem(engine, [p for p, _ in split], [c for _, c in split], max_new_tokens=data.verbmem_tokens)
    return m["verbmem/rouge_l_f1/mean"]


def quantized_point(engine: Engine, data: ev.EvalData, reference: ev.Reference | None,
                    retain_texts: Sequence[str]) -> tuple[dict[str, float], dict[str, str]]:
    """KnowMem F/R, VerbMem F/R, the membership AUC and PrivLeak of one (quantized) model."""
    point = ev.quick_eval(engine, data, reference, mia=True)
    point["verbmem_forget"] = verbmem_mean(engine, data.forget_texts, data, data.verbmem_pairs)
    point["verbmem_retain"] = verbmem_mean(engine, retain_texts, data)
    notes = {}
    for key, why in (("knowmem_forget", "no forget QA"), ("knowmem_retain", "no retain QA"),
                     ("verbmem_forget", "no forget texts"), ("verbmem_retain", "no retain texts")):
        if not math.isfinite(point[key]):
            notes[key] = why
    if "mia_auc" not in point:
        point["mia_auc"] = point["privleak"] = NAN
        notes["mia_auc"] = notes["privleak"] = "needs forget texts and a holdout set drawn like them"
    elif not math.isfinite(point.get("privleak", NAN)):
        point["privleak"] = NAN
        notes["privleak"] = "needs a retrained model whose forget-vs-holdout AUC is below 1"
    return point, notes


def quantized_eval(model, tokenizer, data: ev.EvalData, reference: ev.Reference | None, modes: Sequence[QuantMode],
                   retain_texts: Sequence[str] = (), original_state: Mapping | None = None
                   ) -> tuple[dict[str, float], dict[str, str]]:
    """:func:`quantized_point` under each quantization mode (the weights restored after each).
    Keys ``quant@<mode>/<metric>``; notes for what was not computed. Given the original model's
    state dict, also ``quant@<mode>/weights_changed`` (``quantize.weights_changed``)."""
    values: dict[str, float] = {}
    notes: dict[str, str] = {}
    for mode in modes:
        if original_state is not None:
            changed = weights_changed(model, dict(original_state), mode)
            values[f"quant@{mode.name}/weights_changed"] = changed
            if not math.isfinite(changed):
                notes[f"quant@{mode.name}/weights_changed"] = ("the model combines models at decoding time: its "
                                                               "members are not the original's weights")
        with quantized(model, mode):
            point, why = quantized_point(Engine(model, tokenizer), data, reference, retain_texts)
        values.update({f"quant@{mode.name}/{k}": v for k, v in point.items()})
        notes.update({f"quant@{mode.name}/{k}": r for k, r in why.items()})
    return values, notes


# --------------------------------------------------------------------------- relearning routes


def neighbours(n_items: int, groups: Sequence | None = None, seed: int = 0) -> list[list[int]]:
    """For each item, the indices of its neighbours, nearest first, never itself: with ``groups``,
    the other items of the same group (the same person) in a seeded shuffle; without, every other
    item by distance in file order (i−1, i+1, i−2, i+2, …)."""
    if groups is None:
        return [sorted((j for j in range(n_items) if j != i), key=lambda j: (abs(j - i), j)) for i in range(n_items)]
    if len(groups) != n_items:
        raise MnemoscopeError(f"neighbours: {len(groups)} groups for {n_items} items")
    rng = random.Random(seed)
    out = []
    for i, g in enumerate(groups):
        same = [j for j, h in enumerate(groups) if h == g and j != i]
        rng.shuffle(same)
        out.append(same)
    return out


def in_context_prompts(qa: Sequence[Mapping], near: Sequence[Sequence[int]], facts: int, data: ev.EvalData) -> list[str]:
    """KnowMem prompts of ``qa`` with each item's first ``facts`` neighbours as QA shots (after the
    evaluation's own shots), in the evaluation's prompt format."""
    from mnemoscope.metrics.text import knowmem_prompt

    base = [(s["question"], s["answer"]) for s in data.shots]
    prompts = []
    for item, idx in zip(qa, near):
        shots = base + [(qa[j]["question"], qa[j]["answer"]) for j in idx[:facts]]
        prompts.append(data.qa_prompt(shots, item["question"]) if data.qa_prompt is not None
                       else knowmem_prompt(shots, item["question"], trailing_space=data.knowmem_trailing_space))
    return prompts


def knowmem_of_prompts(engine: Engine, qa: Sequence[Mapping], prompts: Sequence[str], data: ev.EvalData) -> float:
    """Mean KnowMem (×100) of ``qa`` asked with the given prompt texts (the KnowMem family's measure)."""
    from mnemoscope.families.base import check_generation
    from mnemoscope.families.knowmem import KEY, Inputs, Plan, measure

    records = [{"id": str(q.get("id", i)), "question": q["question"], "answer": q["answer"]} for i, q in enumerate(qa)]
    ids = [engine.encode_prompt(p) for p in prompts]
    check_generation(engine, ids, data.knowmem_tokens, "in-context knowmem prompt", "stress.in_context.facts",
                     ids=[r["id"] for r in records])
    return measure(Plan(Inputs(records, [], data.knowmem_tokens), ids), engine).metrics[KEY]


def in_context_curve(engine: Engine, qa: Sequence[Mapping], near: Sequence[Sequence[int]], facts: Sequence[int],
                     data: ev.EvalData) -> list[dict]:
    """KnowMem on ``qa`` with 0 (plain) and each number of neighbouring facts in the prompt."""
    curve = [{"facts": 0, "knowmem": ev.knowmem_mean(engine, qa, data)}]
    for k in sorted(facts):
        curve.append({"facts": int(k), "knowmem": knowmem_of_prompts(engine, qa, in_context_prompts(qa, near, k, data), data)})
    return curve


def _summarise(route: str, x: str, curve: list[dict]) -> dict[str, float]:
    xs, ks = [p[x] for p in curve], [p["knowmem"] for p in curve]
    values = {f"{route}/knowmem_before": ks[0], **{f"{route}/knowmem@{x}={s}": k for s, k in zip(xs[1:], ks[1:])}}
    values.update({f"{route}/{k}": v for k, v in relearn_recovery(xs, ks).items()})
    return values


def relearn_routes(model, tokenizer, data: ev.EvalData, conf: Settings, benign: Mapping[str, Sequence],
                   near: Sequence[Sequence[int]], out: str | Path, *, batch_size: int, max_length: int
                   ) -> tuple[dict[str, float], dict[str, str], list[dict]]:
    """Benign relearning on each source of ``benign`` (runner Examples; a fine-tuned copy of
    ``model``) and in-context relearning with ``near`` (:func:`neighbours` of ``data.forget_qa``),
    measured by KnowMem on ``data.forget_qa``. Returns (values, notes, curve rows
    ``{route, step | facts, knowmem}``)."""
    values: dict[str, float] = {}
    notes: dict[str, str] = {}
    rows: list[dict] = []
    if not data.forget_qa:
        for route in [f"benign_{s}" for s in conf.sources] + ([IN_CONTEXT] if conf.facts else []):
            values[f"{route}/recovery"] = NAN
            notes[f"{route}/recovery"] = "relearning is measured by KnowMem on the forget QA; there is none"
        return values, notes, rows
    for source in conf.sources:
        route = f"benign_{source}"
        if not benign.get(source):
            values[f"{route}/recovery"] = NAN
            notes[f"{route}/recovery"] = f"no {source} texts to fine-tune on"
            continue
        curve = ev.relearn_curve(model, tokenizer, list(benign[source]), data.forget_qa, data, Path(out) / route,
                                 steps=max(conf.steps), eval_steps=conf.steps, lr=conf.lr, batch_size=batch_size,
                                 max_length=max_length)
        values.update(_summarise(route, "step", curve))
        rows.extend({"route": route, **p} for p in curve)
    if conf.facts:
        curve = in_context_curve(Engine(model, tokenizer), data.forget_qa, near, conf.facts, data)
        values.update(_summarise(IN_CONTEXT, "facts", curve))
        rows.extend({"route": IN_CONTEXT, **p} for p in curve)
        short = sum(len(n) < max(conf.facts) for n in near)
        if short:
            notes[f"{IN_CONTEXT}/recovery"] = (f"{short} of {len(near)} forget items have fewer than {max(conf.facts)} "
                                               "neighbouring facts; they are asked with all they have")
    return values, notes, rows


# --------------------------------------------------------------------------- knowledge restored


def routes_in(metrics: Mapping[str, float], name: str) -> list[str]:
    """The attack routes measured for model ``name`` in flat ``unlearn/<name>/...`` metrics."""
    p = re.escape(f"unlearn/{name}/")
    found = []
    for key in metrics:
        m = (re.fullmatch(p + r"(quant@[^/]+)/knowmem_forget", key) or re.fullmatch(p + r"relearn/recovery@(facts=\d+)", key)
             or re.fullmatch(p + r"((?:benign_[^/]+)|" + IN_CONTEXT + r")/recovery", key))
        if m:
            route = m.group(1)
            found.append(f"relearn@{route}" if route.startswith("facts=") else route)
    return found


def _before_after(metrics: Mapping[str, float], name: str, route: str, key: str) -> tuple[float, float]:
    """A model's score before and after the attack ``route`` (after = the curve's peak)."""
    def g(k):
        v = metrics.get(f"unlearn/{name}/{k}")
        return NAN if v is None else float(v)

    if route.startswith("quant@"):
        return g(key), g(f"{route}/{key}")
    if route.startswith("relearn@"):
        facts = route.split("@", 1)[1]
        return g("relearn/knowmem_before"), g("relearn/knowmem_before") + g(f"relearn/recovery@{facts}")
    return g(f"{route}/knowmem_before"), g(f"{route}/knowmem_before") + g(f"{route}/recovery")


def restoration(metrics: Mapping[str, float], names: Sequence[str]) -> tuple[dict[str, float], dict[str, str]]:
    """``unlearn/<name>/restored/<route>/knowmem_forget`` (and ``/verbmem_forget`` for quantization)
    for every model in ``names`` but the original: :func:`knowledge_restored` with the model's
    score before the attack as "unlearned", its score after as "after", and the original model's
    score before the same attack as "original". Null with a note where undefined."""
    values: dict[str, float] = {}
    notes: dict[str, str] = {}
    for name in names:
        if name == "original":
            continue
        for route in routes_in(metrics, name):
            for key in ("knowmem_forget", "verbmem_forget") if route.startswith("quant@") else ("knowmem_forget",):
                before, after = _before_after(metrics, name, route, key)
                original, _ = _before_after(metrics, "original", route, key)
                out = f"unlearn/{name}/restored/{route}/{key}"
                values[out] = knowledge_restored(after, before, original)
                if not math.isfinite(values[out]):
                    notes[out] = ("undefined: the original and this model score the same before the attack "
                                  f"({key} {before:.4g}), so nothing was removed to restore" if before == original else
                                  "undefined: a score it needs was not computed")
    return values, notes


# --------------------------------------------------------------------------- the recipes' inputs


@dataclass
class Inputs:
    """What the attacks read besides the evaluation data: benign fine-tuning examples per source,
    each forget QA item's neighbours, and retain texts for VerbMem on R."""

    benign: dict[str, list] = field(default_factory=dict)
    near: list[list[int]] = field(default_factory=list)
    retain_texts: list[str] = field(default_factory=list)


def lab_inputs(world, retain_people: set[str], retain_eval: set[str], background: Sequence[str],
               forget_qa: Sequence[Mapping], seed: int) -> Inputs:
    """The lab's: benign sources ``retain`` (every retain person's documents) and ``background``
    (the background corpus, both trained on and holding no forget fact); each forget question's
    neighbours are the same person's other forget questions; VerbMem on R reads the evaluated
    retain people's documents."""
    from mnemoscope.unlearn.examples import text_examples

    person = {q["id"]: q["person_id"] for q in world.qa}
    docs = [d for d in world.documents if d.get("person_id") is not None]
    return Inputs(benign={"retain": text_examples([d["text"] for d in docs if d["person_id"] in retain_people]),
                          "background": text_examples(list(background))},
                  near=neighbours(len(forget_qa), [person[q["id"]] for q in forget_qa], seed),
                  retain_texts=[d["text"] for d in docs if d["person_id"] in retain_eval])


def short_route(route: str) -> str:
    """A route's column title: ``quant@int4-group`` → ``int4-group``, ``relearn@facts=1`` → ``relearn-1``."""
    return route.split("@", 1)[1] if route.startswith("quant@") else (
        "relearn-" + route.split("=", 1)[1] if route.startswith("relearn@") else route.replace("_", "-"))


def summary(metrics: Mapping[str, float | None]) -> str:
    """The CLI's table of knowledge restored (KnowMem on F) per model and attack; "" without any."""
    keys = [k for k in metrics if re.fullmatch(r"unlearn/[^/]+/restored/[^/]+/knowmem_forget", k)]
    if not keys:
        return ""
    names = list(dict.fromkeys(k.split("/")[1] for k in keys))
    routes = sorted(dict.fromkeys(k.split("/")[3] for k in keys),
                    key=lambda r: (not r.startswith("quant@"), not r.startswith("relearn@"), r))
    titles = [short_route(r) for r in routes]
    lines = ["", "", "knowledge restored by each attack (KnowMem on F; 0 = none, 1 = the original's level)",
             f"{'model':<12}" + "".join(f" {t:>6}" for t in titles)]
    for n in names:
        cells = [metrics.get(f"unlearn/{n}/restored/{r}/knowmem_forget") for r in routes]
        lines.append(f"{n:<12}" + "".join(f" {'-' if v is None else f'{v:.2f}':>{max(6, len(t))}}"
                                          for v, t in zip(cells, titles)))
    return "\n".join(lines)
