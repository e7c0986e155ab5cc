"""Knowledge capacity in bits (docs/metrics.md §9, after Allen-Zhu & Li, Physics of LMs 3.3).

For N people whose attribute values are drawn uniformly from pools, a model that has
stored nothing pays log2|pool| bits to name a value; one that has stored the value
pays less. With ``loss_bits[attr]`` = the model's mean loss, in bits, on the *whole*
value of that attribute (sum over the value's tokens of −log2 p, averaged over people)::

    bits = Σ_attr N · max(0, log2|pool_attr| − loss_bits[attr])

A lower bound in spirit; the paper's exact bound also accounts for name diversity,
which this estimate leaves out. Capacity ratio = bits / number of parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from mnemoscope.errors import MnemoscopeError

__all__ = ["nats_to_bits", "bits_stored", "capacity_ratio"]


def nats_to_bits(nats: ArrayLike) -> np.ndarray | float:
    """bits = nats / ln 2."""
    out = np.asarray(nats, dtype=np.float64) / math.log(2.0)
    return float(out) if out.ndim == 0 else out


def bits_stored(n_people: int, pool_sizes: Mapping[str, int], loss_bits: Mapping[str, float]) -> float:
    """Σ over the attributes in ``loss_bits`` of N · max(0, log2|pool| − loss_bits[attr])."""
    if int(n_people) != n_people or n_people < 0:
        raise MnemoscopeError(f"n_people must be an integer ≥ 0 (got {n_people})")
    total = 0.0
    for attr, loss in loss_bits.items():
        if attr not in pool_sizes:
            raise MnemoscopeError(
                f"loss_bits has attribute {attr!r} but pool_sizes does not: "
                f"give its pool size (known: {sorted(pool_sizes)})"
            )
        size = pool_sizes[attr]
        if int(size) != size or size < 1:
            raise MnemoscopeError(f"pool_sizes[{attr!r}] must be an integer ≥ 1 (got {size})")
        loss = float(loss)
        if not math.isfinite(loss) or loss < 0:
            raise MnemoscopeError(f"loss_bits[{attr!r}] must be a finite loss ≥ 0 bits (got {loss})")
        total += n_people * max(0.0, math.log2(size) - loss)
    return total


def capacity_ratio(bits: float, n_params: int) -> float:
    """Bits stored per model parameter: bits / n_params."""
    if n_params <= 0:
        raise MnemoscopeError(f"n_params must be > 0 (got {n_params})")
    return float(bits) / float(n_params)
