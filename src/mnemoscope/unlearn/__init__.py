"""Unlearning: the runner, the objectives, the methods (``methods/``) and the six-way evaluation.

The package is also callable: ``mnemoscope.unlearn(model, forget, retain, method=...)`` is
``mnemoscope.api.unlearn``."""

from mnemoscope.api import callable_module

callable_module(__name__, "unlearn")
