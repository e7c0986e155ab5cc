"""More membership attacks, as a function the membership family calls:
``attack_scores(engine, texts, settings) -> (frame, notes)``, one row per text with a
``score/<attack>`` column per attack (higher = member; formulas in ``metrics.attacks``).

- neighbourhood (Mattern et al. 2023): NLL of the text against the mean NLL of ``n_neighbours``
  word-swap neighbours (``probes.neighbours``);
- gradnorm / gradnorm_embed (MIMIR): −mean p-norm of the NLL gradient per parameter tensor, and
  −p-norm of its gradient w.r.t. the input embeddings (one backward pass per text, p = ∞);
  smaller norm = member; ``gradnorm_orientation: mimir`` ranks larger norms as members, as MIMIR does;
- recall (Xie et al. 2024): LL(x | P) / LL(x), P = the non-member texts of ``recall_prefix``
  (the first ``recall_shots`` of them, joined by blank lines, P + x tokenized as one text);
  ``recall_format: authors`` joins them with "" and tokenizes P and x apart, as their code does;
- dcpdd (Zhang et al. 2024): token-frequency calibrated probabilities, frequencies counted in
  the corpus named by ``dcpdd_corpus`` (each document's first ``dcpdd_max_tokens`` tokens);
- samia (Kaneko et al. 2024): ``samia_samples`` sampled continuations (temperature 1, top-k 50,
  seeded) of each text's first half of words, ROUGE-1 recall against the second half; the
  candidate words are those of prompt + continuation after the prompt's words (the authors'
  ``get_suffix``); a continuation is as many tokens as the true second half has
  (``samia_max_new_tokens`` = N: N tokens, as the authors generate up to ``max_length`` 1024);
- pac (Ye et al. 2024) and conrecall (Wang et al. 2024): ``families.pac_conrecall``, run only when
  named (not in the default ``names``).

One ``score_encoded`` call serves the texts, their neighbours and the ReCaLL pairs together;
gradnorm needs its own backward passes and SaMIA one generate call. An attack whose input file
is not named is left out and a note says why (keys ``mia/<attack>/auc``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend, Sampling
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import pac_conrecall
from mnemoscope.metrics.attacks import (
    GRADNORM_ORIENTATIONS,
    dcpdd_score,
    gradnorm_score,
    neighbourhood_score,
    recall_score,
    samia_score,
    samia_split,
    token_frequencies,
)
from mnemoscope.probes.neighbours import vocabulary_words, word_swap_neighbours
from mnemoscope.probes.textfile import load_texts

ATTACKS = ("neighbourhood", "gradnorm", "gradnorm_embed", "recall", "dcpdd", "samia")
RECALL_FORMATS = ("ours", "authors")
KNOWN = ATTACKS + pac_conrecall.ATTACKS  # pac and conrecall: families.pac_conrecall, run only when named
DEFAULTS = {"attacks": {
    "names": list(ATTACKS),
    "n_neighbours": 25, "neighbour_swaps": 1,
    "gradnorm_p": "inf", "gradnorm_orientation": "ours",
    "recall_prefix": "", "recall_shots": 5, "recall_format": "ours",
    "dcpdd_corpus": "", "dcpdd_a": 0.01, "dcpdd_max_tokens": 1024,
    "samia_samples": 10, "samia_prefix_ratio": 0.5, "samia_temperature": 1.0, "samia_top_k": 50, "samia_zlib": False,
    "samia_max_new_tokens": 0,
    **pac_conrecall.DEFAULTS,
}}
PATH_KEYS = ("attacks.recall_prefix", "attacks.dcpdd_corpus", *pac_conrecall.PATH_KEYS)
NEEDS = ("logprobs", "gradients", "sample")


@dataclass
class Settings:
    names: tuple[str, ...] = ATTACKS
    n_neighbours: int = 25
    neighbour_swaps: int = 1
    gradnorm_p: float = math.inf
    gradnorm_orientation: str = "ours"  # "mimir": larger norm = member, as MIMIR's AUC ranks them
    recall_prefix: list[str] | None = None  # non-member texts
    recall_shots: int = 5
    recall_format: str = "ours"  # "authors": shots joined with "", prefix and text tokenized apart
    dcpdd_corpus: list[str] | None = None
    dcpdd_a: float = 0.01
    dcpdd_max_tokens: int = 1024
    samia_samples: int = 10
    samia_prefix_ratio: float = 0.5
    samia_temperature: float = 1.0
    samia_top_k: int = 50
    samia_zlib: bool = False
    samia_max_new_tokens: int = 0  # 0: as many tokens as the true second half has
    seed: int = 0
    notes: dict[str, str] = field(default_factory=dict)
    more: pac_conrecall.Settings | None = None  # pac, conrecall


def read(cfg: dict, seed: int = 0) -> Settings:
    """Settings from the ``attacks`` section, reading the files it names (one-line errors)."""
    a = cfg["attacks"]
    names = tuple(a["names"])
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise MnemoscopeError(f"attacks.names: unknown attack(s) {unknown}; known: {', '.join(KNOWN)}")
    p = a["gradnorm_p"]
    p = math.inf if str(p).lower() in ("inf", "infinity") else float(p)
    if p not in (1.0, 2.0, math.inf):
        raise MnemoscopeError(f"attacks.gradnorm_p must be 1, 2 or inf, got {a['gradnorm_p']}")
    if a["gradnorm_orientation"] not in GRADNORM_ORIENTATIONS:
        raise MnemoscopeError(f"attacks.gradnorm_orientation must be one of {', '.join(GRADNORM_ORIENTATIONS)}, "
                              f"got {a['gradnorm_orientation']!r}")
    for key in ("n_neighbours", "neighbour_swaps", "recall_shots", "dcpdd_max_tokens", "samia_samples"):
        if int(a[key]) < 1:
            raise MnemoscopeError(f"attacks.{key} must be ≥ 1, got {a[key]}")
    if a["recall_format"] not in RECALL_FORMATS:
        raise MnemoscopeError(f"attacks.recall_format must be one of {', '.join(RECALL_FORMATS)}, "
                              f"got {a['recall_format']!r}")
    if int(a["samia_max_new_tokens"]) < 0:
        raise MnemoscopeError(f"attacks.samia_max_new_tokens must be ≥ 0 (0: the true second half's length), "
                              f"got {a['samia_max_new_tokens']}")
    if not 0 < float(a["samia_prefix_ratio"]) < 1:
        raise MnemoscopeError(f"attacks.samia_prefix_ratio must be in (0, 1), got {a['samia_prefix_ratio']}")
    s = Settings(names=names, n_neighbours=int(a["n_neighbours"]), neighbour_swaps=int(a["neighbour_swaps"]),
                 gradnorm_p=p, gradnorm_orientation=a["gradnorm_orientation"], recall_shots=int(a["recall_shots"]),
                 dcpdd_a=float(a["dcpdd_a"]),
                 dcpdd_max_tokens=int(a["dcpdd_max_tokens"]), samia_samples=int(a["samia_samples"]),
                 samia_prefix_ratio=float(a["samia_prefix_ratio"]), samia_temperature=float(a["samia_temperature"]),
                 samia_top_k=int(a["samia_top_k"]), samia_zlib=bool(a["samia_zlib"]),
                 samia_max_new_tokens=int(a["samia_max_new_tokens"]), recall_format=a["recall_format"], seed=seed)
    if "recall" in names:
        if a["recall_prefix"]:
            s.recall_prefix = load_texts(a["recall_prefix"])
        else:
            s.notes["mia/recall/auc"] = "not computed: attacks.recall_prefix names no file of non-member texts"
    if "dcpdd" in names:
        if a["dcpdd_corpus"]:
            s.dcpdd_corpus = load_texts(a["dcpdd_corpus"])
        else:
            s.notes["mia/dcpdd/auc"] = "not computed: attacks.dcpdd_corpus names no reference corpus file"
    if set(names) & set(pac_conrecall.ATTACKS):
        s.more = pac_conrecall.read(a, names, seed)
    return s


def _recall_prefix(s: Settings) -> str:
    shots = s.recall_prefix[: s.recall_shots]
    return "".join(shots) if s.recall_format == "authors" else "\n\n".join(shots) + "\n\n"


def _recall_item(engine: Backend, prefix: str, text: str) -> Encoded:
    """x after the prefix P. Ours: one text P + x split at P (``encode_pair``). The authors'
    (ReCaLL ``get_conditional_ll``): P and x tokenized apart, each as ``tokenizer(...)`` would
    (BOS included), concatenated; every token of x's encoding scored."""
    first = engine.prefix_ids() + engine.text_ids(prefix)
    return Encoded(ids=first + engine.prefix_ids() + engine.text_ids(text), score_from=len(first), bos=engine.bos)


def check(engine: Backend, texts: list[str], s: Settings) -> None:
    """Everything that can fail before a score is computed: capabilities, lengths (a one-line error)."""
    if "gradnorm" in s.names or "gradnorm_embed" in s.names:
        engine.require("gradients", "the gradnorm attack")
    if "samia" in s.names:
        engine.require("sample", "the SaMIA attack")
    engine.check_texts(texts)
    if s.more is not None:
        pac_conrecall.check(engine, texts, s.more)
    if "recall" in s.names and s.recall_prefix:
        prefix = _recall_prefix(s)
        for i, t in enumerate(texts):
            if not engine.fits(2 * len(engine.prefix_ids()) + len(engine.text_ids(prefix)) + len(engine.text_ids(t))):
                raise MnemoscopeError(f"attacks.recall_prefix: text {i} with the {s.recall_shots}-shot non-member prefix "
                                      f"exceeds the model's context ({engine.max_length}); lower attacks.recall_shots")


def attack_scores(engine: Backend, texts: list[str], s: Settings) -> tuple[pd.DataFrame, dict[str, str]]:
    """``score/<attack>`` columns (one row per text, in order) and notes for attacks left out."""
    check(engine, texts, s)
    notes = dict(s.notes)
    frame = pd.DataFrame(index=range(len(texts)))
    want = set(s.names)
    # ---- one likelihood pass: texts, neighbours, ReCaLL pairs
    items = [engine.encode_text(t) for t in texts]
    neighbours: list[list[str]] = []
    if "neighbourhood" in want:
        words = vocabulary_words([engine.decode([i]) for i in range(len(engine.tokenizer))])
        neighbours = [word_swap_neighbours(t, words, s.n_neighbours, swaps=s.neighbour_swaps, seed=s.seed) for t in texts]
        items += [engine.encode_text(nb) for group in neighbours for nb in group]
    use_recall = "recall" in want and s.recall_prefix
    if use_recall:
        prefix = _recall_prefix(s)
        if s.recall_format == "authors":
            items += [_recall_item(engine, prefix, t) for t in texts]
        else:
            items += [engine.encode_pair(prefix, t) for t in texts]
    scored = engine.score_encoded(items)
    base, rest = scored[: len(texts)], scored[len(texts):]
    if "neighbourhood" in want:
        vals, k = [], 0
        for t, group in zip(texts, neighbours):
            nlls = [sc.nll for sc in rest[k : k + len(group)]]
            k += len(group)
            vals.append(neighbourhood_score(base[len(vals)].nll, nlls))
        rest = rest[k:]
        frame["score/neighbourhood"] = vals
        if any(not g for g in neighbours):
            notes["mia/neighbourhood/auc"] = "texts without an alphabetic word have no neighbours (score null)"
    if use_recall:
        frame["score/recall"] = [recall_score(-c.nll, -u.nll) for c, u in zip(rest, base)]
    if "dcpdd" in want and s.dcpdd_corpus:
        counts = _token_counts(engine, s.dcpdd_corpus, s.dcpdd_max_tokens,
                               max(int(max(sc.token_ids.max(initial=0) for sc in base)) + 1, len(engine.tokenizer)))
        freq = token_frequencies(counts)
        frame["score/dcpdd"] = [dcpdd_score(sc.token_ids, sc.logprobs, freq, s.dcpdd_a) for sc in base]
    # ---- gradients: one backward pass per text
    if want & {"gradnorm", "gradnorm_embed"}:
        grads = engine.gradient_norms(texts, p=s.gradnorm_p)
        if "gradnorm" in want:
            frame["score/gradnorm"] = [gradnorm_score(g.param_norms, s.gradnorm_orientation) for g in grads]
        if "gradnorm_embed" in want:
            frame["score/gradnorm_embed"] = [gradnorm_score([g.embed_norm], s.gradnorm_orientation) for g in grads]
    # ---- SaMIA: one sampled generate call
    if "samia" in want:
        frame["score/samia"] = _samia(engine, texts, s, notes)
    if s.more is not None:  # PAC, Con-ReCall: their own score_encoded call, on the texts' scores above
        more, more_notes = pac_conrecall.attack_scores(engine, texts, s.more, base)
        frame, notes = pd.concat([frame, more], axis=1), {**notes, **more_notes}
    return frame, notes


def _token_counts(engine: Backend, corpus: list[str], max_tokens: int, vocab: int) -> np.ndarray:
    counts = np.zeros(vocab, dtype=np.int64)
    for text in corpus:
        ids = (engine.prefix_ids() + engine.text_ids(text))[:max_tokens]
        counts += np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab)[:vocab]
    return counts


def _samia(engine: Backend, texts: list[str], s: Settings, notes: dict[str, str]) -> list[float]:
    splits = [samia_split(t, s.samia_prefix_ratio) for t in texts]
    jobs = [i for i, (p, ref) in enumerate(splits) if p and ref]
    if len(jobs) < len(texts):
        notes["mia/samia/auc"] = (f"{len(texts) - len(jobs)} text(s) too short to split into two halves of words "
                                  "(score null)")
    out = [math.nan] * len(texts)
    if not jobs:
        return out
    if s.samia_max_new_tokens:
        lengths = {i: s.samia_max_new_tokens for i in jobs}
    else:
        lengths = {i: len(engine.text_ids(" " + " ".join(splits[i][1]))) for i in jobs}
    prompts = [splits[i][0] for i in jobs for _ in range(s.samia_samples)]
    gens = engine.generate(prompts, max_new_tokens=max(lengths.values()),
                           sampling=Sampling(temperature=s.samia_temperature, top_k=s.samia_top_k, seed=s.seed))
    for j, i in enumerate(jobs):
        k = len(splits[i][0].split())  # the authors' get_suffix: the words of prompt + sample after the prompt's
        samples = [[w for w in (splits[i][0] + engine.decode(g.token_ids[: lengths[i]])).split(" ") if w][k:]
                   for g in gens[j * s.samia_samples : (j + 1) * s.samia_samples]]
        out[i] = samia_score(samples, splits[i][1], zlib_weight=s.samia_zlib)
    return out
