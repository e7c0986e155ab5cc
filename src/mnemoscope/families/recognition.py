"""Recognition (two-alternative forced choice) and recall of studied texts (PROTOCOLS §5,
after Orhan 2023).

Measurement functions return ``(samples, metrics, notes)``: a per-item frame, a flat
``{"family/metric[/stat][@group]": float}`` dict holding only what could be computed (no nan
placeholders), and human-readable notes on what was left out. Each makes one engine call
(one ``score`` for 2AFC, one ``generate`` for recall) whatever the number of items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.recognition import recall_scores, two_afc_accuracy
from mnemoscope.probes.foils import FOIL_KINDS, make_foil


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


def two_afc(
    engine: Engine,
    seen: Sequence[str],
    foils: Sequence[str],
    kinds: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, float], list[str]]:
    """Recognition by 2AFC: pair i is correct iff NLL(seen_i) < NLL(foil_i) (a tie counts ½);
    chance = 0.5. One score call over the distinct texts.

    Keys ``recognition/2afc/accuracy``, ``recognition/2afc/n`` and, with ``kinds`` (one per pair),
    ``recognition/2afc/accuracy@foil=<kind>`` and ``recognition/2afc/n@foil=<kind>``.
    """
    seen, foils = list(seen), list(foils)
    if len(seen) != len(foils):
        raise MnemoscopeError(f"two_afc: {len(seen)} seen texts but {len(foils)} foils; pass one foil per seen text")
    if kinds is not None and len(kinds) != len(seen):
        raise MnemoscopeError(f"two_afc: {len(kinds)} foil kinds for {len(seen)} pairs; pass one per pair")
    if not seen:
        return pd.DataFrame(), {}, ["recognition/2afc: no (seen, foil) pairs"]
    unique = list(dict.fromkeys(seen + foils))
    nll = dict(zip(unique, (s.nll for s in engine.score(unique))))
    samples = pd.DataFrame(
        {
            "seen": seen,
            "foil": foils,
            "kind": list(kinds) if kinds is not None else "all",
            "nll_seen": [nll[t] for t in seen],
            "nll_foil": [nll[t] for t in foils],
        }
    )
    samples["correct"] = (samples["nll_seen"] < samples["nll_foil"]).astype(float) + 0.5 * (
        samples["nll_seen"] == samples["nll_foil"]
    )
    metrics = {
        "recognition/2afc/accuracy": two_afc_accuracy(samples["nll_seen"], samples["nll_foil"]),
        "recognition/2afc/n": float(len(samples)),
    }
    if kinds is not None:
        for kind, group in samples.groupby("kind", sort=True):
            metrics[f"recognition/2afc/accuracy@foil={kind}"] = two_afc_accuracy(group["nll_seen"], group["nll_foil"])
            metrics[f"recognition/2afc/n@foil={kind}"] = float(len(group))
    return samples, metrics, []


def recall(engine: Engine, texts: Sequence[str]) -> tuple[pd.DataFrame, dict[str, float], list[str]]:
    """Cued recall: cue = the first ⌊n/2⌋ tokens of a text of n tokens (BOS in front under the
    engine's policy, not counted), greedy continuation of exactly the remaining n − ⌊n/2⌋ tokens,
    scored on the continuation only (``metrics.recognition.recall_scores``: token match rate,
    exact, ROUGE-L F1 of the decoded texts).

    One generate call: every text is continued for the longest remaining length with EOS
    suppressed (min_new_tokens) and cut to its own length; greedy decoding makes the first k
    tokens equal to a forced k-token run. Texts with < 2 tokens are skipped (noted). Keys
    ``recall/match_rate/mean``, ``recall/exact/rate``, ``recall/rouge_l_f1/mean``, ``recall/n``.
    """
    bos = engine.prefix_ids()
    kept, cues, truths = [], [], []
    for i, text in enumerate(texts):
        ids = engine.text_ids(text)
        if len(ids) < 2:
            continue
        half = len(ids) // 2
        kept.append(i)
        cues.append(bos + ids[:half])
        truths.append(ids[half:])
    notes = []
    if len(kept) < len(texts):
        notes.append(f"recall: {len(texts) - len(kept)} of {len(texts)} texts have fewer than 2 tokens and were skipped")
    if not kept:
        return pd.DataFrame(), {}, notes
    longest = max(len(t) for t in truths)
    outs = engine.generate(cues, max_new_tokens=longest, min_new_tokens=longest)
    rows = []
    for i, cue, truth, out in zip(kept, cues, truths, outs):
        gen = list(out.token_ids)[: len(truth)]
        gen_text = engine.decode(gen)
        true_text = engine.decode(truth)
        row = {"text_index": i, "cue_tokens": len(cue) - len(bos), "recall_tokens": len(truth),
               "generated": gen_text, "true": true_text}
        row.update(recall_scores(gen, truth, gen_text, true_text))
        rows.append(row)
    samples = pd.DataFrame(rows)
    metrics = {
        "recall/match_rate/mean": float(samples["match_rate"].mean()),
        "recall/exact/rate": float(samples["exact"].mean()),
        "recall/rouge_l_f1/mean": float(samples["rouge_l_f1"].mean()),
        "recall/n": float(len(samples)),
    }
    return samples, metrics, notes
