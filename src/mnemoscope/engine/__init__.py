"""The engine: the only code that runs forward passes and encodes text for measurement.

``Backend`` is the contract every measurement uses (``engine.backend``); ``HFEngine`` (alias
``Engine``) implements it on a transformers model, ``engine.vllm.VLLMBackend`` on vLLM (optional
dependency, imported on use), and ``engine.workers.ShardedBackend`` spreads any of them over
worker processes or Ray actors. ``open_backend(kind, model, workers=N)`` picks among them.
"""

from mnemoscope.engine.backend import (
           CAPABILITIES,
           Backend,
           Continuation,
           Sampling,
           TokenScores,
)
from mnemoscope.engine.factory import BACKENDS, BackendSpec, open_backend
from mnemoscope.engine.hf import Engine, HFEngine
from mnemoscope.engine.loading import LoadedModel, load_model

__all__ = ["BACKENDS", "CAPABILITIES", "Backend", "BackendSpec", "Continuation", "Engine", "HFEngine", "LoadedModel",
           "Sampling", "TokenScores", "load_model", "open_backend"]
