"""What each lab recipe is for: its source paper's finding as a testable sentence, and the metric
keys that measure the finding's effect in a run.

A :class:`Claim` names the recipe, the source, the finding and one or more :class:`Effect`\\ s. An
effect is a metric key the recipe writes (with ``/ci_lo`` and ``/ci_hi`` beside it when it has an
interval) and the side of a threshold the finding predicts, e.g. "recall of studied items minus
recall of never-studied ones > 0". The claim *holds in a run* when every effect is on its side;
across seeds, the report states the mean, the sample standard deviation, min–max and in how many
seeds each effect holds. ``scale`` says what the default (CPU) scale can and cannot show and which
setting should show the rest.

The run report's first section (``report/sections/claim.py``), the seed comparison page
(``report/comparison.py``) and ``mnemoscope compare``'s default columns read :data:`CLAIMS`;
``docs/recipes.md`` holds the measured 3-seed figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Effect:
    key: str
    label: str
    direction: str = ">"  # the finding predicts value > threshold (">") or value < threshold ("<")
    threshold: float = 0.0
    minus: str | None = None  # a second key: the effect is key − minus (no interval then)

    def __post_init__(self):
        if self.direction not in (">", "<"):
            raise ValueError(f"Effect {self.key}: direction must be '>' or '<', not {self.direction!r}")

    @property
    def rule(self) -> str:
        return f"{self.direction} {self.threshold:g}"

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,) if self.minus is None else (self.key, self.minus)

    @property
    def formula(self) -> str:
        return self.key if self.minus is None else f"{self.key} − {self.minus}"

    def value(self, metrics: Mapping) -> float | None:
        """The effect in one run's metrics: the key's value, or key − minus; None when missing."""
        v = _number(metrics, self.key)
        if self.minus is None or v is None:
            return v
        w = _number(metrics, self.minus)
        return None if w is None else v - w

    def holds(self, value: float | None) -> bool | None:
        """Whether ``value`` is on the predicted side (None when there is no number)."""
        if value is None or not math.isfinite(value):
            return None
        return value > self.threshold if self.direction == ">" else value < self.threshold


@dataclass(frozen=True)
class Claim:
    recipe: str
    source: str
    sentence: str
    effects: tuple[Effect, ...]
    scale: str = ""


def stat_key(key: str, stat: str) -> str:
    """``a/b@x=1`` with ``stat`` → ``a/b/stat@x=1`` (the flat-key place of a statistic)."""
    name, sep, tags = key.partition("@")
    return f"{name}/{stat}{sep}{tags}"


def _number(metrics: Mapping, key: str) -> float | None:
    v = metrics.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def effect_rows(claim: Claim, metrics: Mapping) -> list[dict]:
    """One row per effect of ``claim`` in one run: value, 95% interval (None when the run has none),
    whether the value is on the predicted side, and whether the whole interval is. A difference of
    two keys has no interval."""
    rows = []
    for e in claim.effects:
        value = e.value(metrics)
        lo = hi = None
        if e.minus is None:
            lo, hi = _number(metrics, stat_key(e.key, "ci_lo")), _number(metrics, stat_key(e.key, "ci_hi"))
        clear = None
        if lo is not None and hi is not None:
            clear = bool(e.holds(lo) and e.holds(hi))
        rows.append({"effect": e, "value": value, "ci_lo": lo, "ci_hi": hi, "holds": e.holds(value),
                     "ci_clear": clear})
    return rows


def holds(claim: Claim, metrics: Mapping) -> bool | None:
    """True when every effect is on its side, False when one is not, None when one is missing."""
    states = [r["holds"] for r in effect_rows(claim, metrics)]
    if any(s is False for s in states):
        return False
    return None if any(s is None for s in states) else True


def effect_spread(claim: Claim, runs: Sequence[Mapping]) -> list[dict]:
    """Per effect over several runs' metrics: the values, n (runs with a number), mean, sd (n − 1;
    nan below 2), min, max, and in how many runs the effect holds."""
    out = []
    for e in claim.effects:
        values = [e.value(m) for m in runs]
        x = np.array([v for v in values if v is not None], dtype=np.float64)
        n = int(x.size)
        out.append({
            "effect": e, "values": values, "n": n,
            "mean": float(x.mean()) if n else math.nan,
            "sd": float(x.std(ddof=1)) if n > 1 else math.nan,
            "min": float(x.min()) if n else math.nan,
            "max": float(x.max()) if n else math.nan,
            "n_hold": int(sum(bool(e.holds(v)) for v in values if v is not None)),
        })
    return out


CLAIMS: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    CLAIMS[claim.recipe] = claim
    return claim


def claim_for(recipe: str | None) -> Claim | None:
    return CLAIMS.get(recipe or "")


# --------------------------------------------------------------------------- the recipes' claims
# Each sentence is the source's qualitative finding, worded so that the effects below test it. The
# effect keys are the recipe's own metric keys; docs/recipes.md has the figures measured across seeds.

register(Claim(
    "quickstart", "Carlini et al. 2023, Quantifying Memorization Across Neural Language Models",
    "Memorization grows with duplication: canaries trained 64 times are extracted verbatim more often "
    "and told apart from never-seen controls better than canaries trained once.",
    (Effect("extraction/exact/rate@dose=64", "exact extraction, dose 64 − dose 1",
            minus="extraction/exact/rate@dose=1"),
     Effect("mia/min_k_pp/auc@dose=64", "Min-K%++ AUC, dose 64 − dose 1", minus="mia/min_k_pp/auc@dose=1"),
     Effect("mia/min_k_pp/auc@dose=64", "Min-K%++ AUC at dose 64 vs chance", ">", 0.5)),
    scale="At the tiny scale the trend with dose is what can be shown; doses are exact repetitions of "
          "synthetic canaries, not duplicates found in a web corpus."))

register(Claim(
    "acquisition", "Chang et al. 2024, How Do Large Language Models Acquire Factual Knowledge During Pretraining?",
    "Injected facts are forgotten once injections stop (probe loss rises by more than the never-seen "
    "control drifts), and facts injected as duplicates are forgotten faster than paraphrased ones.",
    (Effect("acquisition/nll/rise_after_last_vs_control@group=paraphrase,probe=memorization",
            "memorization-probe NLL rise after the last injection beyond the control (paraphrase)"),
     Effect("acquisition/retainability/decay_a@group=duplicate,probe=memorization",
            "decay a, duplicate − paraphrase (memorization probes)",
            minus="acquisition/retainability/decay_a@group=paraphrase,probe=memorization"),
     Effect("acquisition/retainability/decay_a@group=duplicate,probe=semantic",
            "decay a, duplicate − paraphrase (semantic probes)",
            minus="acquisition/retainability/decay_a@group=paraphrase,probe=semantic")),
    scale="Tiny scale: injections fill ~40% of a batch and the R² of the log-decay fits is low (0.2–0.4); "
          "--set scale=paper (GPU) uses the published spacing and window."))

register(Claim(
    "retention", "Orhan 2023, Recognition, recall, and retention of few-shot memories in large language models",
    "After a few exposures, studied texts are recognised and recalled better than never-studied ones, "
    "recognition improves with the number of exposures, and it fades under continued training on other text.",
    (Effect("recognition/2afc/gain@exposures=3,phase=after_study",
            "2AFC accuracy, 3 exposures − never studied (after study)"),
     Effect("recall/unguessed/gain@exposures=3,phase=after_study",
            "recall of tokens the model could not guess before study, 3 exposures − never studied"),
     Effect("retention/compare/accuracy_gap@a=3,b=1,phase=after_study", "2AFC accuracy, 3 exposures − 1 exposure"),
     Effect("retention/recognition/decay_a@exposures=3", "recognition decay per decade of steps (3 exposures)")),
    scale="One tiny model studies all groups at once, 48 items per group: a single seed's interval on a "
          "one-exposure difference is about ±0.13. --set scale=gpu (200 items per group) narrows it."))

register(Claim(
    "capacity", "Allen-Zhu & Li 2024, Physics of Language Models: Part 3.3, Knowledge Capacity Scaling Laws",
    "Knowledge stored grows with exposures: bits stored per person rise with the number of exposures "
    "(toward ~2 bits per parameter at saturation).",
    (Effect("capacity/fit/slope_per_decade", "bits per person per decade of exposures"),
     Effect("capacity/person_bits/mean@exposures=100", "bits per person, 100 exposures − never trained",
            minus="capacity/person_bits/mean@exposures=0")),
    scale="The tiny model is far from saturation: it stores ~0.002 bits/parameter, not the paper's ~2; "
          "only the trend with exposures is testable here. --set scale=gpu trains to 1,000 exposures."))

register(Claim(
    "reasoning", "Xie et al. 2024, On Memorization of Large Language Models in Logical Reasoning",
    "Fine-tuned models solve their training puzzles but fail locally perturbed versions of them "
    "(LiMem > 0), while fine-tuning also lifts accuracy on unseen puzzles above chance.",
    (Effect("reasoning/accuracy@split=train,phase=after", "accuracy, training − perturbed puzzles",
            minus="reasoning/accuracy@split=perturbed,phase=after"),
     Effect("reasoning/limem/limem@phase=after", "LiMem after fine-tuning"),
     # chance = mean over puzzle sizes of 2^-people: 0.1875 for the default 2- and 3-person puzzles
     Effect("reasoning/accuracy@split=unseen,phase=after", "accuracy on unseen puzzles vs chance (2–3 people)",
            ">", 0.1875)),
    scale="A random-init ~1 M-parameter model memorises; it is not expected to generalise to unseen "
          "puzzles (the third effect). --set model.init=DIR scale=gpu fine-tunes a pretrained model."))

register(Claim(
    "sort", "Pink et al. 2024, Assessing Episodic Memory in LLMs with Sequence Order Recall Tasks",
    "With the excerpt in context a model tells which of two segments came first above chance; after "
    "training on the book without the excerpt in context, order recall is far worse than in context.",
    (Effect("sort/short_term/accuracy@phase=after", "in-context SORT accuracy vs chance", ">", 0.5),
     Effect("sort/short_term/accuracy@phase=after", "SORT accuracy, in context − from training (long-term)",
            minus="sort/long_term/accuracy@phase=after")),
    scale="The paper evaluates pretrained LLMs on real books; --set model.init=DIR scale=gpu runs that."))

register(Claim(
    "unlearning", "Shi et al. 2024, MUSE: Machine Unlearning Six-Way Evaluation for Language Models",
    "Unlearning removes knowledge of the forget set but also damages knowledge of the retain set: "
    "after NPO+GD, KnowMem on the forget set falls and KnowMem on the retain set falls too.",
    (Effect("unlearn/original/knowmem_forget", "KnowMem on the forget set, original − unlearned (NPO+GD)",
            minus="unlearn/npo_gd/knowmem_forget"),
     Effect("unlearn/original/knowmem_retain", "KnowMem on the retain set, original − unlearned (NPO+GD)",
            minus="unlearn/npo_gd/knowmem_retain")),
    scale="The person, not the text, is the unit that varies: one run's membership figures move "
          "noticeably from seed to seed (docs/recipes.md, unlearning)."))

register(Claim(
    "extraction", "Ippolito et al. 2023; Kuditipudi et al. 2025",
    "Blocking verbatim training n-grams (MemFree) stops exact extraction of heavily repeated canaries, "
    "and the order of training data is detectable in a model fine-tuned from the original but not in "
    "one trained independently.",
    (Effect("approx/exact/rate@dose=64", "exact extraction at dose 64, unfiltered − MemFree",
            minus="approx/exact/rate@dose=64,filter=memfree"),
     Effect("provenance/p_value@suspect=derived", "provenance p-value, derived model", "<", 0.01),
     Effect("provenance/p_value@suspect=independent", "provenance p-value, independent model", ">", 0.01)),
    scale="Ippolito et al.'s second finding (approximate memorization survives the filter) is not "
          "reproduced: the tiny model's filtered continuations drift rather than rephrase."))

register(Claim(
    "mechanisms", "The Reasoning-Memorization Interplay in Language Models Is Mediated by a Single Direction (2025)",
    "One residual-stream direction switches the model between recalling and computing: steering along "
    "it moves memorised exceptions to the rule's answer and rule prompts to the memorised answer, "
    "far more than a random direction of the same norm.",
    (Effect("mechanisms/recipe/to_rule", "exceptions steered to the rule's answer, direction − random "
            "(ours: add α·‖h̄‖·r̂ at one layer)", minus="mechanisms/recipe/to_rule@direction=random"),
     Effect("mechanisms/recipe/to_memory", "rule prompts steered to the memorised answer, direction − random "
            "(ours)", minus="mechanisms/recipe/to_memory@direction=random"),
     Effect("mechanisms/recipe/to_rule@intervention=scale", "exceptions steered to the rule's answer, direction − "
            "random (the paper's: scale h·r̂ at every layer)",
            minus="mechanisms/recipe/to_rule@intervention=scale,direction=random"),
     Effect("mechanisms/recipe/to_memory@intervention=scale", "rule prompts steered to the memorised answer, "
            "direction − random (the paper's)",
            minus="mechanisms/recipe/to_memory@intervention=scale,direction=random")),
    scale="With the default mode cue the switch lives at the embeddings and block 0, and the paper's "
          "intervention reaches it only at s = −2 (a reflection of the component; for s ≥ −1 an item's "
          "projection keeps its sign); without the cue (task.recall_marker=\"\") there is no single "
          "direction to find at this scale."))


register(Claim(
    "contamination", "Golchin & Surdeanu 2024 (guided completion); Oren et al. 2024 (order test); "
    "lm-evaluation-harness decontamination",
    "A benchmark planted in training is caught more often than never-planted items of the same benchmark: "
    "guided completion recites heavily planted items from their first half, membership scores them above a "
    "held-out reference, and the order test rejects for items seen in their canonical order.",
    (Effect("contam/guided/detect@dose=64", "guided-completion detection, dose 64 − never planted",
            minus="contam/guided/detect@dose=0"),
     Effect("contam/membership/detect@dose=16", "membership detection (p ≤ 0.05), dose 16 − never planted",
            minus="contam/membership/detect@dose=0"),
     Effect("contam/order/power@dose=16", "order-test power (p ≤ 0.05), dose 16 − never planted",
            minus="contam/order/power@dose=0")),
    scale="Overlap is exact by construction (the corpus is known). The tiny model recites planted items only at "
          "dose 64, and with or without the dataset name alike (the guided − general gap the paper reads is ~0 "
          "here: an item's own first half already identifies it); the papers' settings are pretrained LLMs."))
