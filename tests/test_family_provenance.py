"""families.provenance: the rank correlation of likelihood with training order, its p-values, and
the order file's bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import provenance
from mnemoscope.metrics.provenance import spearman

from .helpers import family_config, run_family, write_texts


def test_provenance_statistic_and_mismatched_order(extraction_lab, tmp_path):
    engine, docs = extraction_lab
    ids = [f"x{i}" for i in range(len(docs))]
    texts = write_texts(tmp_path / "train.jsonl", docs, ids)
    order = tmp_path / "order.txt"
    order.write_text("\n".join(reversed(ids)) + "\n")
    res = run_family(provenance, family_config(provenance, texts=texts, order=str(order), n_perm=999), engine)
    nll = np.array([s.nll for s in engine.score(docs)])
    positions = np.array([len(ids) - 1 - i for i in range(len(ids))])
    assert res.metrics["provenance/rho"] == pytest.approx(spearman(-nll, positions))
    assert 0 < res.metrics["provenance/p_value"] <= 1
    from scipy.stats import spearmanr  # the authors' p-value, reported next to ours

    assert res.metrics["provenance/p_value_two_sided"] == pytest.approx(spearmanr(-nll, positions).pvalue, rel=1e-6)
    # JSON-lines order with positions (ties allowed)
    jorder = write_texts(tmp_path / "order.jsonl", [])  # replaced below
    (tmp_path / "order.jsonl").write_text("".join(json.dumps({"id": x, "position": i // 2}) + "\n"
                                                  for i, x in enumerate(ids)))
    assert provenance.read(family_config(provenance, texts=texts, order=jorder)).positions[3] == 1
    for content, match in [("\n".join(ids[:-1]), "without a position"), ("\n".join(ids + ["zz"]), "not in"),
                           ("\n".join(ids + [ids[0]]), "appears twice"), ("", "holds no ids")]:
        order.write_text(content)
        with pytest.raises(MnemoscopeError, match=match):
            provenance.read(family_config(provenance, texts=texts, order=str(order)))
    with pytest.raises(MnemoscopeError, match="needs both"):
        provenance.read(family_config(provenance, texts=texts))
