"""PAC and Con-ReCall, two membership attacks that ``families.attacks`` calls when they are named
(formulas in ``metrics.pac_conrecall``; one ``score_encoded`` call serves both):

- pac (Ye et al. 2024, *Data Contamination Calibration for Black-box LLMs*): the polarized
  distance of the text's token log-probs against its mean over ``pac_augmentations`` copies
  with random word swaps (EDA, ``pac_alpha`` of the words; seeded with the run's seed);
- conrecall (Wang et al. 2024, *Con-ReCall: Detecting Pre-training Data in LLMs via Contrastive
  Decoding*): ReCaLL with a member prefix as well, (LL(x | P_non) − γ·LL(x | P_mem)) / LL(x);
  P_non = the first ``recall_shots`` texts of ``recall_prefix``, P_mem = those of
  ``conrecall_members`` (texts known to be members), each prefix the shots joined with nothing
  and its ids put before the text's own ids, as the authors do.

Config keys (section ``attacks``): ``pac_augmentations`` [5], ``pac_alpha`` [0.3], ``pac_local``
[0.3], ``pac_far`` [0.05], ``conrecall_members`` [""], ``conrecall_gamma`` [0.5].
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend, TokenScores
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.pac_conrecall import conrecall_score, eda_swaps, pac_score, polarized_distance
from mnemoscope.probes.textfile import load_texts

ATTACKS = ("pac", "conrecall")
DEFAULTS = {"pac_augmentations": 5, "pac_alpha": 0.3, "pac_local": 0.3, "pac_far": 0.05,
            "conrecall_members": "", "conrecall_gamma": 0.5}
PATH_KEYS = ("attacks.conrecall_members",)


@dataclass
class Settings:
    names: tuple[str, ...] = ATTACKS
    pac_augmentations: int = 5
    pac_alpha: float = 0.3
    pac_local: float = 0.3
    pac_far: float = 0.05
    nonmember_prefix: list[str] | None = None  # Con-ReCall's P_non: recall_prefix's texts
    member_prefix: list[str] | None = None  # Con-ReCall's P_mem: conrecall_members' texts
    shots: int = 5
    gamma: float = 0.5
    seed: int = 0
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def conrecall(self) -> bool:
        return "conrecall" in self.names and bool(self.nonmember_prefix) and bool(self.member_prefix)


def read(a: dict, names: tuple[str, ...], seed: int = 0) -> Settings:
    """Settings from the ``attacks`` section ``a`` (its files read; one-line errors naming the key)."""
    if int(a["pac_augmentations"]) < 1:
        raise MnemoscopeError(f"attacks.pac_augmentations must be ≥ 1, got {a['pac_augmentations']}")
    for key in ("pac_alpha", "pac_local", "pac_far"):
        if not 0 < float(a[key]) <= 1:
            raise MnemoscopeError(f"attacks.{key} must be in (0, 1], got {a[key]}")
    gamma = float(a["conrecall_gamma"])
    if not math.isfinite(gamma) or gamma < 0:
        raise MnemoscopeError(f"attacks.conrecall_gamma must be a finite number ≥ 0, got {a['conrecall_gamma']}")
    s = Settings(names=tuple(n for n in names if n in ATTACKS), pac_augmentations=int(a["pac_augmentations"]),
                 pac_alpha=float(a["pac_alpha"]), pac_local=float(a["pac_local"]), pac_far=float(a["pac_far"]),
                 shots=int(a["recall_shots"]), gamma=gamma, seed=seed)
    if "conrecall" in s.names:
        missing = [what for key, what in (("recall_prefix", "non-member"), ("conrecall_members", "member"))
                   if not a[key]]
        if missing:
            s.notes["mia/conrecall/auc"] = ("not computed: Con-ReCall needs " + " and ".join(
                f"attacks.{k} ({w} texts)" for k, w in (("recall_prefix", "non-member"),
                                                        ("conrecall_members", "member")) if w in missing))
        else:
            s.nonmember_prefix, s.member_prefix = load_texts(a["recall_prefix"]), load_texts(a["conrecall_members"])
    return s


def _prefix(texts: list[str], shots: int) -> str:
    return "".join(texts[:shots])


def _conditioned(engine: Backend, prefix: str, text: str) -> Encoded:
    """[BOS] + ids(prefix) + ids(text), the text's tokens scored (the authors concatenate the two
    encodings; we never put a BOS between them)."""
    head = engine.prefix_ids() + engine.text_ids(prefix)
    return Encoded(ids=head + engine.text_ids(text), score_from=len(head), bos=bool(engine.prefix_ids()))


def _copies(texts: list[str], s: Settings) -> list[list[str]]:
    """PAC's augmented copies: one ``random.Random(seed)`` over the texts in order."""
    rng = random.Random(s.seed)
    return [eda_swaps(t, s.pac_augmentations, s.pac_alpha, rng) for t in texts]


def check(engine: Backend, texts: list[str], s: Settings) -> None:
    """PAC's copies and Con-ReCall's prefixed texts must fit the context (a one-line error naming
    the text and the setting)."""
    if "pac" in s.names:
        for i, group in enumerate(_copies(texts, s)):
            for c in group:
                try:
                    engine.encode_text(c)
                except MnemoscopeError as err:
                    raise MnemoscopeError(f"attacks: PAC's word-swapped copy of text {i}: {err}") from None
    if not s.conrecall:
        return
    for key, shots in (("recall_prefix", s.nonmember_prefix), ("conrecall_members", s.member_prefix)):
        head = len(engine.prefix_ids()) + len(engine.text_ids(_prefix(shots, s.shots)))
        for i, t in enumerate(texts):
            if not engine.fits(head + len(engine.text_ids(t))):
                raise MnemoscopeError(f"attacks.{key}: text {i} with the {s.shots}-shot prefix exceeds the model's "
                                      f"context ({engine.max_length}); lower attacks.recall_shots")


def attack_scores(engine: Backend, texts: list[str], s: Settings,
                  base: list[TokenScores]) -> tuple[pd.DataFrame, dict[str, str]]:
    """``score/pac`` and ``score/conrecall`` (those named), given the texts' own scores ``base``;
    notes for what was left out."""
    notes = dict(s.notes)
    frame = pd.DataFrame(index=range(len(texts)))
    items: list[Encoded] = []
    copies: list[list[str]] = []
    if "pac" in s.names:
        copies = _copies(texts, s)
        items += [engine.encode_text(c) for group in copies for c in group]
    if s.conrecall:
        p_non, p_mem = _prefix(s.nonmember_prefix, s.shots), _prefix(s.member_prefix, s.shots)
        items += [_conditioned(engine, p, t) for p in (p_non, p_mem) for t in texts]
    scored = engine.score_encoded(items)
    if "pac" in s.names:
        n = s.pac_augmentations
        pd_aug = np.array([polarized_distance(sc.logprobs, s.pac_local, s.pac_far) for sc in scored[: n * len(texts)]])
        frame["score/pac"] = [pac_score(polarized_distance(b.logprobs, s.pac_local, s.pac_far), pd_aug[i * n:(i + 1) * n])
                              for i, b in enumerate(base)]
        scored = scored[n * len(texts):]
    if s.conrecall:
        non, mem = scored[: len(texts)], scored[len(texts):]
        frame["score/conrecall"] = [conrecall_score(-a.nll, -m.nll, -b.nll, s.gamma) for a, m, b in zip(non, mem, base)]
    return frame, notes
