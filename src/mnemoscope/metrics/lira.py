"""LiRA: the likelihood-ratio membership attack with shadow models (Carlini et al. 2022,
*Membership Inference Attacks From First Principles*), for whole sequences.

Inputs (all float64 arrays, pure functions, no model):

- ``phi``: the *logit-scaled confidence* of one example under one model (``logit_confidence``);
- ``shadow_phi[j, i]``: example i's confidence under shadow model j;
- ``keep[j, i]``: True when example i was in shadow j's training data.

Per example i the shadows give an IN and an OUT sample of φ. Their location is the median and
their scale the (population, ddof = 0) standard deviation, as the reference code
(``tensorflow/privacy/research/mi_lira_2021/plot.py``) fits them; ``fix_variance`` replaces the
per-example scale by one global standard deviation over every (shadow, example) pair of the
sample (the reference's fixed-variance variant: the IN pairs for the online attack, whose
reference uses the IN spread for both Gaussians; the OUT pairs for the offline attack).

Every score is oriented higher = member.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

from mnemoscope.errors import MnemoscopeError

__all__ = ["logit_confidence", "lira_online", "lira_offline", "lira_gaussians", "SCALE_FLOOR"]

# Added to every scale so that a sample of identical values does not divide by zero (the
# reference adds 1e-30 the same way).
SCALE_FLOOR = 1e-30
# Floor of 1 − p in the logit, as the reference's ``+ 1e-45``: a sequence whose probability is
# exactly 1 in float arithmetic gets φ = log p − log(1e-45) ≈ 103.6 rather than +inf.
_ONE_MINUS_P_FLOOR = 1e-45


def logit_confidence(sequence_logprob: ArrayLike, *, clamp: bool = False) -> np.ndarray:
    """φ = log p − log(1 − p), p = exp(Σ_i log p(t_i | t_<i)) the probability of the whole
    scored sequence (the LM analogue of the probability of the true label).

    Default: computed in log space, ``log(1 − p) = log(−expm1(log p) + 1e-45)``, so long sequences
    (log p ≪ −103) keep their exact value (≈ log p), and p = 1 gives ≈ 103.6 rather than +inf.
    ``clamp=True``: the reference's probability-space formula ``log(p + 1e-45) − log(1 − p + 1e-45)``,
    under which every sequence with log p < −103.6 gets the same φ ≈ −103.6 (ties).
    """
    lp = np.asarray(sequence_logprob, dtype=np.float64)
    if np.isnan(lp).any():
        raise MnemoscopeError("logit_confidence: a sequence log-probability is nan (a text with no scored token?)")
    if (lp > 0).any():
        raise MnemoscopeError("logit_confidence: a sequence log-probability is > 0; pass Σ log p (≤ 0)")
    if clamp:
        p = np.exp(lp)
        return np.log(p + _ONE_MINUS_P_FLOOR) - np.log((1.0 - p) + _ONE_MINUS_P_FLOOR)
    one_minus_p = np.maximum(-np.expm1(lp), 0.0) + _ONE_MINUS_P_FLOOR
    return lp - np.log(one_minus_p)


def _check(phi, shadow_phi, keep) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    phi = np.asarray(phi, dtype=np.float64)
    shadow = np.asarray(shadow_phi, dtype=np.float64)
    keep = np.asarray(keep)
    if phi.ndim != 1 or shadow.ndim != 2 or shadow.shape[1] != phi.size or keep.shape != shadow.shape:
        raise MnemoscopeError(
            f"LiRA needs phi (n,), shadow_phi (K, n) and keep (K, n); got {phi.shape}, {shadow.shape}, {keep.shape}")
    if keep.dtype != bool:
        if keep.size and not np.isin(keep, (0, 1)).all():
            raise MnemoscopeError("LiRA: keep must be boolean (True = the example was in that shadow's data)")
        keep = keep.astype(bool)
    if not (np.isfinite(phi).all() and np.isfinite(shadow).all()):
        raise MnemoscopeError("LiRA: a confidence is nan or infinite")
    return phi, shadow, keep


def _fit(shadow: np.ndarray, mask: np.ndarray, which: str, fix_variance: bool,
         pooled_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-example median and std of ``shadow[mask]`` (column by column); each column needs ≥ 2."""
    counts = mask.sum(axis=0)
    if counts.size and counts.min() < 2:
        i = int(np.argmin(counts))
        raise MnemoscopeError(
            f"LiRA: example {i} is {which} in only {int(counts[i])} shadow model(s); each needs ≥ 2 "
            f"(train more shadows: lira.shadows ≥ 4)")
    values = np.where(mask, shadow, np.nan)
    loc = np.nanmedian(values, axis=0)
    if fix_variance:
        pooled = shadow[mask if pooled_mask is None else pooled_mask]
        scale = np.full(loc.shape, float(np.std(pooled)))
    else:
        scale = np.nanstd(values, axis=0)
    return loc, scale + SCALE_FLOOR


def lira_gaussians(shadow_phi: ArrayLike, keep: ArrayLike, *, fix_variance: bool = False) -> dict[str, np.ndarray]:
    """The per-example IN and OUT Gaussians: ``mu_in``, ``sigma_in``, ``mu_out``, ``sigma_out``
    (location = median over the shadows, scale = std + 1e-30; see the module docstring)."""
    shadow = np.asarray(shadow_phi, dtype=np.float64)
    _, shadow, keep = _check(np.zeros(shadow.shape[1] if shadow.ndim == 2 else 0), shadow, keep)
    mu_in, sigma_in = _fit(shadow, keep, "IN", fix_variance)
    mu_out, sigma_out = _fit(shadow, ~keep, "OUT", fix_variance, pooled_mask=keep)
    return {"mu_in": mu_in, "sigma_in": sigma_in, "mu_out": mu_out, "sigma_out": sigma_out}


def lira_online(phi: ArrayLike, shadow_phi: ArrayLike, keep: ArrayLike, *, fix_variance: bool = False) -> np.ndarray:
    """Online LiRA: Λ_i = log N(φ_i; μ_in,i, σ_in,i²) − log N(φ_i; μ_out,i, σ_out,i²).

    μ = median and σ = std (+1e-30) of example i's φ over the shadows that trained on it (IN)
    and those that did not (OUT). With ``fix_variance`` both σ are the std of every IN pair
    (the reference's choice). Higher = member. Each example needs ≥ 2 IN and ≥ 2 OUT shadows.
    """
    phi, shadow, keep = _check(phi, shadow_phi, keep)
    g = lira_gaussians(shadow, keep, fix_variance=fix_variance)
    return (norm.logpdf(phi, g["mu_in"], g["sigma_in"])
            - norm.logpdf(phi, g["mu_out"], g["sigma_out"]))


def lira_offline(phi: ArrayLike, shadow_phi: ArrayLike, keep: ArrayLike, *, fix_variance: bool = False,
                 one_sided: bool = True) -> np.ndarray:
    """Offline LiRA, from the OUT shadows only (μ_out = median, σ_out = std + 1e-30; with
    ``fix_variance`` σ_out is the std of every OUT pair).

    ``one_sided`` (the paper, §IV-C): Λ_i = log Φ((φ_i − μ_out,i) / σ_out,i) = log Pr[Z ≤ φ_i],
    Z ~ N(μ_out, σ_out²): how far *above* the non-member distribution the target's confidence
    lies (the log keeps resolution where Φ rounds to 1).
    ``one_sided=False`` (the reference code): Λ_i = −log N(φ_i; μ_out,i, σ_out,i²), an unusual
    confidence in either direction scores as a member.
    Higher = member. Each example needs ≥ 2 OUT shadows.
    """
    phi, shadow, keep = _check(phi, shadow_phi, keep)
    mu_out, sigma_out = _fit(shadow, ~keep, "OUT", fix_variance)
    if one_sided:
        return norm.logcdf(phi, mu_out, sigma_out)
    return -norm.logpdf(phi, mu_out, sigma_out)
