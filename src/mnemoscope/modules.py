"""A module that is also a function: ``mnemoscope.compare(*runs)`` and ``mnemoscope.unlearn(...)``
are modules (and a package) that the Python API makes callable. At the bottom of the imports: it
imports nothing of mnemoscope."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable


def make_callable(module_name: str, function: Callable) -> None:
    """Make the imported module ``module_name`` callable as ``function`` (a module's ``__class__``
    may be a ``ModuleType`` subclass: Python's data model, "Customizing module attribute access")."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    CallableModule.__call__.__doc__ = function.__doc__
    sys.modules[module_name].__class__ = CallableModule
