"""LiRA in the lab: the ``lira`` config section, its checks, and the attack's scores and metrics
from the target's and the shadows' score frames (``recipes.shadows`` trains the shadows).

What a recipe gets (members = label 1, every score higher = member):

- per candidate: ``lira/phi`` (the target's logit-scaled sequence confidence,
  ``metrics.lira.logit_confidence`` of Σ log p = −NLL × n_scored), ``score/lira_online`` and
  ``score/lira_offline`` — new attack columns that the recipe's membership metrics pick up
  like any other (``mia/lira_online/auc``, ``.../tpr@fpr=0.01``, ...);
- pooled trials (K ≥ 6): each shadow also serves as a target, its LiRA scores fitted on the
  other K − 1 shadows, as the reference evaluates on held-out models; with the real target
  that gives (K + 1) × n trials, so that TPR at 1% (or 0.1%) FPR can be resolved where the
  target's own non-members are too few. Every attack is scored on the same pooled trials:
  ``mia_pooled/<attack>/...``;
- gaps: ``lira/gap/<attack>/<stat>`` = the cheap attack's stat − online LiRA's (on the target;
  ``lira/gap_pooled/...`` on the pooled trials), for auc and TPR at 0.1% and 1% FPR; null
  where either side is.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.lira import lira_offline, lira_online, logit_confidence

DEFAULTS = {"shadows": 0, "workers": 1, "variance": "auto", "offline": "one_sided", "clamp_probability": False}
OFFLINE_RULES = ("one_sided", "two_sided")
VARIANCES = ("auto", "global", "per_example")
# Carlini et al. find a global variance the better estimate when shadow models are few; "auto" uses
# it below this many shadows (our threshold) and per-example variances from there on.
PER_EXAMPLE_FROM = 64
GAP_STATS = ("auc", "tpr@fpr=0.001", "tpr@fpr=0.01")
MIN_SHADOWS = 4  # each candidate IN ≥ 2 and OUT ≥ 2 shadows
MIN_POOLED = 6  # the same with one shadow left out


def check_lira_settings(section: dict) -> None:
    """Refuse, before any run directory, a ``lira`` section the attack cannot run with."""
    k = section["shadows"]
    if k != 0 and k < MIN_SHADOWS:
        raise MnemoscopeError(f"lira.shadows={k}: use 0 (off) or ≥ {MIN_SHADOWS} (each candidate needs ≥ 2 shadows "
                              f"trained with it and ≥ 2 without it)")
    if section["workers"] < 1:
        raise MnemoscopeError(f"lira.workers={section['workers']}: use ≥ 1 (shadows trained at once)")
    if section["variance"] not in VARIANCES:
        raise MnemoscopeError(f"lira.variance='{section['variance']}': use one of {', '.join(VARIANCES)}")
    if section["offline"] not in OFFLINE_RULES:
        raise MnemoscopeError(f"lira.offline='{section['offline']}': use one of {', '.join(OFFLINE_RULES)}")


def confidence(frame: pd.DataFrame, clamp: bool = False) -> np.ndarray:
    """φ of each row of an ``attack_frame``: logit of exp(Σ log p), Σ log p = −nll × n_scored
    (``clamp``: the reference's probability-space formula, ``lira.clamp_probability``)."""
    return logit_confidence(-frame["nll"].to_numpy(dtype=float) * frame["n_scored"].to_numpy(dtype=float),
                            clamp=clamp)


def fixed_variance(section: dict, n_shadows: int) -> bool:
    """True = one global variance (``lira.variance`` global, or auto with < 64 shadows)."""
    if section["variance"] == "auto":
        return n_shadows < PER_EXAMPLE_FROM
    return section["variance"] == "global"


def lira_columns(phi: np.ndarray, shadow_phi: np.ndarray, keep: np.ndarray, section: dict) -> pd.DataFrame:
    """``score/lira_online`` and ``score/lira_offline`` of the candidates whose confidence is ``phi``."""
    fixed = fixed_variance(section, shadow_phi.shape[0])
    return pd.DataFrame({
        "score/lira_online": lira_online(phi, shadow_phi, keep, fix_variance=fixed),
        "score/lira_offline": lira_offline(phi, shadow_phi, keep, fix_variance=fixed,
                                           one_sided=section["offline"] == "one_sided"),
    })


def target_columns(target: pd.DataFrame, shadows: list[pd.DataFrame], keep: np.ndarray, section: dict) -> pd.DataFrame:
    """The target's per-candidate LiRA columns: ``lira/phi``, ``lira/n_in``, ``lira/n_out`` and the scores."""
    phi = confidence(target, section["clamp_probability"])
    shadow_phi = np.stack([confidence(f, section["clamp_probability"]) for f in shadows])
    out = lira_columns(phi, shadow_phi, keep, section)
    out.insert(0, "lira/phi", phi)
    out.insert(1, "lira/n_in", keep.sum(axis=0))
    out.insert(2, "lira/n_out", (~keep).sum(axis=0))
    return out


def pooled_trials(target: pd.DataFrame, labels: np.ndarray, shadows: list[pd.DataFrame], keep: np.ndarray,
                  section: dict) -> tuple[np.ndarray, pd.DataFrame] | None:
    """(labels, score columns) over the target and every shadow as a target (leave-one-out);
    None with fewer than ``MIN_POOLED`` shadows."""
    if len(shadows) < MIN_POOLED:
        return None
    clamp = section["clamp_probability"]
    shadow_phi = np.stack([confidence(f, clamp) for f in shadows])
    cheap = [c for c in target.columns if c.startswith("score/") and not c.startswith("score/lira")]
    frames = [pd.concat([target[cheap].reset_index(drop=True),
                         lira_columns(confidence(target, clamp), shadow_phi, keep, section)], axis=1)]
    all_labels = [np.asarray(labels, dtype=int)]
    for j, frame in enumerate(shadows):
        others = np.arange(len(shadows)) != j
        frames.append(pd.concat([frame[cheap].reset_index(drop=True),
                                 lira_columns(shadow_phi[j], shadow_phi[others], keep[others], section)], axis=1))
        all_labels.append(keep[j].astype(int))
    return np.concatenate(all_labels), pd.concat(frames, ignore_index=True)


def gaps(metrics: dict, prefix: str, out_prefix: str) -> dict[str, float]:
    """``<out_prefix>/<attack>/<stat>`` = metrics[<prefix>/<attack>/<stat>] − metrics[<prefix>/lira_online/<stat>]."""
    attacks = sorted({k.split("/")[1] for k in metrics if k.startswith(prefix + "/") and k.count("/") >= 2}
                     - {"lira_online", "lira_offline"})
    out: dict[str, float] = {}
    for attack in attacks:
        for stat in GAP_STATS:
            a, ref = metrics.get(f"{prefix}/{attack}/{stat}"), metrics.get(f"{prefix}/lira_online/{stat}")
            if a is None or ref is None:
                continue
            out[f"{out_prefix}/{attack}/{stat}"] = (float(a) - float(ref)
                                                    if math.isfinite(a) and math.isfinite(ref) else math.nan)
    return out


def shadow_table(shadows: list[pd.DataFrame], keep: np.ndarray, ids: list[str], clamp: bool = False) -> pd.DataFrame:
    """Long table of the shadows: shadow, id, keep, lira/phi (the run's ``lira_shadows`` table)."""
    rows = [pd.DataFrame({"shadow": j, "id": ids, "keep": keep[j], "lira/phi": confidence(f, clamp)})
            for j, f in enumerate(shadows)]
    return pd.concat(rows, ignore_index=True)
