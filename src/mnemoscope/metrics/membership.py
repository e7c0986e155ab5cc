"""Membership-inference scores from per-token arrays (docs/metrics.md §1).

Every score is oriented so that **higher means more likely a member**.

Inputs are 1-D float arrays over the *scored* tokens only (pads and unscored
positions already removed): ``logprobs[i] = log p(t_i | t_<i)``, and for Min-K%++
the distribution statistics ``mu[i] = Σ_v p(v) log p(v)`` and ``sigma[i]`` (the
standard deviation of log p under p). An empty array means "nothing was scored";
every per-token score then returns ``nan`` (no exception), so one empty text
does not abort a whole audit. ``nan`` scores must be dropped or reported before
computing an AUC (``roc_auc`` refuses them).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "loss_score",
    "zlib_score",
    "min_k_score",
    "min_k_pp_score",
    "ref_score",
    "ratio_score",
    "nll_ratio_score",
    "lowercase_score",
    "membership_scores",
    "zlib_bytes",
    "min_k_count",
    "ROUNDINGS",
]


def _as_1d(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-token values, got shape {arr.shape}")
    return arr


def _check_k(k: float) -> None:
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be in (0, 1], got {k}")


ROUNDINGS = ("up", "down")


def _check_rounding(rounding: str) -> None:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")


def min_k_count(n: int, k: float, rounding: str = "up") -> int:
    """Number of tokens Min-K% averages over.

    ``rounding="up"`` (default): ``max(1, ceil(k·n))``, with ``k·n`` rounded to 9 decimals first
    so float noise cannot add a token (``0.2 * 15`` is ``3.0000000000000004``; the count is 3).
    ``rounding="down"``: ``max(1, int(n·k))``, the published code's rule (MUSE's and Min-K%++'s
    ``int(len · ratio)``, open-unlearning's ``max(1, int(len · k))``), float noise included as
    they have it. MUSE and Min-K%++ do not guard against 0 (an empty mean, NaN, when
    n·k < 1); open-unlearning and we average at least one token.
    """
    _check_k(k)
    _check_rounding(rounding)
    if rounding == "down":
        return max(1, int(n * k))
    return max(1, math.ceil(round(k * n, 9)))


def _mean_lowest(values: np.ndarray, k: float, rounding: str = "up") -> float:
    count = min_k_count(values.size, k, rounding)
    lowest = np.partition(values, count - 1)[:count]
    return float(lowest.mean())


def zlib_bytes(text: str) -> int:
    """``len(zlib.compress(text.encode('utf-8')))`` at zlib's default level."""
    return len(zlib.compress(text.encode("utf-8")))


def loss_score(logprobs: ArrayLike) -> float:
    """Loss attack: ``−NLL = mean_i log p_i``. ``nan`` if no token was scored."""
    lp = _as_1d(logprobs, "logprobs")
    if lp.size == 0:
        return float("nan")
    return float(lp.mean())


def zlib_score(logprobs: ArrayLike, text: str) -> float:
    """Zlib attack: ``−NLL / zlib_bytes(text)``.

    ``text`` is the whole text as given to the model (never a re-decoding of its tokens), as
    Carlini et al. (2021) and MIMIR compress it. This is the "NLL over compressed bytes"
    variant; published variants divide log-perplexity (the same NLL) or ``zlib entropy`` the
    same way, so only the orientation (negated) differs. ``nan`` if no token was scored.
    """
    lp = _as_1d(logprobs, "logprobs")
    if lp.size == 0:
        return float("nan")
    return float(lp.mean()) / zlib_bytes(text)


def min_k_score(logprobs: ArrayLike, k: float = 0.2, rounding: str = "up") -> float:
    """Min-K% Prob: mean of the ``min_k_count(n, k, rounding)`` lowest log p_i (default
    ``max(1, ceil(k·n))``). ``nan`` if n = 0."""
    lp = _as_1d(logprobs, "logprobs")
    _check_k(k)
    _check_rounding(rounding)
    if lp.size == 0:
        return float("nan")
    return _mean_lowest(lp, k, rounding)


def min_k_pp_score(
    logprobs: ArrayLike,
    mu: ArrayLike,
    sigma: ArrayLike,
    k: float = 0.2,
    eps: float = 1e-6,
    rounding: str = "up",
) -> float:
    """Min-K%++: ``z_i = (log p_i − μ_i) / max(σ_i, eps)``; mean of the lowest
    ``min_k_count(n, k, rounding)`` z_i (default ``max(1, ceil(k·n))``). ``nan`` if n = 0."""
    lp = _as_1d(logprobs, "logprobs")
    m = _as_1d(mu, "mu")
    s = _as_1d(sigma, "sigma")
    if not lp.shape == m.shape == s.shape:
        raise ValueError(
            f"logprobs, mu and sigma must have the same length, got {lp.size}, {m.size}, {s.size}"
        )
    _check_k(k)
    _check_rounding(rounding)
    if lp.size == 0:
        return float("nan")
    z = (lp - m) / np.maximum(s, eps)
    return _mean_lowest(z, k, rounding)


def _scalar_or_array(x: np.ndarray) -> float | np.ndarray:
    return float(x) if x.ndim == 0 else x


def ref_score(nll_target: ArrayLike, nll_ref: ArrayLike) -> float | np.ndarray:
    """Reference attack: ``−(NLL_target − NLL_ref)``.

    Both NLLs must come from the same tokenization (shared tokenizer), or be
    normalised per UTF-8 byte by the caller. Works element-wise on arrays.
    """
    t = np.asarray(nll_target, dtype=np.float64)
    r = np.asarray(nll_ref, dtype=np.float64)
    return _scalar_or_array(-(t - r))


def ratio_score(nll_target: ArrayLike, nll_ref: ArrayLike) -> float | np.ndarray:
    """Ratio attack (copyright traps): ``−ppl_target / ppl_ref = −exp(NLL_t − NLL_r)``.

    A strictly monotone function of ``ref_score``, so it ranks texts exactly as the reference
    attack does (same AUC and TPRs); kept because the copyright-traps paper reports it.
    Computed as one exponential of the difference so large NLLs do not overflow.
    """
    t = np.asarray(nll_target, dtype=np.float64)
    r = np.asarray(nll_ref, dtype=np.float64)
    return _scalar_or_array(-np.exp(t - r))


def nll_ratio_score(nll_target: ArrayLike, nll_ref: ArrayLike) -> float | np.ndarray:
    """Log-perplexity ratio (Carlini et al. 2021, "comparing to other neural language models"):
    ``−NLL_target / NLL_ref = −log ppl_target / log ppl_ref``. Unlike ``ratio_score`` it is not a
    function of the difference alone, so it ranks texts differently from ``ref_score``.
    ``nan`` where ``NLL_ref = 0``.
    """
    t = np.asarray(nll_target, dtype=np.float64)
    r = np.asarray(nll_ref, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(r == 0, np.nan, -t / np.where(r == 0, 1.0, r))
    return _scalar_or_array(out)


def lowercase_score(nll: ArrayLike, nll_lower: ArrayLike) -> float | np.ndarray:
    """Lowercase attack: ``−log ppl(x) / log ppl(lower(x)) = −NLL(x) / NLL(lower(x))``.

    ``nan`` (with numpy's usual inf/nan rules) when ``NLL(lower(x)) = 0``.
    """
    a = np.asarray(nll, dtype=np.float64)
    b = np.asarray(nll_lower, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(b == 0, np.nan, -a / np.where(b == 0, 1.0, b))
    return _scalar_or_array(out)


def membership_scores(
    logprobs: ArrayLike,
    mu: ArrayLike,
    sigma: ArrayLike,
    text: str,
    k: float = 0.2,
    rounding: str = "up",
) -> dict[str, float]:
    """All single-model attacks from one teacher-forced pass; ``text`` is the whole text as given.

    Returns ``{"loss", "zlib", "min_k", "min_k_pp"}``, each higher = member;
    all four are ``nan`` when no token was scored. ``rounding``: Min-K%'s count rule.
    """
    return {
        "loss": loss_score(logprobs),
        "zlib": zlib_score(logprobs, text),
        "min_k": min_k_score(logprobs, k, rounding),
        "min_k_pp": min_k_pp_score(logprobs, mu, sigma, k, rounding=rounding),
    }
