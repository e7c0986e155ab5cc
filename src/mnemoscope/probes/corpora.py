"""Background corpora for training: the generated encyclopedia text or the user's own text.

``source`` is one of:

* ``"generated"``: :func:`mnemoscope.probes.corpus.background_documents` (seeded, synthetic);
* a ``.txt`` / ``.jsonl`` / ``.json`` / ``.parquet`` file (one text per line / a ``text`` field
  or column, read by :mod:`mnemoscope.probes.textfile`);
* a directory written by ``datasets.Dataset.save_to_disk`` (a Hugging Face dataset on local
  disk; needs the optional ``datasets`` package, imported only then).

``mnemoscope.train.packing.pack_corpus`` tokenizes the documents and packs them (each + EOS) into
fixed-length rows.
"""

from __future__ import annotations

from pathlib import Path

from mnemoscope.errors import MnemoscopeError

GENERATED = "generated"


def load_corpus(source: str | Path, *, n_docs: int = 3000, seed: int = 0, field: str = "text",
                split: str = "train") -> list[str]:
    """The corpus' documents, in source order (see the module docstring for ``source``)."""
    if str(source) == GENERATED:
        from mnemoscope.probes.corpus import background_documents

        if n_docs < 1:
            raise MnemoscopeError(f"corpus.n_docs must be ≥ 1 (got {n_docs})")
        return background_documents(n_docs, seed=seed)
    path = Path(source)
    if path.is_dir():
        return _hf_dataset_texts(path, field, split)
    if not path.exists():
        raise MnemoscopeError(
            f"corpus '{source}': no such file or directory; use 'generated', a .txt/.jsonl/.parquet file, "
            "or a directory saved with datasets' save_to_disk"
        )
    from mnemoscope.probes.textfile import load_texts

    return load_texts(path, field)


def _hf_dataset_texts(path: Path, field: str, split: str) -> list[str]:
    try:
        import datasets
    except ImportError:
        raise MnemoscopeError(
            f"corpus {path} is a directory (a Hugging Face dataset?): reading it needs the 'datasets' "
            "package: pip install datasets"
        ) from None
    try:
        data = datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise MnemoscopeError(f"corpus {path}: not a dataset saved with save_to_disk ({exc})") from None
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise MnemoscopeError(f"corpus {path}: no split '{split}' (splits: {', '.join(data)}); set corpus.split")
        data = data[split]
    if field not in data.column_names:
        raise MnemoscopeError(f"corpus {path}: no column '{field}' (columns: {', '.join(data.column_names)})")
    texts = [t for t in data[field] if isinstance(t, str) and t.strip()]
    if not texts:
        raise MnemoscopeError(f"corpus {path}: column '{field}' holds no non-empty text")
    return texts
