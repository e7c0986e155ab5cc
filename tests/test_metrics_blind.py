"""metrics.blind: the date detector against Das et al.'s rule written out, and the fitted cutoff
against brute force (the bag-of-words scores are tested with the family, in test_family_blind.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mnemoscope.metrics.blind import ANY_FOUR_DIGITS, _best_rule, _rule, date_scores, latest_years
from mnemoscope.metrics.roc import roc_auc


def _das_date_rule(texts, cutoff):
    """Das et al.'s date detector written out: every run of four digits, the largest one; 1 when it
    is before the cutoff, 0 when not, 0.5 when the text has none."""
    out = []
    for text in texts:
        found = [int(m) for m in re.findall("[0-9][0-9][0-9][0-9]", text)]
        out.append(0.5 if not found else (1.0 if max(found) < cutoff else 0.0))
    return np.array(out)


def test_date_rule_with_a_cutoff_is_das_et_al_s():
    texts = ["born 1987, moved in 2019", "no year here", "in 2024", "code 123456 and 1999", "2023 and 1800", "x"]
    years = latest_years(texts, ANY_FOUR_DIGITS)
    np.testing.assert_array_equal(date_scores(years, [1, 1, 1, 0, 0, 0], cutoff=2023), _das_date_rule(texts, 2023))
    # ours (standalone years) skips digits inside longer numbers
    assert latest_years(["code 123456 and 1999"])[0] == 1999
    assert latest_years(["code 567890 and 1999"], ANY_FOUR_DIGITS)[0] == 5678


def test_fitted_cutoff_is_the_best_rule_by_brute_force():
    rng = np.random.default_rng(5)
    years = rng.integers(1980, 2024, 50).astype(float)
    years[rng.random(50) < 0.2] = np.nan
    labels = (rng.random(50) < 0.5).astype(int)
    cutoff, older = _best_rule(years, labels)
    brute = max(roc_auc(labels, _rule(years, c + 1.0, o)) for c in np.unique(years[~np.isnan(years)])
                for o in (True, False))
    assert roc_auc(labels, _rule(years, cutoff, older)) == pytest.approx(brute)
