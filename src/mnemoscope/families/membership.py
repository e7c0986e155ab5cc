"""Membership inference: engine scores → per-text attack scores → flat metrics.

One teacher-forced pass per text feeds every likelihood attack (PROTOCOLS §2). Keys follow
DESIGN.md: ``mia/<attack>/<stat>[@group]``; every score is oriented higher = member.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mnemoscope.engine import Engine, TokenScores
from mnemoscope.metrics.membership import membership_scores
from mnemoscope.metrics.roc import membership_report

ATTACKS = ("loss", "zlib", "min_k", "min_k_pp")


def attack_frame(texts: list[str], scored: list[TokenScores], k: float = 0.2, *, rounding: str = "up") -> pd.DataFrame:
    """Columns nll, n_scored, truncated, bos and score/<attack> for each attack, from scores
    already computed (so one pass can feed these and other attacks). ``texts[i]`` is the text
    ``scored[i]`` came from.

    zlib compresses the text exactly as given (``zlib.compress(text.encode("utf-8"))``), as
    Carlini et al. and MIMIR do: never a re-decoding of its tokens. ``rounding`` is Min-K%'s
    count rule (``metrics.membership.min_k_count``).
    """
    if len(texts) != len(scored):
        raise ValueError(f"attack_frame: {len(texts)} texts for {len(scored)} scores")
    rows = []
    for text, s in zip(texts, scored):
        row = {"nll": s.nll, "n_scored": s.n_scored, "truncated": s.truncated, "bos": s.bos}
        row.update({f"score/{a}": v for a, v in
                    membership_scores(s.logprobs, s.mu, s.sigma, text, k, rounding=rounding).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def score_texts(engine: Engine, texts: list[str], k: float = 0.2, *, rounding: str = "up") -> pd.DataFrame:
    """One forward pass per text → ``attack_frame`` of the results."""
    return attack_frame(list(texts), engine.score(list(texts)), k, rounding=rounding)


def membership_metrics(
    labels: np.ndarray,
    frame: pd.DataFrame,
    *,
    prefix: str = "mia",
    suffix: str = "",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Flat ``mia/<attack>/auc{suffix}`` etc. for every ``score/<attack>`` column.

    TPR at an FPR the negatives cannot resolve (n_neg < 1/FPR) is left out (null) and flagged.
    """
    labels = np.asarray(labels, dtype=int)
    out: dict[str, float] = {}
    for col in [c for c in frame.columns if c.startswith("score/")]:
        attack = col.split("/", 1)[1]
        report = membership_report(labels, frame[col].to_numpy(dtype=float), n_boot=n_boot, seed=seed)
        for key, value in report.items():
            if key.startswith("tpr@") and not key.endswith("underpowered") and report[f"{key}/underpowered"]:
                value = math.nan
            out[f"{prefix}/{attack}/{key}{suffix}"] = value
    return out
