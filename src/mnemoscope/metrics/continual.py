"""Continual-learning metrics (docs/metrics.md §8).

Accuracy matrix ``A`` (T × T): ``A[i, j]`` = performance on task j after training
through task i (tasks 0-based; ``last = T − 1``).

Continual evaluation (De Lange et al. 2023, the stability gap): ``eval_history`` is
an (n_evals × T) array, row n = performance on every task at the n-th evaluation
during training; ``task_learned_at[j]`` = the row index of the evaluation made when
training on task j finished (a task not learned yet has an index ≥ the last row).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mnemoscope.errors import MnemoscopeError

__all__ = ["forgetting", "bwt", "fwt", "min_acc", "wc_acc", "windowed_forgetting"]


def _matrix(A: ArrayLike) -> np.ndarray:
    a = np.asarray(A, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 1:
        raise MnemoscopeError(
            f"accuracy matrix must be square T × T with A[i, j] = perf on task j after task i "
            f"(got shape {a.shape})"
        )
    return a


def forgetting(A: ArrayLike) -> np.ndarray:
    """Forgetting_j = A[j, j] − A[last, j] for every task j < last (length T − 1)."""
    a = _matrix(A)
    last = a.shape[0] - 1
    j = np.arange(last)
    return a[j, j] - a[last, j]


def bwt(A: ArrayLike) -> float:
    """Backward transfer: BWT = mean_{j < last} (A[last, j] − A[j, j]); needs T ≥ 2."""
    a = _matrix(A)
    if a.shape[0] < 2:
        raise MnemoscopeError("BWT needs at least 2 tasks (accuracy matrix is 1 × 1)")
    return float(-forgetting(a).mean())


def fwt(A: ArrayLike, random_init_perf: ArrayLike) -> np.ndarray:
    """Forward transfer FWT_j = A[j − 1, j] − b_j for j = 1..last (length T − 1).

    b_j = performance of a randomly initialised model on task j (``random_init_perf``:
    one number for all tasks or a length-T array).
    """
    a = _matrix(A)
    t = a.shape[0]
    b = np.asarray(random_init_perf, dtype=np.float64)
    if b.ndim == 0:
        b = np.full(t, float(b))
    if b.shape != (t,):
        raise MnemoscopeError(
            f"random_init_perf must be a number or have one entry per task ({t}), got shape {b.shape}"
        )
    j = np.arange(1, t)
    return a[j - 1, j] - b[j]


def min_acc(eval_history: ArrayLike, task_learned_at: ArrayLike) -> float:
    """Min-ACC = mean over past tasks j of min_{learned_at_j < n ≤ now} eval_history[n, j].

    "now" is the last row; past tasks are those with learned_at_j < now. Returns nan
    when no task is past yet (WC-ACC then reduces to the current accuracy, k = 1).
    """
    h = np.asarray(eval_history, dtype=np.float64)
    at = np.asarray(task_learned_at)
    if h.ndim != 2 or at.ndim != 1 or at.shape[0] != h.shape[1]:
        raise MnemoscopeError(
            f"eval_history must be (n_evals × T) and task_learned_at length T "
            f"(got {h.shape} and {at.shape})"
        )
    if not np.issubdtype(at.dtype, np.integer):
        raise MnemoscopeError("task_learned_at must hold integer row indices of eval_history")
    now = h.shape[0] - 1
    mins = [h[int(n) + 1 :, j].min() for j, n in enumerate(at) if 0 <= n < now]
    return float(np.mean(mins)) if mins else float("nan")


def wc_acc(a_current: float, min_acc: float, k: int) -> float:
    """Worst-case accuracy WC-ACC = (1/k)·a_current + (1 − 1/k)·Min-ACC.

    k = the 1-based number of the current task; with k = 1 it is a_current.
    """
    if int(k) != k or k < 1:
        raise MnemoscopeError(f"k (the 1-based number of the current task) must be ≥ 1 (got {k})")
    if k == 1:
        return float(a_current)
    return float(a_current / k + (1.0 - 1.0 / k) * min_acc)


def windowed_forgetting(series: ArrayLike, window: int) -> float:
    """Largest drop within a window: WF = max(0, max_{0 < n − m ≤ window} (a_m − a_n)).

    ``series`` is one task's accuracy at successive evaluations; ``window`` is how many
    evaluations apart the two points may be at most.
    """
    a = np.asarray(series, dtype=np.float64)
    if a.ndim != 1:
        raise MnemoscopeError(f"series must be 1-D (got shape {a.shape})")
    if int(window) != window or window < 1:
        raise MnemoscopeError(f"window must be an integer ≥ 1 (got {window})")
    worst = 0.0
    for lag in range(1, min(int(window), a.size - 1) + 1):
        worst = max(worst, float(np.max(a[:-lag] - a[lag:])))
    return worst
