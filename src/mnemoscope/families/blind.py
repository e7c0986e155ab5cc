"""Blind baseline: can the member and non-member sets be told apart WITHOUT the model?

Das, Zhang & Tramèr (2024) beat published membership attacks on eight MIA datasets with
classifiers that never see the model, because the members and non-members differ in
distribution. This family runs the same check on whatever sets a membership measurement is given
(on by default; ``blind.enabled: false`` turns it off): ``metrics.blind``'s bag-of-words
classifier (cross-validated, out-of-fold scores) and, where the texts carry years, Das et al.'s
date detector. Each gets the attacks' statistics (AUC with the same bootstrap CI — over groups
when the texts are grouped — and TPR at low FPR): keys ``blind/bow/...`` and ``blind/date/...``.

``verdict(metrics)`` compares the blind AUC with the best attack's: when the blind baseline is
above chance and reaches the best attack's CI, the run's summary and report say that the sets
differ without the model and the attack AUCs cannot be read as membership.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnemoscope.config import Typed
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.base import Context, Result
from mnemoscope.families.membership import attack_metrics, load_grouped_sets
from mnemoscope.metrics.blind import (
    ANY_FOUR_DIGITS,
    BASELINES,
    YEAR_PATTERN,
    bag_of_words_scores,
    date_scores,
    fold_count_problem,
    auc_row,
    latest_years,
    verdict,
)
from mnemoscope.summary import fmt_metric

NAME = "blind"
TITLE = "Blind baseline (no model)"
DEFAULTS = {"blind": {"enabled": True, "folds": 5, "ngram_max": 2, "cutoff_year": Typed(int), "years": "standalone"}}
PATH_KEYS = ()
NEEDS = ()
YEAR_RULES = {"standalone": YEAR_PATTERN, "any4": ANY_FOUR_DIGITS}
MIN_YEAR_SHARE = 0.1  # the date detector runs when at least this share of the texts writes a year


@dataclass
class Settings:
    folds: int = 5
    ngram_max: int = 2
    cutoff_year: int | None = None
    years: str = "standalone"


@dataclass
class Inputs:
    members: list[str]
    nonmembers: list[str]
    groups: list[str] | None
    settings: Settings


def settings_from(section: dict) -> Settings:
    """The ``blind`` config section, checked (one-line errors naming the key)."""
    if int(section["folds"]) < 2:
        raise MnemoscopeError(f"blind.folds must be ≥ 2, got {section['folds']}")
    if int(section["ngram_max"]) < 1:
        raise MnemoscopeError(f"blind.ngram_max must be ≥ 1, got {section['ngram_max']}")
    if section["years"] not in YEAR_RULES:
        raise MnemoscopeError(f"blind.years '{section['years']}': use standalone (ours) or any4 (Das et al.'s pattern)")
    return Settings(int(section["folds"]), int(section["ngram_max"]), section["cutoff_year"], section["years"])


def read(cfg: dict, ctx: Context) -> Inputs | None:
    d = cfg["data"]
    if not cfg["blind"]["enabled"] or not (d["members"] or d["nonmembers"] or d["wikimia"]):
        return None
    settings = settings_from(cfg["blind"])
    members, nonmembers, groups = load_grouped_sets(d["members"], d["nonmembers"], d["drop_overlap"],
                                                    warn=lambda _: None, wikimia_path=d["wikimia"])  # membership warns
    return Inputs(members, nonmembers, groups, settings)


def plan(inputs: Inputs, engine, ctx: Context) -> Inputs:
    return inputs  # nothing to encode: the blind baseline never asks the model


def measure(inputs: Inputs, engine, ctx: Context) -> Result:
    return blind_baseline(inputs.members + inputs.nonmembers, [1] * len(inputs.members) + [0] * len(inputs.nonmembers),
                          groups=inputs.groups, settings=inputs.settings, n_boot=ctx.n_boot, seed=ctx.seed)


def blind_baseline(texts: list[str], labels, *, groups=None, settings: Settings | None = None, n_boot: int = 1000,
                   seed: int = 0) -> Result:
    """The blind baselines on these texts (label 1 = member): samples (text, label[, group],
    year, score/bow, score/date), metrics ``blind/<bow|date>/...`` and notes. Too few texts (or
    groups) for the folds, or too few texts with a year, leave a baseline null with a note."""
    s = settings or Settings()
    y = np.asarray(labels, dtype=int)
    years = latest_years(texts, YEAR_RULES[s.years])
    samples = pd.DataFrame({"text": texts, "label": y})
    if groups is not None:
        samples["group"] = list(groups)
    samples["year"] = years
    result = Result()
    problem = fold_count_problem(y, s.folds, groups)
    if problem is None:
        try:
            samples["score/bow"] = bag_of_words_scores(texts, y, folds=s.folds, ngram_max=s.ngram_max, seed=seed,
                                                       groups=groups)
        except ValueError as exc:  # e.g. no word of two or more letters in a training fold: no vocabulary
            result.not_computed("blind/bow/auc", f"blind/bow: not computed: the classifier could not be fitted ({exc})")
    else:
        result.not_computed("blind/bow/auc",
                            f"blind/bow: not computed: {problem}; lower blind.folds or give more texts")
    share = float(np.isfinite(years).mean()) if len(texts) else 0.0
    result.metrics["blind/date/share_with_year"] = share
    if share < MIN_YEAR_SHARE:
        result.not_computed("blind/date/auc", f"blind/date: not computed: {share:.0%} of the texts write a year "
                                              f"(the date detector needs ≥ {MIN_YEAR_SHARE:.0%})")
    elif s.cutoff_year is None and problem is not None:
        result.not_computed("blind/date/auc", f"blind/date: not computed: {problem}; lower blind.folds, give more "
                                              "texts, or set blind.cutoff_year (no fitting)")
    else:
        samples["score/date"] = date_scores(years, y, cutoff=s.cutoff_year, folds=s.folds, seed=seed, groups=groups)
    scores = samples[[c for c in samples.columns if c.startswith("score/")]]
    if len(scores.columns):
        result.update(attack_metrics(y, scores, n_boot=n_boot, seed=seed, groups=groups, prefix="blind"))
    result.samples = samples
    return result


def headline(metrics: dict, attacks: str = r"mia/([^/@]+)/auc") -> list[str]:
    """Each blind baseline's AUC, then the verdict against the attacks whose AUC keys match
    ``attacks`` (``metrics.blind.verdict``) when there is one."""
    lines = []
    for name, title in BASELINES.items():
        row = auc_row(metrics, f"blind/{name}/auc")
        if row is not None:
            lines.append(f"blind baseline ({title}, no model): AUC {fmt_metric('auc', row[0])} "
                         f"[{row[1]:.3f}, {row[2]:.3f}]")
    said = verdict(metrics, attacks)
    return lines + ([said] if said else [])
