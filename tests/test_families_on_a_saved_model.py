"""Untargeted extraction, approximate memorization, provenance and ACR together on a model loaded
from disk, as ``mnemoscope audit`` runs them."""

from __future__ import annotations

from mnemoscope.engine import Engine
from mnemoscope.families import acr, approximate, provenance, untargeted

from .helpers import family_config, run_family, write_texts


def test_families_run_on_a_saved_model(saved_model_dir, corpus, tmp_path):
    """Each family on a model loaded from disk, as ``mnemoscope audit`` will run it."""
    from mnemoscope.engine import load_model

    loaded = load_model(str(saved_model_dir), device="cpu")
    engine = Engine.from_loaded(loaded)
    docs = [d.split(". ")[0] + "." for d in corpus[:12]]
    ids = [f"d{i}" for i in range(len(docs))]
    texts = write_texts(tmp_path / "docs.jsonl", docs, ids)
    (tmp_path / "order.txt").write_text("\n".join(ids))
    assert run_family(untargeted, family_config(untargeted, corpus=texts, min_tokens=4, max_new_tokens=8, n_samples=2),
                      engine).metrics["untargeted/generations/n"] == 3
    assert run_family(approximate, family_config(approximate, texts=texts, prefix_tokens=3, suffix_tokens=4),
                      engine).metrics["approx/n"] > 0
    assert run_family(provenance, family_config(provenance, texts=texts, order=str(tmp_path / "order.txt"), n_perm=99),
                      engine).metrics["provenance/n"] == 12
    assert run_family(acr, family_config(acr, targets=texts, start_tokens=1, max_prompt_tokens=2, steps=1,
                                         budget_steps=1, batch_size=4, topk=4), engine).metrics["acr/n"] == 12
