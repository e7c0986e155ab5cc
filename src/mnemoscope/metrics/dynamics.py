"""Knowledge-acquisition dynamics during training (docs/metrics.md §7, Chang et al. 2024).

Inputs are per-probe loss curves: ``steps`` (training steps, strictly increasing
integers) and ``losses`` (ℓ(t) = mean NLL of the probe's target span measured at
that step). Convention: the loss recorded at step t is measured *before* the
update of step t, so ℓ(t_i) at an injection step t_i is the loss just before the
injected text is learned.

* Effectivity at injection i: ``ℓ(t_i) − min_{t ∈ (t_i, t_i + w]} ℓ(t)``.
* Retainability after the last injection t_last, with ℓ_0 the loss before any
  injection and t_LAM = argmin_{t ∈ (t_last, t_last + w]} ℓ(t)::

      R(t) = 100 · (ℓ(t_LAM + t) − ℓ_0) / (ℓ(t_LAM) − ℓ_0)

  R(0) = 100 by definition; R = 0 means the loss is back to ℓ_0.
* Decay fits on y = R/100 against t > 0 (steps after t_LAM), all with two
  parameters so their RMSEs compare fairly:
  log      y = −a · log10(t) + b        (x-intercept 10^(b/a) steps)
  exp      y = c · exp(−k · t)
  power    y = c · t^(−k)
  RMSE = sqrt(mean((y − ŷ)²)) and R² = 1 − SS_res / SS_tot are in y units (R/100).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import curve_fit

from mnemoscope.errors import MnemoscopeError

__all__ = [
    "effectivity",
    "Retainability",
    "retainability",
    "iqr_mask",
    "iqr_filter",
    "fit_log_decay",
    "fit_exponential",
    "fit_power_law",
    "compare_decay_fits",
    "tokens_from_steps",
    "log_spaced_steps",
]


def _curve(steps: ArrayLike, losses: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(losses, dtype=np.float64)
    if s.ndim != 1 or v.ndim != 1 or s.shape != v.shape:
        raise MnemoscopeError(
            f"steps and losses must be 1-D arrays of equal length (got shapes {s.shape} and "
            f"{v.shape}): pass one probe's loss curve"
        )
    if s.size and np.any(np.diff(s) <= 0):
        raise MnemoscopeError("steps must be strictly increasing: sort the curve by step first")
    return s, v


def _loss_at(s: np.ndarray, v: np.ndarray, step: float, name: str) -> float:
    hit = np.flatnonzero(s == step)
    if hit.size == 0:
        raise MnemoscopeError(
            f"{name}={step:g} is not among the measured steps: record the probe loss at that step"
        )
    return float(v[hit[0]])


def _window_argmin(s: np.ndarray, v: np.ndarray, start: float, window: int, name: str) -> int:
    if window < 1:
        raise MnemoscopeError(f"window must be ≥ 1 step (got {window})")
    idx = np.flatnonzero((s > start) & (s <= start + window))
    if idx.size == 0:
        raise MnemoscopeError(
            f"no loss measured in ({start:g}, {start + window:g}] after {name}: probe every "
            "step near injections"
        )
    return int(idx[np.argmin(v[idx])])


def effectivity(
    steps: ArrayLike, losses: ArrayLike, injection_step: int, window: int = 50
) -> float:
    """Immediate learning at one injection: ``ℓ(t_i) − min_{t ∈ (t_i, t_i+w]} ℓ(t)``."""
    s, v = _curve(steps, losses)
    before = _loss_at(s, v, injection_step, "injection_step")
    j = _window_argmin(s, v, injection_step, window, "injection_step")
    return before - float(v[j])


class Retainability(NamedTuple):
    """Result of :func:`retainability`.

    ``t``: offsets t = step − t_LAM > 0; ``r``: R(t) in percent; ``t_lam``: the step of
    the minimum loss after the last injection. When the probe is skipped, ``t`` and
    ``r`` are ``None`` and ``reason`` says why (otherwise ``reason`` is ``None``).
    """

    t: np.ndarray | None
    r: np.ndarray | None
    t_lam: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


def retainability(
    steps: ArrayLike,
    losses: ArrayLike,
    last_injection_step: int,
    loss_before: float,
    window: int = 50,
    min_denominator: float = 0.0,
) -> Retainability:
    """R(t) = 100·(ℓ(t_LAM + t) − ℓ_0)/(ℓ(t_LAM) − ℓ_0) for every measured t_LAM + t > t_LAM.

    t_LAM = argmin ℓ over (t_last, t_last + window] (first one on ties); ℓ_0 =
    ``loss_before``. Skipped (``reason`` set) when |ℓ(t_LAM) − ℓ_0| ≤ ``min_denominator``
    or is not finite.
    """
    s, v = _curve(steps, losses)
    j = _window_argmin(s, v, last_injection_step, window, "last_injection_step")
    t_lam = int(s[j])
    den = float(v[j]) - float(loss_before)
    if not math.isfinite(den) or abs(den) <= min_denominator:
        return Retainability(
            None, None, t_lam,
            f"denominator ℓ(t_LAM) − ℓ_0 = {den:g} (t_LAM={t_lam}): nothing was learned to retain",
        )
    after = s > t_lam
    t = (s[after] - t_lam).astype(np.int64)
    r = 100.0 * (v[after] - float(loss_before)) / den
    return Retainability(t, r, t_lam, None)


def iqr_mask(values: ArrayLike, factor: float = 2.0) -> np.ndarray:
    """True where Q1 − f·IQR ≤ x ≤ Q3 + f·IQR (quartiles by numpy's linear interpolation).

    NaNs are never kept and do not enter the quartiles.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise MnemoscopeError(f"values must be 1-D (got shape {x.shape})")
    if factor < 0:
        raise MnemoscopeError(f"factor must be ≥ 0 (got {factor})")
    finite = ~np.isnan(x)
    if not finite.any():
        return np.zeros(x.shape, dtype=bool)
    q1, q3 = np.percentile(x[finite], [25.0, 75.0])
    iqr = q3 - q1
    with np.errstate(invalid="ignore"):
        return finite & (x >= q1 - factor * iqr) & (x <= q3 + factor * iqr)


def iqr_filter(values: ArrayLike, factor: float = 2.0) -> np.ndarray:
    """The values within [Q1 − f·IQR, Q3 + f·IQR], in their original order (see :func:`iqr_mask`)."""
    x = np.asarray(values, dtype=np.float64)
    return x[iqr_mask(x, factor)]


def _decay_xy(t: ArrayLike, r: ArrayLike, n_min: int = 2) -> tuple[np.ndarray, np.ndarray]:
    tt = np.asarray(t, dtype=np.float64)
    y = np.asarray(r, dtype=np.float64) / 100.0
    if tt.ndim != 1 or tt.shape != y.shape:
        raise MnemoscopeError(f"t and r must be 1-D of equal length (got {tt.shape}, {y.shape})")
    if tt.size < n_min:
        raise MnemoscopeError(f"a decay fit needs at least {n_min} points (got {tt.size})")
    if not (np.all(np.isfinite(tt)) and np.all(np.isfinite(y))):
        raise MnemoscopeError("t and r must be finite: drop skipped probes / NaNs before fitting")
    if np.any(tt <= 0):
        raise MnemoscopeError("t must be > 0 (steps after t_LAM); drop t = 0 before fitting")
    return tt, y


def _goodness(y: np.ndarray, yhat: np.ndarray) -> tuple[float, float]:
    """(R², RMSE); R² = 1 − SS_res/SS_tot (1.0 for a perfect fit of constant data, else nan)."""
    res = float(np.sum((y - yhat) ** 2))
    tot = float(np.sum((y - y.mean()) ** 2))
    if tot == 0.0:
        r2 = 1.0 if res == 0.0 else float("nan")
    else:
        r2 = 1.0 - res / tot
    return r2, math.sqrt(res / y.size)


def fit_log_decay(t: ArrayLike, r: ArrayLike) -> dict[str, float]:
    """Least-squares fit of r/100 = −a·log10(t) + b.

    Returns a (decay constant), b, r2, rmse and x_intercept_steps = 10^(b/a), the t
    where the fitted R reaches 0 (inf when a ≤ 0: no decay, or when it lies beyond 1e308).
    """
    tt, y = _decay_xy(t, r)
    x = np.log10(tt)
    if np.ptp(x) == 0:
        raise MnemoscopeError("t must take at least two distinct values for a log fit")
    slope, intercept = np.polyfit(x, y, 1)
    a, b = float(-slope), float(intercept)
    r2, rmse = _goodness(y, -a * x + b)
    # 10^(b/a) overflows past ~1e308 when a is tiny and positive: the line never reaches 0 in range.
    x_int = 10.0 ** (b / a) if a > 0 and b / a < 308 else float("inf")
    return {"a": a, "b": b, "r2": r2, "rmse": rmse, "x_intercept_steps": float(x_int)}


def _exp_model(t: np.ndarray, c: float, k: float) -> np.ndarray:
    return c * np.exp(-k * t)


def _power_model(t: np.ndarray, c: float, k: float) -> np.ndarray:
    return c * np.power(t, -k)


def _curve_fit(model, tt: np.ndarray, y: np.ndarray, p0: tuple[float, float]) -> dict[str, float]:
    try:
        (c, k), _ = curve_fit(model, tt, y, p0=p0, maxfev=20000)
    except (RuntimeError, ValueError):
        return {"c": float("nan"), "k": float("nan"), "r2": float("nan"),
                "rmse": float("nan"), "converged": False}
    r2, rmse = _goodness(y, model(tt, c, k))
    return {"c": float(c), "k": float(k), "r2": r2, "rmse": rmse, "converged": True}


def fit_exponential(t: ArrayLike, r: ArrayLike) -> dict[str, float]:
    """Fit r/100 = c·exp(−k·t) with scipy's curve_fit → dict(c, k, r2, rmse, converged)."""
    tt, y = _decay_xy(t, r)
    return _curve_fit(_exp_model, tt, y, (float(y[np.argmin(tt)]) or 1.0, 1.0 / float(np.median(tt))))


def fit_power_law(t: ArrayLike, r: ArrayLike) -> dict[str, float]:
    """Fit r/100 = c·t^(−k) with scipy's curve_fit → dict(c, k, r2, rmse, converged)."""
    tt, y = _decay_xy(t, r)
    return _curve_fit(_power_model, tt, y, (float(y[np.argmin(tt)]) or 1.0, 0.5))


def compare_decay_fits(t: ArrayLike, r: ArrayLike) -> dict[str, object]:
    """All three decay fits plus ``best``: the model name with the lowest RMSE."""
    fits: dict[str, dict[str, float]] = {
        "log": fit_log_decay(t, r),
        "exponential": fit_exponential(t, r),
        "power_law": fit_power_law(t, r),
    }
    finite = {k: f["rmse"] for k, f in fits.items() if math.isfinite(f["rmse"])}
    best = min(finite, key=finite.__getitem__) if finite else None
    return {**fits, "best": best}


def tokens_from_steps(steps: ArrayLike, batch_size: int, seq_len: int) -> np.ndarray | float:
    """Training tokens seen after ``steps`` optimizer steps: steps × batch_size × seq_len."""
    if batch_size < 1 or seq_len < 1:
        raise MnemoscopeError(f"batch_size and seq_len must be ≥ 1 (got {batch_size}, {seq_len})")
    out = np.asarray(steps, dtype=np.float64) * float(batch_size) * float(seq_len)
    return float(out) if out.ndim == 0 else out


def log_spaced_steps(max_step: int) -> list[int]:
    """Probe steps 1..10, 20..100 by 10, 200..1000 by 100, 2000..10000 by 1000, … ≤ max_step."""
    if int(max_step) != max_step or max_step < 1:
        raise MnemoscopeError(f"max_step must be an integer ≥ 1 (got {max_step})")
    out = list(range(1, min(10, int(max_step)) + 1))
    scale = 10
    while scale * 2 <= max_step:
        out.extend(range(scale * 2, min(scale * 10, int(max_step)) + 1, scale))
        scale *= 10
    return out
