"""Multiple-choice accuracy from per-choice log-likelihoods, as lm-evaluation-harness scores a
``multiple_choice`` task (``lm_eval/api/task.py``, ``process_results``).

For one item with choices c_1..c_n and ℓ_j = log p(delimiter + c_j | context) summed over the
continuation's tokens:

- acc       = 1[argmax_j ℓ_j = gold]
- acc_norm  = 1[argmax_j ℓ_j / len(c_j) = gold], len = the choice's length in *characters*
  (Python ``len`` of the choice string, delimiter excluded);
- acc_bytes = 1[argmax_j ℓ_j / bytes(c_j) = gold], bytes = its UTF-8 length.

argmax takes the first maximum (numpy's rule), so ties go to the earlier choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mc_correct(loglikelihoods: Sequence[float], choices: Sequence[str], gold: int) -> dict[str, float]:
    """``{"acc", "acc_norm", "acc_bytes"}`` of one item, each 0.0 or 1.0."""
    lls = np.asarray(loglikelihoods, dtype=np.float64)
    if lls.shape != (len(choices),) or not 0 <= gold < len(choices):
        raise ValueError(f"mc_correct: {lls.shape[0] if lls.ndim else 0} log-likelihoods for {len(choices)} "
                         f"choices with gold {gold}; one per choice, gold in range")
    chars = np.array([float(len(c)) for c in choices])
    nbytes = np.array([float(len(c.encode("utf-8"))) for c in choices])
    return {"acc": float(np.argmax(lls) == gold), "acc_norm": float(np.argmax(lls / chars) == gold),
            "acc_bytes": float(np.argmax(lls / nbytes) == gold)}


def mc_chance(n_choices: Sequence[int]) -> float:
    """Expected accuracy of a uniform guess over items with ``n_choices`` choices: mean 1/n."""
    return float(np.mean([1.0 / n for n in n_choices]))
