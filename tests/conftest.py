"""Shared fixtures: tiny tokenizers and models the tests create locally (no hub access)."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from mnemoscope.lab.tiny import Preset, build_model, train_tokenizer
from mnemoscope.probes.corpus import background_documents

# Micro models are overhead-bound, and CI machines are small: one intra-op thread is faster and
# immune to oversubscription (set MNEMOSCOPE_TEST_THREADS to change it).
torch.set_num_threads(int(os.environ.get("MNEMOSCOPE_TEST_THREADS", "1")))

MICRO = Preset(hidden=64, layers=2, heads=4, intermediate=128, vocab=600, context=128)


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return background_documents(300, seed=1)


@pytest.fixture(scope="session")
def tokenizer(corpus):
    """GPT-2/Pythia-style: no BOS."""
    return train_tokenizer(corpus, MICRO.vocab)


@pytest.fixture(scope="session")
def bos_tokenizer(corpus):
    """Llama-style: prepends BOS."""
    return train_tokenizer(corpus, MICRO.vocab, add_bos=True)


def _model(tok, seed):
    torch.manual_seed(seed)
    model = build_model(MICRO, tok, seed=seed)
    # random init is near-uniform; sharpen it so distributions are far from trivial
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(8.0)
    return model.eval()


@pytest.fixture(scope="session")
def model(tokenizer):
    return _model(tokenizer, 0)


@pytest.fixture(scope="session")
def bos_model(bos_tokenizer):
    return _model(bos_tokenizer, 1)


@pytest.fixture(scope="session")
def saved_model_dir(tmp_path_factory, model, tokenizer):
    path = tmp_path_factory.mktemp("saved") / "micro"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# the micro model with a 512-token context, so SORT and puzzle prompts fit
WIDE = Preset(hidden=64, layers=2, heads=4, intermediate=128, vocab=600, context=512)


def save_model_dir(model, tok, path):
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def wide_dirs(tmp_path_factory, tokenizer):
    """A target and a reference model with the same tokenizer and a 512-token context."""
    root = tmp_path_factory.mktemp("wide")
    target = save_model_dir(build_model(WIDE, tokenizer, seed=0).eval(), tokenizer, root / "target")
    ref = save_model_dir(build_model(WIDE, tokenizer, seed=1).eval(), tokenizer, root / "ref")
    return target, ref


@pytest.fixture(scope="session")
def studied(corpus):
    """Three 150-character texts that ``memorizer`` has learned by heart."""
    return [doc[:150] for doc in corpus[:3]]


@pytest.fixture(scope="session")
def memorizer(tokenizer, studied):
    """An engine over a micro model trained on ``studied`` until it reproduces them."""
    from mnemoscope.engine import Engine

    from .helpers import memorize

    return Engine(memorize(tokenizer, studied), tokenizer)


@pytest.fixture(scope="session")
def extraction_lab(tokenizer):
    """(engine, docs): twelve short documents, the first four memorized by the engine's model."""
    from mnemoscope.engine import Engine

    from .helpers import memorize

    docs = background_documents(12, seed=21, sentences_per_doc=(1, 2))
    model = memorize(tokenizer, docs[:4], steps=120)
    return Engine(model, tokenizer), docs


@pytest.fixture(scope="session")
def kk_puzzles():
    """Seven Knights-and-Knaves puzzles: four with two people, three with three."""
    from mnemoscope.probes import knights_knaves as kk

    return kk.generate_puzzles(4, n_people=2, seed=0) + kk.generate_puzzles(3, n_people=3, seed=1)


@pytest.fixture(scope="session")
def reference_trained(tokenizer):
    """A micro model that has memorised REFERENCE_TEXTS[:4] and REFERENCE_QA lines, so scores are far
    from uniform (the reference tests)."""
    from .helpers import REFERENCE_QA, REFERENCE_TEXTS, memorize

    qa = [f"Question: {q}\nAnswer: {a}" for q, a in REFERENCE_QA]
    return memorize(tokenizer, REFERENCE_TEXTS[:4] + qa, steps=120)


# --------------------------------------------------------------------------- unlearning methods


@pytest.fixture(scope="module")
def ref_model(model):
    """The frozen reference: the micro model."""
    return model


@pytest.fixture(scope="module")
def theta(model):
    """The model being unlearned: the micro model nudged, so π_θ ≠ π_ref."""
    m = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return m.eval()


@pytest.fixture
def fresh(model):
    return copy.deepcopy(model)


@pytest.fixture(scope="module")
def other_micro(tokenizer):
    """A second micro model over the same vocabulary (a stand-in for a reinforced model)."""
    m = build_model(MICRO, tokenizer, seed=5)
    with torch.no_grad():
        m.get_input_embeddings().weight.mul_(8.0)
    return m.eval()
