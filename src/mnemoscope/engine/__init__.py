"""The engine: the only code that runs forward passes and encodes text for measurement.

``Backend`` is the contract every measurement uses (``engine.backend``); ``HFEngine`` (alias
``Engine``) implements it on a transformers model.
"""

from mnemoscope.engine.backend import (
           CAPABILITIES,
           Backend,
           Continuation,
           Sampling,
           TokenScores,
)
from mnemoscope.engine.hf import Engine, HFEngine
from mnemoscope.engine.loading import LoadedModel, load_model

__all__ = ["CAPABILITIES", "Backend", "Continuation", "Engine", "HFEngine", "LoadedModel", "Sampling",
           "TokenScores", "load_model"]
