"""Residue inside a model: does a linear probe still read a forgotten attribute from hidden states?

After *Unforgettable Generalization in Language Models* (Zhang, Choshen, Andreas 2024), who find
forgotten information often still linearly decodable: a direction is fitted on items whose
attribute the model is meant to keep (the retain people), then applied to the forgotten items
(the forget people). A model that
truly forgot reads them at chance, like a model that never saw them (the retrained model); a model
that only suppressed the output still separates them.

``transfer(X_fit, y_fit, X_test, y_test)``: fit the unit direction r̂ on (X_fit, y_fit) with
``metrics.directions.fit_direction``; score each test item s = x · r̂; **accuracy** = share of test
items with (s > t) = y, t = the midpoint of the two fit-class mean projections (the same rule as
``directions.probe``); **auc** = ROC-AUC of s against y_test (``metrics.roc``, ties count half).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.directions import fit_direction
from mnemoscope.metrics.roc import roc_auc


def transfer(X_fit: ArrayLike, y_fit: ArrayLike, X_test: ArrayLike, y_test: ArrayLike,
             method: str = "mean_diff") -> dict[str, float]:
    """``accuracy``, ``auc`` (nan when the test labels hold one class) and ``n`` of a direction
    fitted on one set and applied to another (module docstring)."""
    X_fit, X_test = np.asarray(X_fit, np.float64), np.asarray(X_test, np.float64)
    y_fit, y_test = np.asarray(y_fit).astype(bool), np.asarray(y_test).astype(bool)
    if X_test.ndim != 2 or X_test.shape[0] != y_test.shape[0] or X_test.shape[1:] != X_fit.shape[1:]:
        raise MnemoscopeError(f"test features must be [n, {X_fit.shape[-1]}] with one label each, got "
                              f"{X_test.shape} and {y_test.shape}")
    if X_test.shape[0] == 0:
        raise MnemoscopeError("residue probe: no test items")
    r = fit_direction(X_fit, y_fit.astype(int), method)
    proj = X_fit @ r
    threshold = 0.5 * (proj[y_fit].mean() + proj[~y_fit].mean())
    scores = X_test @ r
    accuracy = float(((scores > threshold) == y_test).mean())
    both = 0 < int(y_test.sum()) < len(y_test)
    auc = roc_auc(y_test.astype(int), scores) if both and min(int(y_test.sum()), int((~y_test).sum())) >= 2 else float("nan")
    return {"accuracy": accuracy, "auc": auc, "n": float(len(y_test))}
