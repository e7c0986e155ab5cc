"""Corpora: generated, txt / JSONL / Parquet, Hugging Face dataset directory, packing, bad input."""

from __future__ import annotations

import builtins
import json

import pandas as pd
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.probes.corpora import load_corpus
from mnemoscope.train.packing import pack_corpus
from mnemoscope.probes.corpus import background_documents

TEXTS = ["The first document is short.", "A second one, also short.", "Third text here."]


def test_generated_corpus_is_the_background_generator():
    assert load_corpus("generated", n_docs=5, seed=3) == background_documents(5, seed=3)


@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".parquet"])
def test_user_files(tmp_path, suffix):
    path = tmp_path / f"c{suffix}"
    if suffix == ".txt":
        path.write_text("\n".join(TEXTS) + "\n")
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    else:
        pd.DataFrame({"text": TEXTS}).to_parquet(path)
    assert load_corpus(path) == TEXTS


def test_missing_source(tmp_path):
    with pytest.raises(MnemoscopeError, match="no such file"):
        load_corpus(tmp_path / "nope.txt")


def test_hf_directory_without_datasets_says_what_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(MnemoscopeError, match="pip install datasets"):
        load_corpus(tmp_path)


def test_pack_corpus_rows(tokenizer):
    docs = background_documents(50, seed=0)
    rows = pack_corpus(docs, tokenizer, n_rows=6, seq_len=16, batch_size=3, seed=0)
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    assert rows.shape == (6, 16)
    eos = tokenizer.eos_token_id
    stream = rows.reshape(-1)
    first = next(i for i, d in enumerate(ids) if list(stream[: len(d)]) == d)  # starts at a document
    assert stream[len(ids[first])] == eos


def test_corpus_smaller_than_one_batch_is_an_error(tokenizer):
    with pytest.raises(MnemoscopeError, match="fewer than one batch"):
        pack_corpus(TEXTS, tokenizer, n_rows=64, seq_len=64, batch_size=8, seed=0)
    with pytest.raises(MnemoscopeError, match="fewer than one batch"):
        pack_corpus([], tokenizer, n_rows=2, seq_len=8, batch_size=1, seed=0)
