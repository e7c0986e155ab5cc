"""Forecasting memorization (Biderman et al. 2023, *Emergent and Predictable Memorization in Large
Language Models*): from earlier checkpoints (or a smaller model trained on the same data), which
training items will the final model have memorized?

An item is memorized when its Pythia memorization score is 1: prompt with its first ``prefix``
[32] tokens, greedy exactly ``suffix`` [32] tokens, all equal to the true ones. The audited model
is the final model; ``forecast.models`` names the predictors (checkpoints or a smaller model) and
``forecast.fractions`` the share of the final model's training compute each used (for a
checkpoint its step / total steps; for a smaller model 6·N·D over the final's). Each predictor's
memorized set predicts the final one: precision and recall (``metrics.forecast``).

Keys: ``forecast/memorized/rate`` (final), ``forecast/precision@fraction=F``,
``forecast/recall@fraction=F``, ``forecast/memorized/rate@fraction=F``, ``forecast/n``.
Context: ``ctx.engines["forecast.models"]`` is the list of predictor engines, in order.

The prompts are token ids of the final model's tokenizer and go to every predictor, so a
predictor whose tokenizer differs (vocabulary, BOS policy, or how it splits the texts: the check
``families.reference`` makes) is refused before anything is generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result
from mnemoscope.families.reference import tokenizer_mismatch
from mnemoscope.metrics.extraction import memorization_score
from mnemoscope.metrics.forecast import forecast_precision_recall
from mnemoscope.probes.textfile import load_records

NAME = "forecast"
TITLE = "Forecasting memorization"
DEFAULTS = {"forecast": {"texts": "", "models": [], "fractions": [], "prefix": 32, "suffix": 32}}
PATH_KEYS = ("forecast.texts",)
MODEL_KEYS = ("forecast.models",)
NEEDS = ("generate",)
HEADLINE = ("forecast/memorized/rate",)
KEY = "forecast/memorized/rate"


@dataclass
class Inputs:
    ids: list[str]
    texts: list[str]
    fractions: list[float]
    prefix: int
    suffix: int


@dataclass
class Plan:
    inputs: Inputs
    kept: list[int]
    prompts: list[list[int]]
    truths: list[list[int]]


def read(cfg: dict, ctx: Context | None = None) -> Inputs | None:
    f = cfg["forecast"]
    if not f["texts"]:
        return None
    models, fractions = list(f["models"]), [float(x) for x in f["fractions"]]
    if not models:
        raise MnemoscopeError("forecast.models names no predictor (earlier checkpoints or a smaller model)")
    if len(models) != len(fractions):
        raise MnemoscopeError(f"forecast.fractions must give one compute fraction per model: {len(models)} model(s), "
                              f"{len(fractions)} fraction(s)")
    if any(not 0 < x <= 1 for x in fractions):
        raise MnemoscopeError(f"forecast.fractions must be in (0, 1], got {fractions}")
    if int(f["prefix"]) < 1 or int(f["suffix"]) < 1:
        raise MnemoscopeError(f"forecast.prefix and forecast.suffix must be ≥ 1, got {f['prefix']} and {f['suffix']}")
    records = load_records(f["texts"])
    return Inputs([str(r.get("id", i)) for i, r in enumerate(records)], [r["text"] for r in records], fractions,
                  int(f["prefix"]), int(f["suffix"]))


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    ctx = ctx or Context()
    kept, prompts, truths = [], [], []
    for i, text in enumerate(inputs.texts):
        ids = engine.text_ids(text)
        if len(ids) >= inputs.prefix + inputs.suffix:
            kept.append(i)
            prompts.append(engine.prefix_ids() + ids[: inputs.prefix])
            truths.append(ids[inputs.prefix : inputs.prefix + inputs.suffix])
    if len(kept) < len(inputs.texts):
        ctx.note(KEY, f"forecast: {len(inputs.texts) - len(kept)} of {len(inputs.texts)} texts have fewer than "
                      f"{inputs.prefix + inputs.suffix} tokens and were skipped")
    if prompts and not engine.fits(len(prompts[0]) + inputs.suffix):
        raise MnemoscopeError(f"forecast.prefix + forecast.suffix ({inputs.prefix + inputs.suffix} tokens) exceeds the "
                              f"model's context ({engine.max_length})")
    return Plan(inputs, kept, prompts, truths)


def memorized(engine: Backend, prompts: list[list[int]], truths: list[list[int]], suffix: int) -> np.ndarray:
    """Pythia memorized flags (score = 1) of each (prompt, true suffix) under one engine."""
    gens = engine.generate(prompts, max_new_tokens=suffix, min_new_tokens=suffix)
    return np.array([memorization_score(g.token_ids, t) == 1.0 for g, t in zip(gens, truths)])


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    ctx = ctx or Context()
    result = Result()
    if not plan.kept:
        result.not_computed(KEY, "forecast: no text is long enough for forecast.prefix + forecast.suffix tokens")
        return result
    predictors = list(ctx.engines.get("forecast.models") or [])
    if len(predictors) != len(plan.inputs.fractions):
        raise MnemoscopeError(f"forecast: {len(plan.inputs.fractions)} fraction(s) but {len(predictors)} predictor "
                              "model(s) loaded")
    texts = [plan.inputs.texts[i] for i in plan.kept]
    for k, other in enumerate(predictors):
        reason = tokenizer_mismatch(engine, other, texts)
        if reason is not None:
            raise MnemoscopeError(f"forecast.models[{k}] does not share the audited model's tokenizer: {reason}; the "
                                  "prompts are the final model's token ids, so every predictor needs its tokenizer "
                                  "(earlier checkpoints of the same run, or a smaller model trained with it)")
    final = memorized(engine, plan.prompts, plan.truths, plan.inputs.suffix)
    frame = pd.DataFrame({"id": [plan.inputs.ids[i] for i in plan.kept], "memorized@final": final.astype(float)})
    result.metrics.update({KEY: float(final.mean()), "forecast/n": float(final.size)})
    for frac, other in zip(plan.inputs.fractions, predictors):
        pred = memorized(other, plan.prompts, plan.truths, plan.inputs.suffix)
        frame[f"memorized@fraction={frac:g}"] = pred.astype(float)
        precision, recall = forecast_precision_recall(pred, final)
        tag = f"@fraction={frac:g}"
        result.metrics[f"forecast/memorized/rate{tag}"] = float(pred.mean())
        for name, value, why in (("precision", precision, "the predictor memorized no item"),
                                 ("recall", recall, "the final model memorized no item")):
            if np.isnan(value):
                result.not_computed(f"forecast/{name}{tag}", f"forecast: {why}")
            else:
                result.metrics[f"forecast/{name}{tag}"] = value
    result.samples = frame
    return result
