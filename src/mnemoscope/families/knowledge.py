"""Knowledge memorization (PROTOCOLS §4): MUSE KnowMem, TOFU, and target log-probability.

Every function returns ``(samples, metrics, notes)``: a per-item frame, a flat
``{"family/metric[/stat][@group]": float}`` dict holding only what could be computed (no nan
placeholders), and human-readable notes on anything left out. Each makes O(1) engine calls
whatever the number of items: all (context, target) pairs go into one ``score`` call and all
prompts into one ``generate`` call.

TOFU prompt format (parameter ``template``, default :data:`TOFU_TEMPLATE`): the context is
``template.format(question=q)`` = ``"Question: {q}\\nAnswer:"`` and the scored target is
``" " + answer`` (one space joins them; the engine tokenizes context+target as a whole and
scores the answer's tokens only). The greedy answer is generated from the same context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics import knowledge as km
from mnemoscope.metrics.text import knowmem as knowmem_score
from mnemoscope.metrics.text import knowmem_cut, knowmem_prompt, rouge_l_recall

TOFU_TEMPLATE = "Question: {question}\nAnswer:"


def _pair(item, keys: tuple[str, str], where: str) -> tuple[str, str]:
    """(a, b) from a 2-tuple or a mapping with ``keys``."""
    if isinstance(item, Mapping):
        missing = [k for k in keys if k not in item]
        if missing:
            raise MnemoscopeError(f"{where}: missing field(s) {missing}")
        a, b = item[keys[0]], item[keys[1]]
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        a, b = item
    else:
        raise MnemoscopeError(f"{where}: expected a ({keys[0]}, {keys[1]}) pair or an object with those fields")
    if not isinstance(a, str) or not isinstance(b, str):
        raise MnemoscopeError(f"{where}: fields {keys[0]} and {keys[1]} must be strings")
    return a, b


def knowmem(
    engine: Engine,
    qa: Sequence,
    shots: Sequence = (),
    *,
    max_new_tokens: int = 32,
    trailing_space: bool = False,
) -> tuple[pd.DataFrame, dict[str, float], list[str]]:
    """MUSE KnowMem: few-shot ``knowmem_prompt(shots, q)``, greedy ≤ ``max_new_tokens`` tokens,
    cut at the first stop string, score = 100 · ROUGE-L F1(cut answer, true answer).
    ``trailing_space=True``: the prompt ends in MUSE's ``"Answer: "`` instead of ``"Answer:"``.

    ``qa`` and ``shots``: (question, answer) pairs or objects with ``question``/``answer``.
    Keys ``knowmem/rouge_l_f1/mean`` (×100) and ``knowmem/n``.
    """
    items = [_pair(x, ("question", "answer"), f"knowmem item {i}") for i, x in enumerate(qa)]
    shot_pairs = [_pair(x, ("question", "answer"), f"knowmem shot {i}") for i, x in enumerate(shots)]
    if not items:
        return pd.DataFrame(columns=["question", "answer", "generated", "prediction", "knowmem"]), {}, ["knowmem: no items"]
    prompts = [knowmem_prompt(shot_pairs, q, trailing_space=trailing_space) for q, _ in items]
    outs = engine.generate(prompts, max_new_tokens=max_new_tokens)
    scores = [knowmem_score(o.text, a) for o, (_, a) in zip(outs, items)]
    samples = pd.DataFrame(
        {
            "question": [q for q, _ in items],
            "answer": [a for _, a in items],
            "generated": [o.text for o in outs],
            "prediction": [knowmem_cut(o.text) for o in outs],
            "knowmem": scores,
        }
    )
    return samples, {"knowmem/rouge_l_f1/mean": float(np.mean(scores)), "knowmem/n": float(len(scores))}, []


def _tofu_item(item, i: int) -> tuple[str, str, str, list[str]]:
    where = f"tofu item {i}"
    if not isinstance(item, Mapping):
        raise MnemoscopeError(f"{where}: expected an object with question, answer, paraphrased_answer, perturbed_answers")
    for key in ("question", "answer", "paraphrased_answer", "perturbed_answers"):
        if key not in item:
            raise MnemoscopeError(f"{where}: missing field '{key}'")
    pert = item["perturbed_answers"]
    if isinstance(pert, str) or not isinstance(pert, (Sequence, np.ndarray)) or len(pert) == 0:
        raise MnemoscopeError(f"{where}: field 'perturbed_answers' must be a non-empty list of strings")
    return item["question"], item["answer"], item["paraphrased_answer"], list(pert)


def tofu(
    engine: Engine,
    items: Sequence[Mapping],
    *,
    forget: bool = True,
    template: str = TOFU_TEMPLATE,
    max_new_tokens: int = 64,
    split: str | None = None,
    eos: bool = False,
) -> tuple[pd.DataFrame, dict[str, float], list[str]]:
    """TOFU per item: probability = exp(−mean NLL(answer | question)); truth ratio
    TR = exp(NLL_para − mean_j NLL_pert_j) (``metrics.knowledge.truth_ratio``); ROUGE-L recall
    (stemmed) of the greedy answer vs the answer; and the probability normalised over the
    answer options, P̃(a) / (P̃(a) + Σ_j P̃(perturbed_j)) (TOFU's "Prob." on the real-authors and
    world-facts sets). One score call (every answer, paraphrase and perturbed answer as a
    (context, " " + answer) pair) and one generate call.

    ``eos=True`` scores the tokenizer's EOS after every answer as part of it (mean NLL over the
    answer tokens + EOS), as TOFU's and open-unlearning's code do; the default scores the
    answer's tokens only.

    Keys (suffix ``@split=<split>`` when given): ``tofu/probability/mean``,
    ``tofu/probability_normalized/mean``, ``tofu/rouge_l_recall/mean``,
    ``tofu/truth_ratio/summary`` (``truth_ratio_summary(TR, forget)``: mean(min(TR, 1/TR)) on a
    forget set, mean(max(0, 1 − TR)) elsewhere), ``tofu/n``.
    """
    if "{question}" not in template:
        raise MnemoscopeError(f"tofu template {template!r} has no {{question}} field; add one")
    parsed = [_tofu_item(x, i) for i, x in enumerate(items)]
    if not parsed:
        return pd.DataFrame(), {}, ["tofu: no items"]
    contexts = [template.format(question=q) for q, *_ in parsed]
    pairs: list[tuple[str, str]] = []
    for ctx, (_, ans, para, perts) in zip(contexts, parsed):
        pairs += [(ctx, " " + ans), (ctx, " " + para)] + [(ctx, " " + p) for p in perts]
    scored = engine.score_encoded([engine.encoder.encode_pair(c, t, eos=eos) for c, t in pairs])
    outs = engine.generate([c.rstrip() for c in contexts], max_new_tokens=max_new_tokens)
    rows, pos = [], 0
    for (q, ans, para, perts), out in zip(parsed, outs):
        nll_ans, nll_para = scored[pos].nll, scored[pos + 1].nll
        nll_pert = [s.nll for s in scored[pos + 2 : pos + 2 + len(perts)]]
        pos += 2 + len(perts)
        rows.append(
            {
                "question": q,
                "answer": ans,
                "nll_answer": nll_ans,
                "probability": km.probability(nll_ans),
                "probability_normalized": km.probability(nll_ans) / (
                    km.probability(nll_ans) + float(np.sum(km.probability(nll_pert)))),
                "nll_paraphrased": nll_para,
                "nll_perturbed_mean": float(np.mean(nll_pert)),
                "truth_ratio": km.truth_ratio(nll_pert, nll_para),
                "generated": out.text,
                "rouge_l_recall": rouge_l_recall(out.text, ans, stem=True),
            }
        )
    samples = pd.DataFrame(rows)
    group = f"@split={split}" if split else ""
    metrics = {
        f"tofu/probability/mean{group}": float(samples["probability"].mean()),
        f"tofu/probability_normalized/mean{group}": float(samples["probability_normalized"].mean()),
        f"tofu/rouge_l_recall/mean{group}": float(samples["rouge_l_recall"].mean()),
        f"tofu/truth_ratio/summary{group}": km.truth_ratio_summary(samples["truth_ratio"].to_numpy(), forget),
        f"tofu/n{group}": float(len(samples)),
    }
    return samples, metrics, []


def target_nll(
    engine: Engine, probes: Sequence, *, groups: Sequence[str] | None = None
) -> tuple[pd.DataFrame, dict[str, float], list[str]]:
    """Target log-probability (Chang et al.): mean NLL of the target span given its prefix, and the
    first target token's NLL, from one batched score call over (prefix, target) pairs.

    ``probes``: (prefix, target) pairs or objects with ``prefix``/``target``. ``groups`` (optional,
    one label per probe, e.g. the probe kind) adds ``@group=<label>`` keys. Keys
    ``knowledge/target_nll/mean``, ``knowledge/first_token_nll/mean``, ``knowledge/n``.
    """
    pairs = [_pair(x, ("prefix", "target"), f"probe {i}") for i, x in enumerate(probes)]
    if groups is not None and len(groups) != len(pairs):
        raise MnemoscopeError(f"target_nll: {len(groups)} group labels for {len(pairs)} probes; pass one per probe")
    if not pairs:
        return pd.DataFrame(), {}, ["knowledge/target_nll: no probes"]
    scored = engine.score(pairs=pairs)
    samples = pd.DataFrame(
        {
            "prefix": [p for p, _ in pairs],
            "target": [t for _, t in pairs],
            "target_nll": [km.target_nll(s.logprobs) for s in scored],
            "first_token_nll": [km.first_token_nll(s.logprobs) for s in scored],
            "n_target_tokens": [s.n_scored for s in scored],
        }
    )
    frames = [("", samples)]
    if groups is not None:
        samples["group"] = list(groups)
        frames += [(f"@group={g}", samples[samples["group"] == g]) for g in dict.fromkeys(groups)]
    metrics: dict[str, float] = {}
    for suffix, frame in frames:
        metrics[f"knowledge/target_nll/mean{suffix}"] = float(frame["target_nll"].mean())
        metrics[f"knowledge/first_token_nll/mean{suffix}"] = float(frame["first_token_nll"].mean())
        metrics[f"knowledge/n{suffix}"] = float(len(frame))
    return samples, metrics, []
