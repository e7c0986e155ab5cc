"""Recognition by two-alternative forced choice (Orhan 2023): for each (seen, foil) pair the
model "recognises" the seen text iff NLL(seen) < NLL(foil) (a tie counts ½); chance = 0.5.

One score call over the distinct texts. Config section ``recognition``: either ``pairs`` (a file
of seen/foil/kind records, e.g. hand-written paraphrase foils) or ``seen`` (studied texts) with
``foils`` (kinds made automatically by ``probes.foils``: shuffled_words, shuffled_letters,
swap_word, random_words, novel) and ``pool`` (texts the model did not study, for ``novel``).
Keys ``recognition/2afc/accuracy``, ``recognition/2afc/n`` and, per foil kind,
``recognition/2afc/{accuracy,n}@foil=<kind>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from mnemoscope.engine import Backend
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result, encode_each, plan_and_measure
from mnemoscope.metrics.recognition import two_afc_accuracy
from mnemoscope.probes import formats
from mnemoscope.probes.foils import FOIL_KINDS, make_foil

NAME = "recognition"
TITLE = "Recognition (two-alternative forced choice)"
DEFAULTS = {"recognition": {"seen": "", "foils": ["shuffled_words"], "pool": "", "pairs": ""}}
PATH_KEYS = ("recognition.seen", "recognition.pool", "recognition.pairs")
NEEDS = ("logprobs",)
KEY = "recognition/2afc/accuracy"
HEADLINE = (KEY,)


def make_foils(
    texts: Sequence[str],
    kinds: Sequence[str] = ("shuffled_words",),
    seed: int = 0,
    *,
    vocab: Sequence[str] | None = None,
    paraphrases: Mapping[str, str] | None = None,
    pool: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """One foil per (text, kind) via ``probes.foils.make_foil`` (seed ``seed + text index``).

    ``pool`` feeds kind ``novel`` (texts the model did NOT study), ``paraphrases`` kind
    ``paraphrase`` ({text: paraphrase}), ``vocab`` kinds ``random_words``/``swap_word``.
    A (text, kind) whose foil cannot be made (e.g. shuffling a one-word text) is skipped and
    noted. Returns a frame ``seen_index, seen, foil, kind`` and the notes.
    """
    unknown = [k for k in kinds if k not in FOIL_KINDS]
    if unknown:
        raise MnemoscopeError(f"unknown foil kind(s) {unknown}; use any of {list(FOIL_KINDS)}")
    rows, notes = [], []
    for kind in kinds:
        skipped = []
        for i, text in enumerate(texts):
            try:
                foil = make_foil(kind, text, seed + i, pool=pool, mapping=paraphrases, vocab=vocab)
            except MnemoscopeError as err:
                skipped.append(f"text {i}: {err}")
                continue
            rows.append({"seen_index": i, "seen": text, "foil": foil, "kind": kind})
        if skipped:
            notes.append(f"foils of kind {kind!r}: {len(skipped)} of {len(texts)} skipped ({skipped[0]}...)")
    return pd.DataFrame(rows, columns=["seen_index", "seen", "foil", "kind"]), notes


@dataclass
class Inputs:
    pairs: pd.DataFrame  # seen, foil, kind
    by_kind: bool = True


@dataclass
class Plan:
    inputs: Inputs
    texts: list[str]  # distinct seen and foil texts
    items: list[Encoded]


def read(cfg: dict, ctx: Context) -> Inputs | None:
    r = cfg["recognition"]
    if r["pairs"] and r["seen"]:
        raise MnemoscopeError("recognition: give either recognition.pairs or recognition.seen (+ foils), not both")
    if r["pairs"]:
        return Inputs(pd.DataFrame(formats.load_recognition_pairs(r["pairs"]))[["seen", "foil", "kind"]])
    if not r["seen"]:
        return None
    kinds = list(r["foils"])
    unknown = [k for k in kinds if k not in FOIL_KINDS]
    if unknown or not kinds:
        raise MnemoscopeError(f"recognition.foils: unknown or no foil kind(s) {unknown}; use any of {list(FOIL_KINDS)}")
    if "paraphrase" in kinds:
        raise MnemoscopeError("recognition.foils: 'paraphrase' foils cannot be made automatically; "
                              "write them to a pairs file (seen, foil, kind) and pass recognition.pairs")
    seen = formats.load_texts_any(r["seen"])
    pool = formats.load_texts_any(r["pool"]) if r["pool"] else None
    if "novel" in kinds and pool is None:
        raise MnemoscopeError("recognition.foils: kind 'novel' needs recognition.pool (texts the model did not study)")
    vocab = sorted({w for t in seen + (pool or []) for w in t.split()})
    frame, notes = make_foils(seen, kinds, ctx.seed, vocab=vocab, pool=pool)
    for n in notes:
        ctx.note(KEY, n)
    return Inputs(frame[["seen", "foil", "kind"]])


def plan(inputs: Inputs, engine: Backend, ctx: Context | None = None) -> Plan:
    texts = list(dict.fromkeys(list(inputs.pairs["seen"]) + list(inputs.pairs["foil"])))
    items = encode_each(lambda t: engine.encode_texts([t])[0], texts, "recognition text")
    return Plan(inputs, texts, items)


def measure(plan: Plan, engine: Backend, ctx: Context | None = None) -> Result:
    pairs = plan.inputs.pairs
    result = Result()
    if not len(pairs):
        result.not_computed(KEY, "recognition/2afc: no (seen, foil) pairs")
        return result
    nll = dict(zip(plan.texts, (s.nll for s in engine.score_encoded(plan.items))))
    samples = pd.DataFrame({
        "seen": list(pairs["seen"]),
        "foil": list(pairs["foil"]),
        "kind": list(pairs["kind"]) if plan.inputs.by_kind else "all",
        "nll_seen": [nll[t] for t in pairs["seen"]],
        "nll_foil": [nll[t] for t in pairs["foil"]],
    })
    samples["correct"] = (samples["nll_seen"] < samples["nll_foil"]).astype(float) + 0.5 * (
        samples["nll_seen"] == samples["nll_foil"])
    result.samples = samples
    result.metrics.update({KEY: two_afc_accuracy(samples["nll_seen"], samples["nll_foil"]),
                           "recognition/2afc/n": float(len(samples)),
                           "recognition/n_truncated": float(sum(1 for it in plan.items if it.truncated))})
    if result.metrics["recognition/n_truncated"]:
        result.note("recognition/n_truncated", f"{int(result.metrics['recognition/n_truncated'])} text(s) were cut "
                                               "to the model's context (their beginning kept)")
    if plan.inputs.by_kind:
        for kind, group in samples.groupby("kind", sort=True):
            result.metrics[f"recognition/2afc/accuracy@foil={kind}"] = two_afc_accuracy(group["nll_seen"],
                                                                                        group["nll_foil"])
            result.metrics[f"recognition/2afc/n@foil={kind}"] = float(len(group))
    return result


def two_afc(engine: Backend, seen: Sequence[str], foils: Sequence[str], kinds: Sequence[str] | None = None) -> Result:
    """2AFC accuracy of (seen_i, foils_i) pairs, by foil kind when ``kinds`` (one per pair) is given."""
    seen, foils = list(seen), list(foils)
    if len(seen) != len(foils):
        raise MnemoscopeError(f"two_afc: {len(seen)} seen texts but {len(foils)} foils; pass one foil per seen text")
    if kinds is not None and len(kinds) != len(seen):
        raise MnemoscopeError(f"two_afc: {len(kinds)} foil kinds for {len(seen)} pairs; pass one per pair")
    frame = pd.DataFrame({"seen": seen, "foil": foils, "kind": list(kinds) if kinds is not None else "all"})
    return plan_and_measure(plan, measure, Inputs(frame, by_kind=kinds is not None), engine)
